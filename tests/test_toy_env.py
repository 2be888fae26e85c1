import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.envs.toy import MOVES, ToyVectorEnv
from lit_rlseq.errors import UserError


def place(env, i, agent, objects, target=0):
    env.agent[i] = agent
    env.objects[i] = objects
    env.target[i] = target
    env.steps[i] = 0


def test_reaching_the_named_object_succeeds_and_the_other_fails():
    env = ToyVectorEnv(2, seed=0)
    env.reset(seed=0)
    place(env, 0, (1, 1), [(1, 2), (3, 3)], target=0)  # target to the right
    place(env, 1, (1, 1), [(1, 2), (3, 3)], target=1)  # the other object to the right
    obs, reward, terminated, truncated, info = env.step(np.array([4, 4]))
    assert terminated.tolist() == [True, True] and not truncated.any()
    assert reward.tolist() == [1.0, -1.0]
    assert info["success"].tolist() == [True, False] and info["_success"].all()
    # The terminal observation shows the agent where it ended; the returned one is a fresh episode.
    final = info["final_obs"][0]
    assert env.vocab.decode(final["name"][1, 2, 0]) == ["you"]
    assert final["rel_pos"][1, 2].tolist() == [0.0, 0.0]
    assert env.vocab.decode(obs["name"][0, 1, 2, 0]) != ["you"] or obs["rel_pos"][0, 1, 2].tolist() == [0.0, 0.0]


def test_walls_block_and_are_invalid():
    env = ToyVectorEnv(1, seed=0)
    obs, _ = env.reset(seed=0)
    place(env, 0, (1, 1), [(4, 4), (4, 3)])
    obs = env._observe()
    assert obs["valid"][0].tolist() == [True, False, True, False, True]  # stay, up, down, left, right
    _, reward, terminated, truncated, _ = env.step(np.array([1]))  # up into the wall
    assert env.agent[0].tolist() == [1, 1] and reward[0] == pytest.approx(-0.02)
    assert not terminated[0] and not truncated[0]


def test_step_limit_truncates_with_minus_one():
    env = ToyVectorEnv(1, max_steps=3, seed=0)
    env.reset(seed=0)
    place(env, 0, (1, 1), [(4, 4), (4, 3)])
    rewards = [env.step(np.array([0]))[1][0] for _ in range(2)]
    _, reward, terminated, truncated, _ = env.step(np.array([0]))
    assert rewards == pytest.approx([-0.02, -0.02])
    assert truncated[0] and not terminated[0] and reward[0] == -1.0


def test_observation_matches_space_and_the_wiki_names_the_goal():
    env = make_vector_env("toy", num_envs=3, seed=1)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = env.reset(seed=1)
    for key, space in env.single_observation_space.items():
        assert obs[key].shape == (3,) + space.shape, key
        assert obs[key].dtype == space.dtype, key
    target = env.object_kind[0, env.target[0]]
    from lit_rlseq.envs.toy import COLOURS, SHAPES

    assert env.vocab.decode(obs["wiki"][0]) == ["the", "goal", "is", "the", COLOURS[target[0]], SHAPES[target[1]], "."]
    assert env.vocab.decode(obs["task"][0]) == ["go", "to", "the", "goal"]


def test_same_seed_same_episodes():
    a, b = ToyVectorEnv(4), ToyVectorEnv(4)
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, len(MOVES), 4)
        oa, ra, *_ = a.step(actions)
        ob, rb, *_ = b.step(actions)
        assert all(np.array_equal(oa[k], ob[k]) for k in oa) and np.array_equal(ra, rb)


def test_bad_variant_and_actions_are_user_errors():
    with pytest.raises(UserError, match="unknown toy variant .toy:hard.; use env .toy. or one of"):
        make_vector_env("toy:hard", num_envs=1)
    with pytest.raises(UserError, match="unknown environment"):
        make_vector_env("nosuchenv", num_envs=1)
    env = ToyVectorEnv(1)
    env.reset(seed=0)
    with pytest.raises(UserError, match="actions must be in"):
        env.step(np.array([7]))
