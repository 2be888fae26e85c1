"""Damaged shards (truncated, garbage, flipped bytes), verify and salvage, checksums, codecs, old shards."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from lit_rlseq.errors import UserError
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore
from lit_rlseq.rollouts import store as store_module
from lit_rlseq.rollouts.hdf5file import lookup3, read_superblock
from lit_rlseq.rollouts.repair import inspect_shard, salvage, verify
from lit_rlseq.rollouts.store import DamagedShardError
from tests.test_rollout_store import assert_episodes_equal

LENGTHS = [30, 31, 32, 33, 34]  # frames chunks hold 21 rows: chunk boundaries fall inside episodes


def episode(i: int) -> Episode:
    rng = np.random.default_rng(i)
    length = LENGTHS[i % 5]
    return Episode(
        {
            "frames": rng.integers(0, 256, size=(length + 1, 3, 64, 64), dtype=np.uint8),
            "hidden": rng.normal(size=(length + 1, 8)).astype(np.float32),
            "action": rng.integers(0, 15, size=length),
            "words": [f"step {t} é" * (t % 3) for t in range(length)],
            "valid": [[f"go {k} ✓" for k in range((t + i) % 3)] for t in range(length + 1)],
        },
        EpisodeTags(run_id="r", epoch=i),
    )


@pytest.fixture
def two_shards(tmp_path):
    """A store written by two writers, 5 episodes each; returns (store path, damaged shard, healthy shard)."""
    path = tmp_path / "store"
    for first in (0, 5):
        with RolloutStore(path) as store, store.writer({"env": "test"}) as writer:  # closed: no handle kept open
            for i in range(first, first + 5):
                writer.append(episode(i))
    first, second = sorted(path.glob("shard-*.h5"))
    return path, first, second


def frames_chunk_rows(shard, chunk: int) -> tuple[int, int, int, int]:
    """(first row, stop row, byte offset, byte size) of a chunk of a shard's frames."""
    with h5py.File(shard, "r") as f:
        dataset = f["fields/frames"]
        info = dataset.id.get_chunk_info(chunk)
        first = info.chunk_offset[0]
        return first, min(first + dataset.chunks[0], dataset.shape[0]), info.byte_offset, info.size


def flip_byte(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        value = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([value ^ 0xFF]))


def check_salvaged(path, damaged_name: str, expect_kept: set[int] | None = None) -> set[int]:
    """Run salvage; every episode of the store equals what was written; returns the salvaged epochs."""
    size = (path / damaged_name).stat().st_size
    (result,) = salvage(path, out=lambda line: None)
    assert not (path / damaged_name).exists()
    assert result.moved_to.name == f".{damaged_name}.damaged" and result.moved_to.stat().st_size == size
    store = RolloutStore(path)
    epochs = [ref.tags.epoch for ref in store.episodes()]
    for ref in store.episodes():
        assert_episodes_equal(store.load(ref), episode(ref.tags.epoch))
    kept = set(epochs) - set(range(5, 10))  # the healthy second shard is all there
    assert set(range(5, 10)) <= set(epochs) and len(epochs) == len(set(epochs))
    assert result.kept == len(kept)
    assert result.lost == 5 - len(kept) or (result.lost is None and not kept)  # None: no index to count
    assert epochs == sorted(epochs)  # the salvaged shard takes the damaged one's place in store order
    if expect_kept is not None:
        assert kept == expect_kept
    assert verify(path, out=lambda line: None)
    return kept


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 0.99])
def test_truncated_shard_is_a_clear_error_and_salvage_keeps_the_intact_episodes(two_shards, fraction, capsys):
    path, damaged, _ = two_shards
    os.truncate(damaged, int(damaged.stat().st_size * fraction))
    with pytest.raises(DamagedShardError, match="is truncated") as error:
        RolloutStore(path)
    message = str(error.value)
    assert damaged.name in message and f"python -m lit_rlseq.rollouts.store salvage {path}" in message
    assert store_module.main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{damaged.name}: DAMAGED, it is truncated" in out and "salvage" in out
    kept = check_salvaged(path, damaged.name)
    if fraction == 0.05:  # the index and every frame chunk are gone
        assert kept == set()
    if fraction == 0.99:  # only the last chunks are gone: the first episodes are whole
        assert {0, 1, 2} <= kept


@pytest.mark.parametrize("chunk", [0, 2, 7])
def test_flipped_bytes_in_frames_are_detected_and_exactly_their_episodes_lost(two_shards, chunk):
    path, damaged, _ = two_shards
    first, stop, offset, size = frames_chunk_rows(damaged, chunk)
    flip_byte(damaged, offset + size // 2)
    state_starts = np.cumsum([0] + [n + 1 for n in LENGTHS])
    hit = {e for e in range(5) if state_starts[e] < stop and first < state_starts[e + 1]}
    assert hit  # the chunk holds rows of at least one episode
    store = RolloutStore(path)  # the index and tags are intact: the store opens ...
    for ref in store.episodes():
        if ref.tags.epoch in hit:  # ... and reading a damaged episode says which shard and dataset
            with pytest.raises(DamagedShardError, match=r"fields/frames cannot be read .*fails its checksum"):
                store.load(ref)
        else:
            assert_episodes_equal(store.load(ref), episode(ref.tags.epoch))
    store.close()
    report = inspect_shard(damaged)
    assert report.damaged and set(report.lost) == hit and set(report.intact) == set(range(5)) - hit
    check_salvaged(path, damaged.name, expect_kept=set(range(5)) - hit)


def test_flipped_byte_in_an_uncompressed_float_field_is_detected(two_shards):
    path, damaged, _ = two_shards
    with h5py.File(damaged, "r") as f:
        assert f["fields/hidden"].compression is None and f["fields/hidden"].fletcher32
        info = f["fields/hidden"].id.get_chunk_info(0)
    flip_byte(damaged, info.byte_offset + 100)  # row 3 of the first episode
    assert set(inspect_shard(damaged).lost) == set(range(5))  # one chunk holds all of them
    with pytest.raises(DamagedShardError, match="fields/hidden cannot be read"):
        RolloutStore(path).load_fields(RolloutStore(path).episodes()[:1])


@pytest.mark.parametrize("damage", ["garbage header", "zero length"])
def test_garbage_or_empty_shard(two_shards, damage, capsys):
    path, damaged, _ = two_shards
    if damage == "zero length":
        os.truncate(damaged, 0)
    else:
        with open(damaged, "r+b") as f:
            f.write(b"\x00garbage" * 8)
    with pytest.raises(DamagedShardError) as error:
        RolloutStore(path)
    assert damaged.name in str(error.value) and "salvage" in str(error.value)
    assert ("empty" if damage == "zero length" else "HDF5 signature") in str(error.value)
    assert not verify(path, out=print)
    assert "DAMAGED" in capsys.readouterr().out
    assert check_salvaged(path, damaged.name) == set()


def test_damaged_index_entry_and_header_checksum(two_shards):
    path, damaged, _ = two_shards
    # A header byte flipped: the superblock checksum catches it before HDF5 reads anything.
    flip_byte(damaged, 40)
    with pytest.raises(DamagedShardError, match="superblock .* fails its checksum"):
        RolloutStore(path)
    flip_byte(damaged, 40)
    with h5py.File(damaged, "r") as f:
        index = f["index"].id.get_chunk_info(0)
    flip_byte(damaged, index.byte_offset + 8)  # the index chunk: every entry in it is unreadable
    with pytest.raises(DamagedShardError, match="index cannot be read"):
        RolloutStore(path)
    check_salvaged(path, damaged.name, expect_kept=set())


def test_store_with_inconsistent_index_is_damaged(tmp_path):
    path = tmp_path / "s"
    with RolloutStore(path) as store, store.writer() as writer:
        for i in range(3):
            writer.append(Episode({"x": np.arange(4.0)}, EpisodeTags(run_id="r", epoch=i)))
    (shard,) = path.glob("shard-*.h5")
    with h5py.File(shard, "r+") as f:  # a consistent file whose index disagrees with itself
        f["index"][1, 0] = 7
    with pytest.raises(DamagedShardError, match=r"index entry 1 .* does not continue"):
        RolloutStore(path)
    report = inspect_shard(shard)
    assert report.intact == [0, 2] and 1 in report.lost


def test_codecs_per_field_and_defaults(tmp_path):
    store = RolloutStore(tmp_path / "s")
    with store.writer(compression={"frames": "lzf", "hidden": "gzip:4", "words": "none"}) as writer:
        writer.append(episode(0))
    with store.writer() as writer:  # defaults: gzip 1 for frames, none for the rest
        writer.append(episode(1))
    (a, b) = store.shards
    with h5py.File(a, "r") as f:
        assert f["fields/frames"].compression == "lzf" and f["fields/hidden"].compression_opts == 4
        assert f["fields/hidden"].shuffle and f["fields/words/utf8"].compression is None
        assert all(f[name].fletcher32 for name in ("fields/frames", "fields/hidden", "index", "tags"))
    with h5py.File(b, "r") as f:
        assert f["fields/frames"].compression == "gzip" and f["fields/frames"].compression_opts == 1
        assert f["fields/action"].compression is None and f["fields/hidden"].compression is None
        assert f["fields/valid/utf8"].compression is None and f["fields/valid/ends"].fletcher32
        assert f["index"].compression is None and f["tags"].compression is None  # rewritten in place
    for ref in store.episodes():
        assert_episodes_equal(store.load(ref), episode(ref.tags.epoch))
    with pytest.raises(UserError, match=r"compression of field 'frames' is 'zstd'"):
        store.writer(compression={"frames": "zstd"})
    with pytest.raises(UserError, match=r"field\(s\) \['frame'\] that the episodes lack"):
        with store.writer(compression={"frame": "lzf"}) as writer:
            writer.append(episode(2))


def test_a_small_shard_stays_small(tmp_path):
    rng = np.random.default_rng(0)
    fields = {
        "obs": rng.normal(size=(21, 17)).astype(np.float32),
        "action": rng.normal(size=(20, 6)).astype(np.float32),
        "reward": rng.normal(size=20).astype(np.float32),
        "done": np.arange(20) == 19,
    }
    with RolloutStore(tmp_path / "s").writer() as writer:
        writer.append(Episode(fields, EpisodeTags(run_id="r")))
    (shard,) = (tmp_path / "s").glob("shard-*.h5")
    assert shard.stat().st_size < 200_000  # 1.1 MB before chunks were sized for it (4 fields x 32 KB now)


def write_format_1_shard(path) -> Episode:
    """A shard as format 1 wrote it (no filters, no text lists): the layout documented in store.py."""
    length = 3
    expected = Episode(
        {"obs": np.arange(8, dtype=np.float32).reshape(4, 2), "words": ["a", "", "é"]},
        EpisodeTags(run_id="old", epoch=0),
    )
    tags = np.frombuffer(expected.tags.to_json().encode(), np.uint8)
    path.mkdir()
    with h5py.File(path / "shard-20250101T000000000000Z-old-1-00000000.h5", "w", libver="latest") as f:
        f.attrs["format"] = "lit_rlseq.rollouts/1"
        f.attrs["schema"] = json.dumps(
            {"obs": {"kind": "state", "dtype": "<f4", "shape": [2]}, "words": {"kind": "transition", "dtype": "str", "shape": []}}
        )
        f.attrs["metadata"] = json.dumps({"env": "old"})
        for name, data in {
            "fields/obs": expected.fields["obs"],
            "fields/words/utf8": np.frombuffer("aé".encode(), np.uint8),
            "fields/words/ends": np.array([1, 1, 3], np.int64),
            "tags": tags,
            "index": np.array([[0, 0, length, 0, len(tags)]], np.int64),
        }.items():
            f.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]), chunks=(64, *data.shape[1:]))
    return expected


def test_format_1_shards_still_open_and_verify(tmp_path, capsys):
    expected = write_format_1_shard(tmp_path / "old")
    store = RolloutStore(tmp_path / "old")
    assert store.metadata == {"env": "old"}
    assert_episodes_equal(store.load(store.episodes()[0]), expected)
    with store.writer() as writer:  # a new writer adds a format-2 shard beside it
        writer.append(expected)
    assert len(store) == 2
    assert verify(tmp_path / "old", out=print)
    assert "lit_rlseq.rollouts/1: no checksums" in capsys.readouterr().out


def test_superblock_reader_and_lookup3(tmp_path):
    assert lookup3(b"") == 0xDEADBEEF  # Bob Jenkins' published values for hashlittle
    assert lookup3(b"Four score and seven years ago") == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161
    with RolloutStore(tmp_path / "s").writer() as writer:
        writer.append(episode(0))
        superblock = read_superblock(writer.path)
        assert superblock.open_for_writing and superblock.checksum_ok
    superblock = read_superblock(writer.path)
    assert not superblock.open_for_writing and superblock.end_of_file == writer.path.stat().st_size
    assert read_superblock(tmp_path / "s" / writer.path.name) == superblock


def test_commands_report_and_exit_status(two_shards, capsys):
    path, damaged, healthy = two_shards
    assert store_module.main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{healthy.name}: OK, 5 episodes" in out and "store" in out and "10 episodes" in out
    assert store_module.main(["salvage", str(path)]) == 0
    assert "no damaged shard" in capsys.readouterr().out
    os.truncate(damaged, damaged.stat().st_size // 2)
    assert store_module.main([str(path)]) == 2  # the summary names the damage and the repair
    assert "salvage" in capsys.readouterr().err
    assert store_module.main(["salvage", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kept" in out and "lost" in out and ".damaged" in out
    assert store_module.main(["verify", str(tmp := path.parent / "nothing")]) == 2 and not tmp.exists()
    shutil.rmtree(path)


@pytest.mark.slow
def test_truncated_shard_of_a_killed_writer(tmp_path):
    """A killed writer leaves its shard flagged "open for writing", which is read in SWMR mode, where HDF5 does
    not check truncation itself: the header check must catch it (no minutes of retries), salvage must read it."""
    import signal

    from tests.rollout_writer_process import make_episode
    from tests.test_rollout_store import start_writer, wait_for_line

    proc = start_writer(tmp_path / "s", "loop")
    wait_for_line(proc, "done 4")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (shard,) = (tmp_path / "s").glob("shard-*.h5")
    assert read_superblock(shard).open_for_writing
    os.truncate(shard, int(shard.stat().st_size * 0.6))
    with pytest.raises(DamagedShardError, match="is truncated"):
        RolloutStore(tmp_path / "s")
    (result,) = salvage(tmp_path / "s", out=lambda line: None)
    store = RolloutStore(tmp_path / "s")
    assert len(store) == result.kept >= 1  # the first episodes lie before the cut
    for ref in store.episodes():
        assert_episodes_equal(store.load(ref), make_episode(ref.tags.epoch))
