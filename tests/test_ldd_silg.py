"""LDD on Touchdown and ALFWorld: Touchdown's text-grid view on the synthetic SILG-layout fixture, the dynamics
stage reading its demonstrations, and the clear errors when the user's data is not there."""

from pathlib import Path

import numpy as np
import pytest

from lit_rlseq.cli import run_cli
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import UserError
from lit_rlseq.ldd import DynamicsDataModule

ROOT = Path(__file__).resolve().parents[1]


def test_touchdown_text_grid_view_spells_classes_action_columns_and_text(touchdown_root):
    silg = make_vector_env("touchdown:train", num_envs=1, seed=0, root=str(touchdown_root))
    env = make_vector_env("touchdown:train", num_envs=1, seed=0, root=str(touchdown_root), layout="text_grid")
    raw, _ = silg.reset(seed=3)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs) and obs["name"].shape == (1, 2, 8, 1, 2)
    words = env.vocab.words
    # every cell: its class; the offered columns also the action that moves along them
    for col in range(8):
        cell = [words[i] for i in obs["name"][0, 0, col, 0, : obs["name_len"][0, 0, col, 0]]]
        assert cell[0] == f"<class_{raw['features'][0, 0, col]}>"
        offered = [k for k in range(5) if raw["valid"][0, k] and raw["x"][0, k] == col]
        assert cell[1:] == [f"<action_{k}>" for k in offered]
    assert [words[i] for i in obs["wiki"][0, : obs["wiki_len"][0]]] == ["go", "east"]
    assert [words[i] for i in obs["task"][0]] == ["<touchdown>"] and [words[i] for i in obs["inv"][0]] == ["<none>"]
    assert np.array_equal(obs["valid"], raw["valid"]) and np.array_equal(obs["rel_pos"], raw["rel_pos"])
    # the final observation of an episode is converted too (east from A, then east from B: the goal C)
    for action in (1, 2):
        obs, reward, terminated, truncated, info = env.step(np.array([action]))
    assert terminated[0] and env.single_observation_space.contains(info["final_obs"][0])
    with pytest.raises(UserError, match="layout must be one of"):
        make_vector_env("touchdown:train", num_envs=1, root=str(touchdown_root), layout="pixels")
    env.close()
    silg.close()


def test_the_dynamics_stage_reads_touchdown_demonstrations(touchdown_demos, touchdown_root):
    dm = DynamicsDataModule(str(touchdown_demos), env="touchdown:train",
                            env_kwargs={"root": str(touchdown_root), "layout": "text_grid"}, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["next_name"].shape[1:] == (2, 8, 1, 2) and dm.num_actions == 5
    assert dm.vocab == make_vector_env("touchdown:train", num_envs=1, root=str(touchdown_root),
                                       layout="text_grid").vocab.words


@pytest.mark.parametrize("config", ["ldd_touchdown_baseline", "ldd_alfworld_baseline"])
def test_missing_silg_data_names_what_is_missing_and_where_to_get_it(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the configs' placeholder root, data/silg, does not exist here
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", str(ROOT / "configs" / f"{config}.yaml"), "--trainer.fast_dev_run=true"])
    error = capsys.readouterr().err
    assert "data/silg" in error and "tokenizer.json" in error and "download" in error
