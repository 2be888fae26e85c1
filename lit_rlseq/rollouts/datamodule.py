"""RolloutDataModule: fixed-length windows over the episodes of a rollout store, for sequence models.

``setup()`` selects episodes by tags, splits them into train and validation *by episode* (deterministic
given ``seed``), loads the chosen fields into memory and indexes the windows: ``window`` transitions
starting at transition 0, ``stride``, ``2 * stride``, ... of every episode. A window that runs past the end
of its episode is padded with zeros ("" for text, [] for text lists).

A batch is a dict:

* ``<per-transition field>``: ``[B, window, ...]``; ``mask``: bool ``[B, window]``, True on real transitions;
* ``<per-state field>``: ``[B, window + 1, ...]`` (the states before and after each transition);
  ``state_mask``: bool ``[B, window + 1]`` (present when a per-state field is selected);
* ``episode``: int64 ``[B]``, the window's episode as an index into ``datamodule.episodes.refs``;
  ``start``: int64 ``[B]``, the window's first transition within its episode;
* text fields are nested lists ``[B][window]`` of str (text-list fields: of ``list[str]``); everything else is a
  torch tensor.

Extension point: subclasses override ``transform_batch(batch) -> batch`` to turn this dict into what their
model eats (tokenise, discretise, pick targets). It is the DataLoader's ``collate_fn``: it runs in the worker
processes, after tensors are made, so it must be a pure function of the batch (no CUDA, no state that changes
during training).

Sampling and DDP: the DataLoaders take an ``ArrayBatchSampler`` (torch's ``BatchSampler``, yielding each
batch's window indices as one array, which ``WindowDataset.__getitems__`` gathers with one ``take`` per field)
around ``SeededShuffle`` for training (a new order every epoch from a generator seeded with ``seed``) or a
``SequentialSampler`` for validation. Under DDP, Lightning rebuilds the batch sampler around a
``DistributedSampler`` (seeded from ``seed_everything``, ``set_epoch`` every epoch), which gives each rank a
disjoint share of the windows; nothing here builds its own distributed sampler. With ``overfit_batches`` the
train DataLoader does not shuffle (Lightning cannot switch it off behind a batch sampler).

Speed (``bin/bench rollouts.windows``): without workers, the train DataLoader delivers about 60% of the rate
of gathering the same windows with NumPy alone for small vector windows, and 80-100% for image windows. Workers hand every batch to the main process through shared memory, which costs more than gathering
it (see the benchmark's docstring for figures); use them only when ``transform_batch`` is expensive.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler, get_worker_info

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.rollouts.episode import FieldSpec
from lit_rlseq.rollouts.store import LoadedEpisodes, RolloutStore

BATCH_KEYS = ("mask", "state_mask", "episode", "start")


class WindowDataset(Dataset):
    """Windows over some of the loaded episodes; ``__getitems__`` makes a whole batch with one ``take`` per field.

    Per window it keeps one row of ``[episode, start, first transition row, first state row, real transitions]``,
    so a batch finds its windows with one gather; the masks of a window with ``v`` real transitions are row ``v``
    of a small table. Padding rows are gathered like the others (whatever follows the episode) and zeroed after.
    """

    def __init__(self, episodes: LoadedEpisodes, episode_ids: np.ndarray, window: int, stride: int):
        self.episodes = episodes
        self.window = window
        lengths = np.array([ref.length for ref in episodes.refs], dtype=np.int64)[episode_ids]
        counts = -(-lengths // stride)  # windows per episode: starts 0, stride, ... below the length
        self.window_episode = np.repeat(np.asarray(episode_ids, dtype=np.int64), counts)
        # Each window's number within its episode (0, 1, 2, ... restarting at every episode) times the stride.
        self.window_start = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) * stride
        self.window_length = np.minimum(np.repeat(lengths, counts) - self.window_start, window)  # real transitions
        self._windows = np.stack(
            [
                self.window_episode,
                self.window_start,
                episodes.transition_offsets[self.window_episode] + self.window_start,
                episodes.state_offsets[self.window_episode] + self.window_start,
                self.window_length,
            ],
            axis=1,
        )
        self._steps = {"transition": np.arange(window), "state": np.arange(window + 1)}
        real = np.arange(window + 1)[:, None]
        self._mask_of_length = self._steps["transition"] < real  # v real transitions ...
        self._state_mask_of_length = self._steps["state"] <= real  # ... lie between v + 1 real states
        self._has_states = "state" in episodes.kinds.values()
        # The tensors of a batch, as (key, shape of one window's part, NumPy dtype, torch dtype), in groups that
        # share a segment of shared memory in worker processes (see empty_batch): the per-window bookkeeping,
        # then each numeric field on its own.
        bookkeeping = [
            ("episode", (), np.dtype(np.int64), torch.int64),
            ("start", (), np.dtype(np.int64), torch.int64),
            ("mask", (window,), np.dtype(bool), torch.bool),
        ]
        if self._has_states:
            bookkeeping.append(("state_mask", (window + 1,), np.dtype(bool), torch.bool))
        self.tensor_groups = [bookkeeping] + [
            [(name, (len(self._steps[episodes.kinds[name]]), *array.shape[1:]), array.dtype, _torch_dtype(array))]
            for name, array in episodes.fields.items()
            if array.dtype != object
        ]

    def __len__(self) -> int:
        return len(self.window_episode)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {key: value[0] for key, value in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """The batch of windows ``indices`` (see the module docstring)."""
        indices = np.asarray(indices, dtype=np.int64)
        episode, start, first_transition, first_state, length = self._windows.take(indices, axis=0).T
        arrays, batch = empty_batch(self.tensor_groups, len(indices), shared=get_worker_info() is not None)
        arrays["episode"][:] = episode
        arrays["start"][:] = start
        rows = {"transition": first_transition[:, None] + self._steps["transition"]}
        # Flat positions (window * rows per window + row) of the padding rows, to zero them in each field at once.
        mask = self._mask_of_length.take(length, axis=0, out=arrays["mask"])
        padding = {"transition": (~mask).ravel().nonzero()[0]}
        if self._has_states:
            rows["state"] = first_state[:, None] + self._steps["state"]
            state_mask = self._state_mask_of_length.take(length, axis=0, out=arrays["state_mask"])
            padding["state"] = (~state_mask).ravel().nonzero()[0]
        for name, array in self.episodes.fields.items():
            kind, is_text = self.episodes.kinds[name], array.dtype == object
            # Numeric fields go straight into their tensor of the batch. mode="clip": padding rows past the end
            # of the arrays read the last row (zeroed below); it is also several times faster than the default.
            values = array.take(rows[kind], axis=0, out=arrays.get(name), mode="clip")
            if name in self.episodes.text_lists:  # copies, so a consumer cannot change the loaded lists
                nested = [[list(strings) for strings in window] for window in values.tolist()]
                width = values.shape[1]
                for position in padding[kind].tolist():
                    nested[position // width][position % width] = []
                batch[name] = nested
                continue
            values.reshape(-1, *array.shape[1:])[padding[kind]] = "" if is_text else 0
            if is_text:
                batch[name] = values.tolist()
        return batch


def _torch_dtype(array: np.ndarray) -> torch.dtype:
    return torch.from_numpy(array[:0]).dtype


TensorGroup = list[tuple[str, tuple[int, ...], np.dtype, torch.dtype]]


def empty_batch(
    groups: list[TensorGroup], n: int, shared: bool
) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """Uninitialised arrays for ``n`` windows, to gather a batch into, and the torch tensors sharing their memory.

    ``shared`` (in DataLoader worker processes): each group's tensors lie side by side in one new shared-memory
    segment. torch hands a worker's tensors to the main process through shared memory, copying each tensor that
    is not there yet into a segment of its own, and every segment costs the main process a round trip to the
    worker (its file descriptor is passed over a socket). Gathering straight into one segment per group saves
    the copy and the other round trips; torch's ``default_collate`` allocates in shared memory the same way.
    A group is one field, or the small per-window tensors: keeping a tensor alive keeps its whole segment.
    Otherwise every array gets memory of its own from NumPy (which allocates faster than torch).
    """
    if not shared:
        arrays = {key: np.empty((n, *shape), np_dtype) for group in groups for key, shape, np_dtype, _ in group}
        return arrays, {key: torch.from_numpy(array) for key, array in arrays.items()}
    tensors: dict[str, torch.Tensor] = {}
    for group in groups:
        offsets, nbytes = [], 0
        for _, shape, _, torch_dtype in group:
            offsets.append(nbytes)
            nbytes += -(-n * math.prod(shape) * torch_dtype.itemsize // 64) * 64  # every tensor 64-byte aligned
        storage = torch.UntypedStorage._new_shared(nbytes)
        for (key, shape, _, torch_dtype), offset in zip(group, offsets):
            tensors[key] = torch.empty(0, dtype=torch_dtype).set_(storage, offset // torch_dtype.itemsize, (n, *shape))
    return {key: tensor.numpy() for key, tensor in tensors.items()}, tensors


class SeededShuffle(Sampler[int]):
    """A new random order of ``0 .. n-1`` every epoch, drawn from a generator seeded once with ``seed``.

    ``order()`` draws the epoch's order as one array, which ``ArrayBatchSampler`` slices into batches without
    a Python int per window; iterating draws an order the same way and yields it one int at a time.
    """

    def __init__(self, n: int, seed: int):
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def order(self) -> np.ndarray:
        return torch.randperm(self.n, generator=self.generator).numpy()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())


class ArrayBatchSampler(BatchSampler):
    """torch's ``BatchSampler`` that yields each batch as one int64 NumPy array rather than a list of ints.

    The sampler's order for the epoch is read in one go: vectorised for ``SeededShuffle`` and
    ``SequentialSampler``, through iteration for any other sampler, such as the ``DistributedSampler`` that
    Lightning puts in place of ``sampler`` under DDP (it rebuilds this class with the same ``batch_size`` and
    ``drop_last``, and calls ``set_epoch`` on ``batch_sampler.sampler``).
    """

    def __iter__(self) -> Iterator[np.ndarray]:
        if isinstance(self.sampler, SeededShuffle):
            order = self.sampler.order()
        elif type(self.sampler) is SequentialSampler:
            order = np.arange(len(self.sampler))
        else:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        end = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for begin in range(0, end, self.batch_size):
            yield order[begin : begin + self.batch_size]


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
        # Lightning turns shuffling off for overfit_batches by swapping DataLoader.sampler, which our batch_sampler
        # hides from it: do it here.
        overfitting = self.trainer is not None and self.trainer.overfit_batches > 0
        return self._loader(self.train_dataset, shuffle=not overfitting, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is not None and len(self.val_dataset) == 0:
            return []  # Lightning skips validation
        return self._loader(self.val_dataset, shuffle=False, drop_last=False)

    def _loader(self, dataset: WindowDataset | None, shuffle: bool, drop_last: bool) -> DataLoader:
        if dataset is None:
            raise UserError("RolloutDataModule: call setup() before asking for a DataLoader")
        sampler = SeededShuffle(len(dataset), self.seed) if shuffle else SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_sampler=ArrayBatchSampler(sampler, self.batch_size, drop_last),
            # The train DataLoader draws its workers' base seed from the shuffle's generator, not torch's global RNG.
            generator=sampler.generator if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=self.transform_batch,
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
