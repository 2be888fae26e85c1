"""The MuJoCo env family follows our conventions: dict observations, same-step autoreset with final_obs, and a
time limit (truncated) kept apart from a fall (terminated)."""

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import UserError


def run_random(env, steps, seed=0):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = []
    for _ in range(steps):
        before = obs
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace.append((before, obs, reward, terminated, truncated, info))
    return trace


@pytest.mark.parametrize("env_id", ["mujoco:Hopper-v5", "mujoco:HalfCheetah-v5", "mujoco:Walker2d-v5"])
def test_observations_actions_and_autoreset(env_id):
    env = make_vector_env(env_id, num_envs=2, seed=0)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert set(env.single_observation_space.spaces) == {"obs"}
    dim = env.single_observation_space["obs"].shape[0]
    assert np.issubdtype(env.single_action_space.dtype, np.floating)
    trace = run_random(env, 30)
    for _, obs, reward, terminated, truncated, info in trace:
        assert obs["obs"].dtype == np.float32 and obs["obs"].shape == (2, dim)
        assert reward.shape == (2,)
        for i in np.flatnonzero(terminated | truncated):
            assert info["_final_obs"][i] and info["final_obs"][i]["obs"].shape == (dim,)
    env.close()


def test_time_limit_is_truncation_and_a_fall_is_termination():
    env = make_vector_env("mujoco:Hopper-v5", num_envs=2, seed=0, max_episode_steps=7)
    trace = run_random(env, 21)
    ends = [(t, i, bool(term[i]), bool(trunc[i])) for t, (*_, term, trunc, _info) in enumerate(trace)
            for i in np.flatnonzero(term | trunc)]
    assert [(t, i) for t, i, _, _ in ends] == [(6, 0), (6, 1), (13, 0), (13, 1), (20, 0), (20, 1)]
    assert all(trunc and not term for *_, term, trunc in ends)
    # Same-step autoreset: the step that ends an episode already returns the next episode's first observation.
    before, after, *_, info = trace[6]
    assert not np.allclose(info["final_obs"][0]["obs"], after["obs"][0])
    fallen = make_vector_env("mujoco:Hopper-v5", num_envs=1, seed=0)
    falls = [term[0] for *_, term, _trunc, _info in run_random(fallen, 200)]
    assert any(falls)  # random actions topple the hopper long before its 1000-step limit


def test_unknown_or_missing_id_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown id 'Hoper-v5'.*'Hopper-v5'"):
        make_vector_env("mujoco:Hoper-v5", num_envs=1)
    with pytest.raises(UserError, match=r"no env id.*'Walker2d-v5'"):
        make_vector_env("mujoco", num_envs=1)
