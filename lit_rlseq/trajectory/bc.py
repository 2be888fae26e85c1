"""Behaviour cloning: the offline-RL baseline the Trajectory Transformer is compared with, on the same data.

An MLP maps the (normalised) observation to the action, trained with mean-squared error on every transition
of the selected episodes (``BCDataModule``: one-transition windows of the shared ``RolloutDataModule``).
Evaluated like the planner (``BCEvaluator``), with the action clipped to the env's bounds.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lit_rlseq.errors import UserError
from lit_rlseq.rollouts.datamodule import RolloutDataModule
from lit_rlseq.trajectory.evaluate import PolicyEvaluator


class BCDataModule(RolloutDataModule):
    """``(obs, action)`` pairs of the selected episodes, split by episode.

    Args:
        path, select, batch_size, val_fraction, seed: as for ``RolloutDataModule``.
        dataset, env: the dataset's name and env id (remembered by the checkpoint, as for the TT).
    """

    def __init__(self, path: str, dataset: str, env: str | None = None, select: dict[str, Any] | None = None,
                 batch_size: int = 256, val_fraction: float = 0.05, seed: int = 0, num_workers: int = 0):
        super().__init__(path, window=1, batch_size=batch_size, fields=["obs", "action"], val_fraction=val_fraction,
                         select=select, seed=seed, num_workers=num_workers)
        self.dataset, self.env = dataset, env
        self.obs_mean: np.ndarray | None = None
        self.obs_std: np.ndarray | None = None

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.field_specs["obs"].shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.field_specs["action"].shape))

    @property
    def dataset_spec(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "env": self.env}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        obs = self.episodes.fields["obs"].reshape(len(self.episodes.fields["obs"]), -1).astype(np.float64)
        self.obs_mean, self.obs_std = obs.mean(axis=0), obs.std(axis=0) + 1e-6

    def transform_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        b = len(batch["obs"])
        return {"obs": batch["obs"][:, 0].reshape(b, -1).float(), "action": batch["action"][:, 0].reshape(b, -1).float(),
                "mask": batch["mask"][:, 0]}


class BehaviourCloning(L.LightningModule):
    """Args (data-derived ones linked from ``BCDataModule``): obs_dim, action_dim, dataset_spec;
    hidden: MLP widths; lr, weight_decay: AdamW."""

    def __init__(self, obs_dim: int | None = None, action_dim: int | None = None,
                 dataset_spec: dict[str, Any] | None = None, hidden: tuple[int, ...] = (256, 256), lr: float = 1e-3,
                 weight_decay: float = 0.0):
        super().__init__()
        if obs_dim is None or action_dim is None or dataset_spec is None:
            raise UserError("BehaviourCloning needs obs_dim, action_dim and dataset_spec; use it with "
                            "--data lit_rlseq.trajectory.BCDataModule, which provides them")
        self.save_hyperparameters()
        # Attributes, not hparams: a module loaded inside a LightningCLI-instantiated one (an evaluator) records
        # the outer module's arguments as its hparams.
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.dataset_spec = dict(dataset_spec)
        widths = (obs_dim, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], action_dim))
        self.register_buffer("obs_mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("obs_std", torch.ones(obs_dim, dtype=torch.float64))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and getattr(datamodule, "obs_mean", None) is not None:
            self.obs_mean.copy_(torch.from_numpy(datamodule.obs_mean))
            self.obs_std.copy_(torch.from_numpy(datamodule.obs_std))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(((obs - self.obs_mean) / self.obs_std).float())

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        mask = batch["mask"].float()
        errors = F.mse_loss(self(batch["obs"]), batch["action"], reduction="none").mean(-1)
        loss = (errors * mask).sum() / mask.sum().clamp_min(1)
        self.log(f"{split}/loss", loss, prog_bar=True, on_step=split == "train", on_epoch=True)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class BCAgent:
    def __init__(self, module: BehaviourCloning):
        self.module = module.eval()

    def reset(self, n_envs: int) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        device = self.module.obs_mean.device
        return self.module(torch.as_tensor(obs, dtype=torch.float64, device=device)).cpu().numpy()

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, active: np.ndarray) -> None:
        pass


class BCEvaluator(PolicyEvaluator):
    """``lightning evaluate`` for a behaviour-cloning checkpoint."""

    agent_name = "bc"

    def __init__(self, checkpoint: str, dataset: str | None = None, env: str | None = None,
                 results: str | None = None, progress: bool = True):
        super().__init__(checkpoint, dataset, env, results, progress)
        self.check_observation_size(self.bc.obs_dim)

    def load(self, checkpoint: str) -> dict[str, Any]:
        self.bc = BehaviourCloning.load_from_checkpoint(checkpoint, map_location="cpu")
        return self.bc.dataset_spec

    def make_agent(self) -> BCAgent:
        return BCAgent(self.bc)
