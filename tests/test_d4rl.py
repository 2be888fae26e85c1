import h5py
import numpy as np
import pytest

from lit_rlseq.errors import DataError, MissingArtifactError
from lit_rlseq.rollouts import RolloutStore, import_d4rl, read_d4rl
from lit_rlseq.rollouts import d4rl as d4rl_module

N = 10
# Episode ends: a terminal at row 2, a timeout at row 6; rows 7..9 are a trailing partial episode.
TERMINALS = np.zeros(N, bool)
TERMINALS[2] = True
TIMEOUTS = np.zeros(N, bool)
TIMEOUTS[6] = True


def d4rl_columns(next_observations: bool = True) -> dict[str, np.ndarray]:
    observations = np.arange(N * 3, dtype=np.float32).reshape(N, 3)
    columns = {
        "observations": observations,
        "actions": -np.arange(N * 2, dtype=np.float32).reshape(N, 2),
        "rewards": np.arange(N, dtype=np.float32) / 10,
        "terminals": TERMINALS,
        "timeouts": TIMEOUTS,
        "infos/qpos": np.arange(N * 4, dtype=np.float64).reshape(N, 4),
        "metadata/algorithm": np.array(b"SAC"),  # dataset-level, not per step: not read
    }
    if next_observations:
        columns["next_observations"] = observations + 1000
    return columns


def write_d4rl(path, columns) -> str:
    with h5py.File(path, "w") as f:
        for key, value in columns.items():
            f[key] = value
    return str(path)


def test_episodes_split_at_terminals_and_timeouts(tmp_path):
    columns = d4rl_columns()
    episodes = list(read_d4rl(write_d4rl(tmp_path / "d.hdf5", columns), run_id="run", env="hopper-medium-v2"))
    assert [e.length for e in episodes] == [3, 4, 3]
    assert [e.tags.metadata["complete"] for e in episodes] == [True, True, False]
    assert [e.tags.metadata["first_row"] for e in episodes] == [0, 3, 7]
    assert all(e.tags.env == "hopper-medium-v2" and e.tags.run_id == "run" for e in episodes)
    second = episodes[1]
    assert set(second.fields) == {"obs", "action", "reward", "terminal", "timeout", "infos/qpos"}
    # obs: the episode's observations plus the next observation of its last step (L + 1 rows).
    expected_obs = np.concatenate([columns["observations"][3:7], [columns["observations"][6] + 1000]])
    np.testing.assert_array_equal(second.fields["obs"], expected_obs)
    assert second.kind("obs") == "state"
    np.testing.assert_array_equal(second.fields["action"], columns["actions"][3:7])
    np.testing.assert_array_equal(second.fields["reward"], np.float32([3, 4, 5, 6]) / 10)
    np.testing.assert_array_equal(second.fields["timeout"], [False, False, False, True])
    np.testing.assert_array_equal(second.fields["terminal"], [False] * 4)
    np.testing.assert_array_equal(second.fields["infos/qpos"], columns["infos/qpos"][3:7])


def test_without_next_observations_obs_has_one_row_per_transition(tmp_path):
    episodes = list(read_d4rl(write_d4rl(tmp_path / "d.hdf5", d4rl_columns(next_observations=False))))
    assert [len(e.fields["obs"]) for e in episodes] == [3, 4, 3]
    assert all(e.kind("obs") == "transition" for e in episodes)


def test_file_ending_with_a_done_has_no_partial_episode(tmp_path):
    columns = d4rl_columns()
    columns["timeouts"] = TIMEOUTS.copy()
    columns["timeouts"][-1] = True
    episodes = list(read_d4rl(write_d4rl(tmp_path / "d.hdf5", columns)))
    assert [e.length for e in episodes] == [3, 4, 3]
    assert all(e.tags.metadata["complete"] for e in episodes)


@pytest.mark.parametrize("key", ["observations", "actions", "rewards", "terminals", "timeouts"])
def test_missing_key_is_named(tmp_path, key):
    columns = d4rl_columns()
    del columns[key]
    with pytest.raises(DataError, match=rf"lacks dataset\(s\) \['{key}'\]"):
        list(read_d4rl(write_d4rl(tmp_path / "d.hdf5", columns)))


@pytest.mark.parametrize("key", ["actions", "rewards", "terminals", "next_observations", "infos/qpos"])
def test_mismatched_length_is_named(tmp_path, key):
    columns = d4rl_columns()
    columns[key] = columns[key][:-1]
    with pytest.raises(DataError, match=rf"'{key}' has shape \({N - 1},"):
        list(read_d4rl(write_d4rl(tmp_path / "d.hdf5", columns)))


def test_bad_files(tmp_path):
    with pytest.raises(MissingArtifactError, match="D4RL dataset not found"):
        read_d4rl(tmp_path / "missing.hdf5")  # checked on the call, before any episode is asked for
    (tmp_path / "junk.hdf5").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.hdf5 is not a readable HDF5 file"):
        read_d4rl(tmp_path / "junk.hdf5")
    columns = d4rl_columns()
    columns["terminals"] = np.zeros((N, 2), bool)
    with pytest.raises(DataError, match="'terminals' must be one flag per row"):
        list(read_d4rl(write_d4rl(tmp_path / "d.hdf5", columns)))


def test_import_into_store(tmp_path):
    path = write_d4rl(tmp_path / "d.hdf5", d4rl_columns())
    assert import_d4rl(path, tmp_path / "store", run_id="medium", env="hopper") == 3
    store = RolloutStore(tmp_path / "store")
    assert store.metadata == {"env": "hopper"} and store.count(run_id="medium") == 3
    for ref, expected in zip(store.episodes(), read_d4rl(path, run_id="medium", env="hopper")):
        episode = store.load(ref)
        assert episode.tags == expected.tags
        for name, value in expected.fields.items():
            np.testing.assert_array_equal(episode.fields[name], value)
    # A second file goes into a new shard of the same store, keeping its metadata.
    assert d4rl_module.main([path, str(tmp_path / "store"), "--env", "hopper", "--run-id", "expert"]) == 0
    store.refresh()
    assert store.count(run_id="expert") == 3 and store.count(metadata={"complete": True}) == 4
