"""The NetHack adapter on the real NLE (extra ``nethack``): conventions, shapes, episode ends, bad input."""

import numpy as np
import pytest

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import UserError

nle = pytest.importorskip("nle", reason="the nethack extra (nle) is not installed; bin/setup installs it")
from nle import nethack  # noqa: E402

from lit_rlseq.envs.nethack import OBSERVATION_KEYS, NetHackVectorEnv, screen_text  # noqa: E402


def action_index(env, key):
    return env.envs[0].unwrapped.actions.index(key)


def test_observations_follow_the_conventions():
    env = make_vector_env("nethack", num_envs=2, seed=0)
    obs, _ = env.reset()
    shapes = {
        "tty_chars": ((2, 24, 80), np.uint8),
        "tty_colors": ((2, 24, 80), np.int8),
        "tty_cursor": ((2, 2), np.uint8),
        "blstats": ((2, 27), np.int64),
        "message": ((2, 256), np.uint8),
    }
    assert {k: (v.shape, v.dtype) for k, v in obs.items()} == {k: (s, np.dtype(d)) for k, (s, d) in shapes.items()}
    assert env.observation_space.contains(obs) and env.single_action_space.n == 121
    assert env.metadata["autoreset_mode"].name == "SAME_STEP"
    assert (obs["blstats"][:, nethack.NLE_BL_DEPTH] == 1).all() and (obs["blstats"][:, nethack.NLE_BL_TIME] == 1).all()
    # the hero is drawn where the cursor is, and the screen reads as text
    for i in range(2):
        row, col = obs["tty_cursor"][i]
        assert chr(obs["tty_chars"][i, row, col]) == "@"
    assert "@" in screen_text(obs["tty_chars"][0]) and "Dlvl:1" in env.render()

    before = {k: v.copy() for k, v in obs.items()}
    search = action_index(env, nethack.Command.SEARCH)
    step_obs, reward, terminated, truncated, info = env.step(np.full(2, search))
    assert all(np.array_equal(obs[k], before[k]) for k in obs)  # returned arrays are not reused
    assert reward.dtype == np.float32 and not (terminated | truncated).any() and not info["_final_obs"].any()
    assert (step_obs["blstats"][:, nethack.NLE_BL_TIME] > 1).all()  # searching takes a turn


def test_quitting_terminates_and_the_same_step_starts_a_fresh_game():
    env = NetHackVectorEnv(num_envs=2, seed=1)
    env.reset()
    keys = (nethack.Command.ESC, nethack.Command.QUIT, ord("y"), nethack.Command.SEARCH)
    escape, quit_, yes, search = (action_index(env, k) for k in keys)
    for _ in range(3):
        env.step(np.array([search, search]))
    # escape any pending "--More--" or menu (the character is random), quit, confirm; repeat until it ends
    for action in [escape, quit_, yes] * 5:
        obs, _, terminated, truncated, info = env.step(np.array([action, search]))
        if info["_final_obs"][0]:
            break
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert info["_final_obs"].tolist() == [True, False] and info["final_obs"][1] is None
    assert info["_score"].tolist() == [True, False] and info["_depth"].tolist() == [True, False]
    assert info["depth"][0] == 1 and info["score"][0] == 0 and not info["success"][0]
    final = info["final_obs"][0]
    assert set(final) == set(OBSERVATION_KEYS) and "quit" in screen_text(final["tty_chars"])
    assert obs["blstats"][0, nethack.NLE_BL_TIME] == 1 and obs["blstats"][1, nethack.NLE_BL_TIME] > 1


def test_the_step_limit_truncates():
    env = make_vector_env("nethack:NetHackScore-v0", num_envs=1, seed=2, max_steps=3)
    env.reset()
    results = [env.step(np.array([0])) for _ in range(3)]
    assert [r[3][0] for r in results] == [False, False, True] and not any(r[2][0] for r in results)
    assert results[-1][4]["_final_obs"][0] and env.task == "NetHackScore-v0"


def test_bad_input_is_refused_clearly():
    with pytest.raises(UserError, match="unknown NetHack task 'NetHackNope-v0'.*NetHackChallenge-v0"):
        make_vector_env("nethack:NetHackNope-v0", num_envs=1)
    with pytest.raises(UserError, match="unknown NetHack env options"):
        make_vector_env("nethack", num_envs=1, frame_skip=4)
    with pytest.raises(UserError, match="max_steps"):
        NetHackVectorEnv(num_envs=1, max_steps=0)
    env = NetHackVectorEnv(num_envs=2)
    with pytest.raises(UserError, match="call reset"):
        env.step(np.array([0, 0]))
    env.reset()
    with pytest.raises(UserError, match=r"0\.\.120"):
        env.step(np.array([0, 121]))
    with pytest.raises(UserError, match=r"shape \(2,\)"):
        env.step(np.array([0]))
