"""Text games behind one gymnasium-style interface (``TextEnv``): TextWorld cooking games and Jericho games.

    env = make_text_env("cooking_level_2", split="train", games=20)   # generated with tw-make, cached
    env = make_text_env("/path/to/zork1.z5")                          # a Jericho game file you supply

An env name ``cooking_level_<k>`` / ``cooking_level_<k>_take`` is a cooking level (see ``cooking``); anything
else is a path to a Z-machine game file played with Jericho (``split`` is ignored there, as in the
reference). Observations, actions and the ``info`` keys are described in ``core``.
"""

from __future__ import annotations

import os

from lit_rlseq.envs.text.core import JERICHO_GOAL, TextEnv, clean_text
from lit_rlseq.envs.text.cooking import LEVELS, SPLITS, CookingEnv, make_game, make_games, parse_cooking_env
from lit_rlseq.envs.text.jericho_game import JerichoEnv

__all__ = ["JERICHO_GOAL", "LEVELS", "SPLITS", "CookingEnv", "JerichoEnv", "TextEnv", "clean_text",
           "is_cooking_env", "make_game", "make_games", "make_text_env", "parse_cooking_env"]


def is_cooking_env(env: str) -> bool:
    return env.startswith("cooking_level_")


def make_text_env(env: str, split: str = "train", games: int = 20, first_seed: int = 0, max_actions: int = 100,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True, seed: int | None = None) -> TextEnv:
    """A cooking env over ``games`` games of ``split`` (generated when missing), or a Jericho game file."""
    if is_cooking_env(env):
        paths = make_games(env, split, games, first_seed=first_seed, cache_dir=cache_dir, progress=progress)
        return CookingEnv(paths, max_actions=max_actions)
    return JerichoEnv(env, max_actions=max_actions, seed=seed)
