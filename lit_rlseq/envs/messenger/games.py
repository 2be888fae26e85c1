"""Messenger's entities, games, movement variants, layouts and splits (the reference's tables, as data).

A *game* is an (enemy, message, goal) triple of NPC entity ids. A *variant* assigns a movement type to each
role (S3: also to the two decoys). A *layout* assigns start positions. Splits decide which games an env id
samples, so that validation and test games are unseen in training (see ``SPLITS``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from lit_rlseq.errors import UserError

# Entity ids of the observation (0 empty, 1 unused, 14 wall: never placed).
ENTITY_NAMES = {
    2: "airplane", 3: "mage", 4: "dog", 5: "bird", 6: "fish", 7: "scientist",
    8: "thief", 9: "ship", 10: "ball", 11: "robot", 12: "queen", 13: "sword",
}
ENTITY_IDS = {name: i for i, name in ENTITY_NAMES.items()}
NPC_IDS = tuple(sorted(ENTITY_NAMES))
WALL = 14
AVATAR = 15  # without the message
AVATAR_WITH_MESSAGE = 16
NUM_ENTITY_IDS = 17  # ids 0..16 appear in observations

ROLES = ("enemy", "message", "goal")
MOVEMENTS = ("chaser", "fleeing", "immovable")
CHASER, FLEEING, IMMOVABLE = range(3)

# NPC slots of the simulator: the three roles, then the two S3 decoys.
ENEMY, MESSAGE, GOAL, DECOY_MESSAGE, DECOY_GOAL = range(5)

GRID = 10  # cells per side

# -- games ---------------------------------------------------------------------------------------------------

def _ids(*names: str) -> tuple[int, ...]:
    return tuple(ENTITY_IDS[n] for n in names)


def _multi_combination_games() -> list[tuple[int, int, int]]:
    enemies = _ids("robot", "ship", "queen", "thief")
    messages = _ids("airplane", "ship", "scientist", "thief")
    goals = _ids("scientist", "queen", "airplane", "robot")
    return [g for g in itertools.product(enemies, messages, goals) if len(set(g)) == 3]


TRAIN_MULTI = _multi_combination_games()  # 40 games
TRAIN_SINGLE = [
    _ids("dog", "fish", "bird"), _ids("fish", "bird", "dog"),
    _ids("sword", "ball", "mage"), _ids("ball", "mage", "sword"),
]


def _held_out_games(pairs: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]) -> list[tuple[int, ...]]:
    return [g for enemies, messages, goals in pairs for g in itertools.product(_ids(*enemies), _ids(*messages),
                                                                               _ids(*goals))]


_A, _B = ("airplane", "scientist"), ("bird", "mage")
_M1, _M2 = ("robot", "dog"), ("queen", "sword")
_G1, _G2 = ("thief", "ball"), ("ship", "fish")
VAL_GAMES = _held_out_games([(_A, _M1, _G1), (_A, _M2, _G2), (_B, _M1, _G2), (_B, _M2, _G1)])
TEST_GAMES = _held_out_games([(_A, _M1, _G2), (_A, _M2, _G1), (_B, _M1, _G1), (_B, _M2, _G2)])

# -- movement variants ---------------------------------------------------------------------------------------

# S2 (train/val/test-se): every permutation of the three movement types over (enemy, message, goal).
S2_VARIANTS = [tuple(p) for p in itertools.permutations(range(3))]
# S2 test ("new dynamics"): all 27 combinations, repeats allowed.
S2_TEST_VARIANTS = [tuple(p) for p in itertools.product(range(3), repeat=3)]


def _s3_variants() -> list[tuple[int, ...]]:
    """The 6 permutations x 3 decoy pairs: each decoy moves unlike its twin; not both like the enemy."""
    variants = []
    for enemy, message, goal in S2_VARIANTS:
        for decoy_message, decoy_goal in itertools.product(range(3), repeat=2):
            if decoy_message == message or decoy_goal == goal:
                continue
            if decoy_message == enemy and decoy_goal == enemy:
                continue
            variants.append((enemy, message, goal, decoy_message, decoy_goal))
    return variants


S3_VARIANTS = _s3_variants()  # 18

# -- layouts (cell coordinates (y, x)) -----------------------------------------------------------------------

S1_AVATAR = (5, 5)
S1_SPOTS = ((3, 5), (5, 3), (5, 7), (7, 5))  # shuffled; enemy, message, goal take the first three
S2_CORNERS = ((2, 2), (2, 7), (7, 2), (7, 7))  # every assignment of {avatar, enemy, message, goal}
S3_SPOTS = ((1, 2), (1, 8), (4, 5), (6, 1), (6, 9), (9, 5))  # {avatar, enemy, message, goal, 2 decoys}

# -- stages and splits ---------------------------------------------------------------------------------------

STAGE_NPCS = {1: 3, 2: 3, 3: 5}  # NPC slots
STAGE_LAYERS = {1: 1, 2: 3, 3: 5}  # entity layers of the observation
STAGE_SENTENCES = {1: 3, 2: 3, 3: 6}
# EMMA's training step limits (the env itself has none in the original; LDD uses 10 for every stage).
STAGE_MAX_STEPS = {1: 4, 2: 64, 3: 128}
TRAIN_MULTI_P = 0.75  # EMMA's share of multi-combination games in training (LDD's scripts: 0.5)


@dataclass(frozen=True)
class Split:
    """Which games and variants an env samples, and which human-text file it reads."""

    name: str
    text: str  # "train" / "val" / "test": the human-text file (templates are shared)
    games: str  # "train" (multi + single combinations) / "val" / "test"
    new_dynamics: bool = False  # S2 test: all 27 movement combinations


SPLITS = {
    "train": Split("train", "train", "train"),
    "val": Split("val", "val", "val"),
    "test": Split("test", "test", "test", new_dynamics=True),
    "test_se": Split("test_se", "test", "test"),  # test games with the training dynamics (S2 only)
}


@dataclass(frozen=True)
class StageSpec:
    env_id: str
    stage: int
    split: Split

    @property
    def num_npcs(self) -> int:
        return STAGE_NPCS[self.stage]

    @property
    def num_layers(self) -> int:
        return STAGE_LAYERS[self.stage]

    @property
    def num_sentences(self) -> int:
        return STAGE_SENTENCES[self.stage]

    def variants(self) -> list[tuple[int, ...]]:
        if self.stage == 1:
            return [(IMMOVABLE,) * 3]
        if self.stage == 2:
            return S2_TEST_VARIANTS if self.split.new_dynamics else S2_VARIANTS
        return S3_VARIANTS


def _variant_names() -> dict[str, tuple[int, str]]:
    names = {}
    for stage in (1, 2, 3):
        names[f"s{stage}"] = (stage, "train")
        names[f"s{stage}_val"] = (stage, "val")
        # S1 and S3 have no new-dynamics test (S1 never moves; S3 uses the same 18 variants everywhere).
        names[f"s{stage}_test"] = (stage, "test" if stage == 2 else "test_se")
    names["s2_test_se"] = (2, "test_se")
    return names


VARIANT_NAMES = _variant_names()


def stage_spec(variant: str | None) -> StageSpec:
    if variant not in VARIANT_NAMES:
        raise UserError(
            f"unknown Messenger stage {variant!r}: use messenger:<stage> with <stage> one of {sorted(VARIANT_NAMES)}"
        )
    stage, split = VARIANT_NAMES[variant]
    return StageSpec(f"messenger:{variant}", stage, SPLITS[split])


def sample_game(rng: np.random.Generator, split: Split, multi_p: float) -> tuple[int, int, int]:
    if split.games == "train":
        pool = TRAIN_MULTI if rng.random() < multi_p else TRAIN_SINGLE
    else:
        pool = VAL_GAMES if split.games == "val" else TEST_GAMES
    return pool[rng.integers(len(pool))]
