"""The dataset stage: D4RL-style Hopper datasets recorded from a (tiny) PPO run's checkpoints."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lit_rlseq.errors import MissingArtifactError
from lit_rlseq.trajectory.datasets import SELECT, checkpoints_by_epoch

ROOT = Path(__file__).resolve().parents[1]


def test_checkpoints_are_found_in_epoch_order(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for name in ("epoch=10-step=5.ckpt", "epoch=2-step=1.ckpt", "last.ckpt"):
        (folder / name).write_text("")
    assert [e for e, _ in checkpoints_by_epoch(tmp_path / "run")] == [2, 10]
    with pytest.raises(MissingArtifactError, match="configs/ppo_hopper.yaml"):
        checkpoints_by_epoch(tmp_path / "nothing")
    assert SELECT["medium-expert"] == {"partition": ["medium", "expert"]}


@pytest.mark.slow
def test_datasets_from_a_tiny_ppo_run(tmp_path):
    from lit_rlseq.rollouts import RolloutStore
    from lit_rlseq.trajectory.datasets import make_datasets
    from lit_rlseq.trajectory.pipeline import SMOKE

    # As the pipeline runs it: a separate `lightning fit` process.
    subprocess.run([sys.executable, "-m", "lit_rlseq", "fit", "--config", str(ROOT / "configs" / "ppo_hopper.yaml"),
                    f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.logger.init_args.name=ppo",
                    "--trainer.enable_progress_bar=false", *SMOKE["ppo"]], check=True)
    summary = make_datasets(tmp_path / "ppo", tmp_path / "datasets", "mujoco:Hopper-v5", episodes=3,
                            replay_episodes=2, num_envs=2)
    assert json.loads((tmp_path / "datasets_summary.json").read_text()) == summary
    datasets = summary["datasets"]
    assert set(datasets) == {"random", "medium", "medium-replay", "expert", "medium-expert"}
    assert datasets["random"]["episodes"] == datasets["expert"]["episodes"] == 3
    assert datasets["medium-expert"]["episodes"] == datasets["medium"]["episodes"] + 3
    medium_epoch = summary["behaviour_policy"]["medium_epoch"]
    assert datasets["medium-replay"]["episodes"] == 2 * (medium_epoch + 1)
    with RolloutStore(tmp_path / "datasets") as store:
        episode = store.load(store.episodes(partition="medium")[0])
        assert episode.fields["obs"].shape == (episode.length + 1, 11)
        assert episode.fields["action"].shape == (episode.length, 3)
        assert episode.fields["terminal"][-1] != episode.fields["timeout"][-1]
        assert np.isclose(episode.tags.metadata["return"], episode.fields["reward"].sum(), rtol=1e-5)
    # topped up, not recorded again
    again = make_datasets(tmp_path / "ppo", tmp_path / "datasets", "mujoco:Hopper-v5", episodes=3,
                          replay_episodes=2, num_envs=2)
    assert again["datasets"] == datasets
