"""Rollout store benchmarks: window throughput (``rollouts.windows``) and bytes on disk (``rollouts.bytes``).

``rollouts.bytes`` writes one small episode and many, per case and codec, and reports bytes on disk per
transition against the raw bytes: vector (20-step episodes of float32 obs [17] per state, action [6], reward,
done), text (20-step episodes of a 30-word observation per state, a 2-word action and 0-11 valid actions per
state) and frames (200-step episodes of real Procgen coinrun frames [3, 64, 64] from random play when procgen
is installed, random ones otherwise) with codecs none, lzf, gzip:1 (the default) and gzip:4.

``rollouts.windows``: throughput of RolloutDataModule against gathering the same windows from in-memory arrays
with NumPy. The stores are written with the default codecs (checksums on, frames gzip level 1);
``setup_load_s`` is the time ``setup`` takes to read them.

Two stores are built in a temporary directory (episode counts times ``scale``):

* vector: 200 episodes x 1000 steps, float32 obs [17] (per state) and action [6]; window 10, batch 256;
* frames: 100 episodes x 200 steps, uint8 frames [3, 64, 64] (per state) and int64 action; window 30, batch 28.

For each, one shuffled epoch of the DataModule's real train DataLoader (num_workers 0 and 2) is timed against
the limit: the same windows, in the same batch sizes, gathered from the loaded arrays with one ``take`` per
field in the main process (no masks, no padding, no tensors, no sampler). Both sides are consumed the same way,
each batch dropped before the next is made (a consumer that keeps it makes every 10 MB frames batch land in
fresh pages, which would cost both sides alike), and they take turns over the same stretch of time, so that
the load of a shared machine falls on both: limit, loader, limit, ..., limit. Without workers there are 8
loader turns; with workers one, between two halves of the limit, because workers prepare batches in the
background and would work off the clock during a limit turn. The DataLoader's first batch (worker start-up,
the epoch's order) is not in its rate; ``first_batch_s`` reports it.

When workers pay: a worker hands every batch to the main process through shared memory, one segment for
mask/state_mask/episode/start and one per numeric field, and the hand-over costs more than gathering the
batch. ``handover_only_windows_per_s`` (rows with workers) measures it alone: batches of the same tensors,
allocated and filled in the workers but not gathered. On the loaded 2-core machine this was written on it was
150-190k windows/s for vector batches (1.3-1.7 ms a batch, against ~0.1 ms to gather one) and ~2.4k windows/s
for frames batches (~12 ms for 10.6 MB, against ~0.6 ms), and the real loader reached 55-95% of it: the
hand-over, not the gather, is the floor. Workers therefore pay only when ``transform_batch`` costs more per
batch than the hand-over of what it returns, or when the main process is busy elsewhere (a model on a GPU).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler, get_worker_info

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.rollouts.datamodule import ArrayBatchSampler, RolloutDataModule, WindowDataset, empty_batch
from lit_rlseq.rollouts.episode import Episode, EpisodeTags
from lit_rlseq.rollouts.store import RolloutStore, text_bytes


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


def limit_batches(dataset: WindowDataset, batch_size: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's windows, shuffled, batch by batch, gathered straight from the loaded arrays."""
    episodes = dataset.episodes
    first_row = {
        "transition": episodes.transition_offsets[dataset.window_episode] + dataset.window_start,
        "state": episodes.state_offsets[dataset.window_episode] + dataset.window_start,
    }
    steps = {"transition": np.arange(dataset.window), "state": np.arange(dataset.window + 1)}
    order = np.random.default_rng(seed).permutation(len(dataset))
    for begin in range(0, len(order), batch_size):
        indices = order[begin : begin + batch_size]
        batch = {}
        for name, array in episodes.fields.items():
            kind = episodes.kinds[name]
            batch[name] = array.take(first_row[kind][indices, None] + steps[kind], axis=0, mode="clip")
        yield batch


def drain(batches: Iterator[dict[str, Any]], count: int) -> tuple[int, float]:
    """Windows in the next ``count`` batches and the seconds they took; each batch is dropped before the next."""
    windows = 0
    start = time.perf_counter()
    for batch in itertools.islice(batches, count):
        windows += len(batch["action"])
        del batch
    return windows, time.perf_counter() - start


def split(total: int, parts: int) -> list[int]:
    """``total`` batches in ``parts`` turns of (nearly) equal size."""
    return np.diff(np.linspace(0, total, parts + 1).round().astype(int)).tolist()


class HandoverOnly(Dataset):
    """Batches with the tensors of ``dataset``'s batches, allocated (in shared memory in a worker) and filled but
    not gathered: through DataLoader workers, what handing batches to the main process costs by itself."""

    def __init__(self, dataset: WindowDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        arrays, batch = empty_batch(self.dataset.tensor_groups, len(indices), shared=get_worker_info() is not None)
        for array in arrays.values():
            array.fill(0)
        return batch


def handover_windows_per_s(datamodule: RolloutDataModule, batches: int) -> float:
    """Windows per second of up to ``batches`` batches (after the first) of ``HandoverOnly`` through workers."""
    dataset = datamodule.train_dataset
    loader = DataLoader(
        HandoverOnly(dataset),
        batch_sampler=ArrayBatchSampler(SequentialSampler(dataset), datamodule.batch_size, drop_last=False),
        num_workers=datamodule.num_workers,
        collate_fn=_unchanged,
    )
    handed_over = iter(loader)
    next(handed_over)
    windows, seconds = drain(handed_over, batches)
    return windows / seconds


def _unchanged(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def measure(datamodule: RolloutDataModule, turns: int) -> dict[str, float]:
    """One epoch of the train DataLoader and one of the limit, in ``turns`` loader turns between limit turns."""
    loader = datamodule.train_dataloader()
    limit = limit_batches(datamodule.train_dataset, datamodule.batch_size, seed=0)
    limit_turns, loader_turns = split(len(loader), turns + 1), split(len(loader) - 1, turns)
    limit_windows, limit_seconds = drain(limit, limit_turns[0])
    start = time.perf_counter()
    batches = iter(loader)
    next(batches)
    first_batch_s = time.perf_counter() - start
    loader_windows, loader_seconds = 0, 0.0
    for loader_turn, limit_turn in zip(loader_turns, limit_turns[1:]):
        windows, seconds = drain(batches, loader_turn)
        loader_windows, loader_seconds = loader_windows + windows, loader_seconds + seconds
        windows, seconds = drain(limit, limit_turn)
        limit_windows, limit_seconds = limit_windows + windows, limit_seconds + seconds
    figures = {
        "windows_per_s": loader_windows / loader_seconds,
        "limit_windows_per_s": limit_windows / limit_seconds,
        "first_batch_s": first_batch_s,
        "windows": float(len(datamodule.train_dataset)),
    }
    if datamodule.num_workers > 0:
        figures["handover_only_windows_per_s"] = handover_windows_per_s(datamodule, batches=min(200, len(loader) - 1))
    return figures


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
                start = time.perf_counter()
                dm.setup("fit")  # reads the fields from the store (frames: gzip level 1, the default codec)
                setup_s = time.perf_counter() - start
                # Both sides get at least two batches after the first, whatever the scale.
                figures = measure(dm, turns=8 if workers == 0 else 1)
                figures["setup_load_s"] = setup_s
                results.append(
                    BenchResult(
                        name=f"rollouts.windows[{case.name},workers={workers}]",
                        figures=figures,
                        ratio=figures["windows_per_s"] / figures["limit_windows_per_s"],
                        goal=0.5,
                        note=f"{n_episodes} episodes x {case.steps} steps, window {case.window}, "
                        f"batch {case.batch_size}; default codecs (checksums on, frames gzip level 1); "
                        "limit = np.take per field in the main process",
                    )
                )
    return results


# ---- bytes on disk


def _procgen_frames(count: int, seed: int) -> np.ndarray | None:
    """``count`` real 64x64 RGB coinrun frames from random play, [count, 3, 64, 64] uint8; None without procgen."""
    try:
        from procgen import ProcgenGym3Env
    except ImportError:
        return None
    env = ProcgenGym3Env(num=1, env_name="coinrun", start_level=seed, num_levels=0, rand_seed=seed)
    rng = np.random.default_rng(seed)
    frames = np.empty((count, 64, 64, 3), dtype=np.uint8)
    for t in range(count):
        env.act(rng.integers(0, 15, size=1))
        frames[t] = env.observe()[1]["rgb"][0]
    return frames.transpose(0, 3, 1, 2).copy()


def _bytes_cases(rng: np.random.Generator, steps: int, frames: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Per case: the fields of one episode of ``steps`` transitions (per state where it says so)."""
    words = ["go", "north", "south", "take", "the", "lamp", "open", "door", "mailbox", "leaflet", "é"]

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words, size=n))

    cases = {
        "vector": {
            "obs": rng.normal(size=(steps + 1, 17)).astype(np.float32),
            "action": rng.normal(size=(steps, 6)).astype(np.float32),
            "reward": rng.normal(size=steps).astype(np.float32),
            "done": np.arange(steps) == steps - 1,
        },
        "text": {
            "observation": [sentence(30) for _ in range(steps + 1)],
            "action": [sentence(2) for _ in range(steps)],
            "valid": [[sentence(2) for _ in range(rng.integers(0, 12))] for _ in range(steps + 1)],
        },
    }
    if frames is None:  # no procgen: random frames, which do not compress (said in the result's note)
        frames = rng.integers(0, 256, size=(steps + 1, 3, 64, 64), dtype=np.uint8)
    cases["frames"] = {"frames": frames[: steps + 1], "action": rng.integers(0, 15, size=steps)}
    return cases


def _raw_bytes(fields: dict[str, Any]) -> int:
    """Array bytes, and UTF-8 bytes of text."""
    return sum(value.nbytes if isinstance(value, np.ndarray) else text_bytes(value) for value in fields.values())


@benchmark("rollouts.bytes")
def bytes_on_disk(scale: float = 1.0) -> list[BenchResult]:
    """Bytes on disk per transition for one small episode and for many, by case and codec, against raw bytes.

    Raw bytes are the fields' array bytes (text: its UTF-8 bytes), without tags. ``ratio`` is raw / on disk
    (above 1: smaller than raw).
    """
    results = []
    steps = 20
    many = max(2, round(1000 * scale))
    frames_episodes = max(2, round(50 * scale))
    frame_steps = 200
    real = _procgen_frames(frames_episodes * (frame_steps + 1), seed=0)
    rng = np.random.default_rng(0)
    codec_runs = [("vector", "default", None), ("text", "default", None), ("text", "gzip:1", "gzip:1")]
    codec_runs += [("frames", codec, codec) for codec in ("none", "lzf", "gzip:1", "gzip:4")]
    with tempfile.TemporaryDirectory() as tmp:
        for case, label, codec in codec_runs:
            n, length = (frames_episodes, frame_steps) if case == "frames" else (many, steps)
            episodes = []
            for i in range(n):
                clip = None if real is None else real[i * (length + 1) : (i + 1) * (length + 1)]
                episodes.append(_bytes_cases(rng, length, clip)[case])
            compression = None if codec is None else {name: codec for name in episodes[0]}
            sizes = {}
            for count in (1, n):
                path = f"{tmp}/{case}-{label}-{count}"
                start = time.perf_counter()
                with RolloutStore(path) as store, store.writer(compression=compression) as writer:
                    for i in range(count):
                        writer.append(Episode(episodes[i], EpisodeTags(run_id="bench", epoch=i)))
                seconds = time.perf_counter() - start
                sizes[count] = sum(p.stat().st_size for p in Path(path).glob("shard-*.h5"))
            raw = sum(_raw_bytes(fields) for fields in episodes)
            figures = {
                "bytes_per_transition": sizes[n] / (n * length),
                "raw_bytes_per_transition": raw / (n * length),
                "one_episode_shard_bytes": float(sizes[1]),
                "write_MB_per_s_raw": raw / seconds / 1e6,
            }
            source = "" if case != "frames" else ("procgen coinrun frames" if real is not None else "random frames")
            results.append(
                BenchResult(
                    name=f"rollouts.bytes[{case},{label}]",
                    figures=figures,
                    ratio=raw / sizes[n],
                    note=f"{n} episodes x {length} steps {source}; ratio = raw bytes / bytes on disk",
                )
            )
    return results
