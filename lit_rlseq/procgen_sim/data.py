"""Training sequences for the simulator: windows of ``num_init + num_sim - 1`` steps over recorded episodes.

The store must hold what ``configs/procgen_collect.yaml`` records (``record_outputs: true``): frames
``obs/rgb``, ``action``, ``reward``, ``behaviour_logits`` and the agent's hidden state fed into every step
``hx``. Episodes are split into train and validation by episode (RolloutDataModule). Windows start every
``stride`` steps; a window must hold at least ``num_init`` real steps (the initialising frames and the first
simulated one); past the episode's end it is padded and masked.

A batch (``transform_batch``), W = num_init + num_sim - 1 steps:

    frames   float [B, W, 3, 64, 64] in [0, 1]     (padding frames are 0)
    action   int64 [B, W]        reward float [B, W]       done  float [B, W] (1 on the episode's last step)
    hx       float [B, W, H]     log_probs float [B, W, A] (log-softmax of the recorded logits)
    mask     bool  [B, W]        True on real steps
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lit_rlseq.errors import DataError
from lit_rlseq.rollouts.datamodule import RolloutDataModule, WindowDataset
from lit_rlseq.rollouts.store import RolloutStore

REQUIRED = ("obs/rgb", "action", "reward", "behaviour_logits", "hx")
RECORD_COMMAND = "lightning collect --config configs/procgen_collect.yaml --ckpt_path <agent checkpoint>"


class SimulatorWindows(WindowDataset):
    """WindowDataset without the windows that hold fewer than ``min_steps`` real steps."""

    def __init__(self, episodes, episode_ids, window: int, stride: int, min_steps: int):
        super().__init__(episodes, episode_ids, window, stride)
        keep = self.window_length >= min_steps
        self.window_episode, self.window_start = self.window_episode[keep], self.window_start[keep]
        self.window_length, self._windows = self.window_length[keep], self._windows[keep]


class SimulatorDataModule(RolloutDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 28,
        num_init: int = 3,
        num_sim: int = 28,
        stride: int = 8,
        val_fraction: float = 0.1,
        select: dict[str, Any] | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ):
        """
        Args:
            path: the rollout store recorded by ``configs/procgen_collect.yaml``.
            batch_size: sequences per batch (the reference: 28).
            num_init, num_sim: initialising and simulated steps (the reference: 3 and 28; they share a frame).
            stride: steps between the starts of consecutive windows of an episode.
            val_fraction, select, seed, num_workers: as for RolloutDataModule.
        """
        self.num_init, self.num_sim = num_init, num_sim
        fields = list(REQUIRED)
        super().__init__(path, window=num_init + num_sim - 1, batch_size=batch_size, fields=fields, stride=stride,
                         val_fraction=val_fraction, select=select, seed=seed, num_workers=num_workers)
        self.lengths: np.ndarray | None = None

    def _read_store_info(self):
        with RolloutStore(self.path) as store:
            schema = store.schema or {}
        missing = [name for name in REQUIRED if name not in schema]
        if missing:
            raise DataError(
                f"rollout store {self.path} lacks field(s) {missing} that the simulator needs (it has "
                f"{sorted(schema)}); record episodes with the agent's hidden states:\n  {RECORD_COMMAND}"
            )
        return super()._read_store_info()

    @property
    def num_actions(self) -> int:
        return int(self.field_specs["behaviour_logits"].shape[0])

    @property
    def agent_hidden(self) -> int:
        return int(self.field_specs["hx"].shape[0])

    def setup(self, stage: str | None = None) -> None:
        if self.episodes is not None:
            return
        with RolloutStore(self.path) as store:
            longest = max((ref.length for ref in store.episodes(**self.select)), default=0)
        if longest < self.window:
            raise DataError(
                f"the episodes of {self.path} have at most {longest} steps, fewer than a training sequence's "
                f"{self.window} (num_init {self.num_init} + num_sim {self.num_sim} - 1); record longer episodes "
                "or lower data.init_args.num_sim"
            )
        super().setup(stage)
        self.lengths = np.array([ref.length for ref in self.episodes.refs], dtype=np.int64)
        for name in ("train_dataset", "val_dataset"):
            dataset = getattr(self, name)
            ids = np.unique(dataset.window_episode) if len(dataset) else np.zeros(0, dtype=np.int64)
            if name == "val_dataset" and len(dataset) == 0:
                continue
            setattr(self, name, SimulatorWindows(self.episodes, ids, self.window, self.stride, self.num_init))
        if len(self.train_dataset) == 0:
            raise DataError(f"no training window of {self.window} steps fits the training episodes of {self.path}")

    def transform_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        length = torch.from_numpy(self.lengths)[batch["episode"]]
        steps = batch["start"][:, None] + torch.arange(self.window)
        logits = batch["behaviour_logits"].float()
        return {
            "frames": batch["obs/rgb"][:, : self.window].float() / 255.0,
            "action": batch["action"],
            "reward": batch["reward"].float(),
            "done": (steps == length[:, None] - 1).float(),
            "hx": batch["hx"].float(),
            "log_probs": torch.log_softmax(logits, -1).masked_fill(~batch["mask"][..., None], 0.0),
            "mask": batch["mask"],
        }
