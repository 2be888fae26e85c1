"""Checking and repairing the shards of a rollout store: ``verify`` and ``salvage``.

    python -m lit_rlseq.rollouts.store verify PATH     check every shard; exit status 1 when one is damaged
    python -m lit_rlseq.rollouts.store salvage PATH    recover the intact episodes of every damaged shard

``verify`` checks each shard's header (truncation, checksum), structure (attributes, datasets, an index whose
entries continue one another) and reads every episode's fields and tags, which checks every data checksum of
format-2 shards. It reports per shard and then opens the store as a whole (schemas and metadata must agree).

``salvage`` reads every damaged shard episode by episode, writes the episodes that read back completely and
pass their checksums into a new shard (same schema, metadata and codecs; named after the damaged one, with
"-salvaged", so store order is kept) and moves the damaged file aside to ``.<name>.damaged`` in the store
directory, where readers ignore it. Nothing is deleted. An episode is lost when its index entry, its tags or
any of its rows cannot be read or fail a check, or when its data lay in the part of a truncated file that is
gone. Run it while no writer is appending to the store.

A truncated file, or one whose header fails its checksum, is read through a temporary copy in the store
directory (``.<name>.reading``, removed afterwards): extended with zeros to the size its header records and
with the header's "open for writing" flags cleared (what HDF5's ``h5clear`` does), so HDF5 opens it normally
instead of retrying missing metadata for minutes in SWMR mode. Rows whose chunks lay past the end of the
truncated file are lost, whatever the zeros read as.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.rollouts.episode import Episode, EpisodeTags
from lit_rlseq.rollouts.hdf5file import read_superblock
from lit_rlseq.rollouts.store import (
    FORMAT,
    SHARD_GLOB,
    DamagedShardError,
    EpisodeRef,
    RolloutStore,
    RolloutWriter,
    _Shard,
    check_superblock,
)


@dataclass
class ShardReport:
    """What ``inspect_shard`` found in one shard."""

    path: Path
    problem: str | None = None  # None: intact
    indexed: int | None = None  # episodes in its index (None: the index could not be read)
    intact: list[int] = field(default_factory=list)  # positions of the episodes that read back completely
    lost: dict[int, str] = field(default_factory=dict)  # position -> why
    transitions: int = 0  # of the intact episodes
    format: str = ""
    open_for_writing: bool = False

    @property
    def damaged(self) -> bool:
        return self.problem is not None or bool(self.lost)

    def describe(self) -> str:
        size = f"{self.path.stat().st_size / 1e6:.2f} MB" if self.path.exists() else "missing"
        if not self.damaged:
            notes = [f"{len(self.intact)} episodes, {self.transitions} transitions, {size}"]
            if self.format != FORMAT:
                notes.append(f"{self.format}: no checksums, flipped bits in its data cannot be detected")
            if self.open_for_writing:
                notes.append("open for writing (a writer is running, or was killed)")
            return f"{self.path.name}: OK, " + "; ".join(notes)
        lines = [f"{self.path.name}: DAMAGED, {self.problem or 'some episodes cannot be read'}"]
        indexed = "an unreadable number of" if self.indexed is None else f"{self.indexed}"
        lines.append(f"  {len(self.intact)} of {indexed} indexed episodes intact, {len(self.lost)} lost")
        for position, why in list(self.lost.items())[:5]:
            lines.append(f"  episode {position}: {why}")
        if len(self.lost) > 5:
            lines.append(f"  ... {len(self.lost) - 5} more")
        return "\n".join(lines)


def inspect_shard(path: Path, on_episode: Callable[[_Shard, Episode], None] | None = None) -> ShardReport:
    """Check one shard episode by episode; ``on_episode`` gets every intact episode, in order."""
    report = ShardReport(Path(path))
    try:
        superblock = check_superblock(report.path)  # as the store checks it (a writer's flush is waited for)
    except DamagedShardError as e:
        report.problem = e.problem
        superblock = read_superblock(report.path)
        if isinstance(superblock, str):  # nothing HDF5 could read
            return report
    report.open_for_writing = superblock.open_for_writing
    real_size = report.path.stat().st_size
    target = report.path
    if report.problem is not None:
        target = report.path.parent / f".{report.path.name}.reading"
        shutil.copyfile(report.path, target)
        with open(target, "r+b") as f:
            # A header that fails its checksum may hold any size: do not grow the copy to it.
            f.truncate(max(superblock.end_of_file, real_size) if superblock.checksum_ok else real_size)
            f.write(superblock.with_flags_cleared())
    try:
        _inspect_open(report, target, real_size, on_episode)
    finally:
        if target != report.path:
            target.unlink()
    return report


def _inspect_open(
    report: ShardReport, target: Path, real_size: int, on_episode: Callable[[_Shard, Episode], None] | None
) -> None:
    try:
        shard = _Shard.open(target)
    except DamagedShardError as e:
        report.problem = report.problem or e.problem
        return
    try:
        report.format = str(shard.file.attrs["format"])
        with_index = _read_index(shard, report)
        if with_index is None:
            return
        lost_rows = _rows_past_end(shard, real_size) if target != report.path else {}
        expected = (0, 0, 0)  # where the next entry's transition rows, state rows and tags start
        for position, entry in enumerate(with_index):
            if entry is None:
                report.lost[position] = "its index entry cannot be read"
                expected = None
                continue
            transition_row, state_row, length, tags_start, tags_end = entry
            if length < 1 or tags_end <= tags_start or (expected and expected != (transition_row, state_row, tags_start)):
                report.lost[position] = f"its index entry {list(entry)} does not continue the previous one"
                expected = None
                continue
            expected = (transition_row + length, state_row + length + 1, tags_end)
            why = None
            try:
                tag_bytes = shard.read("tags", np.s_[tags_start:tags_end], dataset=shard.tags).tobytes()
                tags = EpisodeTags.from_json(tag_bytes.decode())
            except DamagedShardError as e:
                why = f"its tags cannot be read ({e.problem})"
            except (ValueError, TypeError) as e:
                why = f"its tags are not valid JSON ({e})"
            if why is None:
                ref = EpisodeRef(report.path.name, position, length, tags, transition_row, state_row)
                try:
                    episode = shard.read_episode(ref)
                    why = _past_end(lost_rows, _extents(shard, ref, tags_start, tags_end))
                except DamagedShardError as e:
                    why = e.problem
            if why is not None:
                report.lost[position] = why
                continue
            report.intact.append(position)
            report.transitions += length
            if on_episode is not None:
                on_episode(shard, episode)
    finally:
        shard.release()


def _read_index(shard: _Shard, report: ShardReport) -> list[tuple[int, ...] | None] | None:
    """The index entries, block by block of its chunks: None for an entry in a block that cannot be read."""
    try:
        if shard.swmr:
            shard.index.refresh()
        total = shard.index.shape[0]
    except (OSError, RuntimeError) as e:
        report.problem = report.problem or f"its index cannot be read ({e})"
        return None
    report.indexed = total
    block = shard.index.chunks[0]
    entries: list[tuple[int, ...] | None] = []
    for start in range(0, total, block):
        stop = min(start + block, total)
        try:
            rows = shard.read("index", np.s_[start:stop], dataset=shard.index)
            entries += [tuple(row) for row in rows.tolist()]
        except DamagedShardError:
            entries += [None] * (stop - start)
    return entries


def _rows_past_end(shard: _Shard, real_size: int) -> dict[str, list[tuple[int, int]]]:
    """Per dataset of a truncated shard: the row ranges of its chunks that lay (partly) past the real end, or
    whose place in the file cannot be read (that part of the chunk index went with the end)."""
    result = {}
    for name, dataset in [*shard.datasets.items(), ("tags", shard.tags), ("index", shard.index)]:
        ranges = []
        rows, trailing = dataset.chunks[0], (0,) * (dataset.ndim - 1)
        for first in range(0, dataset.shape[0], rows):
            try:
                info = dataset.id.get_chunk_info_by_coord((first, *trailing))
                lost = info.byte_offset is None or info.byte_offset + info.size > real_size
            except (OSError, RuntimeError, ValueError):
                lost = True
            if lost:
                ranges.append((first, first + rows))
        result[name] = ranges
    return result


def _extents(shard: _Shard, ref: EpisodeRef, tags_start: int, tags_end: int) -> dict[str, tuple[int, int]]:
    """Per dataset of a shard, the range of its first axis that holds one episode."""
    extents = {"index": (ref.position, ref.position + 1), "tags": (tags_start, tags_end)}
    for name, spec in shard.schema.items():
        start = ref.transition_row if spec.kind == "transition" else ref.state_row
        stop = start + ref.length + (spec.kind == "state")
        if not spec.is_text:
            extents[name] = (start, stop)
            continue
        text = shard.text_range(name, start, stop)
        if text.row_ends is not None:
            extents[name + "/row_ends"] = (max(start - 1, 0), stop)  # the entry before says where it begins
            start, stop = int(text.row_ends[0]), int(text.row_ends[-1])
        extents[name + "/ends"] = (max(start - 1, 0), stop)
        extents[name + "/utf8"] = (int(text.string_ends[0]), int(text.string_ends[-1]))
    return extents


def _past_end(lost_rows: dict[str, list[tuple[int, int]]], extents: dict[str, tuple[int, int]]) -> str | None:
    """Why an episode's data went with the truncated end of its shard, or None."""
    for name, (start, stop) in extents.items():
        if any(a < stop and start < b for a, b in lost_rows.get(name, ())):
            return f"its part of dataset {name!r} lay past the end of the truncated file"
    return None


def verify(path: str | os.PathLike, out: Callable[[str], None] = print) -> bool:
    """Check every shard of a store and the store as a whole; True when nothing is damaged."""
    store = _store_directory(path)
    healthy = True
    shards = _shard_files(store)
    for shard_path in shards:
        report = inspect_shard(shard_path)
        out(report.describe())
        healthy &= not report.damaged
    if not healthy:
        out(f"damaged shards found; recover their intact episodes with: python -m lit_rlseq.rollouts.store salvage {store}")
        return False
    try:
        with RolloutStore(store) as opened:
            out(f"store {store}: OK, {len(shards)} shards, {len(opened)} episodes")
    except UserError as e:
        out(f"store {store}: its shards do not fit together: {e}")
        return False
    return True


@dataclass
class SalvageResult:
    shard: Path  # the damaged shard (before it was moved)
    kept: int
    lost: int | None  # None: unknown (the index could not be read)
    new_shard: Path | None
    moved_to: Path


def salvage(path: str | os.PathLike, out: Callable[[str], None] = print) -> list[SalvageResult]:
    """Recover the intact episodes of every damaged shard of a store (see the module docstring)."""
    store = _store_directory(path)
    results = []
    for shard_path in _shard_files(store):
        report = inspect_shard(shard_path)
        if not report.damaged:
            out(f"{shard_path.name}: intact, left as it is")
            continue
        writer: RolloutWriter | None = None
        hidden = store / f".{shard_path.stem}-salvaged.h5.partial"

        def keep(shard: _Shard, episode: Episode) -> None:
            nonlocal writer
            if writer is None:
                writer = RolloutWriter(
                    store, shard.metadata, shard.schema, compression=_codecs(shard), shard_name=hidden.name
                )
            writer.append(episode)

        try:
            report = inspect_shard(shard_path, on_episode=keep)
        finally:
            if writer is not None:
                writer.close()
        moved_to = _free_name(store, f".{shard_path.name}.damaged")
        shard_path.rename(moved_to)  # aside first: a crash now leaves no duplicate episodes behind
        new_shard = None
        if writer is not None:
            new_shard = _free_name(store, f"{shard_path.stem}-salvaged.h5")
            hidden.rename(new_shard)
        lost = None if report.indexed is None else report.indexed - len(report.intact)
        results.append(SalvageResult(shard_path, len(report.intact), lost, new_shard, moved_to))
        out(
            f"{shard_path.name}: {report.problem or 'some episodes cannot be read'}\n"
            f"  kept {len(report.intact)} episodes ({report.transitions} transitions)"
            + (f" in {new_shard.name}" if new_shard else "")
            + f", lost {'an unknown number of' if lost is None else lost}; the damaged file is now {moved_to.name}"
        )
    if not results:
        out(f"store {store}: no damaged shard")
    return results


def _codecs(shard: _Shard) -> dict[str, str]:
    """The codec of every field of a shard, read from its datasets' filters, for the salvaged copy."""
    codecs = {}
    for name, spec in shard.schema.items():
        dataset = shard.datasets[name + ("/utf8" if spec.is_text else "")]
        if dataset.compression == "gzip":
            codecs[name] = f"gzip:{dataset.compression_opts}"
        else:
            codecs[name] = "lzf" if dataset.compression == "lzf" else "none"
    return codecs


def _store_directory(path: str | os.PathLike) -> Path:
    store = Path(path)
    if not store.is_dir():
        raise UserError(f"{store} is not a rollout store directory")
    return store


def _shard_files(store: Path) -> list[Path]:
    shards = sorted(p for p in store.iterdir() if p.is_file() and p.match(SHARD_GLOB) and not p.name.startswith("."))
    if not shards:
        raise DataError(f"{store} holds no shard ({SHARD_GLOB})")
    return shards


def _free_name(directory: Path, name: str) -> Path:
    """``directory / name``, or with a number added before the suffix when that exists already."""
    candidate, number = directory / name, 1
    while candidate.exists():
        number += 1
        stem, dot, suffix = name.rpartition(".")
        candidate = directory / f"{stem}-{number}{dot}{suffix}"
    return candidate
