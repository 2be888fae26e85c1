"""LDD stage 3: the language dynamics model trained on expert demonstrations, and the loader LDD's RL stage uses.

* ``DynamicsDataModule``: transitions (obs_t, a_t, obs_{t+1}) of the demonstrations in a rollout store (as
  ``lightning collect`` records them: ``obs/<key>`` with L+1 rows, ``action`` with L rows), split 85/15 by
  episode. It checks the store against the environment it is meant to model (env id, vocabulary, fields,
  word ids, actions) before any training, and exposes ``vocab`` and ``num_actions`` for the CLI to link.
* ``DynamicsModule``: ``lit_rlseq.nn.text_grid_dynamics.TextGridDynamics`` (what is predicted, and how, is
  defined there) with teacher-forced cross-entropy, Adam; validation logs token accuracy and cell exact match,
  on all cells and on the cells that change, for the model and for the "nothing moves" baseline.
* ``DynamicsMetricsPlot``: those validation metrics per epoch as ``dynamics_metrics.csv`` / ``.png``.
* ``load_dynamics_encoder``: the encoder's config and weights from a checkpoint, to initialise LDD's policy
  and its frozen teacher.

Defaults are the reference's (sizes of the SILG policy, Adam 1e-4, batch 100, 85/15 split); gradient
clipping (10) and early stopping live in the config, ``configs/ldd_rtfm_dynamics.yaml``.
"""

from __future__ import annotations

import csv
import math
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import lightning as L
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.ldd.impala import txt2pi_config
from lit_rlseq.nn.text_grid_dynamics import (
    CellTargets,
    TextGridDynamics,
    TextGridDynamicsConfig,
    cell_hits,
    cell_targets,
    changed_cells,
    copy_predictions,
)
from lit_rlseq.nn.txt2pi import OBS_DIMS, Txt2PiConfig
from lit_rlseq.rollouts import RolloutDataModule, RolloutStore
from lit_rlseq.rollouts.episode import FieldSpec

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLLECT_COMMAND = "lightning collect --config configs/ldd_rtfm_collect.yaml"
FIT_COMMAND = "lightning fit --config configs/ldd_rtfm_dynamics.yaml"
OBS_KEYS = tuple(OBS_DIMS)  # what the encoder reads of an observation
FIELDS = [f"obs/{key}" for key in OBS_KEYS] + ["action"]
TEXT_KEYS = ("name", "wiki", "task", "inv")  # word-id fields, with their "<key>_len"
CHECKPOINT_KIND_KEY = "lit_rlseq_kind"
CHECKPOINT_KIND = "ldd.DynamicsModule"
ENCODER_PREFIX = "model.encoder."
METRICS = ("token_acc", "cell_acc", "changed_token_acc", "changed_cell_acc")
MODEL_AND_BASELINE = ("", "copy_")  # metric name prefixes: the model's, the "nothing moves" baseline's


class TransitionDataModule(RolloutDataModule):
    """Transitions (obs_t, a_t, obs_{t+1}) of demonstrations of ``env`` recorded in a rollout store, split by
    episode: what LDD's dynamics models train on (this one for text grids; NetHack's in
    lit_rlseq.ldd.nethack_dynamics).

    Before any training it checks the store against the env: the store exists and holds episodes, it was
    recorded on ``env``, it has every field the model reads (``obs/<key>`` of the env's dtype and shape, an
    integer ``action`` per transition), and, once loaded, that every action is one of the env's. Subclasses
    add their own checks (``check_env``, ``check_metadata``, ``check_contents``). A batch is
    ``{"obs": {key: obs_t [B, ...]}, "action": [B], "next_obs": {key: obs_{t+1} [B, ...]}}``.
    """

    collect_command = COLLECT_COMMAND  # how to record the demonstrations (named in errors)

    def __init__(
        self,
        path: str,
        env: str,
        obs_keys: tuple[str, ...],
        env_kwargs: dict[str, Any] | None = None,
        select: dict[str, Any] | None = None,
        batch_size: int = 100,
        val_fraction: float = 0.15,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__(
            path=path, window=1, batch_size=batch_size, fields=[f"obs/{key}" for key in obs_keys] + ["action"],
            stride=1, val_fraction=val_fraction, select=select, seed=seed, num_workers=num_workers,
        )
        self.env_id = env
        self.obs_keys = tuple(obs_keys)
        probe = make_vector_env(env, num_envs=1, seed=0, **dict(env_kwargs or {}))
        try:
            self.num_actions = int(probe.single_action_space.n)
            observation_space = probe.single_observation_space
            self.check_env(probe)
        finally:
            probe.close()
        self._check_store(observation_space)
        self._contents_checked = False

    # -- what subclasses check -------------------------------------------------------------------------------
    def check_env(self, env: gym.vector.VectorEnv) -> None:
        """Raises UserError when ``env`` is not one this model reads."""

    def check_metadata(self, metadata: dict[str, Any]) -> None:
        """Raises (``self._mismatch``) when the store's metadata does not fit the env."""

    def check_contents(self, fields: dict[str, np.ndarray]) -> None:
        """Raises (``self._mismatch``) when loaded observations are out of range."""

    # -- the checks ------------------------------------------------------------------------------------------
    def _mismatch(self, message: str) -> DataError:
        return DataError(
            f"demonstration store {self.path}: {message}\n  record demonstrations of {self.env_id} with: "
            f"{self.collect_command} (data.init_args.env: {self.env_id}), or point data.init_args.path at such "
            "a store"
        )

    def _check_store(self, observation_space: gym.spaces.Dict) -> None:
        """Checks the store's metadata and schema against the env."""
        if not Path(self.path).exists():
            raise MissingArtifactError("demonstration store", self.path, produce_with=self.collect_command)
        with RolloutStore(self.path) as store:
            schema, metadata = store.schema, store.metadata
        if schema is None:
            raise self._mismatch("it holds no episodes yet")
        found_env = metadata.get("env")
        if found_env != self.env_id:
            raise self._mismatch(
                f"it was recorded on env {found_env!r}, expected {self.env_id!r} (data.init_args.env)"
            )
        self.check_metadata(metadata)
        expected = {
            f"obs/{key}": FieldSpec("state", np.dtype(observation_space[key].dtype).str, observation_space[key].shape)
            for key in self.obs_keys
        }
        for name, spec in expected.items():
            found = schema.get(name)
            if found is None or found.kind != spec.kind or np.dtype(found.dtype) != np.dtype(spec.dtype) \
                    or found.shape != spec.shape:
                raise self._mismatch(
                    f"field {name!r} is {found.describe() if found else 'missing'}, expected {spec.describe()}; "
                    f"its fields are {sorted(schema)}"
                )
        action = schema.get("action")
        if action is None or action.kind != "transition" or action.shape != () \
                or np.dtype(action.dtype).kind not in "iu":
            raise self._mismatch(
                f"field 'action' is {action.describe() if action else 'missing'}, expected integer[L] (one action "
                f"per transition); its fields are {sorted(schema)}"
            )
        logits = schema.get("behaviour_logits")
        if logits is not None and logits.shape != (self.num_actions,):
            raise self._mismatch(
                f"its behaviour_logits have {logits.shape} action columns, but {self.env_id} has "
                f"{self.num_actions} actions"
            )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if not self._contents_checked:
            self.check_contents(self.episodes.fields)
            self._check_actions()
            self._contents_checked = True

    def _check_actions(self) -> None:
        actions = self.episodes.fields["action"]
        bad_actions = (actions < 0) | (actions >= self.num_actions)
        if bad_actions.any():
            raise self._mismatch(
                f"field 'action' holds actions in [{int(actions.min())}, {int(actions.max())}] (first in "
                f"{self._where(bad_actions, self.episodes.transition_offsets)}), but {self.env_id} has actions "
                f"0..{self.num_actions - 1}: the demonstrations are corrupt"
            )

    def _where(self, bad_rows: np.ndarray, offsets: np.ndarray) -> str:
        """Names the episode of the first bad row: its shard, position and run."""
        episode = int(np.searchsorted(offsets, np.flatnonzero(bad_rows)[0], side="right")) - 1
        ref = self.episodes.refs[episode]
        return f"episode {ref.position} of shard {ref.shard}, run {ref.tags.run_id!r}"

    def transform_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        # Windows of one transition never run past their episode, so every row is real (batch["mask"] is True).
        return {
            "obs": {key: batch[f"obs/{key}"][:, 0] for key in self.obs_keys},
            "action": batch["action"][:, 0],
            "next_obs": {key: batch[f"obs/{key}"][:, 1] for key in self.obs_keys},
        }


class DynamicsDataModule(TransitionDataModule):
    """Transitions (obs_t, a_t, obs_{t+1}) of text-grid demonstrations of ``env`` recorded in the store at
    ``path``; besides TransitionDataModule's checks, the store's vocabulary must be the env's and every word id
    and length in range.

    A batch is ``{"obs": obs_t (the encoder's keys, [B, ...]), "action": [B], "next_name": [B, H, W, P, Nw],
    "next_name_len": [B, H, W, P]}``.
    """

    def __init__(
        self,
        path: str,
        env: str,
        select: dict[str, Any] | None = None,
        batch_size: int = 100,
        val_fraction: float = 0.15,
        seed: int = 0,
        num_workers: int = 0,
        env_kwargs: dict[str, Any] | None = None,
    ):
        """
        Args:
            path: the demonstration store (written by ``lightning collect``).
            env: the environment id the demonstrations must come from (e.g. rtfm:groups_simple_stationary);
                its vocabulary and observation layout are checked against the store's.
            env_kwargs: the env's options (e.g. Touchdown's ``root`` and ``layout: text_grid``).
            select: episode tag filters (e.g. ``{"run_id": "expert"}``; see RolloutStore.episodes).
            batch_size: transitions per batch.
            val_fraction: share of the episodes held out for validation.
            seed: seeds the split by episode and the shuffle order.
            num_workers: DataLoader worker processes.
        """
        super().__init__(
            path=path, env=env, obs_keys=OBS_KEYS, env_kwargs=env_kwargs, select=select, batch_size=batch_size,
            val_fraction=val_fraction, seed=seed, num_workers=num_workers,
        )

    def check_env(self, env: gym.vector.VectorEnv) -> None:
        env_vocab = getattr(env, "vocab", None)
        if env_vocab is None:
            raise UserError(
                f"data.init_args.env={self.env_id!r} is not a text-grid environment (it has no vocabulary)"
            )
        placements = env.single_observation_space["name"].shape[2]
        if placements != 1:
            raise UserError(
                f"{self.env_id} has {placements} placements per cell; the dynamics model predicts one placement "
                "per cell (see lit_rlseq.nn.text_grid_dynamics)"
            )
        self._env_words, self._env_fingerprint = list(env_vocab.words), env_vocab.fingerprint()

    def check_metadata(self, metadata: dict[str, Any]) -> None:
        words, fingerprint = self._env_words, self._env_fingerprint
        found_fingerprint = metadata.get("vocab_fingerprint")
        if found_fingerprint != fingerprint:
            raise self._mismatch(
                f"its vocabulary fingerprint is {found_fingerprint!r}, expected {fingerprint!r} (the vocabulary of "
                f"{self.env_id}, {len(words)} words): its word ids mean other words"
            )
        if metadata.get("vocab") != words:
            raise self._mismatch(
                f"its vocabulary list (metadata key 'vocab') is not the {len(words)} words of {self.env_id}, although "
                "its fingerprint matches: the metadata is corrupt"
            )
        self.vocab: list[str] = list(metadata["vocab"])

    def check_contents(self, fields: dict[str, np.ndarray]) -> None:
        """Word ids and lengths of every loaded transition are in range (corrupt demos never train)."""
        episodes = self.episodes
        vocab_size = len(self.vocab)
        for key in TEXT_KEYS:
            ids, lengths = fields[f"obs/{key}"], fields[f"obs/{key}_len"]
            min_length = 0 if key == "name" else 1
            per_row = tuple(range(1, ids.ndim))
            bad_ids = ((ids < 0) | (ids >= vocab_size)).any(axis=per_row)
            if bad_ids.any():
                raise self._mismatch(
                    f"field 'obs/{key}' holds word ids in [{int(ids.min())}, {int(ids.max())}] (first in "
                    f"{self._where(bad_ids, episodes.state_offsets)}), outside the vocabulary of {self.env_id} "
                    f"(ids 0..{vocab_size - 1}): the demonstrations are corrupt"
                )
            bad_lengths = ((lengths < min_length) | (lengths > ids.shape[-1])).any(axis=tuple(range(1, lengths.ndim)))
            if bad_lengths.any():
                raise self._mismatch(
                    f"field 'obs/{key}_len' holds lengths in [{int(lengths.min())}, {int(lengths.max())}] (first in "
                    f"{self._where(bad_lengths, episodes.state_offsets)}), expected [{min_length}, {ids.shape[-1]}]: "
                    "the demonstrations are corrupt"
                )

    def transform_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        transitions = super().transform_batch(batch)
        return {
            "obs": transitions["obs"],
            "action": transitions["action"],
            "next_name": transitions["next_obs"]["name"],
            "next_name_len": transitions["next_obs"]["name_len"],
        }


class DynamicsModule(L.LightningModule):
    """Trains TextGridDynamics with teacher-forced cross-entropy over the target positions (end markers
    included); validation logs val/{,copy_}{token,cell,changed_token,changed_cell}_acc and val/loss."""

    def __init__(
        self,
        vocab: list[str] | None = None,
        num_actions: int | None = None,
        d_word: int = 100,
        d_text: int = 200,
        channels: tuple[int, ...] = (16, 32, 64, 64, 64),
        d_rep: int = 400,
        d_action: int = 32,
        d_cell: int = 100,
        dedupe_text: bool = True,
        lr: float = 1e-4,
    ):
        """
        Args:
            vocab: the environment's word list (linked from the data).
            num_actions: size of the action space (linked from the data).
            d_word, d_text, channels, d_rep, dedupe_text: the encoder's sizes (see Txt2PiConfig); LDD's policy
                must use the same ones to load the encoder.
            d_action, d_cell: the decoder's sizes (see TextGridDynamicsConfig).
            lr: Adam learning rate.
        """
        super().__init__()
        self.save_hyperparameters()  # load_dynamics_encoder rebuilds the encoder config from these
        encoder = txt2pi_config(
            vocab, num_actions, type(self).__name__,
            d_word=d_word, d_text=d_text, channels=tuple(channels), d_rep=d_rep, dedupe_text=dedupe_text,
        )
        self.model = TextGridDynamics(TextGridDynamicsConfig(encoder, d_action=d_action, d_cell=d_cell))
        self.lr = lr
        # Means over all target positions / cells of all validation batches and ranks.
        self.val_metrics = nn.ModuleDict(
            {prefix + name: MeanMetric() for prefix in MODEL_AND_BASELINE for name in METRICS}
        )
        self.val_loss = MeanMetric()

    def loss_and_logits(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, CellTargets]:
        targets = cell_targets(batch["next_name"], batch["next_name_len"])
        logits = self.model(batch["obs"], batch["action"], targets.ids)
        loss = F.cross_entropy(logits[targets.mask], targets.ids[targets.mask])
        return loss, logits, targets

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _, _ = self.loss_and_logits(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch["action"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, logits, targets = self.loss_and_logits(batch)
        obs = batch["obs"]
        changed = changed_cells(obs["name"], obs["name_len"], batch["next_name"], batch["next_name_len"])
        predictions = {
            "": logits.argmax(dim=-1),
            "copy_": copy_predictions(obs["name"], obs["name_len"], targets.ids.shape[-1]),
        }
        for prefix, predicted in predictions.items():
            hits = cell_hits(predicted, targets, changed)
            for name in METRICS:
                self.val_metrics[prefix + name].update(getattr(hits, name.removesuffix("_acc")).float())
        self.val_loss.update(loss, weight=targets.mask.sum())
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True)
        for name, metric in self.val_metrics.items():
            self.log(f"val/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "changed_cell_acc")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KIND_KEY] = CHECKPOINT_KIND  # lets load_dynamics_encoder refuse other checkpoints


def read_checkpoint(path: Path, kind: str, what: str, fit_command: str, vocab: list[str] | None = None
                    ) -> dict[str, Any]:
    """The checkpoint at ``path``, refused with a clear error when it is missing, unreadable, not of ``kind``
    (its ``lit_rlseq_kind`` entry) or, given ``vocab``, trained on another vocabulary."""
    if not path.is_file():
        raise MissingArtifactError(f"{what} checkpoint", str(path), produce_with=fit_command)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise DataError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(checkpoint, dict) or checkpoint.get(CHECKPOINT_KIND_KEY) != kind:
        found = checkpoint.get(CHECKPOINT_KIND_KEY, "no kind") if isinstance(checkpoint, dict) else type(checkpoint)
        raise DataError(
            f"{path} is not a {what} checkpoint ({found!r}, expected {kind!r}); pass the checkpoint written by: "
            f"{fit_command}"
        )
    trained_on = checkpoint["hyper_parameters"].get("vocab") if vocab is not None else None
    if vocab is not None and list(trained_on or []) != list(vocab):
        raise DataError(
            f"{what} checkpoint {path} was trained on another vocabulary ({len(trained_on or [])} words) than the one "
            f"given ({len(vocab)} words): its word embeddings would mean other words"
        )
    return checkpoint


def load_dynamics_encoder(
    checkpoint_path: str, vocab: list[str] | None = None
) -> tuple[Txt2PiConfig, dict[str, torch.Tensor]]:
    """The encoder config and weights (keys as in ``Txt2PiEncoder.state_dict()``) of a DynamicsModule checkpoint.

    With ``vocab``, also checks that the checkpoint was trained on that vocabulary (same words, same ids).
    """
    path = Path(checkpoint_path)
    checkpoint = read_checkpoint(path, CHECKPOINT_KIND, "dynamics model", FIT_COMMAND, vocab)
    hparams = checkpoint["hyper_parameters"]
    config = txt2pi_config(
        hparams["vocab"], hparams["num_actions"], "the dynamics checkpoint",
        d_word=hparams["d_word"], d_text=hparams["d_text"], channels=tuple(hparams["channels"]),
        d_rep=hparams["d_rep"], dedupe_text=hparams["dedupe_text"],
    )
    state = {
        key.removeprefix(ENCODER_PREFIX): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(ENCODER_PREFIX)
    }
    return config, state


class DynamicsMetricsPlot(L.Callback):
    """After every validation: ``dynamics_metrics.csv`` and ``.png`` in the logger's directory (rank 0 only).

    One row per epoch with the model's and the copy baseline's validation metrics; rows from before a resume
    are kept. The plot has one panel per name in ``metrics`` (``val/<name>``, ``val/changed_<name>`` and their
    ``copy_`` twins, where logged), titled by ``titles``; ``baseline`` names the copy baseline in the legend.
    """

    def __init__(self, metrics: tuple[str, ...] = ("token_acc", "cell_acc"),
                 titles: tuple[str, ...] = ("token accuracy", "cell exact match"), baseline: str = "nothing moves",
                 title: str = "dynamics model on held-out episodes (teacher-forced)"):
        if len(metrics) != len(titles) or not metrics:
            raise UserError(f"DynamicsMetricsPlot: one title per metric, got metrics {metrics} and titles {titles}")
        self.metrics, self.titles, self.baseline, self.title = tuple(metrics), tuple(titles), baseline, title

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        row = {"epoch": float(trainer.current_epoch), "step": float(trainer.global_step)}
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/") and value.numel() == 1:
                row[key] = float(value)
        root = trainer.logger.log_dir if trainer.logger is not None and trainer.logger.log_dir else None
        directory = Path(root or trainer.default_root_dir)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path = directory / "dynamics_metrics.csv"
        rows = [r for r in read_rows(csv_path) if r["epoch"] < row["epoch"]] + [row]
        columns = ["epoch", "step"] + sorted({k for r in rows for k in r} - {"epoch", "step"})
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        plot_metrics(rows, directory / "dynamics_metrics.png", self.metrics, self.titles, self.baseline, self.title)


def read_rows(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def plot_metrics(rows: list[dict[str, float]], path: Path, metrics: tuple[str, ...] = ("token_acc", "cell_acc"),
                 titles: tuple[str, ...] = ("token accuracy", "cell exact match"), baseline: str = "nothing moves",
                 title: str = "dynamics model on held-out episodes (teacher-forced)") -> None:
    """Each metric per epoch (one panel each), all cells and changed cells, model vs copy baseline."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric, panel in zip(axes[0], metrics, titles):
        for cells, color in (("", "C0"), ("changed_", "C1")):
            for prefix, style, who in (("", "-", "model"), ("copy_", "--", baseline)):
                key = f"val/{prefix}{cells}{metric}"
                points = [(r["epoch"], r[key]) for r in rows if not math.isnan(r.get(key, math.nan))]
                if points:
                    xs, ys = zip(*points)
                    label = f"{who}, {'changed cells' if cells else 'all cells'}"
                    ax.plot(xs, ys, style, color=color, marker="o", markersize=3, label=label)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
