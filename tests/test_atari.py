"""The Atari adapter on the real emulator: the reference's preprocessing step by step."""

import numpy as np
import pytest

from lit_rlseq.envs.atari import AtariGame, game_results, make_vector_env, rom_id
from lit_rlseq.envs.registry import make_vector_env as make_any
from lit_rlseq.errors import UserError


def test_game_names():
    assert rom_id("Pong") == "pong"
    assert rom_id("MsPacman") == "ms_pacman"
    assert rom_id("ms_pacman") == "ms_pacman"
    assert rom_id("BreakoutNoFrameskip-v4") == "breakout"


def test_unknown_game_says_how_to_list_the_names():
    with pytest.raises(UserError, match=r"(?s)unknown Atari game .Pongg.*did you mean pong.*get_all_rom_ids"):
        make_any("atari:Pongg", num_envs=1)
    with pytest.raises(UserError, match="name the Atari game"):
        make_any("atari", num_envs=1)


def test_observations_follow_the_conventions():
    env = make_any("atari:Pong", num_envs=2, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (2, 4, 84, 84) and obs["pixels"].dtype == np.uint8
    assert obs["last_reward"].shape == (2,) and obs["last_reward"].dtype == np.float32
    assert env.single_action_space.n == 6
    assert env.metadata["autoreset_mode"].name == "SAME_STEP"
    # A reset fills the stack with copies of one frame; a step shifts it by one.
    assert all((obs["pixels"][i] == obs["pixels"][i, :1]).all() for i in range(2))
    obs2, *_ = env.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(obs2["pixels"][:, :3], obs["pixels"][:, 1:])


def test_max_and_skip_pools_the_last_two_of_four_frames():
    env = AtariGame("Pong")
    env.reset(seed=3)
    pooled_differs_from_last = False
    for step in range(40):
        action = step % env.action_space.n
        saved = env.ale.cloneState()
        frames = []
        for _ in range(4):
            env.ale.act(env.actions[action])
            frames.append(env.ale.getScreenRGB().copy())
        env.ale.restoreState(saved)
        expected = env._warp(np.maximum(frames[2], frames[3]))
        obs, *_ = env.step(action)
        np.testing.assert_array_equal(obs["pixels"][-1], expected)
        pooled_differs_from_last |= not np.array_equal(expected, env._warp(frames[3]))
    assert pooled_differs_from_last  # the test would notice a missing max


class Recording(AtariGame):
    """Records the actions of the agent-level steps (4 frames each) taken inside reset()."""

    def __init__(self, *args, **kwargs):
        self.log = []
        super().__init__(*args, **kwargs)

    def _life_step(self, action):
        self.log.append(action)
        return super()._life_step(action)


def test_fire_reset_presses_fire_then_action_two_and_only_where_fire_is_action_one():
    env = Recording("Breakout")
    assert env.action_meanings()[1] == "FIRE" and env.fire_reset
    env.reset(seed=0)
    assert env.log == [1, 2]
    pacman = Recording("MsPacman")
    assert pacman.action_meanings()[1] != "FIRE" and not pacman.fire_reset
    pacman.reset(seed=0)
    assert pacman.log == []


def test_noop_reset_waits_between_1_and_30_frames():
    waits = set()
    for seed in range(5):
        env = AtariGame("MsPacman")  # no fire reset: the frames after reset are the no-ops alone
        env.reset(seed=seed)
        waits.add(env.ale.getEpisodeFrameNumber())
    assert min(waits) >= 1 and max(waits) <= 30 and len(waits) > 1


def test_episodic_life_ends_episodes_at_life_loss_and_games_at_game_over():
    env = make_vector_env("Breakout", num_envs=1, seed=1)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    episode_return, episode_returns, games = 0.0, [], []
    lives_at_end = []
    for _ in range(3000):
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, 4, 1))
        episode_return += reward[0]
        if terminated[0]:
            episode_returns.append(episode_return)
            episode_return = 0.0
            lives_at_end.append(int(info["final_info"]["lives"][0]))  # the reset already restored 5 after a game
            assert obs["last_reward"][0] == 0.0  # the first observation of the next episode
        result = game_results(info)
        if len(result[0]):
            games.append((float(result[0][0]), int(result[1][0]), len(episode_returns)))
            if len(games) == 2:
                break
    assert len(games) == 2, "two full games of Breakout with random actions"
    # Breakout has 5 lives: one game is 5 episodes, and its score is the sum of theirs.
    (score0, length0, n0), (score1, _, n1) = games
    assert n0 == 5 and n1 == 10
    assert score0 == pytest.approx(sum(episode_returns[:5]))
    assert score1 == pytest.approx(sum(episode_returns[5:10]))
    assert lives_at_end[:5] == [4, 3, 2, 1, 0]
    assert length0 > 5


def test_seeded_envs_repeat_and_differ_across_seeds():
    def run(seed):
        env = make_vector_env("Pong", num_envs=1, seed=seed)
        obs, _ = env.reset(seed=seed)
        frames = [obs["pixels"]]
        for a in [2, 3, 2, 0, 1] * 6:
            obs, *_ = env.step(np.array([a]))
            frames.append(obs["pixels"])
        return np.stack(frames)

    np.testing.assert_array_equal(run(5), run(5))
