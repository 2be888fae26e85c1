"""Evaluation of offline agents: scores, the planning agent's context, bad checkpoints/envs, MuJoCo rounds."""

import json

import numpy as np
import pytest
import torch

from lit_rlseq.errors import MissingArtifactError, UserError
from lit_rlseq.trajectory.agents import PlanningAgent, TrajectoryPlannerEvaluator
from lit_rlseq.trajectory.bc import BCEvaluator
from lit_rlseq.trajectory.discretize import decode, encode
from lit_rlseq.trajectory.evaluate import mean_and_standard_error, normalized_score, task_name
from lit_rlseq.trajectory.module import TrajectoryTransformer
from lit_rlseq.trajectory.planner import PlannerSettings


def test_d4rl_normalised_scores():
    assert task_name("mujoco:Hopper-v5") == "hopper" and task_name("mujoco:HalfCheetah-v5") == "halfcheetah"
    assert normalized_score(-20.272305, "mujoco:Hopper-v5") == pytest.approx(0.0)
    assert normalized_score(3234.3, "mujoco:Hopper-v5") == pytest.approx(100.0)
    assert normalized_score(np.array([1.629008, 4592.3]), "mujoco:Walker2d-v5") == pytest.approx([0.0, 100.0])
    assert np.isnan(normalized_score(10.0, "toy"))
    mean, se = mean_and_standard_error(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


def tiny_module(window=3) -> TrajectoryTransformer:
    torch.manual_seed(0)
    module = TrajectoryTransformer(2, 1, {"n_bins": 5, "window": window, "dataset": "d", "env": "x"}, n_layer=1,
                                   n_head=1, n_embd=8, dropout=0.0)
    data = np.random.default_rng(0).normal(size=(200, 5))
    from lit_rlseq.trajectory.discretize import quantile_thresholds

    module.thresholds.copy_(torch.from_numpy(quantile_thresholds(data, 5)))
    return module


def test_planning_agent_keeps_the_last_transitions_and_decodes_its_action():
    module = tiny_module()
    agent = PlanningAgent(module, PlannerSettings(horizon=2, beam_width=3, max_context_transitions=2), seed=0)
    agent.reset(3)
    obs = np.random.default_rng(1).normal(size=(3, 2))
    active = np.array([True, False, True])
    action = agent.act(obs[active], active)
    assert action.shape == (2, 1)
    thresholds = module.thresholds.numpy()[:, 2:3]
    assert np.allclose(decode(encode(action, thresholds), thresholds), action, atol=1e-6)  # a bin midpoint
    for step in range(3):
        agent.observe(obs, np.ones((3, 1)), np.full(3, float(step)), active)
    assert [len(c) for c in agent.context] == [2, 0, 2]  # at most max_context_transitions, only active envs
    expected = encode(np.array([*obs[0], 1.0, 2.0, 0.0]), module.thresholds.numpy())
    assert np.array_equal(agent.context[0][-1], expected)  # [obs | action | reward | value placeholder 0]
    prefixes = agent.prefixes(obs[active], active)
    assert prefixes.shape == (2, 2 * 5 + 2)
    with pytest.raises(RuntimeError, match="share a context length"):
        agent.prefixes(obs, np.ones(3, bool))
    with pytest.raises(UserError, match="longer than the model's block"):
        PlanningAgent(module, PlannerSettings(max_context_transitions=4))


def test_checkpoint_of_another_dataset_is_refused(tt_checkpoint):
    with pytest.raises(UserError, match=r"trained on dataset 'hopper-medium-replay', not 'hopper-medium'"):
        TrajectoryPlannerEvaluator(str(tt_checkpoint), dataset="hopper-medium")


def test_missing_checkpoint_and_unknown_env(tt_checkpoint, bc_checkpoint, tmp_path):
    with pytest.raises(MissingArtifactError, match="bin/tt-mujoco"):
        TrajectoryPlannerEvaluator(str(tmp_path / "none.ckpt"))
    with pytest.raises(UserError, match="unknown environment 'nosuch:Env-v0'"):
        TrajectoryPlannerEvaluator(str(tt_checkpoint), env="nosuch:Env-v0")
    with pytest.raises(UserError, match="unknown environment"):
        BCEvaluator(str(bc_checkpoint), env="nosuch:Env-v0")


def test_planner_context_longer_than_the_checkpoints_block_is_refused(tt_checkpoint):
    with pytest.raises(UserError, match="longer than the model's block of 10 transitions"):
        TrajectoryPlannerEvaluator(str(tt_checkpoint), max_context_transitions=11)


@pytest.mark.slow
def test_evaluation_rounds_in_hopper_record_every_episode(tt_checkpoint, bc_checkpoint, tmp_path):
    import lightning as L

    from lit_rlseq.rollouts import RolloutStore
    from lit_rlseq.trajectory.evaluate import EvaluationEpisodes

    for evaluator in (BCEvaluator(str(bc_checkpoint), results=str(tmp_path / "bc.json"), progress=False),
                      TrajectoryPlannerEvaluator(str(tt_checkpoint), results=str(tmp_path / "tt.json"), horizon=2,
                                                 beam_width=2, progress=False)):
        data = EvaluationEpisodes(str(tmp_path / "eval"), episodes=3, num_envs=2, max_steps=4, run_id="e")
        L.Trainer(logger=False, enable_progress_bar=False).validate(evaluator, datamodule=data, verbose=False)
        summary = json.loads((tmp_path / f"{evaluator.agent_name}.json").read_text())
        assert summary["episodes"] == 3 and len(summary["returns"]) == 3
        assert summary["score"] == pytest.approx(np.mean(normalized_score(np.array(summary["returns"]),
                                                                          "mujoco:Hopper-v5")))
    with RolloutStore(tmp_path / "eval") as store:
        refs = store.episodes(run_id="e")
        assert len(refs) == 6 and {r.tags.agent for r in refs} == {"bc", "tt"}
        assert all(r.tags.partition == "hopper-medium-replay" for r in refs)
        episode = store.load(refs[0])
        assert episode.fields["obs"].shape == (episode.length + 1, 11) and episode.length <= 4
        assert episode.fields["terminal"][-1] or episode.fields["timeout"][-1]


def test_dataset_with_another_observation_size_than_its_env(tmp_path):
    from lit_rlseq.trajectory.data import TrajectoryDataModule
    from tests.trajectory_data import write_synthetic_store

    store = write_synthetic_store(tmp_path / "s", episodes=3, obs_dim=17, act_dim=3)
    data = TrajectoryDataModule(str(store), "halfcheetah-like", env="mujoco:Hopper-v5", val_fraction=0)
    with pytest.raises(UserError, match="observations of size 17, but mujoco:Hopper-v5 has size 11"):
        data.setup("fit")
