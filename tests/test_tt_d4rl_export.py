"""Export of store episodes to a D4RL HDF5 file, read back by the D4RL reader (round trip)."""

import h5py
import numpy as np
import pytest

from lit_rlseq.errors import DataError
from lit_rlseq.rollouts import RolloutStore, export_d4rl, import_d4rl, read_d4rl
from tests.trajectory_data import write_synthetic_store


def test_export_round_trip(tmp_path):
    store = write_synthetic_store(tmp_path / "store", episodes=5, lengths=[4, 7, 3, 9, 5])
    n = export_d4rl(store, tmp_path / "out.hdf5")
    assert n == 5
    with h5py.File(tmp_path / "out.hdf5") as f:
        assert sorted(f) == ["actions", "next_observations", "observations", "rewards", "terminals", "timeouts"]
        assert f["observations"].shape == (28, 3) and f["actions"].shape == (28, 2)
        assert f["terminals"][()].sum() == 3 and f["timeouts"][()].sum() == 2
    back = list(read_d4rl(tmp_path / "out.hdf5"))
    with RolloutStore(store) as s:
        original = [s.load(ref) for ref in s.episodes()]
    assert len(back) == len(original)
    for a, b in zip(original, back):
        for name in ("obs", "action", "reward", "terminal", "timeout"):
            assert np.array_equal(a.fields[name], b.fields[name]), name
    # and into a store again: the same episodes
    assert import_d4rl(tmp_path / "out.hdf5", tmp_path / "again", run_id="again", env="synthetic") == 5


def test_export_selects_by_tags(tmp_path):
    store = write_synthetic_store(tmp_path / "store", episodes=2, lengths=[4, 6], run_id="a")
    write_synthetic_store(store, episodes=1, lengths=[5], run_id="b")
    assert export_d4rl(store, tmp_path / "b.hdf5", run_id="b") == 1
    with h5py.File(tmp_path / "b.hdf5") as f:
        assert len(f["rewards"]) == 5


def test_export_refuses_stores_without_final_observations(tmp_path):
    store = write_synthetic_store(tmp_path / "store", episodes=2)
    with h5py.File(tmp_path / "no_next.hdf5", "w") as f:
        f["observations"] = np.zeros((4, 3))
        f["actions"] = np.zeros((4, 2))
        f["rewards"] = np.zeros(4)
        f["terminals"] = np.array([0, 1, 0, 1], bool)
        f["timeouts"] = np.zeros(4, bool)
    import_d4rl(tmp_path / "no_next.hdf5", tmp_path / "imported", run_id="x", env="x")
    with pytest.raises(DataError, match="next_observations"):
        export_d4rl(tmp_path / "imported", tmp_path / "out.hdf5")
    with pytest.raises(DataError, match="matches"):
        export_d4rl(store, tmp_path / "out.hdf5", run_id="nothing")
