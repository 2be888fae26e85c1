"""The Procgen adapter with the real `procgen` package: shapes, same-step autoreset, level seeds, errors."""

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import UserError


def run_until_episodes_end(env, episodes: int, max_steps: int = 5000):
    """Steps with random actions; returns [(step, env index, step info, obs before, obs after)] for ended episodes."""
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    ended = []
    for step in range(max_steps):
        before = {k: v.copy() for k, v in obs.items()}
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, 15, env.num_envs))
        assert reward.shape == (env.num_envs,) and not truncated.any()
        for i in np.flatnonzero(terminated):
            ended.append((step, i, info, before, {k: v.copy() for k, v in obs.items()}))
        if len(ended) >= episodes:
            return ended
    raise AssertionError("too few episodes ended")


def test_shapes_and_spaces():
    env = make_vector_env("procgen:coinrun", num_envs=3, seed=0, distribution_mode="easy")
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_action_space.n == 15
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (3, 3, 64, 64) and obs["rgb"].dtype == np.uint8
    assert obs["level_seed"].shape == (3,) and obs["level_seed"].dtype == np.int64
    assert env.single_observation_space.contains({"rgb": obs["rgb"][0], "level_seed": np.asarray(obs["level_seed"][0])})
    assert obs["rgb"].std() > 0  # a real rendered frame
    env.close()


def test_autoreset_reports_final_obs_success_and_new_level_seed():
    # Restricted to levels 10..12 so the seeds are checkable; short easy levels end quickly.
    env = make_vector_env("procgen:coinrun", num_envs=4, seed=0, distribution_mode="easy", num_levels=3,
                          start_level=10)
    for step, i, info, before, after in run_until_episodes_end(env, episodes=3):
        assert info["_final_obs"][i] and info["_success"][i]
        final = info["final_obs"][i]
        # procgen renders no frame after the last action: the final observation is the last frame observed.
        np.testing.assert_array_equal(final["rgb"], before["rgb"][i])
        assert final["level_seed"] == before["level_seed"][i]
        assert 10 <= after["level_seed"][i] < 13  # the next episode's level, same step
    env.close()


def test_level_range_and_reset_seed_is_deterministic():
    a = make_vector_env("procgen:caveflyer", num_envs=8, seed=5, num_levels=2, start_level=7)
    b = make_vector_env("procgen:caveflyer", num_envs=8, seed=5, num_levels=2, start_level=7)
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    assert set(oa["level_seed"].tolist()) <= {7, 8}
    np.testing.assert_array_equal(oa["rgb"], ob["rgb"])
    oc, _ = a.reset(seed=12)
    assert not np.array_equal(oc["level_seed"], oa["level_seed"]) or not np.array_equal(oc["rgb"], oa["rgb"])
    a.close(), b.close()


def test_unknown_game_lists_valid_ones():
    with pytest.raises(UserError, match="coinrun.*") as e:
        make_vector_env("procgen:coinrunn", num_envs=1)
    assert "caveflyer" in str(e.value) and "coinrunn" in str(e.value)
    with pytest.raises(UserError, match="valid games"):
        make_vector_env("procgen", num_envs=1)
    with pytest.raises(UserError, match="distribution_mode"):
        make_vector_env("procgen:coinrun", num_envs=1, distribution_mode="medium")
    with pytest.raises(UserError, match="bad env option"):
        make_vector_env("procgen:coinrun", num_envs=1, no_such_option=1)
