"""LDD stage 3 on NetHack: the dynamics model that predicts the next 24x80 character screen, trained on
demonstrations recorded by ``lightning collect`` (configs/ldd_nethack_collect.yaml).

* ``NetHackDynamicsDataModule``: transitions (screen_t, a_t, screen_{t+1}) of the demonstrations, split by
  episode, checked against the NetHack env they must come from (see ``TransitionDataModule``).
* ``NetHackDynamicsModule``: ``lit_rlseq.nn.nethack_dynamics.NetHackDynamics`` with 256-way cross-entropy per
  character (averaged over the 1920 cells), Adam. Validation logs, for the model and for "nothing changes"
  (the current screen as the prediction, ``copy_``): per-character accuracy on all cells (``cell_acc``) and
  on the cells whose character changes (``changed_cell_acc``; 0 for the copy baseline by definition), and
  whole-screen exact match (``screen_acc``).
* ``load_nethack_dynamics_encoder``: the encoder's config and weights from a checkpoint, for LDD's NetHack
  policy (lit_rlseq.ldd.nethack.LDDNetHackImpala).

Defaults: the encoder sizes are the NetHack policy's reference sizes (lit_rlseq.ldd.nethack); the training
settings are those the reference gives for LDD's dynamics models (Adam 1e-4, batch 100, gradient clip 10 in
the config, 85/15 split by episode), as its NetHack section states none.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from lit_rlseq.errors import UserError
from lit_rlseq.ldd.dynamics import TransitionDataModule, read_checkpoint
from lit_rlseq.nn.nethack import COLUMNS, ROWS, NetHackPolicyConfig
from lit_rlseq.nn.nethack_dynamics import NetHackDynamics, NetHackDynamicsConfig

OBS_KEYS = ("tty_chars", "tty_colors", "tty_cursor")  # what the encoder reads
COLLECT_COMMAND = "lightning collect --config configs/ldd_nethack_collect.yaml"
FIT_COMMAND = "lightning fit --config configs/ldd_nethack_dynamics.yaml"
CHECKPOINT_KIND_KEY = "lit_rlseq_kind"
CHECKPOINT_KIND = "ldd.NetHackDynamicsModule"
ENCODER_PREFIX = "model.encoder."
METRICS = ("cell_acc", "changed_cell_acc", "screen_acc")


class NetHackDynamicsDataModule(TransitionDataModule):
    """A batch: ``{"obs": {tty_chars, tty_colors, tty_cursor: [B, ...]}, "action": [B], "next_chars": [B, 24, 80]}``."""

    collect_command = COLLECT_COMMAND

    def __init__(
        self,
        path: str,
        env: str = "nethack",
        select: dict[str, Any] | None = None,
        batch_size: int = 100,
        val_fraction: float = 0.15,
        seed: int = 0,
        num_workers: int = 0,
    ):
        """
        Args:
            path: the demonstration store (``lightning collect --config configs/ldd_nethack_collect.yaml``).
            env: the NetHack env id the demonstrations must come from (``nethack`` or ``nethack:<task>``).
            select: episode tag filters (see RolloutStore.episodes).
            batch_size: transitions per batch.
            val_fraction: share of the episodes held out for validation.
            seed: seeds the split by episode and the shuffle order.
            num_workers: DataLoader worker processes.
        """
        super().__init__(path=path, env=env, obs_keys=OBS_KEYS, select=select, batch_size=batch_size,
                         val_fraction=val_fraction, seed=seed, num_workers=num_workers)

    def check_env(self, env: gym.vector.VectorEnv) -> None:
        space = env.single_observation_space
        keys = set(getattr(space, "spaces", {}))
        if not set(OBS_KEYS) <= keys or tuple(space["tty_chars"].shape) != (ROWS, COLUMNS):
            raise UserError(
                f"data.init_args.env={self.env_id!r} is not a NetHack environment (it has no 24x80 terminal "
                f"observations {list(OBS_KEYS)}); use nethack or nethack:<task>"
            )

    def check_contents(self, fields: dict[str, np.ndarray]) -> None:
        cursor = fields["obs/tty_cursor"]
        bad = (cursor[:, 0] >= ROWS) | (cursor[:, 1] >= COLUMNS)
        if bad.any():
            raise self._mismatch(
                f"field 'obs/tty_cursor' holds positions outside the {ROWS}x{COLUMNS} terminal (first in "
                f"{self._where(bad, self.episodes.state_offsets)}): the demonstrations are corrupt"
            )

    def transform_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        transitions = super().transform_batch(batch)
        return {"obs": transitions["obs"], "action": transitions["action"],
                "next_chars": transitions["next_obs"]["tty_chars"]}


class NetHackDynamicsModule(L.LightningModule):
    def __init__(
        self,
        num_actions: int | None = None,
        d_char: int = 32,
        d_line: int = 128,
        map_channels: tuple[int, ...] = (16, 32, 32),
        d_map: int = 256,
        crop: int = 9,
        crop_channels: tuple[int, ...] = (16, 32),
        d_crop: int = 128,
        d_rep: int = 512,
        d_action: int = 32,
        channels: int = 64,
        blocks: int = 3,
        copy_init: float = 5.0,
        lr: float = 1e-4,
    ):
        """
        Args:
            num_actions: size of the action space (linked from the data).
            d_char ... d_rep: the encoder's sizes (see lit_rlseq.nn.nethack.NetHackPolicyConfig); LDD's policy
                takes them from the checkpoint.
            d_action, channels, blocks: the decoder's sizes (see lit_rlseq.nn.nethack_dynamics).
            copy_init: the starting value of the decoder's copy logit (see lit_rlseq.nn.nethack_dynamics).
            lr: Adam learning rate.
        """
        super().__init__()
        self.save_hyperparameters()
        if num_actions is None:
            raise UserError(
                "NetHackDynamicsModule needs the number of actions; use data: "
                "lit_rlseq.ldd.nethack_dynamics.NetHackDynamicsDataModule, which provides it"
            )
        encoder = NetHackPolicyConfig(
            num_actions=num_actions, d_char=d_char, d_line=d_line, map_channels=tuple(map_channels), d_map=d_map,
            crop=crop, crop_channels=tuple(crop_channels), d_crop=d_crop, d_rep=d_rep,
        )
        self.config = NetHackDynamicsConfig(encoder, d_action=d_action, channels=channels, blocks=blocks,
                                            copy_init=copy_init)
        self.model = NetHackDynamics(self.config)
        self.lr = lr
        self.val_metrics = nn.ModuleDict({prefix + name: MeanMetric() for prefix in ("", "copy_") for name in METRICS})
        self.val_loss = MeanMetric()

    def loss_and_logits(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(batch["obs"], batch["action"])  # [B, 256, 24, 80]
        return F.cross_entropy(logits, batch["next_chars"].long()), logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self.loss_and_logits(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch["action"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, logits = self.loss_and_logits(batch)
        target = batch["next_chars"].long()
        current = batch["obs"]["tty_chars"].long()
        changed = current != target  # [B, 24, 80]
        for prefix, predicted in (("", logits.argmax(1)), ("copy_", current)):
            for name, value in screen_accuracy(predicted, target, changed).items():
                if value.numel():
                    self.val_metrics[prefix + name].update(value)
        self.val_loss.update(loss, weight=target.numel())
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True)
        for name, metric in self.val_metrics.items():
            self.log(f"val/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "changed_cell_acc")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KIND_KEY] = CHECKPOINT_KIND  # load_nethack_dynamics_encoder refuses other kinds
        checkpoint["nethack_encoder_config"] = asdict(self.config.encoder)


def screen_accuracy(predicted: torch.Tensor, target: torch.Tensor, changed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hits of predicted screens [B, 24, 80] against the target screens, as float tensors to average:
    ``cell_acc`` (every cell), ``changed_cell_acc`` (the cells where ``changed`` is true; may be empty) and
    ``screen_acc`` (one per screen: all its cells right)."""
    hits = predicted == target
    return {
        "cell_acc": hits.float().flatten(),
        "changed_cell_acc": hits[changed].float(),
        "screen_acc": hits.flatten(1).all(1).float(),
    }


def load_nethack_dynamics_encoder(checkpoint_path: str) -> tuple[NetHackPolicyConfig, dict[str, torch.Tensor]]:
    """The encoder config (a NetHackPolicyConfig whose encoder sizes and number of actions are the checkpoint's)
    and weights (keys of ``NetHackEncoder.state_dict()``) of a NetHackDynamicsModule checkpoint."""
    checkpoint = read_checkpoint(Path(checkpoint_path), CHECKPOINT_KIND, "NetHack dynamics model", FIT_COMMAND)
    config = NetHackPolicyConfig(**checkpoint["nethack_encoder_config"])
    state = {
        key.removeprefix(ENCODER_PREFIX): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(ENCODER_PREFIX)
    }
    return config, state
