"""LDD on Messenger: the scripted expert as a collectable policy, and the EMMA dynamics model (LDD stage 3).

* ``MessengerExpert``: the scripted expert (lit_rlseq.envs.messenger.expert) as a policy module, so
  ``lightning collect`` records its demonstrations (the reference recorded a trained EMMA instead; a trained
  policy module records the same way with ``--model ... --ckpt_path ...``).
* ``MessengerDynamicsDataModule``: windows of whole demonstration episodes (``obs/entities``, ``obs/avatar``,
  ``obs/manual``, ``obs/manual_len``, ``action``) from a rollout store, checked against the env they must come
  from (env id, vocabulary, entity layers).
* ``MessengerDynamicsModule``: the EMMA trunk (3-frame history, manual attention, conv) -> Linear(5184 + one-hot
  action -> 10 x 10 x L x classes), cross-entropy over the entity id of every (cell, layer) of the next frame.
  Two departures from the reference, both because its model did not learn here (after 108 steps it
  predicted "empty" in every cell):

  * Targets are each cell's entity ids sorted (largest first), not the layers as the env draws them: S2/S3
    redraw the layer order every step, so the reference's per-layer targets are partly a coin toss no model
    can learn, and the sorted ones hold the same information.
  * A learned copy logit (``lit_rlseq.nn.copy_logit``) adds a bonus to the id each (cell, layer) holds now, so
    "nothing moves" is where the model starts and its gradient goes to what moves.

  Validation: per-(cell, layer) accuracy on the sorted layers (``token_acc``) and per-cell exact match
  (``cell_acc``), on all cells and on the cells that change, for the model and for the "nothing moves"
  baseline (``copy_``).
* ``load_emma_dynamics``: the trunk's config and weights from a checkpoint, for LDD's RL stage.

Windows start at transitions 0, ``window``, 2 ``window``, ... of an episode; each window restarts the frame
history at its first observation, which is exact for episodes no longer than ``window`` (the default 10 is
LDD's step limit).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from lit_rlseq.envs.messenger.expert import ExpertPolicy
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.ldd.dynamics import read_checkpoint
from lit_rlseq.loops.module import OnlineRLModule
from lit_rlseq.nn.copy_logit import add_copy_logit
from lit_rlseq.nn.emma import GRID, Emma, EmmaConfig
from lit_rlseq.rollouts import RolloutDataModule

OBS_KEYS = ("entities", "avatar", "manual", "manual_len")
COLLECT_COMMAND = "lightning collect --config configs/ldd_messenger_collect.yaml"
FIT_COMMAND = "lightning fit --config configs/ldd_messenger_dynamics.yaml"
CHECKPOINT_KIND_KEY = "lit_rlseq_kind"
CHECKPOINT_KIND = "ldd.MessengerDynamicsModule"
TRUNK_PREFIX = "model.trunk."


class MessengerExpert(OnlineRLModule):
    """The scripted Messenger expert (reads the true roles and positions); has no parameters to train."""

    def __init__(self, vocab: list[str] | None = None, num_actions: int | None = None):
        super().__init__()
        self.policy = ExpertPolicy()


class MessengerDynamicsDataModule(RolloutDataModule):
    """A batch: ``obs`` (time-major [W+1, B, ...] per key), ``first`` [W, B], ``action`` [W, B], ``mask`` [W, B]."""

    def __init__(self, path: str, env: str, window: int = 10, batch_size: int = 32, val_fraction: float = 0.15,
                 select: dict[str, Any] | None = None, seed: int = 0, num_workers: int = 0):
        """
        Args:
            path: the demonstration store (``lightning collect --config configs/ldd_messenger_collect.yaml``).
            env: the Messenger env id the demonstrations must come from (e.g. messenger:s2).
            window: transitions per window (whole episodes when episodes are no longer).
            batch_size: windows per batch.
            val_fraction: share of the episodes held out for validation.
            select: episode tag filters (see RolloutStore.episodes).
            seed: seeds the split and the shuffle.
            num_workers: DataLoader worker processes.
        """
        fields = [f"obs/{k}" for k in OBS_KEYS] + ["action"]
        super().__init__(path=path, window=window, batch_size=batch_size, fields=fields, stride=window,
                         val_fraction=val_fraction, select=select, seed=seed, num_workers=num_workers)
        self.env_id = env
        probe = make_vector_env(env, num_envs=1, seed=0)
        vocab = getattr(probe, "vocab", None)
        space = probe.single_observation_space
        self.num_actions = int(probe.single_action_space.n)
        probe.close()
        if vocab is None or "entities" not in getattr(space, "spaces", {}):
            raise UserError(f"data.init_args.env={env!r} is not a Messenger environment (use messenger:<stage>)")
        self.num_layers = int(space["entities"].shape[-1])
        if not Path(path).exists():
            raise MissingArtifactError("demonstration store", path, produce_with=COLLECT_COMMAND)
        metadata = self.store_metadata
        problems = []
        if metadata.get("env") != env:
            problems.append(f"it was recorded on env {metadata.get('env')!r}, expected {env!r}")
        if metadata.get("vocab_fingerprint") != vocab.fingerprint():
            problems.append(f"its vocabulary fingerprint is {metadata.get('vocab_fingerprint')!r}, expected "
                            f"{vocab.fingerprint()!r} (its word ids mean other words)")
        entities = self.field_specs["obs/entities"]
        if tuple(entities.shape) != tuple(space["entities"].shape):
            problems.append(f"its obs/entities are {entities.describe()}, expected shape {space['entities'].shape}")
        if problems:
            raise DataError(f"demonstration store {path}: " + "; ".join(problems)
                            + f"\n  record demonstrations of {env} with: {COLLECT_COMMAND} (data.init_args.env: {env})")
        self.vocab = list(vocab.words)

    def transform_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        obs = {k: batch[f"obs/{k}"].transpose(0, 1) for k in OBS_KEYS}  # [W+1, B, ...]
        first = torch.zeros(batch["action"].shape[::-1], dtype=torch.bool)
        first[0] = True  # every window restarts the history (see the module docstring)
        return {"obs": obs, "first": first, "action": batch["action"].transpose(0, 1),
                "mask": batch["mask"].transpose(0, 1)}


class MessengerDynamics(nn.Module):
    """EMMA's trunk and a head that classifies the entity id of every (cell, layer) of the next frame."""

    def __init__(self, config: EmmaConfig, num_layers: int, num_classes: int, copy_init: float = 5.0):
        super().__init__()
        self.trunk = Emma(config)
        self.num_layers, self.num_classes = num_layers, num_classes
        self.head = nn.Linear(config.d_features + config.num_actions, GRID * GRID * num_layers * num_classes)
        self.copy_logit = nn.Parameter(torch.tensor(float(copy_init)))

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs [T, B, ...] (the frames the actions were taken at), action [T, B] -> logits [T, B, 10, 10, L, C]
        over the next frame's entity ids, each cell's layers sorted (``canonical_layers``)."""
        features, _ = self.trunk.trunk(obs, first)
        one_hot = F.one_hot(action.reshape(-1), self.trunk.num_actions).to(features.dtype)
        logits = self.head(torch.cat([features, one_hot], -1))
        logits = logits.view(*action.shape, GRID, GRID, self.num_layers, self.num_classes)
        return add_copy_logit(logits, canonical_layers(obs["entities"]), self.copy_logit)


def canonical_layers(entities: torch.Tensor) -> torch.Tensor:
    """Each cell's entity ids sorted, largest first ([..., L] -> [..., L]; empty layers, id 0, last): the layer
    order S2/S3 draw at random every step is not part of the state."""
    return entities.long().sort(-1, descending=True).values


class MessengerDynamicsModule(L.LightningModule):
    def __init__(self, vocab: list[str] | None = None, num_actions: int | None = None, num_layers: int = 3,
                 num_classes: int = 128, d_word: int = 768, d_model: int = 256, conv_channels: int = 64,
                 hidden: int = 128, history_layout: str = "frames_as_channels", copy_init: float = 5.0,
                 lr: float = 1e-5):
        """
        Args:
            vocab, num_actions: linked from the data.
            num_layers: entity layers of the stage the demonstrations come from (S1 1, S2 3, S3 5).
            num_classes: classes per (cell, layer) (the reference: 128; ids 0..16 occur).
            d_word, d_model, conv_channels, hidden, history_layout: EMMA's sizes (see EmmaConfig); LDD's policy
                takes them from the checkpoint.
            copy_init: the copy logit's starting value (0: the reference's plain classifier to start with).
            lr: Adam learning rate (the reference: 1e-5, batch 32, gradient clip 10 in the config).
        """
        super().__init__()
        self.save_hyperparameters()
        if not vocab or num_actions is None:
            raise UserError("MessengerDynamicsModule needs the vocabulary and number of actions of the data "
                            "(use data: lit_rlseq.ldd.messenger.MessengerDynamicsDataModule)")
        if num_classes < 17:
            raise UserError(f"model.init_args.num_classes must be >= 17 (entity ids 0..16), got {num_classes}")
        self.config = EmmaConfig(vocab_size=len(vocab), num_actions=num_actions, d_word=d_word, d_model=d_model,
                                 conv_channels=conv_channels, hidden=hidden, history_layout=history_layout)
        self.model = MessengerDynamics(self.config, num_layers, num_classes, copy_init)
        self.lr = lr
        self.val_metrics = nn.ModuleDict({f"{p}{c}{m}": MeanMetric() for p in ("", "copy_")
                                          for c in ("", "changed_") for m in ("token_acc", "cell_acc")})
        self.val_loss = MeanMetric()

    def setup(self, stage: str) -> None:
        layers = getattr(self.trainer.datamodule, "num_layers", self.hparams.num_layers)
        if layers != self.hparams.num_layers:
            raise UserError(f"model.init_args.num_layers is {self.hparams.num_layers} but the data has {layers} "
                            f"entity layers ({self.trainer.datamodule.env_id}); set num_layers: {layers}")

    def loss_and_logits(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs, mask = batch["obs"], batch["mask"]
        steps = batch["action"].shape[0]
        logits = self.model({k: v[:steps] for k, v in obs.items()}, batch["first"], batch["action"])
        target = canonical_layers(obs["entities"][1:])  # [T, B, 10, 10, L]
        loss = F.cross_entropy(logits[mask].flatten(0, -2), target[mask].flatten())
        return loss, logits, target

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _, _ = self.loss_and_logits(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=int(batch["mask"].sum()))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, logits, target = self.loss_and_logits(batch)
        mask = batch["mask"]
        current = canonical_layers(batch["obs"]["entities"][:-1])
        target, current = target[mask], current[mask]  # [n, 10, 10, L], both sorted
        changed = (current != target).any(-1)  # [n, 10, 10]
        for prefix, predicted in (("", logits[mask].argmax(-1)), ("copy_", current)):
            token = predicted == target  # [n, 10, 10, L]
            cell = (predicted.sort(-1).values == target).all(-1)
            self.val_metrics[f"{prefix}token_acc"].update(token.float().mean())
            self.val_metrics[f"{prefix}cell_acc"].update(cell.float().mean())
            if changed.any():
                self.val_metrics[f"{prefix}changed_token_acc"].update(token[changed].float().mean())
                self.val_metrics[f"{prefix}changed_cell_acc"].update(cell[changed].float().mean())
        self.val_loss.update(loss)
        self.log("val/loss", self.val_loss)
        for name, metric in self.val_metrics.items():
            self.log(f"val/{name}", metric, prog_bar=name == "changed_cell_acc")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KIND_KEY] = CHECKPOINT_KIND
        checkpoint["emma_config"] = asdict(self.config)


def load_emma_dynamics(checkpoint_path: str, vocab: list[str] | None = None
                       ) -> tuple[EmmaConfig, dict[str, torch.Tensor]]:
    """EMMA's config and weights (keys of ``Emma.state_dict()``) from a MessengerDynamicsModule checkpoint.

    With ``vocab``, also checks that the checkpoint read the same vocabulary (same words, same ids)."""
    checkpoint = read_checkpoint(Path(checkpoint_path), CHECKPOINT_KIND, "Messenger dynamics model", FIT_COMMAND,
                                 vocab)
    config = EmmaConfig(**checkpoint["emma_config"])
    state = {k.removeprefix(TRUNK_PREFIX): v for k, v in checkpoint["state_dict"].items() if k.startswith(TRUNK_PREFIX)}
    return config, state
