"""What every RL LightningModule here shares: a ``policy``, a frame counter and episode metrics.

* ``validation_step`` runs an ``EvaluationRequest`` (fresh episodes in an evaluation env) with the policy;
* ``predict_step`` runs a ``CollectionRequest`` (episodes recorded into a rollout store), so
  ``lightning collect`` (a predict run) works with any policy module;
* episode metrics are ``torchmetrics.MeanMetric`` objects, so under DDP the logged value is the mean over all
  episodes of all ranks, however many each rank finished.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from lit_rlseq.errors import UserError
from lit_rlseq.loops.unroll import EpisodeStats


def linear_decay(frames: int, decay_frames: float) -> float:
    """The learning-rate factor after ``frames`` frames: 1 at the start, 0 at ``decay_frames`` and after."""
    return max(0.0, 1.0 - frames / decay_frames)


class EpisodeMetrics(nn.Module):
    """Means of episode return, length, success and of the env's extra per-episode numbers (``info``: the
    names in the env's ``episode_info``, e.g. NetHack's depth), logged as ``<prefix>/<name>``."""

    def __init__(self, info: tuple[str, ...] = ()):
        super().__init__()
        self.episode_return = MeanMetric(nan_strategy="ignore")
        self.length = MeanMetric(nan_strategy="ignore")
        self.success = MeanMetric(nan_strategy="ignore")
        self.info = nn.ModuleDict()
        self.add_info(info)

    def add_info(self, names: tuple[str, ...]) -> None:
        reserved = {"return", "length", "success"}
        for name in names:
            if name in reserved:
                raise UserError(f"an env's episode_info may not be named {sorted(reserved)}, got {name!r}")
            if name not in self.info:
                self.info[name] = MeanMetric(nan_strategy="ignore").to(self.episode_return.device)

    def update(self, stats: EpisodeStats) -> None:
        device = self.episode_return.device
        self.episode_return.update(stats.episode_return.to(device))
        self.length.update(stats.length.to(device, torch.float32))
        self.success.update(stats.success.to(device))
        for name, metric in self.info.items():
            values = stats.info.get(name)
            if values is None:
                values = torch.full((len(stats),), float("nan"))
            metric.update(values.to(device))

    def log_to(self, module: L.LightningModule, prefix: str, **kwargs: Any) -> None:
        """Every rank must call this (the same calls in the same order), even with no new episodes."""
        kwargs = {"on_step": False, "on_epoch": True, **kwargs}
        module.log(f"{prefix}/return", self.episode_return, **kwargs)
        module.log(f"{prefix}/length", self.length, **kwargs)
        module.log(f"{prefix}/success", self.success, **kwargs)
        for name, metric in self.info.items():
            module.log(f"{prefix}/{name}", metric, **kwargs)


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
        datamodule = self.trainer.datamodule
        info = tuple(getattr(datamodule, "episode_info", ()) or ())  # the env's extra per-episode numbers
        self.train_episodes.add_info(info)
        names = sorted(getattr(datamodule, "eval_envs", {}) or {})
        for name in names:
            if _metrics_key(name) not in self.eval_episodes:
                self.eval_episodes[_metrics_key(name)] = EpisodeMetrics(info).to(self.device)

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

    # -- optimisation helpers shared by the learners ---------------------------------------------------
    def planned_frames(self) -> float:
        """Frames this run will consume as the Trainer plans it (inf when it has no end)."""
        dm = self.trainer.datamodule
        steps = self.trainer.estimated_stepping_batches
        per_step = getattr(dm, "unroll_length", 0) * getattr(dm, "batch_size", 0) * self.trainer.world_size
        if per_step == 0 or not math.isfinite(steps):
            return math.inf
        return float(steps) * per_step

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer updates: frozen parts (e.g. a distillation teacher) are left out."""
        return [p for p in self.parameters() if p.requires_grad]

    def frame_schedule(self, optimizer: torch.optim.Optimizer, lr_schedule: Literal["linear", "constant"],
                       lr_decay_frames: int | None) -> torch.optim.lr_scheduler.LambdaLR:
        """A learning-rate schedule over frames: constant, or linear to 0 at ``lr_decay_frames`` (default: the
        frames the run plans). It reads the frame counter (restored from checkpoints), not the step count, so
        call its ``step()`` after counting a batch's frames."""
        if lr_schedule == "constant":
            factor = lambda _: 1.0  # noqa: E731
        elif lr_schedule == "linear":
            decay_frames = lr_decay_frames or self.planned_frames()
            factor = lambda _: linear_decay(int(self.frames), decay_frames)  # noqa: E731
        else:
            raise UserError(f"model.init_args.lr_schedule must be 'linear' or 'constant', got {lr_schedule!r}")
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

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
