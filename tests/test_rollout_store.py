import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore
from lit_rlseq.rollouts import store as store_module
from tests.rollout_writer_process import METADATA, make_episode

WRITER_SCRIPT = Path(__file__).with_name("rollout_writer_process.py")


def assert_episodes_equal(got: Episode, expected: Episode) -> None:
    assert got.length == expected.length
    assert got.tags == expected.tags
    assert set(got.fields) == set(expected.fields)
    for name, value in expected.fields.items():
        if isinstance(value, list):
            assert got.fields[name] == value, name
        else:
            assert got.fields[name].dtype == value.dtype, name
            np.testing.assert_array_equal(got.fields[name], value, err_msg=name)


def small_episode(i: int, length: int = 4, **tags) -> Episode:
    return Episode(
        {"obs": np.arange(length + 1, dtype=np.float32) + 100 * i, "action": np.arange(length) + 100 * i},
        EpisodeTags(run_id=tags.pop("run_id", "r"), epoch=i, **tags),
    )


def write(path, episodes, metadata=None) -> None:
    with RolloutStore(path).writer(metadata) as writer:
        for episode in episodes:
            writer.append(episode)


# ---- Episode


def test_episode_infers_length_and_field_kinds():
    episode = Episode(
        {"obs": np.zeros((6, 2, 3), np.uint8), "action": np.zeros(5, np.int64), "words": ["a"] * 5},
        EpisodeTags(run_id="r"),
    )
    assert episode.length == 5
    assert episode.kind("obs") == "state" and episode.kind("action") == "transition"
    schema = episode.schema()
    assert schema["obs"].shape == (2, 3) and schema["obs"].dtype == "|u1"
    assert schema["words"].is_text and schema["words"].kind == "transition"
    assert schema["obs"].describe() == "uint8[L+1, 2, 3]"


def test_episode_with_only_state_fields_needs_explicit_length():
    episode = Episode({"obs": np.zeros((4, 2))}, EpisodeTags(run_id="r"), length=3)
    assert episode.kind("obs") == "state"
    assert Episode({"obs": np.zeros((4, 2))}, EpisodeTags(run_id="r")).kind("obs") == "transition"


def test_episode_rejects_inconsistent_lengths_naming_field_and_lengths():
    with pytest.raises(DataError, match=r"'reward' has 7 rows but the episode has 5 transitions"):
        Episode({"action": np.zeros(5), "reward": np.zeros(7)}, EpisodeTags(run_id="r"))
    with pytest.raises(DataError, match="'words' has 3 rows"):
        Episode({"obs": np.zeros((6, 2)), "words": ["a", "b", "c"]}, EpisodeTags(run_id="r"), length=5)


def test_episode_rejects_bad_fields():
    with pytest.raises(DataError, match="'x' has dtype object"):
        Episode({"x": np.array([{}, {}], dtype=object)}, EpisodeTags(run_id="r"))
    with pytest.raises(DataError, match="'obs' and 'obs/image' clash"):
        Episode({"obs": np.zeros(3), "obs/image": np.zeros(3)}, EpisodeTags(run_id="r"))
    with pytest.raises(DataError, match="no transitions"):
        Episode({"obs": np.zeros((1, 2))}, EpisodeTags(run_id="r"), length=0)
    with pytest.raises(DataError, match="not JSON-serialisable"):
        EpisodeTags(run_id="r", metadata={"x": object()}).to_json()
    text = Episode({"words": np.array(["a", "bc"])}, EpisodeTags(run_id="r"))
    assert text.fields["words"] == ["a", "bc"]


def test_episode_normalises_numpy_inputs():
    episode = Episode({"x": np.arange(3, dtype=">f4"), "r": [0.5, 1.0, 2.0]}, EpisodeTags(run_id="r"))
    assert episode.fields["x"].dtype == np.dtype("=f4") and episode.schema()["r"].dtype == "<f8"
    tags = EpisodeTags(run_id="r", seed=np.int64(7), metadata={"score": np.float32(1.5), "xy": np.arange(2)})
    assert tags.seed == 7 and type(tags.seed) is int
    assert EpisodeTags.from_json(tags.to_json()).metadata == {"score": 1.5, "xy": [0, 1]}


# ---- round trip and queries


def test_round_trip_of_every_field_kind(tmp_path, rng):
    episodes = []
    for i, length in enumerate([3, 1, 7]):
        episodes.append(
            Episode(
                {
                    "obs/image": rng.integers(0, 256, size=(length + 1, 3, 8, 8), dtype=np.uint8),
                    "obs/text": rng.integers(0, 1000, size=(length + 1, 5)),
                    "hidden": rng.normal(size=(length + 1, 2, 4)).astype(np.float32),
                    "logits": rng.normal(size=(length, 15)).astype(np.float16),
                    "valid": rng.random((length, 4)) > 0.5,
                    "reward": rng.normal(size=length),
                    "action_words": [
                        ["", "go north", "ouvrir la fenêtre ✓", "x" * 300][(t + i) % 4] for t in range(length)
                    ],
                    "observation_text": [f"state {t}\nline two" for t in range(length + 1)],
                },
                EpisodeTags(run_id="run", epoch=i, partition="teacher", metadata={"score": i * 1.5, "names": ["a"]}),
            )
        )
    write(tmp_path / "store", episodes, metadata={"env": "rtfm", "vocab": ["a", "b"]})

    store = RolloutStore(tmp_path / "store")
    assert len(store) == 3 and store.metadata == {"env": "rtfm", "vocab": ["a", "b"]}
    refs = store.episodes()
    assert [ref.length for ref in refs] == [3, 1, 7]
    for ref, expected in zip(refs, episodes):
        assert_episodes_equal(store.load(ref), expected)
    with h5py.File(store.shards[0], "r") as f:  # "/" in a name nests groups
        assert isinstance(f["fields/obs"], h5py.Group) and f["fields/obs/image"].shape == (14, 3, 8, 8)


def text_episode(i: int, length: int, **tags) -> Episode:
    """A text-game trajectory: observations, actions in words and the valid actions at every state."""
    valid = [
        [],  # no valid action
        ["", "look"],  # an empty string among them
        ["ouvrir la fenêtre", "取る 🍎", "x" * 300],
        ["go north\n", "go\tsouth", "\u00e9\u0301", "\x00nul"],
    ]
    return Episode(
        {
            "observation": [f"room {i}.{t} 🏠" if t % 3 else "" for t in range(length + 1)],
            "action": [["", "look", "go north"][(t + i) % 3] for t in range(length)],
            "valid": [valid[(t + i) % 4] for t in range(length + 1)],
            "reward": np.arange(length, dtype=np.float32) + i,
        },
        EpisodeTags(run_id="text", epoch=i, partition=["teacher", "student_train"][i % 2], **tags),
    )


def test_round_trip_of_text_trajectories_with_text_list_fields(tmp_path):
    episodes = [text_episode(i, length) for i, length in enumerate([1, 5, 2, 7])]
    # Every row empty: a text-list field holding no string at all, in an episode of its own.
    episodes.append(
        Episode(
            {"observation": ["", "a"], "action": ["b"], "valid": [[], []], "reward": np.zeros(1, np.float32)},
            EpisodeTags(run_id="text", epoch=4, partition="student_test"),
        )
    )
    write(tmp_path / "s", episodes[:3], metadata={"game": "zork"})
    write(tmp_path / "s", episodes[3:])
    store = RolloutStore(tmp_path / "s")
    assert store.schema["valid"].is_text_list and store.schema["valid"].describe() == "L+1 lists of strings"
    assert not store.schema["action"].is_text_list and store.schema["action"].is_text
    refs = store.episodes()
    for ref, expected in zip(refs, episodes, strict=True):
        assert_episodes_equal(store.load(ref), expected)
    # Queried like any field: by tags, some fields, out of order, runs across both shards.
    chosen = store.episodes(partition={"student_train", "student_test"})[::-1] + refs[:1]
    assert [ref.tags.epoch for ref in chosen] == [4, 3, 1, 0]
    loaded = store.load_fields(chosen, ["valid", "action"])
    assert loaded.text_lists == {"valid"}
    for i, ref in enumerate(chosen):
        expected = episodes[ref.tags.epoch]
        s0, s1 = loaded.state_offsets[i : i + 2]
        assert loaded.fields["valid"][s0:s1].tolist() == expected.fields["valid"]
        assert loaded.episode(i).fields["valid"] == expected.fields["valid"]
    loaded.episode(0).fields["valid"][0].append("changed")  # an episode's lists are its own
    assert loaded.episode(0).fields["valid"][0] == []
    with h5py.File(store.shards[0], "r") as f:  # rows -> strings -> bytes
        expected_rows = [row for e in episodes[:3] for row in e.fields["valid"]]
        np.testing.assert_array_equal(f["fields/valid/row_ends"][:], np.cumsum([len(r) for r in expected_rows]))
        assert f["fields/valid/ends"].shape == (sum(map(len, expected_rows)),)


def test_text_list_fields_reject_bad_rows_and_schema_changes(tmp_path):
    with pytest.raises(DataError, match=r"'valid': row 1 of a text-list field holds int 3"):
        Episode({"valid": [["a"], ["b", 3]]}, EpisodeTags(run_id="r"))
    with pytest.raises(DataError, match=r"'valid' has ragged value"):
        Episode({"valid": [[1], [2, 3]]}, EpisodeTags(run_id="r"))
    numeric = Episode({"x": [[1, 2], [3, 4]]}, EpisodeTags(run_id="r"))  # nested numbers stay numeric
    assert numeric.fields["x"].shape == (2, 2)
    assert Episode({"v": [(), ("a",)]}, EpisodeTags(run_id="r")).fields["v"] == [[], ["a"]]
    store = RolloutStore(tmp_path / "s")
    with store.writer() as writer:
        writer.append(text_episode(0, 3))
        strings_not_lists = text_episode(1, 3)
        strings_not_lists.fields["valid"] = ["a"] * 4
        with pytest.raises(DataError, match=r"field 'valid': .* expects L\+1 lists of strings, got L\+1 strings"):
            writer.append(Episode(strings_not_lists.fields, strings_not_lists.tags))


def test_query_by_tags_without_loading(tmp_path):
    episodes = [
        small_episode(0, partition="teacher", env="a"),
        small_episode(1, partition="student_train", env="a"),
        small_episode(2, partition="student_test", env="b", metadata={"complete": False}),
        small_episode(3, partition="teacher", env="b", metadata={"complete": True}),
    ]
    write(tmp_path / "s", episodes)
    store = RolloutStore(tmp_path / "s")
    assert [r.tags.epoch for r in store.episodes(partition="teacher")] == [0, 3]
    assert [r.tags.epoch for r in store.episodes(partition={"teacher", "student_train"})] == [0, 1, 3]
    assert [r.tags.epoch for r in store.episodes(partition=["teacher"], env="b")] == [3]
    assert [r.tags.epoch for r in store.episodes(metadata={"complete": True})] == [3]
    assert [r.tags.epoch for r in store.episodes(metadata={"complete": [True, False]})] == [2, 3]
    assert store.count(env="a") == 2 and store.count(env="c") == 0 and len(store) == 4
    assert store.tag_counts()["partition"] == {"teacher": 2, "student_train": 1, "student_test": 1}
    with pytest.raises(UserError, match=r"unknown episode tag\(s\) \['parition'\]"):
        store.episodes(parition="teacher")


def test_load_fields_concatenates_in_ref_order_across_shards(tmp_path):
    write(tmp_path / "s", [small_episode(i, length=2 + i) for i in range(4)])
    write(tmp_path / "s", [small_episode(i, length=2 + i) for i in range(4, 6)])
    store = RolloutStore(tmp_path / "s")
    assert len(store.shards) == 2
    refs = store.episodes()
    chosen = [refs[5], refs[1], refs[2], refs[4]]  # out of order, across shards, one contiguous pair
    loaded = store.load_fields(chosen, ["action", "obs"])
    assert list(loaded.fields) == ["action", "obs"]
    np.testing.assert_array_equal(loaded.transition_offsets, [0, 7, 10, 14, 20])
    np.testing.assert_array_equal(loaded.state_offsets, [0, 8, 12, 17, 24])
    for i, ref in enumerate(chosen):
        expected = small_episode(ref.tags.epoch, length=2 + ref.tags.epoch)
        t0, t1 = loaded.transition_offsets[i : i + 2]
        s0, s1 = loaded.state_offsets[i : i + 2]
        np.testing.assert_array_equal(loaded.fields["action"][t0:t1], expected.fields["action"])
        np.testing.assert_array_equal(loaded.fields["obs"][s0:s1], expected.fields["obs"])
        assert_episodes_equal(loaded.episode(i), expected)
    with pytest.raises(UserError, match=r"field\(s\) \['reward'\] not in store"):
        store.load_fields(refs, ["reward"])


def test_load_fields_refuses_what_does_not_fit_in_memory(tmp_path, monkeypatch):
    write(tmp_path / "s", [small_episode(i, length=10) for i in range(3)])
    store = RolloutStore(tmp_path / "s")
    needed = 3 * 11 * 4 + 3 * 10 * 8  # float32 obs (L+1 rows) + int64 action
    monkeypatch.setattr(store_module, "available_memory_bytes", lambda: needed - 1)
    with pytest.raises(DataError, match="needs 0.0 GB .* select fewer episodes"):
        store.load_fields(store.episodes())
    monkeypatch.setattr(store_module, "available_memory_bytes", lambda: needed)
    assert store.load_fields(store.episodes()).fields["obs"].shape == (33,)


# ---- schema and metadata


def test_episode_that_differs_from_the_schema_is_rejected(tmp_path):
    store = RolloutStore(tmp_path / "s")
    with store.writer() as writer:
        writer.append(small_episode(0))
        with pytest.raises(DataError, match=r"lacks field 'action' \(int64\[L\]\)"):
            writer.append(Episode({"obs": np.zeros(5, np.float32)}, EpisodeTags(run_id="r"), length=4))
        with pytest.raises(DataError, match=r"has field 'reward' \(float64\[L\]\)"):
            writer.append(Episode({**small_episode(1).fields, "reward": np.zeros(4)}, EpisodeTags(run_id="r")))
        with pytest.raises(DataError, match=r"field 'obs': .* expects float32\[L\+1\], got float64\[L\+1\]"):
            writer.append(Episode({"obs": np.zeros(5), "action": np.zeros(4, np.int64)}, EpisodeTags(run_id="r")))
        with pytest.raises(DataError, match=r"field 'obs': .* expects float32\[L\+1\], got float32\[L\+1, 2\]"):
            writer.append(
                Episode({"obs": np.zeros((5, 2), np.float32), "action": np.zeros(4, np.int64)}, EpisodeTags(run_id="r"))
            )
        with pytest.raises(DataError, match=r"field 'obs': .* expects float32\[L\+1\], got float32\[L\]"):
            writer.append(
                Episode({"obs": np.zeros(4, np.float32), "action": np.zeros(4, np.int64)}, EpisodeTags(run_id="r"))
            )
        writer.append(small_episode(1))
    # A later writer is held to the store's schema too, before it creates a shard.
    with pytest.raises(DataError, match="lacks field 'obs'"):
        with store.writer() as writer:
            writer.append(Episode({"action": np.zeros(4, np.int64)}, EpisodeTags(run_id="r")))
    assert len(store.shards) == 1 and [r.tags.epoch for r in store.episodes()] == [0, 1]


def test_shards_with_different_schemas_or_metadata_are_rejected_naming_both(tmp_path):
    write(tmp_path / "a", [small_episode(0)], metadata={"env": "x"})
    write(tmp_path / "b", [Episode({"obs": np.zeros(5)}, EpisodeTags(run_id="r"))], metadata={"env": "x"})
    write(tmp_path / "c", [small_episode(0)], metadata={"env": "y"})
    (a,), (b,), (c,) = (list((tmp_path / name).glob("shard-*.h5")) for name in "abc")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(a, mixed / a.name)
    shutil.copy(b, mixed / b.name)
    with pytest.raises(DataError, match="different schemas") as error:
        RolloutStore(mixed)
    assert a.name in str(error.value) and b.name in str(error.value)
    (mixed / b.name).unlink()
    shutil.copy(c, mixed / c.name)
    with pytest.raises(DataError, match=r"conflicting metadata \(keys \['env'\] differ\)"):
        RolloutStore(mixed)


def test_writer_metadata_must_match_the_store(tmp_path):
    write(tmp_path / "s", [small_episode(0)], metadata={"env": "x", "vocab": ["a"]})
    store = RolloutStore(tmp_path / "s")
    with pytest.raises(DataError, match=r"different metadata \(keys \['vocab'\] differ\)"):
        store.writer({"env": "x", "vocab": ["b"]})
    write(tmp_path / "s", [small_episode(1)], metadata=None)  # None keeps the store's metadata
    write(tmp_path / "s", [small_episode(2)], metadata={"env": "x", "vocab": ("a",)})  # equal once in JSON
    store.refresh()
    assert len(store.shards) == 3 and store.metadata == {"env": "x", "vocab": ["a"]}


# ---- bad stores


def test_missing_store_and_foreign_files(tmp_path):
    store = RolloutStore(tmp_path / "nowhere")
    with pytest.raises(MissingArtifactError, match="rollout store not found"):
        store.episodes()
    with pytest.raises(MissingArtifactError):
        len(store)
    (tmp_path / "file.hdf5").write_bytes(b"")
    with pytest.raises(DataError, match="is a file, not a rollout store directory"):
        RolloutStore(tmp_path / "file.hdf5")

    write(tmp_path / "s", [small_episode(0)])
    (tmp_path / "s" / ".shard-x.h5.partial").write_bytes(b"left by a killed writer")  # hidden: ignored
    assert len(RolloutStore(tmp_path / "s")) == 1
    (tmp_path / "s" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt is not a rollout shard"):
        RolloutStore(tmp_path / "s")
    (tmp_path / "s" / "notes.txt").unlink()
    (tmp_path / "s" / "shard-broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="shard-broken.h5 is damaged: it does not start with the HDF5 signature"):
        RolloutStore(tmp_path / "s")
    (tmp_path / "s" / "shard-broken.h5").unlink()
    with h5py.File(tmp_path / "s" / "shard-other.h5", "w", libver="latest") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="shard-other.h5 is not a rollout shard .*format=None"):
        RolloutStore(tmp_path / "s")


def test_summary_command(tmp_path, capsys):
    write(tmp_path / "s", [small_episode(i, partition="teacher") for i in range(3)], metadata={"env": "toy"})
    assert store_module.main([str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "1 shards, 3 episodes, 12 transitions" in out
    assert "obs: float32[L+1]" in out and "action: int64[L]" in out
    assert "partition: 'teacher' (3)" in out and "env: 'toy'" in out
    assert store_module.main([str(tmp_path / "missing")]) == 2
    assert "rollout store not found" in capsys.readouterr().err


# ---- concurrency and crash safety (real processes)


def start_writer(store_path, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen(
        [sys.executable, str(WRITER_SCRIPT), str(store_path), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def wait_for_line(proc: subprocess.Popen, line: str) -> None:
    for out in proc.stdout:
        if out.strip() == line:
            return
    raise AssertionError(f"writer exited (status {proc.wait()}) before printing {line!r}")


def check_store_after_kill(path) -> int:
    """Every indexed episode reads back exactly as written; a new writer can append. Returns the count."""
    store = RolloutStore(path)
    refs = store.episodes()
    assert [ref.tags.epoch for ref in refs] == list(range(len(refs)))
    for ref in refs:
        assert_episodes_equal(store.load(ref), make_episode(ref.tags.epoch))
    with store.writer() as writer:
        writer.append(make_episode(len(refs)))
    assert len(store.shards) == 2 and len(store) == len(refs) + 1
    assert_episodes_equal(store.load(store.episodes()[-1]), make_episode(len(refs)))
    assert store.metadata == METADATA
    return len(refs)


def test_sigkill_while_appending_loses_nothing_indexed(tmp_path):
    proc = start_writer(tmp_path / "s", "loop")
    wait_for_line(proc, "done 5")
    os.kill(proc.pid, signal.SIGKILL)  # mid-way through later episodes
    assert proc.wait() == -signal.SIGKILL
    assert check_store_after_kill(tmp_path / "s") >= 5


def test_sigkill_between_data_and_index_hides_the_partial_episode(tmp_path):
    proc = start_writer(tmp_path / "s", "partial", "3")
    wait_for_line(proc, "data flushed, index not extended")
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    (shard,) = (tmp_path / "s").glob("shard-*.h5")
    with h5py.File(shard, "r", swmr=True) as f:  # the 4th episode's data is in the file, but not indexed
        indexed_rows = sum(make_episode(i).length + 1 for i in range(3))
        assert f["index"].shape[0] == 3
        assert f["fields/frames"].shape[0] == indexed_rows + make_episode(3).length + 1
    with pytest.raises(OSError):  # why every writer makes a new shard
        h5py.File(shard, "a", libver="latest")
    assert check_store_after_kill(tmp_path / "s") == 3


def test_concurrent_reader_only_sees_complete_episodes(tmp_path):
    n = 12
    proc = start_writer(tmp_path / "s", "two-shards", str(n))
    wait_for_line(proc, "done 1")
    store = RolloutStore(tmp_path / "s")
    checked, refreshes = 0, 0
    while checked < 2 * n:
        store.refresh()
        refreshes += 1
        refs = store.episodes()
        for ref in refs[checked:]:
            assert_episodes_equal(store.load(ref), make_episode(ref.tags.epoch))
        assert [ref.tags.epoch for ref in refs] == list(range(len(refs)))
        checked = len(refs)
        assert proc.poll() in (None, 0)
    assert proc.wait() == 0 and len(store.shards) == 2
    assert refreshes > 2  # the reader did follow the writer rather than read it all at the end


def test_two_stores_on_the_same_directory_in_one_process(tmp_path, rng):
    # Reads span several chunks: HDF5 fails those ("can't insert duplicate key") once a dataset was refreshed
    # through a second open of its file in the same process; the store opens each shard once per process.
    episodes = [
        Episode({"obs": rng.normal(size=(501, 64)).astype(np.float32)}, EpisodeTags(run_id="r", epoch=i), length=500)
        for i in range(4)
    ]
    write(tmp_path / "s", episodes[:3])  # 1503 rows of 1024-row chunks
    first, second = RolloutStore(tmp_path / "s"), RolloutStore(tmp_path / "s")
    write(tmp_path / "s", episodes[3:])
    assert len(first) == 3  # a store's view changes only when it refreshes
    second.refresh()
    first.refresh()
    for store in (second, first):
        loaded = store.load_fields(store.episodes())
        np.testing.assert_array_equal(loaded.fields["obs"], np.concatenate([e.fields["obs"] for e in episodes]))
    second.close()
    assert first.load(first.episodes()[3]).fields["obs"][0, 0] == episodes[3].fields["obs"][0, 0]
