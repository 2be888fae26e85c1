"""Window throughput of RolloutDataModule against slicing the same in-memory arrays in a plain loop.

Two stores are built in a temporary directory (episode counts times ``scale``):

* vector: 200 episodes x 1000 steps, float32 obs [17] (per state) and action [6]; window 10, batch 256;
* frames: 100 episodes x 200 steps, uint8 frames [3, 64, 64] (per state) and int64 action; window 30, batch 28.

For each, one shuffled epoch of the DataModule's real train DataLoader (num_workers 0 and 2) is timed against
the limit: the same windows, in the same batch sizes, gathered from the loaded arrays with one ``np.take``
per field in the main process (no masks, no padding, no tensors, no sampler). The DataLoader's rate excludes
its first batch (worker start-up), reported separately as ``first_batch_s``.

With workers, every tensor of every batch travels through a fresh shared-memory segment (torch's
DataLoader); on the machines measured so far that costs more than gathering the windows, so workers pay only
when ``transform_batch`` does real work.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.rollouts.datamodule import RolloutDataModule, WindowDataset
from lit_rlseq.rollouts.episode import Episode, EpisodeTags
from lit_rlseq.rollouts.store import RolloutStore


@dataclass
class Case:
    name: str
    episodes: int
    steps: int
    window: int
    batch_size: int

    def make_episode(self, rng: np.random.Generator, i: int) -> Episode:
        if self.name == "vector":
            fields = {
                "obs": rng.normal(size=(self.steps + 1, 17)).astype(np.float32),
                "action": rng.normal(size=(self.steps, 6)).astype(np.float32),
            }
        else:
            fields = {
                "frames": rng.integers(0, 256, size=(self.steps + 1, 3, 64, 64), dtype=np.uint8),
                "action": rng.integers(0, 15, size=self.steps),
            }
        return Episode(fields, EpisodeTags(run_id="bench", epoch=i))


CASES = [Case("vector", 200, 1000, window=10, batch_size=256), Case("frames", 100, 200, window=30, batch_size=28)]


def limit_windows_per_s(dataset: WindowDataset, batch_size: int, seed: int) -> float:
    """Gather the dataset's windows batch by batch straight from the loaded arrays, in the main process."""
    episodes = dataset.episodes
    first_row = {
        "transition": episodes.transition_offsets[dataset.window_episode] + dataset.window_start,
        "state": episodes.state_offsets[dataset.window_episode] + dataset.window_start,
    }
    order = np.random.default_rng(seed).permutation(len(dataset))
    start = time.perf_counter()
    for b in range(0, len(order), batch_size):
        indices = order[b : b + batch_size]
        for name, array in episodes.fields.items():
            kind = episodes.kinds[name]
            rows = first_row[kind][indices, None] + np.arange(dataset.window + (kind == "state"))
            np.take(array, rows, axis=0, mode="clip")
    return len(order) / (time.perf_counter() - start)


def loader_windows_per_s(datamodule: RolloutDataModule) -> tuple[float, float]:
    """Windows per second over one epoch after the first batch, and the seconds to the first batch."""
    start = time.perf_counter()
    batches = iter(datamodule.train_dataloader())
    next(batches)
    first_batch_s = time.perf_counter() - start
    start = time.perf_counter()
    windows = sum(len(batch["start"]) for batch in batches)
    return windows / (time.perf_counter() - start), first_batch_s


@benchmark("rollouts.windows")
def windows(scale: float = 1.0) -> list[BenchResult]:
    torch.set_num_threads(1)
    results = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            path = f"{tmp}/{case.name}"
            n_episodes = max(1, round(case.episodes * scale))
            with RolloutStore(path).writer() as writer:
                for i in range(n_episodes):
                    writer.append(case.make_episode(rng, i))
            for workers in (0, 2):
                dm = RolloutDataModule(
                    path, window=case.window, batch_size=case.batch_size, val_fraction=0, num_workers=workers
                )
                dm.setup("fit")
                # Both sides get at least two batches after the first, whatever the scale.
                rate, first_batch_s = loader_windows_per_s(dm)
                limit = limit_windows_per_s(dm.train_dataset, case.batch_size, seed=0)
                results.append(
                    BenchResult(
                        name=f"rollouts.windows[{case.name},workers={workers}]",
                        figures={
                            "windows_per_s": rate,
                            "limit_windows_per_s": limit,
                            "first_batch_s": first_batch_s,
                            "windows": float(len(dm.train_dataset)),
                        },
                        ratio=rate / limit,
                        goal=0.5,
                        note=f"{n_episodes} episodes x {case.steps} steps, window {case.window}, "
                        f"batch {case.batch_size}; limit = np.take per field in the main process",
                    )
                )
    return results
