"""What every RL LightningModule here shares: a ``policy``, a frame counter and episode metrics.

* ``validation_step`` runs an ``EvaluationRequest`` (fresh episodes in an evaluation env) with the policy;
* ``predict_step`` runs a ``CollectionRequest`` (episodes recorded into a rollout store), so
  ``lightning collect`` (a predict run) works with any policy module;
* episode metrics are ``torchmetrics.MeanMetric`` objects, so under DDP the logged value is the mean over all
  episodes of all ranks, however many each rank finished.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from lit_rlseq.loops.unroll import EpisodeStats


class EpisodeMetrics(nn.Module):
    def __init__(self):
        super().__init__()
        self.episode_return = MeanMetric(nan_strategy="ignore")
        self.length = MeanMetric(nan_strategy="ignore")
        self.success = MeanMetric(nan_strategy="ignore")

    def update(self, stats: EpisodeStats) -> None:
        device = self.episode_return.device
        self.episode_return.update(stats.episode_return.to(device))
        self.length.update(stats.length.to(device, torch.float32))
        self.success.update(stats.success.to(device))

    def log_to(self, module: L.LightningModule, prefix: str, **kwargs: Any) -> None:
        """Every rank must call this (the same calls in the same order), even with no new episodes."""
        kwargs = {"on_step": False, "on_epoch": True, **kwargs}
        module.log(f"{prefix}/return", self.episode_return, **kwargs)
        module.log(f"{prefix}/length", self.length, **kwargs)
        module.log(f"{prefix}/success", self.success, **kwargs)


class OnlineRLModule(L.LightningModule):
    """Subclasses set ``self.policy`` (an ActorCritic or a ScriptedPolicy) in ``__init__``."""

    policy: Any

    def __init__(self):
        super().__init__()
        # Environment frames consumed by the learner so far, summed over ranks; saved in checkpoints.
        self.register_buffer("frames", torch.zeros((), dtype=torch.long))
        self.train_episodes = EpisodeMetrics()
        self.eval_episodes = nn.ModuleDict()
        self._epoch_start: tuple[float, int] | None = None

    def setup(self, stage: str) -> None:
        names = sorted(getattr(self.trainer.datamodule, "eval_envs", {}) or {})
        for name in names:
            if _metrics_key(name) not in self.eval_episodes:
                self.eval_episodes[_metrics_key(name)] = EpisodeMetrics().to(self.device)

    # -- training-side bookkeeping -------------------------------------------------------------------
    def count_frames(self, frames_this_rank: int) -> None:
        self.frames += frames_this_rank * self.trainer.world_size

    def on_train_epoch_start(self) -> None:
        self._epoch_start = (time.perf_counter(), int(self.frames))

    def log_training_progress(self, stats: EpisodeStats) -> None:
        self.train_episodes.update(stats)
        self.train_episodes.log_to(self, "train")
        self.log("frames", self.frames.float(), on_step=True, on_epoch=False, prog_bar=True)
        if self._epoch_start is not None:
            seconds = time.perf_counter() - self._epoch_start[0]
            if seconds > 0:
                fps = (int(self.frames) - self._epoch_start[1]) / seconds
                self.log("perf/frames_per_s", fps, on_step=True, on_epoch=False, prog_bar=True, rank_zero_only=True)

    # -- evaluation and collection -------------------------------------------------------------------
    def validation_step(self, request, batch_idx: int) -> EpisodeStats:
        stats = request.run(self.policy)
        metrics = self.eval_episodes[_metrics_key(request.name)]
        metrics.update(stats)
        metrics.log_to(self, f"eval/{request.name}", batch_size=len(stats))
        return stats

    def on_validation_epoch_end(self) -> None:
        # The x-axis of learning curves: evaluation results are plotted against frames, not steps.
        self.log("eval/frames", self.frames.float(), on_step=False, on_epoch=True)

    def predict_step(self, request, batch_idx: int) -> EpisodeStats:
        return request.run(self.policy)


def _metrics_key(eval_name: str) -> str:
    """ModuleDict keys must not shadow nn.Module attributes (an evaluation env may well be called "train")."""
    return "env_" + eval_name.replace(".", "_")
