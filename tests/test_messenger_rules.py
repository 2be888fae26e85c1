"""Messenger rules on exact scenarios (NPCs placed by hand), splits, manuals, autoreset and bad input."""

import json
import re

import numpy as np
import pytest

from lit_rlseq.envs.messenger import OUTCOMES, MessengerEnv, MessengerVectorEnv
from lit_rlseq.envs.messenger import games
from lit_rlseq.envs.messenger.expert import expert_actions
from lit_rlseq.envs.messenger.text import SYNONYMS, HumanText, tokenize
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import DataError, MissingArtifactError, UserError

UP, DOWN, LEFT, RIGHT, STAY = range(5)


def env_at(stage="s2", num_envs=1, seed=0, **kwargs):
    env = MessengerVectorEnv(stage, num_envs=num_envs, seed=seed, **kwargs)
    env.reset()
    return env


def step(env, action):
    return env.step(np.array([action] * env.num_envs))


def entity_cells(single_obs):
    """{entity id: set of cells} of one env's observation."""
    found = {}
    for y, x, layer in zip(*np.nonzero(single_obs["entities"])):
        found.setdefault(int(single_obs["entities"][y, x, layer]), set()).add((int(y), int(x)))
    return found


# -- games and splits ------------------------------------------------------------------------------------------
def test_split_sizes_and_held_out_entity_roles():
    assert len(games.TRAIN_MULTI) == 40 and len(set(games.TRAIN_MULTI)) == 40
    assert len(games.VAL_GAMES) == 32 and len(games.TEST_GAMES) == 32
    assert not set(games.VAL_GAMES) & set(games.TEST_GAMES)
    train = games.TRAIN_MULTI + games.TRAIN_SINGLE
    seen = {(e, role) for game in train for e, role in zip(game, games.ROLES)}
    for game in games.VAL_GAMES + games.TEST_GAMES:
        assert len(set(game)) == 3
        assert not {(e, role) for e, role in zip(game, games.ROLES)} & seen


def test_movement_variants():
    assert len(games.S2_VARIANTS) == 6 and len(games.S2_TEST_VARIANTS) == 27
    assert len(games.S3_VARIANTS) == 18
    for enemy, message, goal, decoy_message, decoy_goal in games.S3_VARIANTS:
        assert decoy_message != message and decoy_goal != goal
        assert not (decoy_message == enemy and decoy_goal == enemy)


def test_test_split_samples_new_dynamics_and_val_games():
    env = env_at("s2_test", num_envs=300)
    moves = {tuple(m) for m in env.sim.move}
    assert len(moves) > 6 and moves <= set(games.S2_TEST_VARIANTS)
    val = env_at("s2_val", num_envs=200)
    assert {tuple(g) for g in val.sim.game} <= set(games.VAL_GAMES)
    assert {tuple(m) for m in val.sim.move} <= set(games.S2_VARIANTS)


def test_training_games_follow_multi_p():
    env = env_at("s1", num_envs=2000, multi_p=0.5)
    multi = np.mean([tuple(g) in set(games.TRAIN_MULTI) for g in env.sim.game])
    assert 0.45 < multi < 0.55
    assert {tuple(g) for g in env.sim.game} <= set(games.TRAIN_MULTI + games.TRAIN_SINGLE)


# -- stage 1 ---------------------------------------------------------------------------------------------------
def test_s1_layout():
    env = MessengerVectorEnv("s1", num_envs=500, seed=1)
    obs, _ = env.reset()
    assert (obs["avatar"][:, 5, 5, 0] >= games.AVATAR).all()
    assert 0.15 < (obs["avatar"][:, 5, 5, 0] == games.AVATAR_WITH_MESSAGE).mean() < 0.25
    spots = set(games.S1_SPOTS)
    for i in range(20):
        cells = entity_cells({k: v[i] for k, v in obs.items()})
        assert sorted(len(c) for c in cells.values()) == [1, 1, 1]
        assert set().union(*cells.values()) <= spots


@pytest.mark.parametrize("has_message,target,reward", [
    (False, "message", 1.0), (True, "goal", 1.0), (False, "goal", -1.0), (True, "message", -1.0), (False, "enemy", -1.0),
])
def test_s1_contacts(has_message, target, reward):
    env = env_at("s1")
    spots = {"enemy": (5, 7), "message": (3, 5), "goal": (5, 3)}
    env.sim.place(0, avatar=(5, 5), has_message=has_message, **spots)
    action = {(5, 7): RIGHT, (3, 5): UP, (5, 3): LEFT}[spots[target]]
    _, r, terminated, truncated, info = step(env, action)
    assert r[0] == 0.0 and not terminated[0]  # one cell on: not there yet
    _, r, terminated, truncated, info = step(env, action)
    assert r[0] == reward and terminated[0] and not truncated[0]
    assert info["success"][0] == (reward > 0)
    expected = "win" if reward > 0 else ("enemy" if target == "enemy" else "wrong_contact")
    assert OUTCOMES[info["outcome"][0]] == expected


def test_s1_step_limit_and_timeout_reward():
    env = env_at("s1")  # EMMA's limit: 4 steps
    for _ in range(3):
        _, r, terminated, truncated, _ = step(env, STAY)
        assert r[0] == 0.0 and not truncated[0]
    _, r, terminated, truncated, info = step(env, STAY)
    assert truncated[0] and not terminated[0] and r[0] == -1.0 and OUTCOMES[info["outcome"][0]] == "timeout"
    env = env_at("s1", max_steps=2, timeout_reward=None)
    step(env, STAY)
    _, r, _, truncated, _ = step(env, STAY)
    assert truncated[0] and r[0] == 0.0


def test_moves_off_the_grid_are_cancelled():
    env = env_at("s1", max_steps=None)
    env.sim.place(0, avatar=(0, 0), enemy=(9, 9), message=(9, 0), goal=(0, 9))
    obs, *_ = step(env, UP)
    obs, *_ = step(env, LEFT)
    assert obs["avatar"][0, 0, 0, 0] >= games.AVATAR
    obs, *_ = step(env, DOWN)
    assert obs["avatar"][0, 1, 0, 0] >= games.AVATAR


# -- stage 2: movement -----------------------------------------------------------------------------------------
def test_chaser_fleeing_and_immovable_move_half_a_cell():
    env = env_at("s2", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(2, 5), message=(5, 2), goal=(7, 7),
                  moves=("chaser", "fleeing", "immovable"))
    before = env.sim.pos[0].copy()
    step(env, STAY)
    after = env.sim.pos[0]
    avatar = env.sim.avatar_pos[0]
    dist = lambda p: np.abs(p - avatar).sum()  # noqa: E731
    assert dist(after[0]) == dist(before[0]) - 1  # the chaser: one px (half a cell) closer
    assert dist(after[1]) == dist(before[1]) + 1  # fleeing: one px farther
    assert (after[2] == before[2]).all()  # immovable
    assert np.abs(after - before).sum(-1).tolist() == [1, 1, 0]


def test_chaser_choices_are_uniform_among_closer_directions():
    counts = {}
    for seed in range(200):
        env = env_at("s2", seed=seed, max_steps=None)
        env.sim.place(0, avatar=(5, 5), enemy=(2, 2), message=(9, 9), goal=(9, 0),
                      moves=("chaser", "immovable", "immovable"))
        step(env, STAY)
        move = tuple(env.sim.pos[0, 0] - np.array([4, 4]))
        counts[move] = counts.get(move, 0) + 1
    assert set(counts) == {(1, 0), (0, 1)}  # down or right only
    assert min(counts.values()) > 60


def test_fleeing_npc_in_a_corner_stays_when_every_increasing_move_leaves_the_grid():
    env = env_at("s2", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(9, 0), message=(0, 0), goal=(9, 9),
                  moves=("immovable", "fleeing", "immovable"))
    for _ in range(5):
        step(env, STAY)
        assert (env.sim.pos[0, games.MESSAGE] == 0).all()


def test_npcs_target_the_avatars_position_before_its_move():
    env = env_at("s2", max_steps=None)
    # Chaser straight above the avatar; the avatar steps right. The chaser still moves down (toward the old cell).
    env.sim.place(0, avatar=(5, 5), enemy=(2, 5), message=(9, 0), goal=(0, 9), moves=("chaser", "immovable", "immovable"))
    step(env, RIGHT)
    assert env.sim.pos[0, games.ENEMY].tolist() == [5, 10]


def test_half_cell_npc_touches_both_cells():
    # The enemy stands half-way between cells (2, 4) and (3, 4), immovable: stepping onto either touches it.
    for start, action in (((1, 4), DOWN), ((4, 4), UP)):
        env = env_at("s2", max_steps=None)
        env.sim.place(0, avatar=start, enemy=(2.5, 4), message=(9, 0),
                      goal=(0, 9), moves=("immovable", "immovable", "immovable"))
        obs, r, terminated, _, info = step(env, action)
        assert r[0] == -1.0 and terminated[0] and OUTCOMES[info["outcome"][0]] == "enemy"


# -- stage 2: contacts -----------------------------------------------------------------------------------------
def test_s2_pickup_then_delivery_wins():
    env = env_at("s2", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(0, 0), message=(5, 6), goal=(5, 7), moves=("immovable",) * 3)
    kinds = env.sim.kind[0].copy()
    obs, r, terminated, _, _ = step(env, RIGHT)
    assert r[0] == 0.5 and not terminated[0]
    assert obs["avatar"][0, 5, 6, 0] == games.AVATAR_WITH_MESSAGE
    assert kinds[games.MESSAGE] not in entity_cells({k: v[0] for k, v in obs.items()})  # the message vanished
    _, r, terminated, _, info = step(env, RIGHT)
    assert r[0] == 1.0 and terminated[0] and info["success"][0]
    final = info["final_obs"][0]
    assert kinds[games.GOAL] not in entity_cells(final)  # a delivered goal vanishes


def test_s2_goal_without_message_kills():
    env = env_at("s2", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(0, 0), message=(9, 9), goal=(5, 6), moves=("immovable",) * 3)
    _, r, terminated, _, info = step(env, RIGHT)
    assert r[0] == -1.0 and terminated[0] and not info["success"][0]
    assert OUTCOMES[info["outcome"][0]] == "wrong_contact"
    assert not info["final_obs"][0]["avatar"].any()  # a dead avatar vanishes


def test_s2_death_beats_pickup_in_one_tick():
    env = env_at("s2", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(5, 6), message=(5, 6), goal=(0, 0), moves=("immovable",) * 3)
    _, r, terminated, _, info = step(env, RIGHT)
    assert r[0] == -1.0 and terminated[0] and OUTCOMES[info["outcome"][0]] == "enemy"


def test_layer_order_is_redrawn_every_step():
    env = env_at("s2", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(0, 0), message=(9, 9), goal=(0, 9), moves=("immovable",) * 3)
    layers = set()
    for _ in range(30):
        obs, *_ = step(env, STAY)
        assert (obs["entities"][0] > 0).sum(axis=(0, 1)).tolist() == [1, 1, 1]  # one entity per layer
        layers.add(tuple(obs["entities"][0, 0, 0]))
    assert len(layers) == 3  # the enemy has appeared in each of the three layers


# -- stage 3 ---------------------------------------------------------------------------------------------------
def test_s3_decoys_kill_and_harm_adds_up():
    env = env_at("s3", max_steps=None)
    env.sim.place(0, avatar=(5, 5), enemy=(0, 0), message=(9, 9), goal=(0, 9), decoy_message=(5, 6),
                  decoy_goal=(9, 0), moves=("immovable",) * 5)
    _, r, terminated, _, info = step(env, RIGHT)
    assert r[0] == -1.0 and terminated[0] and OUTCOMES[info["outcome"][0]] == "decoy"
    env.sim.place(0, avatar=(5, 5), enemy=(5, 6), message=(9, 9), goal=(0, 9), decoy_message=(5, 6),
                  decoy_goal=(9, 0), moves=("immovable",) * 5)
    _, r, terminated, _, _ = step(env, RIGHT)
    assert r[0] == -2.0 and terminated[0]


def test_s3_decoys_show_their_twins_entities():
    env = env_at("s3", num_envs=50)
    assert (env.sim.kind[:, games.DECOY_MESSAGE] == env.sim.kind[:, games.MESSAGE]).all()
    assert (env.sim.kind[:, games.DECOY_GOAL] == env.sim.kind[:, games.GOAL]).all()
    positions = {tuple(p) for p in (env.sim.pos[:, :, :] // 2).reshape(-1, 2)}
    assert positions <= set(games.S3_SPOTS)


# -- manuals ---------------------------------------------------------------------------------------------------
def mentioned(sentence: str) -> set[str]:
    words = set(tokenize(sentence))
    return {entity for entity, names in SYNONYMS.items() if words & set(names)}


def test_manual_names_each_role_entity():
    env = env_at("s2", num_envs=50)
    for i in range(50):
        sentences = env.sim.manual_text(i)
        assert len(sentences) == 3
        named = [mentioned(s) for s in sentences]
        assert all(len(n) == 1 for n in named)
        assert set().union(*named) == {games.ENTITY_NAMES[e] for e in env.sim.game[i]}
    env = env_at("s3", num_envs=20)
    for i in range(20):
        names = [games.ENTITY_NAMES[e] for e in env.sim.game[i]]
        counts = [sum(names[k] in mentioned(s) for s in env.sim.manual_text(i)) for k in range(3)]
        assert counts == [2, 2, 2]  # enemy: its sentence + the distractor; message/goal: real + decoy


def write_texts(directory, drop=None):
    sentence = "the {e} {m} is the {r}"
    for split in ("train", "val", "test"):
        data = {e: {r: {m: [sentence.format(e=e, m=m, r=r) + f" {split}"] for m in ("chaser", "fleeing",
                                                                                   "immovable", "unknown")}
                    for r in ("enemy", "message", "goal")} for e in games.ENTITY_NAMES.values()}
        if drop and split == "val":
            del data[drop]
        (directory / f"text_{split}.json").write_text(json.dumps(data))


def test_human_texts_are_read_per_split(tmp_path):
    write_texts(tmp_path)
    env = env_at("s2_val", num_envs=5, text_path=str(tmp_path))
    for i in range(5):
        for sentence in env.sim.manual_text(i):
            assert sentence.endswith(" val") and re.match(r"the \w+ \w+ is the \w+ val", sentence)
    train = env_at("s2", num_envs=5, text_path=str(tmp_path))
    assert all(s.endswith(" train") for s in train.sim.manual_text(0))


def test_bad_human_text_layout_names_the_file(tmp_path):
    write_texts(tmp_path, drop="dog")
    with pytest.raises(DataError, match=r"text_val\.json.*12 entity names"):
        HumanText(tmp_path)
    (tmp_path / "text_val.json").write_text('{"dog": [1, 2]}')
    with pytest.raises(DataError, match="text_val.json"):
        HumanText(tmp_path)
    (tmp_path / "text_test.json").unlink()
    write_texts_ok = tmp_path / "elsewhere"
    with pytest.raises(MissingArtifactError, match="elsewhere"):
        HumanText(write_texts_ok)


# -- gymnasium conventions and bad input -----------------------------------------------------------------------
def test_autoreset_final_obs_and_seeding():
    a = env_at("s1", num_envs=8, seed=3)
    b = env_at("s1", num_envs=8, seed=3)
    for _ in range(6):
        oa, ra, *_ , ia = step(a, UP)
        ob, rb, *_ , ib = step(b, UP)
        assert all((oa[k] == ob[k]).all() for k in oa) and (ra == rb).all()
    assert a.metadata["autoreset_mode"].name == "SAME_STEP"
    env = env_at("s1", num_envs=1)
    env.sim.place(0, avatar=(5, 5), enemy=(3, 5), message=(5, 3), goal=(5, 7))
    step(env, UP)
    obs, _, terminated, _, info = step(env, UP)
    assert terminated[0] and info["_final_obs"][0]
    assert (obs["avatar"][0, 5, 5, 0] >= games.AVATAR)  # the next episode starts at once
    assert env.observation_space.contains(obs)


def test_single_env_and_registry():
    env = MessengerEnv("s2")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert make_vector_env("messenger:s3", num_envs=2, seed=0, max_steps=10).sim.max_steps == 10


def test_bad_input():
    with pytest.raises(UserError, match="unknown Messenger stage 's4'"):
        make_vector_env("messenger:s4", num_envs=1)
    with pytest.raises(UserError, match="max_steps"):
        MessengerVectorEnv("s1", max_steps=0)
    with pytest.raises(UserError, match="unknown"):
        make_vector_env("messenger:s1", num_envs=1, gamma=0.9)
    env = env_at("s1", num_envs=2)
    with pytest.raises(UserError, match="0..4"):
        env.step(np.array([0, 5]))


# -- statistics against the reference --------------------------------------------------------------------------
def test_random_policy_s2_matches_the_original():
    """The reference measured win 2% and mean length 31.5 for a uniform random policy on S2 (64 steps)."""
    env = env_at("s2", num_envs=200, seed=0)
    rng = np.random.default_rng(0)
    wins, lengths, steps = [], [], np.zeros(200, dtype=int)
    while len(wins) < 1500:
        _, _, _, _, info = env.step(rng.integers(0, 5, 200))
        steps += 1
        done = info["_final_obs"]
        wins += list(info["success"][done])
        lengths += list(steps[done])
        steps[done] = 0
    assert 0.01 < np.mean(wins) < 0.045
    assert 26 < np.mean(lengths) < 36


@pytest.mark.parametrize("stage", ["s1", "s2_val"])
def test_expert_wins(stage):
    env = env_at(stage, num_envs=32, seed=0)
    wins = []
    while len(wins) < 100:
        _, _, _, _, info = env.step(expert_actions(env))
        wins += list(info["success"][info["_final_obs"]])
    assert np.mean(wins) > 0.95


def test_s1_text_blind_policies_are_best_off_avoiding_at_ldds_limit():
    """Why a fresh policy learns to avoid every entity at LDD's S1 setting (10 steps, gamma 0.8, -1 at the
    limit): staying away (-0.8^9) has a higher discounted return than random, and walking to an NPC without
    reading the manual (1 in 3 right) is worse than both. At EMMA's 4-step limit walking to an NPC pays."""
    from lit_rlseq.envs.messenger.stats import run_episodes

    def values(limit):
        return {p: run_episodes("s1", p, 640, max_steps=limit, gamma=0.8) for p in ("random", "stay", "blind")}

    ldd = values(10)
    assert ldd["stay"]["disc_return"] == pytest.approx(-0.8 ** 9)
    assert ldd["stay"]["timeout"] == 1.0 and ldd["blind"]["length"] == 2.0
    assert 0.29 < ldd["blind"]["win"] < 0.38
    assert ldd["stay"]["disc_return"] > ldd["random"]["disc_return"] > ldd["blind"]["disc_return"]
    emma = values(4)
    assert emma["blind"]["disc_return"] > emma["random"]["disc_return"] > emma["stay"]["disc_return"]
