"""RTFM rules on exact scenarios (objects placed by hand), autoreset, spaces and determinism."""

import numpy as np
import pytest

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.envs.rtfm import OUTCOMES, RTFMEnv, RTFMVectorEnv
from lit_rlseq.envs.rtfm.core import AGENT, DISTRACTOR, DISTRACTOR_ITEM, TARGET
from lit_rlseq.errors import UserError

STAY, UP, DOWN, LEFT, RIGHT = range(5)
S1 = "groups_simple_stationary"
S2 = "groups_simple"


def reset_env(variant=S1, num_envs=1, seed=0, max_steps=80):
    env = RTFMVectorEnv(variant, num_envs=num_envs, max_steps=max_steps, seed=seed)
    env.reset()
    return env


def one(obs, index=0):
    """One env's observation out of a batch."""
    return {key: value[index] for key, value in obs.items()}


def words(env, ids):
    return " ".join(env.vocab.decode(ids))


def cell(env, single_obs, row, col):
    return words(env, single_obs["name"][row, col, 0])


def grid(env, single_obs):
    return [cell(env, single_obs, row, col) for row in range(6) for col in range(6)]


def test_right_item_kills_the_target_and_wins():
    env = reset_env()
    names = env.sim.describe(0)
    env.sim.place(
        0, agent=(1, 1), target=(1, 2), distractor=(4, 4), good_item=None, distractor_item=(4, 1), held="good_item"
    )
    _, reward, terminated, truncated, info = env.step(np.array([RIGHT]))
    assert reward[0] == pytest.approx(1.0) and terminated[0] and not truncated[0]
    assert info["success"][0] and info["_success"][0] and OUTCOMES[info["outcome"][0]] == "win"
    final = info["final_obs"][0]
    assert cell(env, final, 1, 2) == "you"
    assert words(env, final["inv"]) == names["good_item"]
    assert names["target"] not in grid(env, final)


@pytest.mark.parametrize("held", ["distractor_item", None])
def test_wrong_item_or_bare_hands_die_against_the_target(held):
    env = reset_env()
    target = env.sim.describe(0)["target"]
    env.sim.place(
        0,
        agent=(1, 1),
        target=(1, 2),
        distractor=(4, 4),
        good_item=(3, 3),
        distractor_item=None if held else (4, 1),
        held=held,
    )
    _, reward, terminated, _, info = env.step(np.array([RIGHT]))
    assert reward[0] == pytest.approx(-1.0) and terminated[0]
    assert not info["success"][0] and OUTCOMES[info["outcome"][0]] == "agent_died"
    final = info["final_obs"][0]
    assert cell(env, final, 1, 2) == target  # the monster stands, the agent is gone
    assert "you" not in grid(env, final)


def test_killing_the_distractor_with_its_item_loses():
    env = reset_env()
    env.sim.place(
        0,
        agent=(2, 2),
        target=(4, 4),
        distractor=(3, 2),
        good_item=(1, 4),
        distractor_item=None,
        held="distractor_item",
    )
    _, reward, terminated, _, info = env.step(np.array([DOWN]))
    assert reward[0] == pytest.approx(-1.0) and terminated[0]
    assert OUTCOMES[info["outcome"][0]] == "distractor_died" and not info["success"][0]
    assert cell(env, info["final_obs"][0], 3, 2) == "you"


def test_good_item_does_not_kill_the_distractor():
    env = reset_env()
    env.sim.place(
        0, agent=(2, 2), target=(4, 4), distractor=(3, 2), good_item=None, distractor_item=(1, 4), held="good_item"
    )
    _, reward, _, _, info = env.step(np.array([DOWN]))
    assert reward[0] == pytest.approx(-1.0) and OUTCOMES[info["outcome"][0]] == "agent_died"


def test_walls_block_moves_and_the_valid_mask():
    env = reset_env()
    env.sim.place(0, agent=(1, 1), target=(4, 4), distractor=(4, 3), good_item=(3, 3), distractor_item=(4, 1))
    obs = env.sim.observe()
    assert obs["valid"][0].tolist() == [True, False, True, False, True]  # stay, up, down, left, right
    for action in (UP, LEFT):
        obs, reward, terminated, truncated, _ = env.step(np.array([action]))
        assert reward[0] == pytest.approx(-0.02) and not terminated[0] and not truncated[0]
        assert env.sim.pos[0, AGENT].tolist() == [1, 1] and cell(env, one(obs), 1, 1) == "you"
    env.sim.place(0, agent=(4, 4), target=(1, 1), distractor=(1, 2), good_item=(2, 2), distractor_item=(3, 1))
    assert env.sim.observe()["valid"][0].tolist() == [True, True, False, True, False]
    assert (obs["name"][0, 0, :, 0, 0] == env.vocab.encode(["wall"])[0]).all()


def test_picking_up_replaces_and_destroys_the_held_item():
    env = reset_env()
    names = env.sim.describe(0)
    env.sim.place(0, agent=(1, 1), target=(4, 4), distractor=(4, 1), good_item=(1, 2), distractor_item=(1, 3))
    assert words(env, env.sim.observe()["inv"][0]) == "nothing"
    obs, *_ = env.step(np.array([RIGHT]))
    assert words(env, obs["inv"][0]) == names["good_item"] and obs["inv_len"][0] == 2
    obs, *_ = env.step(np.array([RIGHT]))
    assert words(env, obs["inv"][0]) == names["distractor_item"]
    assert env.sim.held[0] == DISTRACTOR_ITEM
    assert cell(env, one(obs), 1, 2) == "empty"  # not dropped where it was picked up
    assert names["good_item"] not in grid(env, one(obs))  # nor anywhere else


def test_stationary_monsters_never_move():
    env = reset_env(S1, num_envs=64, seed=1)
    rng = np.random.default_rng(0)
    obs = env.sim.observe()
    for _ in range(100):
        before = env.sim.pos[:, [TARGET, DISTRACTOR]].copy()
        action = np.where(obs["valid"], rng.random((64, 5)), -1).argmax(1)
        obs, _, terminated, truncated, _ = env.step(action)
        going_on = ~(terminated | truncated)
        assert (env.sim.pos[going_on][:, [TARGET, DISTRACTOR]] == before[going_on]).all()


def place_everywhere(env, **cells):
    for index in range(env.num_envs):
        env.sim.place(index, **cells)


def test_monsters_out_of_sight_wander_over_cells_free_of_items():
    env = reset_env(S2, num_envs=2000, seed=2)
    # the target at (4,4) is 6 from the agent; up (3,4) holds an item: it stays or goes left, 1/2 each
    place_everywhere(env, agent=(1, 1), target=(4, 4), distractor=None, good_item=(3, 4), distractor_item=(1, 4))
    env.sim.step(np.zeros(2000, dtype=np.int64), env.np_random)
    assert_frequencies(env.sim.pos[:, TARGET], {(4, 4): 1 / 2, (4, 3): 1 / 2})


def test_sight_ends_at_manhattan_distance_3():
    env = reset_env(S2, num_envs=2000, seed=7)
    # 4 away from the agent: out of sight, stay / up / left / down with 1/4 each
    place_everywhere(env, agent=(1, 1), target=None, distractor=(2, 4), good_item=(4, 1), distractor_item=(4, 2))
    env.sim.step(np.zeros(2000, dtype=np.int64), env.np_random)
    assert_frequencies(env.sim.pos[:, DISTRACTOR], {(2, 4): 1 / 4, (1, 4): 1 / 4, (2, 3): 1 / 4, (3, 4): 1 / 4})
    # 3 away: in sight, only left comes closer; P(left) = 0.6 + 0.4 / 3 (stay, left, down)
    place_everywhere(env, agent=(1, 1), target=None, distractor=(1, 4), good_item=(4, 1), distractor_item=(4, 2))
    env.sim.step(np.zeros(2000, dtype=np.int64), env.np_random)
    assert_frequencies(env.sim.pos[:, DISTRACTOR], {(1, 4): 0.4 / 3, (1, 3): 0.6 + 0.4 / 3, (2, 4): 0.4 / 3})


def test_monsters_do_not_walk_into_each_other():
    env = reset_env(S2, num_envs=2000, seed=3)
    # out of sight; the target (4,3) moves first: stay, up or left (right is the distractor), 1/3 each;
    # then the distractor (4,4): stay or up, and left only if the target has left (4,3)
    place_everywhere(env, agent=(1, 1), target=(4, 3), distractor=(4, 4), good_item=(1, 4), distractor_item=(2, 1))
    env.sim.step(np.zeros(2000, dtype=np.int64), env.np_random)
    assert_frequencies(env.sim.pos[:, TARGET], {(4, 3): 1 / 3, (3, 3): 1 / 3, (4, 2): 1 / 3})
    assert_frequencies(env.sim.pos[:, DISTRACTOR], {(4, 4): 7 / 18, (3, 4): 7 / 18, (4, 3): 2 / 9})
    assert (env.sim.pos[:, TARGET] != env.sim.pos[:, DISTRACTOR]).any(1).all()


def assert_frequencies(cells, expected):
    found, counts = np.unique(cells, axis=0, return_counts=True)
    frequencies = {tuple(c): n / len(cells) for c, n in zip(found.tolist(), counts, strict=True)}
    assert frequencies.keys() == expected.keys()
    assert all(abs(frequencies[c] - p) < 0.04 for c, p in expected.items()), frequencies


def test_monsters_in_sight_chase_with_probability_0_6():
    env = reset_env(S2, num_envs=1000, seed=3)
    # the distractor at (1,3) is 2 from the agent: only left (1,2) brings it closer; allowed: stay, left,
    # right, down -> P(left) = 0.6 + 0.4 / 4
    place_everywhere(env, agent=(1, 1), target=(4, 4), distractor=(1, 3), good_item=(3, 1), distractor_item=(4, 1))
    env.sim.step(np.zeros(1000, dtype=np.int64), env.np_random)
    assert abs((env.sim.pos[:, DISTRACTOR] == [1, 2]).all(1).mean() - 0.7) < 0.05


def test_the_agent_moves_before_the_monsters():
    env = reset_env(S2, num_envs=500, seed=8)
    # the distractor is next to the agent; stepping away first leaves it 2 cells behind: it cannot catch up
    place_everywhere(env, agent=(2, 2), target=(4, 4), distractor=(2, 1), good_item=(1, 4), distractor_item=(4, 1))
    _, terminated, _, _ = env.sim.step(np.full(500, RIGHT), env.np_random)
    assert not terminated.any() and (env.sim.pos[:, AGENT] == [2, 3]).all()
    assert (env.sim.pos[:, DISTRACTOR] == [2, 2]).all(1).mean() > 0.6  # it followed


@pytest.mark.parametrize("held, outcome", [("good_item", "win"), (None, "agent_died")])
def test_a_monster_stepping_onto_the_agent_starts_the_fight(held, outcome):
    env = reset_env(S2, num_envs=500, seed=4)
    place_everywhere(
        env,
        agent=(1, 1),
        target=(1, 2),
        distractor=(4, 4),
        good_item=None if held else (3, 3),
        distractor_item=(4, 1),
        held=held,
    )
    reward, terminated, _, codes = env.sim.step(np.zeros(500, dtype=np.int64), env.np_random)
    stepped_in = (env.sim.pos[:, TARGET] == [1, 1]).all(1)
    assert 0.6 < stepped_in.mean() < 0.8  # chase 0.6 + random 0.4 x 1/4
    assert (terminated == stepped_in).all()
    assert (codes[stepped_in] == OUTCOMES.index(outcome)).all()
    assert (reward[stepped_in] == (1.0 if outcome == "win" else -1.0)).all()
    assert (reward[~stepped_in] == np.float32(-0.02)).all()
    assert (env.sim.present[stepped_in, AGENT] == (outcome == "win")).all()


def test_step_limit_truncates_with_minus_one():
    env = reset_env(max_steps=80)
    env.sim.place(0, agent=(1, 1), target=(4, 4), distractor=(4, 3), good_item=(3, 3), distractor_item=(4, 1), steps=78)
    _, reward, terminated, truncated, _ = env.step(np.array([STAY]))
    assert not truncated[0] and reward[0] == pytest.approx(-0.02)
    _, reward, terminated, truncated, info = env.step(np.array([STAY]))
    assert truncated[0] and not terminated[0] and reward[0] == pytest.approx(-1.0)
    assert OUTCOMES[info["outcome"][0]] == "timeout" and not info["success"][0]

    unlimited = reset_env(max_steps=None)
    unlimited.sim.place(
        0, agent=(1, 1), target=(4, 4), distractor=(4, 3), good_item=(3, 3), distractor_item=(4, 1), steps=10_000
    )
    _, reward, terminated, truncated, _ = unlimited.step(np.array([STAY]))
    assert not truncated[0] and not terminated[0] and reward[0] == pytest.approx(-0.02)


def test_autoreset_returns_the_next_episode_and_keeps_the_terminal_observation():
    env = reset_env(num_envs=2, seed=5)
    env.sim.place(
        0, agent=(1, 1), target=(1, 2), distractor=(4, 4), good_item=None, distractor_item=(4, 1), held="good_item"
    )
    env.sim.place(1, agent=(1, 1), target=(4, 4), distractor=(4, 3), good_item=(3, 3), distractor_item=(4, 1))
    obs, _, terminated, _, info = env.step(np.array([RIGHT, STAY]))
    assert terminated.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False] and info["final_obs"][1] is None
    final = info["final_obs"][0]
    assert cell(env, final, 1, 2) == "you"
    assert env.single_observation_space.contains(final)
    # the returned observation is the first of a fresh episode: five objects, empty hands, step 0
    occupied = [w for w in grid(env, one(obs)) if w not in ("wall", "empty")]
    assert len(occupied) == 5 and words(env, obs["inv"][0]) == "nothing" and env.sim.steps[0] == 0
    assert env.sim.present[0].all()


def test_observations_match_the_spaces():
    env = reset_env("groups_nl", num_envs=8, seed=6)
    obs = env.sim.observe()
    shapes = {
        "name": ((8, 6, 6, 1, 8), np.int64),
        "name_len": ((8, 6, 6, 1), np.int64),
        "wiki": ((8, 80), np.int64),
        "wiki_len": ((8,), np.int64),
        "task": ((8, 40), np.int64),
        "task_len": ((8,), np.int64),
        "inv": ((8, 8), np.int64),
        "inv_len": ((8,), np.int64),
        "rel_pos": ((8, 6, 6, 2), np.float32),
        "valid": ((8, 5), np.bool_),
    }
    assert {k: (v.shape, v.dtype) for k, v in obs.items()} == {k: (s, np.dtype(d)) for k, (s, d) in shapes.items()}
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (8,) and env.single_action_space.n == 5
    assert env.metadata["autoreset_mode"].name == "SAME_STEP"
    agent = env.sim.pos[0, AGENT]
    assert obs["rel_pos"][0, 0, 5].tolist() == pytest.approx([-agent[0] / 6, (5 - agent[1]) / 6])
    assert (obs["rel_pos"][0, agent[0], agent[1]] == 0).all()

    single = RTFMEnv("groups_nl")
    first, _ = single.reset(seed=0)
    assert single.observation_space.contains(first)
    _, reward, *_ = single.step(STAY)
    assert isinstance(reward, float)


def run_random(env, steps, seed):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.integers(5, size=env.num_envs))
        trace += [obs, reward, terminated, truncated]
    return trace


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        if isinstance(x, dict):
            assert all(np.array_equal(x[k], y[k]) for k in x)
        else:
            assert np.array_equal(x, y)


def test_same_seed_same_episodes():
    for variant in ("groups_nl", "groups_simple_stationary_dev"):
        first = run_random(RTFMVectorEnv(variant, num_envs=4, seed=11), 60, seed=0)
        second = run_random(RTFMVectorEnv(variant, num_envs=4, seed=11), 60, seed=0)
        assert_same(first, second)
        other = run_random(RTFMVectorEnv(variant, num_envs=4, seed=12), 60, seed=0)
        assert not np.array_equal(first[0]["name"], other[0]["name"])
    env = RTFMVectorEnv("groups", num_envs=4)
    assert_same(run_random_seeded(env, 7), run_random_seeded(env, 7))  # reset(seed=...) reseeds


def run_random_seeded(env, seed):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for action in range(5):
        trace.append(env.step(np.full(env.num_envs, action))[0])
    return trace


def test_bad_input_is_refused_clearly():
    with pytest.raises(UserError, match="groups_simple_stationary.*groups_nl_dev"):
        RTFMVectorEnv("groups_complex")
    with pytest.raises(UserError, match="call reset"):
        RTFMVectorEnv(S1).step(np.array([0]))
    env = reset_env(num_envs=2)
    with pytest.raises(UserError, match=r"0\.\.4"):
        env.step(np.array([0, 5]))
    with pytest.raises(UserError, match=r"shape \(2,\)"):
        env.step(np.array([0]))
    with pytest.raises(UserError, match="distinct floor cells"):
        env.sim.place(0, agent=(0, 1), target=None, distractor=None, good_item=None, distractor_item=None)
    with pytest.raises(UserError, match="max_steps"):
        RTFMVectorEnv(S1, max_steps=0)
    with pytest.raises(UserError, match="unknown"):
        make_vector_env("rtfm:groups", num_envs=2, frame_skip=4)
    with pytest.raises(UserError, match="unknown RTFM variant None"):
        make_vector_env("rtfm", num_envs=2)
    single = RTFMEnv(S1)
    with pytest.raises(UserError, match="call reset"):
        single.step(0)


def test_registry_builds_every_variant():
    from lit_rlseq.envs.rtfm import VARIANTS

    for variant in VARIANTS:
        env = make_vector_env(f"rtfm:{variant}", num_envs=2, seed=0, max_steps=None)
        obs, _ = env.reset()
        assert env.variant.name == variant and env.sim.max_steps is None and obs["name"].shape[0] == 2


def test_render_shows_the_grid_and_the_text():
    env = RTFMEnv(S1)
    env.reset(seed=3)
    text = env.render()
    names = env.sim.describe(0)
    for shown in (names["target"], names["good_item"], "you", names["task"], "inventory: nothing", "step 0 of 80"):
        assert shown in text
