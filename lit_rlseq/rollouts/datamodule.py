"""RolloutDataModule: fixed-length windows over the episodes of a rollout store, for sequence models.

``setup()`` selects episodes by tags, splits them into train and validation *by episode* (deterministic
given ``seed``), loads the chosen fields into memory and indexes the windows: ``window`` transitions
starting at transition 0, ``stride``, ``2 * stride``, ... of every episode. A window that runs past the end
of its episode is padded with zeros ("" for text).

A batch is a dict:

* ``<per-transition field>``: ``[B, window, ...]``; ``mask``: bool ``[B, window]``, True on real transitions;
* ``<per-state field>``: ``[B, window + 1, ...]`` (the states before and after each transition);
  ``state_mask``: bool ``[B, window + 1]`` (present when a per-state field is selected);
* ``episode``: int64 ``[B]``, the window's episode as an index into ``datamodule.episodes.refs``;
  ``start``: int64 ``[B]``, the window's first transition within its episode;
* text fields are nested lists ``[B][window]`` of str; everything else is a torch tensor.

Extension point: subclasses override ``transform_batch(batch) -> batch`` to turn this dict into what their
model eats (tokenise, discretise, pick targets). It runs in the DataLoader worker processes, after tensors
are made, so it must be a pure function of the batch (no CUDA, no state that changes during training).

DDP: the train DataLoader shuffles with a RandomSampler seeded by ``seed``; under DDP Lightning replaces it
with a DistributedSampler (seeded from ``seed_everything``), which gives each rank a disjoint share of the
windows. Nothing here builds its own distributed sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.rollouts.episode import FieldSpec
from lit_rlseq.rollouts.store import LoadedEpisodes, RolloutStore

BATCH_KEYS = ("mask", "state_mask", "episode", "start")


class WindowDataset(Dataset):
    """Windows over some of the loaded episodes; ``__getitems__`` gathers a batch with one ``np.take`` per field."""

    def __init__(self, episodes: LoadedEpisodes, episode_ids: np.ndarray, window: int, stride: int):
        self.episodes = episodes
        self.window = window
        lengths = np.array([ref.length for ref in episodes.refs], dtype=np.int64)[episode_ids]
        counts = -(-lengths // stride)  # windows per episode: starts 0, stride, ... below the length
        self.window_episode = np.repeat(np.asarray(episode_ids, dtype=np.int64), counts)
        # Each window's number within its episode (0, 1, 2, ... restarting at every episode) times the stride.
        self.window_start = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) * stride
        remaining = np.repeat(lengths, counts) - self.window_start
        # Per kind of field: the rows of a window (transitions, or the states around them), where each window's
        # rows begin in the loaded arrays, and how many of them are real rather than padding.
        kinds = {"transition", *episodes.kinds.values()}
        self._steps = {kind: np.arange(window + (kind == "state")) for kind in kinds}
        offsets = {"transition": episodes.transition_offsets, "state": episodes.state_offsets}
        self._first_row = {kind: offsets[kind][self.window_episode] + self.window_start for kind in kinds}
        self._real_rows = {kind: np.minimum(remaining + (kind == "state"), len(self._steps[kind])) for kind in kinds}

    def __len__(self) -> int:
        return len(self.window_episode)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {key: value[0] for key, value in self.__getitems__([i]).items()}

    def __getitems__(self, indices: list[int]) -> dict[str, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        batch = {"episode": self.window_episode[indices], "start": self.window_start[indices]}
        rows, padding = {}, {}
        for kind, steps in self._steps.items():
            mask = steps < self._real_rows[kind][indices, None]
            batch["mask" if kind == "transition" else "state_mask"] = mask
            # Padding positions read whatever follows the episode (clipped at the end of the arrays); zeroed below.
            rows[kind] = self._first_row[kind][indices, None] + steps
            padding[kind] = ~mask
        for name, array in self.episodes.fields.items():
            kind = self.episodes.kinds[name]
            values = np.take(array, rows[kind], axis=0, mode="clip")  # several times faster than array[rows]
            values[padding[kind]] = "" if array.dtype == object else 0
            batch[name] = values
        return batch


def windows_to_tensors(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Numpy batch -> torch tensors (no copy); text stays nested lists of str."""
    return {
        key: value.tolist() if value.dtype == object else torch.from_numpy(value) for key, value in batch.items()
    }


class _Collate:
    """The DataLoader's collate_fn: tensors, then the DataModule's transform (runs in worker processes)."""

    def __init__(self, transform: Callable[[dict[str, Any]], Any]):
        self.transform = transform

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        return self.transform(windows_to_tensors(batch))


class RolloutDataModule(L.LightningDataModule):
    """Windows of ``window`` transitions over the episodes of a rollout store (see the module docstring).

    Args:
        path: the rollout store directory.
        window: transitions per window (>= 1); windows longer than an episode are padded.
        batch_size: windows per batch.
        fields: fields to load (None = all fields of the store).
        stride: transitions between the starts of consecutive windows of an episode (>= 1).
        val_fraction: share of the selected episodes held out for validation (0 = no validation).
        select: tag filters, as for ``RolloutStore.episodes`` (e.g. ``{"partition": ["teacher"]}``).
        seed: seeds the train/val split and the train shuffle order.
        num_workers: DataLoader worker processes.
        drop_last: drop the last incomplete train batch.
        pin_memory: pin batches in page-locked memory (for GPU training).
    """

    def __init__(
        self,
        path: str,
        window: int,
        batch_size: int,
        fields: list[str] | None = None,
        stride: int = 1,
        val_fraction: float = 0.1,
        select: dict[str, Any] | None = None,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
    ):
        super().__init__()
        for name, value in (("window", window), ("stride", stride), ("batch_size", batch_size)):
            if value < 1:
                raise UserError(f"RolloutDataModule: {name} must be >= 1, got {value}")
        if not 0 <= val_fraction < 1:
            raise UserError(f"RolloutDataModule: val_fraction must be in [0, 1), got {val_fraction}")
        clashing = [name for name in fields or [] if name in BATCH_KEYS]
        if clashing:
            raise UserError(f"RolloutDataModule: field(s) {clashing} clash with batch keys {list(BATCH_KEYS)}")
        self.save_hyperparameters()
        self.path = path
        self.window = window
        self.batch_size = batch_size
        self.fields = fields
        self.stride = stride
        self.val_fraction = val_fraction
        self.select = dict(select or {})
        self.seed = seed
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.episodes: LoadedEpisodes | None = None
        self.train_dataset: WindowDataset | None = None
        self.val_dataset: WindowDataset | None = None
        self._store_info: tuple[dict[str, FieldSpec], dict[str, Any]] | None = None

    def transform_batch(self, batch: dict[str, Any]) -> Any:
        """Override to turn a window batch into model input; runs in DataLoader workers. Default: unchanged."""
        return batch

    @property
    def field_specs(self) -> dict[str, FieldSpec]:
        """Kind, dtype and trailing shape of each selected field, read from the store without loading data
        (for wiring model sizes, e.g. with LightningCLI ``link_arguments(..., apply_on="instantiate")``)."""
        return self._read_store_info()[0]

    @property
    def store_metadata(self) -> dict[str, Any]:
        """The store-level metadata (env name, vocabulary, ...)."""
        return self._read_store_info()[1]

    def _read_store_info(self) -> tuple[dict[str, FieldSpec], dict[str, Any]]:
        if self._store_info is None:
            with RolloutStore(self.path) as store:
                schema = store.schema
                if schema is None:
                    raise DataError(f"rollout store {self.path} holds no episodes yet")
                names = list(schema) if self.fields is None else self.fields
                unknown = [name for name in names if name not in schema]
                if unknown:
                    raise UserError(f"field(s) {unknown} not in store {self.path}; its fields are {sorted(schema)}")
                clashing = [name for name in names if name in BATCH_KEYS]
                if clashing:
                    raise DataError(
                        f"store {self.path} has field(s) {clashing}, which clash with the batch keys "
                        f"{list(BATCH_KEYS)}; select other fields"
                    )
                self._store_info = ({name: schema[name] for name in names}, store.metadata)
        return self._store_info

    def setup(self, stage: str | None = None) -> None:
        if self.episodes is not None:
            return
        names = list(self.field_specs)
        with RolloutStore(self.path) as store:
            refs = store.episodes(**self.select)
            if not refs:
                raise DataError(
                    f"no episode in rollout store {self.path} matches the tag filters {self.select}; the store "
                    f"holds {len(store)} episodes with tags:\n{store.describe_tags()}"
                )
            if self.val_fraction > 0 and len(refs) < 2:
                raise UserError(
                    f"the selection {self.select} of {self.path} has {len(refs)} episode, too few to split by "
                    "episode; select more episodes or set val_fraction=0"
                )
            self.episodes = store.load_fields(refs, names)
        train_ids, val_ids = split_episodes(len(refs), self.val_fraction, self.seed)
        self.train_dataset = WindowDataset(self.episodes, train_ids, self.window, self.stride)
        self.val_dataset = WindowDataset(self.episodes, val_ids, self.window, self.stride)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is not None and len(self.val_dataset) == 0:
            return []  # Lightning skips validation
        return self._loader(self.val_dataset, shuffle=False, drop_last=False)

    def _loader(self, dataset: WindowDataset | None, shuffle: bool, drop_last: bool) -> DataLoader:
        if dataset is None:
            raise UserError("RolloutDataModule: call setup() before asking for a DataLoader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=_Collate(self.transform_batch),
            drop_last=drop_last,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/val split of episode indices 0..n-1: a seeded permutation, the first ones to val.

    At least one episode goes to each side when ``val_fraction > 0``; both index arrays are sorted.
    """
    n_val = 0 if val_fraction == 0 else min(max(1, round(val_fraction * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
