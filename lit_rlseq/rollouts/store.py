"""The rollout store: a directory of append-only HDF5 shards, one shard per writer.

Layout of a store directory::

    shard-<utc time>-<host>-<pid>-<random>.h5     one per writer (a process, a DDP rank, a resumed run)
    .shard-....h5.partial                         a shard being created; hidden, ignored by readers

Why one shard per writer: a shard is written in HDF5's single-writer/multiple-reader (SWMR) mode, so readers
can follow it while it grows, and a writer killed with SIGKILL leaves every indexed episode readable. But a
killed writer leaves the file marked "open for write" and HDF5 refuses to open it for writing again (it asks
for ``h5clear``). So shards are never reopened for writing: every writer starts a new one, and the shards
of a store are read together.

Layout of a shard::

    attrs: format, schema (JSON), metadata (JSON, the store-level metadata given to the writer)
    fields/<name>          numeric field: all episodes' rows concatenated along axis 0 (chunked, resizable)
    fields/<name>/utf8     text field: UTF-8 bytes of all rows concatenated (uint8) ...
    fields/<name>/ends     ... and each row's end offset into utf8 (int64); variable-length HDF5 strings
                           are not SWMR-safe
    fields/<name>/utf8     text-list field: UTF-8 bytes of all strings of all rows concatenated (uint8),
    fields/<name>/ends     each string's end offset into utf8 (int64) ...
    fields/<name>/row_ends ... and each row's end offset into ends, i.e. its strings so far (int64)
    tags                   every episode's tags as JSON, concatenated (uint8)
    index                  int64 [episodes, 5]: transition_row, state_row, length, tags_start, tags_end

The index is the only truth. A writer appends an episode's field data and tags, flushes, and only then extends
the index and flushes again; a reader trusts nothing beyond the index it has read, so it never sees a partial
episode, not even from a writer that was killed mid-episode.

Checksums and compression (format 2): every dataset carries HDF5's fletcher32 checksum filter, so a flipped
bit in stored data is an error when it is read (HDF5 checksums its own metadata already). Each field has a
codec (``RolloutStore.writer(compression={"frames": "gzip:4", "hidden": "none"})``): "gzip" (level 1 unless
given as "gzip:N"), "lzf" (h5py's, faster, smaller ratio, readable only through h5py) or "none". The default
(``default_codec``) is gzip level 1 for integer and bool fields of 1 KB a row or more (uint8 frames, grids)
and none for the rest (why: see ``default_codec``). Multi-byte integers are byte-shuffled first. The index and
tags stay uncompressed, so their chunks are rewritten in place and stay where a truncated copy keeps them.
Every codec is readable without options; lzf only through h5py (it is h5py's own filter).

Damaged shards: opening a store checks every shard's superblock (truncation, header checksum) before HDF5 reads
it, then its structure; anything wrong raises ``DamagedShardError`` naming the shard, what is wrong and the
commands that check (``verify``) and repair (``salvage``) the store. Nothing is skipped silently. Shards of
format 1 (no checksums, no compression) are read as before.

``python -m lit_rlseq.rollouts.store PATH`` prints a summary of a store; ``... verify PATH`` checks every shard
and ``... salvage PATH`` recovers the intact episodes of damaged shards (``lit_rlseq/rollouts/repair.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.rollouts.hdf5file import Superblock, read_superblock
from lit_rlseq.rollouts.episode import (
    Episode,
    EpisodeTags,
    FieldKind,
    FieldSpec,
    Schema,
    schema_from_json,
    schema_to_json,
)

FORMAT = "lit_rlseq.rollouts/2"  # format 1: the same layout without checksums, compression or text lists
READABLE_FORMATS = ("lit_rlseq.rollouts/1", FORMAT)
SHARD_GLOB = "shard-*.h5"
INDEX_COLUMNS = ("transition_row", "state_row", "length", "tags_start", "tags_end")
# Target chunk sizes (bytes before compression). Field data is read in long ranges. An uncompressed chunk costs
# its full size from its first row, hence small ones. A compressed chunk costs only what it holds, but in SWMR
# mode HDF5 never reuses file space: every append writes the compressed chunk that is still filling anew and
# the old copy stays behind as dead space. Compressed chunks are therefore sized to about one episode's rows
# of the field (the shard's first episode), between these bounds, so that each append leaves at most about one
# chunk behind.
COMPRESSED_CHUNK_BYTES = (16 * 1024, 256 * 1024)
UNCOMPRESSED_CHUNK_BYTES = 32 * 1024
SMALL_CHUNK_BYTES = 8 * 1024  # index, tags and text offsets
TEXT_OBJECT_BYTES = 64  # in-memory cost of one Python str beyond its characters, for the memory check
CODECS = ("gzip", "gzip:1", "gzip:2", "gzip:3", "gzip:4", "gzip:5", "gzip:6", "gzip:7", "gzip:8", "gzip:9", "lzf", "none")
DEFAULT_CODEC = "gzip:1"
COMPRESS_ROW_BYTES = 1024
# How long a reader waits for a writer's flush to reach the disk before it calls a short shard truncated.
TRUNCATION_RECHECKS = 5
TRUNCATION_RECHECK_S = 0.05


class DamagedShardError(DataError):
    """A shard of a store is damaged (truncated, garbage, checksum mismatch, inconsistent index)."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = Path(path), problem
        store = self.path.parent
        super().__init__(
            f"rollout shard {self.path} is damaged: {problem}.\n"
            f"  check every shard with:       python -m lit_rlseq.rollouts.store verify {store}\n"
            f"  recover its intact episodes:  python -m lit_rlseq.rollouts.store salvage {store}\n"
            "  (salvage copies every complete, intact episode into a new shard and moves the damaged file aside)"
        )


def default_codec(spec: FieldSpec) -> str:
    """The codec of a field that the writer is not told about: gzip level 1 for integer or bool fields of at
    least ``COMPRESS_ROW_BYTES`` a row (uint8 frames, grids), none for the rest.

    Why not compress everything: with SWMR appends, a compressed chunk that is still filling is written anew
    at the end of the file by every append, so a truncated copy loses it and with it every episode that has
    rows in it; uncompressed chunks are rewritten in place. Small fields would gain little anyway, and float
    fields rarely compress (gzip level 1 wrote ~16 MB/s of float32 here, against ~300 MB/s uncompressed).
    """
    if spec.is_text or np.dtype(spec.dtype).kind == "f":
        return "none"
    row_bytes = np.dtype(spec.dtype).itemsize * int(np.prod(spec.shape, dtype=np.int64))
    return DEFAULT_CODEC if row_bytes >= COMPRESS_ROW_BYTES else "none"


def _filters(codec: str, dtype: Any) -> dict[str, Any]:
    """h5py create_dataset keywords for a codec, with the fletcher32 checksum always on."""
    filters: dict[str, Any] = {"fletcher32": True}
    if codec == "lzf":
        filters["compression"] = "lzf"
    elif codec.startswith("gzip"):
        filters["compression"] = "gzip"
        filters["compression_opts"] = int(codec.partition(":")[2] or 1)
    if codec != "none" and np.dtype(dtype).itemsize > 1:
        filters["shuffle"] = True
    return filters


def _check_codecs(compression: dict[str, str | None]) -> dict[str, str]:
    codecs = {}
    for name, codec in compression.items():
        codec = "none" if codec is None else str(codec)
        if codec not in CODECS:
            raise UserError(f"compression of field {name!r} is {codec!r}; choose one of {list(CODECS)} (or None)")
        codecs[name] = codec
    return codecs


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lives (shard file and position in it), with its length and tags; no field data."""

    shard: str  # shard file name inside the store directory
    position: int  # episode number inside the shard
    length: int  # number of transitions
    tags: EpisodeTags
    transition_row: int  # first row of the episode in the shard's per-transition fields
    state_row: int  # first row of the episode in the shard's per-state fields

    @property
    def key(self) -> tuple[str, int]:
        """A hashable identity, for sets and dicts of episodes."""
        return (self.shard, self.position)


@dataclass
class LoadedEpisodes:
    """Chosen fields of many episodes, concatenated in memory in the order of ``refs``.

    Episode ``i``'s per-transition rows are ``fields[name][transition_offsets[i]:transition_offsets[i + 1]]``
    and its per-state rows use ``state_offsets`` the same way (``offsets(name)`` picks the right one). Text
    fields are numpy object arrays of ``str`` (text-list fields: of ``list[str]``), so they can be
    fancy-indexed like the numeric ones.
    """

    refs: list[EpisodeRef]
    fields: dict[str, np.ndarray]
    kinds: dict[str, FieldKind]
    transition_offsets: np.ndarray
    state_offsets: np.ndarray
    text_lists: frozenset[str] = frozenset()  # the text-list fields among ``fields``

    def __len__(self) -> int:
        return len(self.refs)

    def offsets(self, name: str) -> np.ndarray:
        return self.transition_offsets if self.kinds[name] == "transition" else self.state_offsets

    def episode(self, i: int) -> Episode:
        fields: dict[str, Any] = {}
        for name, array in self.fields.items():
            offsets = self.offsets(name)
            rows = array[offsets[i] : offsets[i + 1]]
            if array.dtype == object:  # a copy: the episode's lists are not the loaded ones
                fields[name] = [list(row) for row in rows] if name in self.text_lists else rows.tolist()
            else:
                fields[name] = rows
        return Episode(fields, self.refs[i].tags, length=self.refs[i].length)


def available_memory_bytes() -> int:
    """Memory the OS can give us now: Linux's MemAvailable (free + reclaimable page cache), else free pages.

    MemFree alone (``os.sysconf("SC_AVPHYS_PAGES")``) counts the page cache as used, which after reading a few
    GB of shards would refuse loads that fit easily.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class RolloutWriter:
    """Appends episodes to a new shard of a store; get one from ``RolloutStore.writer``.

    The shard file is created on the first ``append`` (its schema is that episode's). Every append flushes the
    episode's data and then extends the index, so a killed writer loses at most the episode it was writing
    (a flush costs about 0.3 ms, measured with 1000-step episodes). Closing the writer (or leaving its
    ``with`` block) closes the shard and refreshes the store that made it.

    ``compression`` maps field names to codecs (see the module docstring); fields it does not name get
    ``default_codec``. ``shard_name`` names the shard file (a new unique name by default).
    """

    def __init__(
        self,
        directory: Path,
        metadata: dict[str, Any],
        store_schema: Schema | None,
        on_close: Callable[[], None] | None = None,
        compression: dict[str, str | None] | None = None,
        shard_name: str | None = None,
    ):
        self.directory = directory
        self.metadata = metadata
        self.on_close = on_close
        self.compression = _check_codecs(compression or {})
        self.shard_name = shard_name
        self.schema: Schema | None = store_schema
        self.path: Path | None = None  # the shard file, once created
        self.episodes_written = 0
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._transition_rows = 0
        self._state_rows = 0
        self._tag_bytes = 0
        self._text_bytes: dict[str, int] = {}
        self._text_strings: dict[str, int] = {}

    def __enter__(self) -> RolloutWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def append(self, episode: Episode) -> None:
        if self._file is None:
            if self.schema is not None:
                check_schema(episode.schema(), self.schema, f"the store {self.directory}")
            self._create_shard(episode)
        else:
            check_schema(episode.schema(), self.schema, f"shard {self.path}")
        length = episode.length
        for name, value in episode.fields.items():
            first_row = self._transition_rows if self.schema[name].kind == "transition" else self._state_rows
            if self.schema[name].is_text_list:
                self._append_text_list(name, value, first_row)
            elif self.schema[name].is_text:
                self._append_text(name, value, first_row)
            else:
                _append_rows(self._datasets[name], first_row, value)
        tags = np.frombuffer(episode.tags.to_json().encode(), dtype=np.uint8)
        _append_rows(self._datasets["tags"], self._tag_bytes, tags)
        # Data first, then the index entry that points at it: readers trust only the index.
        self._file.flush()
        entry = [self._transition_rows, self._state_rows, length, self._tag_bytes, self._tag_bytes + len(tags)]
        _append_rows(self._datasets["index"], self.episodes_written, np.asarray([entry], dtype=np.int64))
        self._file.flush()
        self.episodes_written += 1
        self._transition_rows += length
        self._state_rows += length + 1
        self._tag_bytes += len(tags)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.on_close is not None:
                self.on_close()

    def _create_shard(self, first: Episode) -> None:
        schema = first.schema()
        unknown = sorted(set(self.compression) - set(schema))
        if unknown:
            raise UserError(
                f"compression is given for field(s) {unknown} that the episodes lack; their fields are {sorted(schema)}"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        name = self.shard_name or _new_shard_name()
        partial = self.directory / f".{name}.partial"
        f = h5py.File(partial, "w", libver="latest")
        f.attrs["format"] = FORMAT
        f.attrs["schema"] = schema_to_json(schema)
        f.attrs["metadata"] = json.dumps(self.metadata, sort_keys=True)
        for field_name, spec in schema.items():
            codec = self.compression.get(field_name, default_codec(spec))
            if spec.is_text:
                for part in _text_parts(spec):
                    dtype = np.uint8 if part == "/utf8" else np.int64
                    chunk_bytes = SMALL_CHUNK_BYTES
                    if part == "/utf8" and codec != "none":
                        chunk_bytes = _compressed_chunk_bytes(text_bytes(first.fields[field_name]))
                    self._datasets[field_name + part] = _create_growing(
                        f, f"fields/{field_name}{part}", dtype, (), chunk_bytes, codec
                    )
                self._text_bytes[field_name] = self._text_strings[field_name] = 0
            else:
                chunk_bytes = UNCOMPRESSED_CHUNK_BYTES
                if codec != "none":
                    chunk_bytes = _compressed_chunk_bytes(first.fields[field_name].nbytes)
                self._datasets[field_name] = _create_growing(
                    f, f"fields/{field_name}", spec.dtype, spec.shape, chunk_bytes, codec
                )
        # Index and tags are rewritten in place (no compression): see the module docstring.
        self._datasets["tags"] = _create_growing(f, "tags", np.uint8, (), SMALL_CHUNK_BYTES, "none")
        self._datasets["index"] = _create_growing(
            f, "index", np.int64, (len(INDEX_COLUMNS),), SMALL_CHUNK_BYTES, "none"
        )
        # Datasets and attributes cannot be created in SWMR mode; from here on the file only grows. The rename
        # happens after SWMR is on, so readers never meet a shard they cannot open.
        f.swmr_mode = True
        final = self.directory / name
        os.rename(partial, final)
        self._file, self.path, self.schema = f, final, schema

    def _append_text(self, name: str, strings: list[str], first_row: int) -> None:
        encoded = [s.encode("utf-8") for s in strings]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        ends = self._text_bytes[name] + np.cumsum(lengths)
        _append_rows(self._datasets[name + "/utf8"], self._text_bytes[name], np.frombuffer(b"".join(encoded), np.uint8))
        _append_rows(self._datasets[name + "/ends"], first_row, ends)
        self._text_bytes[name] = int(ends[-1])

    def _append_text_list(self, name: str, rows: list[list[str]], first_row: int) -> None:
        strings = [s for row in rows for s in row]
        row_ends = self._text_strings[name] + np.cumsum([len(row) for row in rows], dtype=np.int64)
        if strings:
            self._append_text(name, strings, self._text_strings[name])
        _append_rows(self._datasets[name + "/row_ends"], first_row, row_ends)
        self._text_strings[name] = int(row_ends[-1])


def _compressed_chunk_bytes(episode_bytes: int) -> int:
    low, high = COMPRESSED_CHUNK_BYTES
    return int(np.clip(episode_bytes, low, high))


def text_bytes(value: list) -> int:
    """UTF-8 bytes of a text or text-list field's value."""
    return sum(len(s.encode("utf-8")) for row in value for s in ([row] if isinstance(row, str) else row))


def _text_parts(spec: FieldSpec) -> tuple[str, ...]:
    """The datasets under fields/<name> that hold a text field (see the module docstring)."""
    return ("/utf8", "/ends", "/row_ends") if spec.is_text_list else ("/utf8", "/ends")


def _new_shard_name() -> str:
    time = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
    return f"shard-{time}-{host}-{os.getpid()}-{secrets.token_hex(4)}.h5"


def _create_growing(
    f: h5py.File, path: str, dtype: Any, trailing: tuple[int, ...], chunk_bytes: int, codec: str
) -> h5py.Dataset:
    row_bytes = np.dtype(dtype).itemsize * int(np.prod(trailing, dtype=np.int64))
    chunk_rows = max(1, chunk_bytes // max(row_bytes, 1))
    return f.create_dataset(
        path,
        shape=(0, *trailing),
        maxshape=(None, *trailing),
        chunks=(chunk_rows, *trailing),
        dtype=dtype,
        **_filters(codec, dtype),
    )


def _append_rows(dataset: h5py.Dataset, first_row: int, rows: np.ndarray) -> None:
    dataset.resize(first_row + len(rows), axis=0)
    if len(rows):
        dataset[first_row : first_row + len(rows)] = rows


def check_schema(got: Schema, expected: Schema, where: str) -> None:
    """Raise DataError naming the first field that is missing, extra or different from ``expected``."""
    for name, spec in expected.items():
        if name not in got:
            raise DataError(f"episode lacks field {name!r} ({spec.describe()}) that every episode in {where} has")
    for name, spec in got.items():
        if name not in expected:
            raise DataError(
                f"episode has field {name!r} ({spec.describe()}) that {where} does not have; "
                f"its fields are {sorted(expected)}"
            )
        if spec != expected[name]:
            raise DataError(
                f"episode field {name!r}: {where} expects {expected[name].describe()}, got {spec.describe()}"
            )


class _Shard:
    """One shard opened for SWMR reading; ``read_new_episodes`` follows a writer that is still appending.

    A process opens each shard once (``_Shard.open``), shared by all its RolloutStores: with HDF5 2.0, after a
    dataset is refreshed through a second open of its file in the same process, reads that span chunks fail
    with "can't insert duplicate key". Each store keeps its own count of the episodes it has seen.
    """

    _open: dict[Path, _Shard] = {}
    _open_in_pid = os.getpid()  # a forked child opens its own handles; it does not use its parent's

    @classmethod
    def open(cls, path: Path) -> _Shard:
        if cls._open_in_pid != os.getpid():
            cls._open, cls._open_in_pid = {}, os.getpid()
        key = path.resolve()
        if key not in cls._open:
            cls._open[key] = cls(path)
        shard = cls._open[key]
        shard.users += 1
        return shard

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.file.close()
            _Shard._open.pop(self.path.resolve(), None)

    def __init__(self, path: Path):
        self.path = path
        self.users = 0
        superblock = check_superblock(path)
        # A shard a writer has open (or a killed writer left) is followed in SWMR mode; a closed one is read
        # normally, where HDF5 checks everything it reads and never retries.
        self.swmr = superblock.open_for_writing
        with _damage(path, "HDF5 cannot open it"):
            self.file = h5py.File(path, "r", swmr=self.swmr, libver="latest")
        try:
            with _damage(path, "its attributes cannot be read"):
                file_format = self.file.attrs.get("format")
            if file_format not in READABLE_FORMATS:
                raise DataError(
                    f"{path} is not a rollout shard (attribute format={file_format!r}, expected {FORMAT!r}); "
                    "move it out of the store directory"
                )
            with _damage(path, "its schema or metadata attribute is unreadable"):
                self.schema = schema_from_json(self.file.attrs["schema"])
                self.metadata = json.loads(self.file.attrs["metadata"])
            with _damage(path, "a dataset is missing or unreadable"):
                self.index = self.file["index"]
                self.tags = self.file["tags"]
                self.datasets = {}
                for name, spec in self.schema.items():
                    for part in _text_parts(spec) if spec.is_text else ("",):
                        self.datasets[name + part] = self.file[f"fields/{name}{part}"]
        except BaseException:
            self.file.close()
            raise
        self.refs: list[EpisodeRef] = []  # filled by read_new_episodes
        self._tag_end = 0  # where the tags of the episodes in refs end

    def read_new_episodes(self) -> None:
        # The index first, then the fields: the writer flushed every row the new index entries point at before
        # writing them, so field datasets refreshed after the index cover all of it.
        with _damage(self.path, "its index cannot be read"):
            if self.swmr:
                self.index.refresh()
            rows = self.index[len(self.refs) :]
        if len(rows):
            if self.swmr:
                with _damage(self.path, "its tags cannot be refreshed"):
                    self.tags.refresh()
            tags_start, tags_end = int(rows[0, 3]), int(rows[-1, 4])
            _check_index(self.path, rows, self.refs[-1] if self.refs else None, self._tag_end)
            with _damage(self.path, "the tags of its episodes cannot be read"):
                tag_bytes = self.tags[tags_start:tags_end].tobytes()
            for transition_row, state_row, length, start, end in rows.tolist():
                with _damage(self.path, f"the tags of episode {len(self.refs)} are not valid JSON"):
                    tags = EpisodeTags.from_json(tag_bytes[start - tags_start : end - tags_start].decode())
                self.refs.append(
                    EpisodeRef(self.path.name, len(self.refs), length, tags, transition_row, state_row)
                )
            self._tag_end = tags_end
        if self.swmr:
            with _damage(self.path, "a field dataset cannot be refreshed"):
                for dataset in self.datasets.values():
                    dataset.refresh()
        self._check_extents()

    def _check_extents(self) -> None:
        """Every field dataset holds at least the rows the index points at."""
        if not self.refs:
            return
        last = self.refs[-1]
        rows = {"transition": last.transition_row + last.length, "state": last.state_row + last.length + 1}
        for name, spec in self.schema.items():
            dataset = self.datasets[name + ("/row_ends" if spec.is_text_list else "/ends" if spec.is_text else "")]
            if dataset.shape[0] < rows[spec.kind]:
                raise DamagedShardError(
                    self.path,
                    f"field {name!r} holds {dataset.shape[0]} rows but its index points at {rows[spec.kind]}",
                )

    def text_range(self, name: str, start: int, stop: int) -> _TextRange:
        """Where the text of rows start..stop-1 of a text field lies (see ``_TextRange``)."""
        row_ends = None
        if self.schema[name].is_text_list:  # rows -> strings, then strings -> bytes
            row_ends = _ends_before(self, name + "/row_ends", start, stop)
            start, stop = int(row_ends[0]), int(row_ends[-1])
        return _TextRange(_ends_before(self, name + "/ends", start, stop), row_ends)

    def read_strings(self, name: str, string_ends: np.ndarray) -> list[str]:
        """The strings of a text field between the given byte boundaries."""
        blob = self.read(name + "/utf8", np.s_[int(string_ends[0]) : int(string_ends[-1])]).tobytes()
        bounds = (string_ends - string_ends[0]).tolist()
        with _damage(self.path, f"text field {name!r} is not valid UTF-8"):
            return [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:])]

    def read_episode(self, ref: EpisodeRef) -> Episode:
        """Every field of one episode, read on its own (verify and salvage read episode by episode)."""
        fields: dict[str, Any] = {}
        for name, spec in self.schema.items():
            start = ref.transition_row if spec.kind == "transition" else ref.state_row
            stop = start + ref.length + (spec.kind == "state")
            if not spec.is_text:
                fields[name] = self.read(name, np.s_[start:stop])
                continue
            text = self.text_range(name, start, stop)
            strings = self.read_strings(name, text.string_ends)
            if text.row_ends is None:
                fields[name] = strings
            else:
                bounds = (text.row_ends - text.row_ends[0]).tolist()
                fields[name] = [strings[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        try:
            return Episode(fields, ref.tags, length=ref.length)
        except DataError as e:
            raise DamagedShardError(self.path, f"episode {ref.position} does not match the shard's schema ({e})") from e

    def read(
        self, name: str, selection: Any, out: np.ndarray | None = None, dest: Any = None, dataset: Any = None
    ) -> np.ndarray | None:
        """Read ``fields/<name>[selection]`` (or ``dataset``'s) into ``out[dest]`` when given, else return it; a
        failure is a DamagedShardError."""
        dataset = self.datasets[name] if dataset is None else dataset
        with _damage(self.path, f"dataset {dataset.name} cannot be read"):
            if out is not None:
                dataset.read_direct(out, selection, dest)
                return None
            return dataset[selection]


def check_superblock(path: Path) -> Superblock:
    """The shard's superblock, or DamagedShardError when the file is empty, garbage or truncated.

    A writer's flush may show a file shorter than its header for a moment; a shard that is open for writing is
    therefore looked at again a few times before it is called truncated.
    """
    for attempt in range(TRUNCATION_RECHECKS):
        if attempt:
            time.sleep(TRUNCATION_RECHECK_S)
        superblock = read_superblock(path)
        if isinstance(superblock, str):
            raise DamagedShardError(path, superblock)
        size = path.stat().st_size
        problem = None
        if not superblock.checksum_ok:
            problem = "its superblock (the HDF5 header) fails its checksum"
        elif size < superblock.end_of_file:
            problem = (
                f"it is truncated: {size} bytes of the {superblock.end_of_file} its header records "
                "(an interrupted copy, a full disk?)"
            )
        if problem is None:
            return superblock
        if not superblock.open_for_writing:
            break
    raise DamagedShardError(path, problem)


def _check_index(path: Path, rows: np.ndarray, previous: EpisodeRef | None, tag_end: int) -> None:
    """New index rows must continue where the previous ones ended, with positive lengths."""
    transition_row = previous.transition_row + previous.length if previous else 0
    state_row = previous.state_row + previous.length + 1 if previous else 0
    position = previous.position + 1 if previous else 0
    for i, (t, s, length, start, end) in enumerate(rows.tolist()):
        if (t, s, start) != (transition_row, state_row, tag_end) or length < 1 or end <= start:
            raise DamagedShardError(
                path,
                f"index entry {position + i} {[t, s, length, start, end]} does not continue the previous one "
                f"(expected rows {transition_row}, {state_row}, tags from {tag_end}, length >= 1)",
            )
        transition_row, state_row, tag_end = t + length, s + length + 1, end


@contextmanager
def _damage(path: Path, what: str) -> Iterator[None]:
    """Turn what HDF5 and the decoders raise on a damaged file into a DamagedShardError naming it."""
    try:
        yield
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        raise DamagedShardError(path, f"{what} ({_hdf5_reason(e)})") from e


def _hdf5_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "filter returned failure" in text or "Fletcher32" in text or "checksum" in text.lower():
        return f"stored data fails its checksum or cannot be decompressed: {text}"
    return text


class RolloutStore:
    """A directory of HDF5 shards read as one collection of tagged episodes.

    Opening reads only the shards' schema, metadata, index and tags; field data is read by ``load`` and
    ``load_fields``. ``refresh()`` picks up episodes and shards written since. The store directory is created
    by the first writer; reading a store that does not exist raises MissingArtifactError.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._shards: dict[str, _Shard] = {}
        self._seen: dict[str, int] = {}  # episodes of each shard this store has seen (refreshes move it)
        self._schema: Schema | None = None
        self._metadata: dict[str, Any] | None = None
        if self.path.exists():
            self.refresh()

    def __repr__(self) -> str:
        return f"RolloutStore({str(self.path)!r}: {sum(self._seen.values())} episodes in {len(self._shards)} shards)"

    def __enter__(self) -> RolloutStore:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for shard in self._shards.values():
            shard.release()
        self._shards, self._seen = {}, {}
        self._schema = self._metadata = None

    def refresh(self) -> None:
        """Read episodes appended to open shards and open shards created since the last refresh."""
        self._check_exists()
        for name, shard in self._shards.items():
            shard.read_new_episodes()
            self._seen[name] = len(shard.refs)
        for path in sorted(self.path.iterdir()):
            if path.name.startswith(".") or path.name in self._shards:
                continue
            if not (path.is_file() and path.match(SHARD_GLOB)):
                raise DataError(
                    f"{path} is not a rollout shard (shards are named {SHARD_GLOB}); "
                    f"move it out of the store directory {self.path}"
                )
            shard = _Shard.open(path)
            try:
                self._add_shard(shard)
            except DataError:
                shard.release()
                raise

    def _add_shard(self, shard: _Shard) -> None:
        if self._shards:
            first = next(iter(self._shards.values()))
            if shard.schema != self._schema:
                raise DataError(
                    f"shards {first.path.name} and {shard.path.name} of store {self.path} have different schemas:\n"
                    f"  {_describe_schema(self._schema)}\n  {_describe_schema(shard.schema)}"
                )
            if shard.metadata != self._metadata:
                raise DataError(
                    f"shards {first.path.name} and {shard.path.name} of store {self.path} have conflicting "
                    f"metadata (keys {_differing_keys(self._metadata, shard.metadata)} differ)"
                )
        else:
            self._schema, self._metadata = shard.schema, shard.metadata
        shard.read_new_episodes()  # another store of this process may have opened it long ago
        self._shards[shard.path.name] = shard
        self._shards = dict(sorted(self._shards.items()))  # shard names start with their creation time
        self._seen[shard.path.name] = len(shard.refs)

    def _check_exists(self) -> None:
        if not self.path.exists():
            raise MissingArtifactError("rollout store", str(self.path))
        if not self.path.is_dir():
            raise DataError(
                f"{self.path} is a file, not a rollout store directory (D4RL files are imported with "
                "lit_rlseq.rollouts.import_d4rl)"
            )

    # ---- writing

    def writer(
        self, metadata: dict[str, Any] | None = None, compression: dict[str, str | None] | None = None
    ) -> RolloutWriter:
        """A writer for a new shard. ``metadata=None`` keeps the store's metadata; other metadata must equal it.

        Store-level metadata (env name, vocabulary and its fingerprint, ...) must be JSON-serialisable; it is
        stored in every shard the writer creates and read back as ``RolloutStore.metadata``. ``compression``
        maps field names to codecs ("gzip", "gzip:1" ... "gzip:9", "lzf", "none"); unnamed fields get
        ``default_codec``. Shards of one store may use different codecs.
        """
        if self.path.exists():
            self.refresh()
        if metadata is None:
            metadata = self._metadata or {}
        else:
            try:
                metadata = json.loads(json.dumps(metadata))  # the form it will be read back in (tuples -> lists)
            except TypeError as e:
                raise DataError(f"store metadata is not JSON-serialisable: {e}") from e
            if self._metadata is not None and metadata != self._metadata:
                raise DataError(
                    f"store {self.path} already holds episodes with different metadata (keys "
                    f"{_differing_keys(self._metadata, metadata)} differ); write to a new store directory, or pass "
                    "metadata=None to keep the store's"
                )
        # The store refreshes when the writer closes, so what was written is readable from it right after.
        return RolloutWriter(self.path, metadata, self._schema, on_close=self.refresh, compression=compression)

    # ---- querying

    @property
    def schema(self) -> Schema | None:
        self._check_exists()
        return self._schema

    @property
    def metadata(self) -> dict[str, Any]:
        self._check_exists()
        return self._metadata or {}

    @property
    def shards(self) -> list[Path]:
        return [shard.path for shard in self._shards.values()]

    def __len__(self) -> int:
        self._check_exists()
        return sum(self._seen.values())

    def episodes(self, **filters: Any) -> list[EpisodeRef]:
        """Episodes whose tags match every filter, in store order, without reading field data.

        A filter value is either one allowed value (``run_id="a"``) or a collection of allowed values
        (``partition={"teacher", "student_train"}``). ``metadata={"complete": True}`` matches episodes whose
        tag metadata has every given key with an allowed value.
        """
        self._check_exists()
        unknown = set(filters) - set(EpisodeTags.names())
        if unknown:
            raise UserError(f"unknown episode tag(s) {sorted(unknown)} in filter; tags are {EpisodeTags.names()}")
        metadata_filter = filters.pop("metadata", {})
        if not isinstance(metadata_filter, dict):
            raise UserError(f"the metadata filter must be a dict of allowed values, got {metadata_filter!r}")
        refs = [ref for name, shard in self._shards.items() for ref in shard.refs[: self._seen[name]]]
        return [
            ref
            for ref in refs
            if all(_matches(getattr(ref.tags, tag), allowed) for tag, allowed in filters.items())
            and all(_matches(ref.tags.metadata.get(k), allowed) for k, allowed in metadata_filter.items())
        ]

    def count(self, **filters: Any) -> int:
        return len(self.episodes(**filters))

    def tag_counts(self) -> dict[str, Counter]:
        """For every tag (metadata excluded): how many episodes carry each value."""
        counts: dict[str, Counter] = {name: Counter() for name in EpisodeTags.names() if name != "metadata"}
        for ref in self.episodes():
            for name, counter in counts.items():
                counter[getattr(ref.tags, name)] += 1
        return counts

    def describe_tags(self, limit: int = 8) -> str:
        """One line per tag with its most common values, for error messages and the summary."""
        lines = []
        for name, counter in self.tag_counts().items():
            values = ", ".join(f"{v!r} ({n})" for v, n in counter.most_common(limit))
            more = f", ... {len(counter) - limit} more" if len(counter) > limit else ""
            lines.append(f"{name}: {values}{more}")
        return "\n".join(lines)

    # ---- loading

    def load(self, ref: EpisodeRef) -> Episode:
        return self.load_fields([ref]).episode(0)

    def load_fields(self, refs: list[EpisodeRef], fields: Iterable[str] | None = None) -> LoadedEpisodes:
        """Read the chosen fields (None = all) of many episodes into contiguous arrays, in the order of refs.

        Episodes that follow each other in a shard are read as one contiguous range. Raises DataError before
        reading when the arrays would not fit in the available memory.
        """
        self._check_exists()
        if not refs:
            raise UserError("load_fields got no episodes to load")
        schema = self._schema
        names = list(schema) if fields is None else list(fields)
        unknown = [name for name in names if name not in schema]
        if unknown:
            raise UserError(f"field(s) {unknown} not in store {self.path}; its fields are {sorted(schema)}")
        for ref in refs:
            if ref.position >= self._seen.get(ref.shard, 0):
                raise UserError(f"episode {ref.key} is not in store {self.path} (a ref from another store?)")

        lengths = np.array([ref.length for ref in refs], dtype=np.int64)
        transition_offsets = np.concatenate([[0], np.cumsum(lengths)])
        state_offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
        runs = _contiguous_runs(refs)
        text_ends = {name: self._read_text_ends(name, runs) for name in names if schema[name].is_text}
        self._check_memory(names, int(transition_offsets[-1]), int(state_offsets[-1]), text_ends)

        arrays: dict[str, np.ndarray] = {}
        for name in names:
            spec = schema[name]
            offsets = transition_offsets if spec.kind == "transition" else state_offsets
            if spec.is_text:
                arrays[name] = self._read_text(name, runs, text_ends[name], int(offsets[-1]))
            else:
                arrays[name] = self._read_numeric(name, spec, runs, offsets)
        return LoadedEpisodes(
            refs=list(refs),
            fields=arrays,
            kinds={name: schema[name].kind for name in names},
            transition_offsets=transition_offsets,
            state_offsets=state_offsets,
            text_lists=frozenset(name for name in names if schema[name].is_text_list),
        )

    def _rows(self, run: _Run, kind: FieldKind) -> tuple[int, int]:
        """The shard rows a run of episodes occupies in fields of the given kind."""
        first, last = run.refs[0], run.refs[-1]
        if kind == "transition":
            return first.transition_row, last.transition_row + last.length
        return first.state_row, last.state_row + last.length + 1

    def _read_numeric(self, name: str, spec: FieldSpec, runs: list[_Run], offsets: np.ndarray) -> np.ndarray:
        out = np.empty((int(offsets[-1]), *spec.shape), dtype=spec.dtype)
        for run in runs:
            start, stop = self._rows(run, spec.kind)
            at = int(offsets[run.first_episode])
            self._shards[run.shard].read(name, np.s_[start:stop], out, np.s_[at : at + stop - start])
        return out

    def _read_text_ends(self, name: str, runs: list[_Run]) -> list[_TextRange]:
        """Per run: where its text starts and ends in the shard's datasets (see ``_TextRange``)."""
        spec = self._schema[name]
        result = []
        for run in runs:
            start, stop = self._rows(run, spec.kind)
            shard = self._shards[run.shard]
            result.append(shard.text_range(name, start, stop))
        return result

    def _read_text(self, name: str, runs: list[_Run], ranges: list[_TextRange], total_rows: int) -> np.ndarray:
        out = np.empty(total_rows, dtype=object)
        row = 0
        for run, text in zip(runs, ranges):
            strings = self._shards[run.shard].read_strings(name, text.string_ends)
            if text.row_ends is None:
                out[row : row + len(strings)] = strings
                row += len(strings)
            else:
                row_bounds = (text.row_ends - text.row_ends[0]).tolist()
                for a, b in zip(row_bounds[:-1], row_bounds[1:]):
                    out[row] = strings[a:b]  # one element holding a list (a slice assignment would spread it)
                    row += 1
        return out

    def _check_memory(
        self, names: list[str], transition_rows: int, state_rows: int, text_ends: dict[str, list]
    ) -> None:
        needed = 0
        for name in names:
            spec = self._schema[name]
            rows = transition_rows if spec.kind == "transition" else state_rows
            if spec.is_text:
                blob_bytes = sum(text.bytes for text in text_ends[name])
                strings = sum(text.strings for text in text_ends[name])
                needed += blob_bytes + strings * (TEXT_OBJECT_BYTES + 8) + rows * (TEXT_OBJECT_BYTES + 8)
            else:
                needed += rows * np.dtype(spec.dtype).itemsize * int(np.prod(spec.shape, dtype=np.int64))
        available = available_memory_bytes()
        if needed > available:
            raise DataError(
                f"loading fields {names} of the selected episodes from {self.path} needs {needed / 1e9:.1f} GB "
                f"but only {available / 1e9:.1f} GB of memory is available; select fewer episodes (tag filters) "
                "or fewer fields"
            )


@dataclass
class _TextRange:
    """Where the text of a run of rows lies: ``string_ends`` are the byte offsets of its strings' boundaries
    (the first string's start, then every string's end); for a text-list field ``row_ends`` are the boundaries
    of its rows in strings, the same way."""

    string_ends: np.ndarray
    row_ends: np.ndarray | None = None

    @property
    def bytes(self) -> int:
        return int(self.string_ends[-1] - self.string_ends[0])

    @property
    def strings(self) -> int:
        return len(self.string_ends) - 1


def _ends_before(shard: _Shard, name: str, start: int, stop: int) -> np.ndarray:
    """Boundaries of items start..stop-1 from a dataset of cumulative end offsets: where item ``start``
    begins (0 for the first item), then each item's end."""
    if start == 0:
        ends = np.concatenate([[0], shard.read(name, np.s_[0:stop])]).astype(np.int64)
    else:
        ends = shard.read(name, np.s_[start - 1 : stop]).astype(np.int64)
    if np.any(np.diff(ends) < 0):
        raise DamagedShardError(shard.path, f"the offsets in fields/{name} decrease")
    return ends


@dataclass
class _Run:
    """Episodes that follow each other in one shard, read with one range per field."""

    shard: str
    first_episode: int  # position of the run's first episode in the refs being loaded
    refs: list[EpisodeRef]


def _contiguous_runs(refs: list[EpisodeRef]) -> list[_Run]:
    runs: list[_Run] = []
    for i, ref in enumerate(refs):
        last = runs[-1].refs[-1] if runs else None
        if last is not None and last.shard == ref.shard and last.position + 1 == ref.position:
            runs[-1].refs.append(ref)
        else:
            runs.append(_Run(ref.shard, i, [ref]))
    return runs


def _matches(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, Collection) and not isinstance(allowed, str | bytes):
        return value in allowed
    return value == allowed


def _differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def _describe_schema(schema: Schema) -> str:
    return ", ".join(f"{name}: {spec.describe()}" for name, spec in schema.items())


def summary(store: RolloutStore) -> str:
    """A human-readable overview: shards, episodes, steps, schema, metadata and tag counts."""
    refs = store.episodes()
    lines = [
        f"rollout store {store.path}: {len(store.shards)} shards, {len(refs)} episodes, "
        f"{sum(ref.length for ref in refs)} transitions"
    ]
    if store.schema is None:
        return "\n".join(lines)
    lines.append("schema:")
    lines += [f"  {name}: {spec.describe()}" for name, spec in store.schema.items()]
    lines.append("metadata:")
    for key, value in store.metadata.items():
        text = repr(value)
        lines.append(f"  {key}: {text if len(text) <= 100 else text[:97] + '...'}")
    lines.append("tags:")
    lines += [f"  {line}" for line in store.describe_tags().splitlines()]
    lines.append("shards:")
    for path in store.shards:
        shard_refs = [ref for ref in refs if ref.shard == path.name]
        lines.append(
            f"  {path.name}: {len(shard_refs)} episodes, {sum(r.length for r in shard_refs)} transitions, "
            f"{path.stat().st_size / 1e6:.1f} MB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv.pop(0) if argv and argv[0] in ("summary", "verify", "salvage") else "summary"
    descriptions = {
        "summary": "Summarise a rollout store.",
        "verify": "Check every shard of a rollout store (header, structure, index, checksums); exit 1 if damaged.",
        "salvage": "Copy the intact episodes of every damaged shard into a new shard and move the damaged file aside.",
    }
    parser = argparse.ArgumentParser(
        prog=f"python -m lit_rlseq.rollouts.store{'' if command == 'summary' else ' ' + command}",
        description=descriptions[command] + " Commands: [summary] PATH, verify PATH, salvage PATH.",
    )
    parser.add_argument("path", help="the store directory")
    args = parser.parse_args(argv)
    try:
        if command == "verify":
            from lit_rlseq.rollouts.repair import verify

            return 0 if verify(args.path) else 1
        if command == "salvage":
            from lit_rlseq.rollouts.repair import salvage

            salvage(args.path)
            return 0
        with RolloutStore(args.path) as store:
            store.refresh()
            print(summary(store))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
