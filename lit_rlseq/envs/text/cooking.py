"""TextWorld cooking games: generated offline with ``tw-make``, cached on disk, played through TextWorld's API.

Levels (GATA, arXiv 2002.09127; the reference's ``cooking_level_{1..4}``):

    level  ingredients  rooms  skills      max score: original (no --take) / GATA (--take)
    1      1            1      cut         3 / 4
    2      1            1      cut, cook   4 / 5
    3      1            9      -           2 / 3
    4      3            6      cut, cook   8 / 11

Two variants: ``cooking_level_<k>`` is the **original's** (the default: the reference ran ``tw-make`` without
``--take``, so the ingredients start in the player's inventory and level 2 scores out of 4, as its reported
2.25/4), and ``cooking_level_<k>_take`` is GATA's (the ingredients must be found and taken first).

Splits train / valid / test use TextWorld's own disjoint food splits (``tw-make --split``), so recipes of the
test games are never seen in training. A game is identified by (level, variant, split, seed) and cached as
``<cache>/<env>/<split>/seed<seed>.z8`` (with TextWorld's ``.json`` beside it); the cache directory is
``$LIT_RLSEQ_GAMES`` or ``~/.cache/lit_rlseq/games``. Missing games are generated on demand with a progress
bar (about 5-20 s each); the seeds of split ``s`` are ``first_seed + i`` for game ``i``.

Jericho cannot score these ``.z8`` games (its score, moves and valid actions come back empty), so they are
played through TextWorld: ``EnvInfos`` gives admissible commands, the walkthrough, score and max score.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from lit_rlseq.envs.text.core import GameInfo, TextEnv, clean_text
from lit_rlseq.errors import UserError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class CookingLevel:
    recipe: int  # ingredients in the recipe
    go: int  # rooms
    cut: bool
    cook: bool


LEVELS = {
    1: CookingLevel(recipe=1, go=1, cut=True, cook=False),
    2: CookingLevel(recipe=1, go=1, cut=True, cook=True),
    3: CookingLevel(recipe=1, go=9, cut=False, cook=False),
    4: CookingLevel(recipe=3, go=6, cut=True, cook=True),
}
ENV_NAME = re.compile(r"^cooking_level_(\d)(_take)?$")


def parse_cooking_env(name: str) -> tuple[int, bool]:
    """``cooking_level_2`` -> (2, False); ``cooking_level_2_take`` -> (2, True)."""
    match = ENV_NAME.match(name)
    if not match or int(match.group(1)) not in LEVELS:
        raise UserError(
            f"unknown cooking env {name!r}: use cooking_level_<k> (the original's levels, ingredients in the "
            f"inventory) or cooking_level_<k>_take (GATA's), k in {sorted(LEVELS)}"
        )
    return int(match.group(1)), bool(match.group(2))


def tw_make_args(level: int, take: bool, split: str, seed: int) -> list[str]:
    """The ``tw-make`` arguments of one game (without the output path)."""
    spec = LEVELS[level]
    args = ["tw-cooking", "--recipe", str(spec.recipe), "--go", str(spec.go)]
    if take:
        args += ["--take", str(spec.recipe)]
    if spec.cut:
        args.append("--cut")
    if spec.cook:
        args.append("--cook")
    return args + ["--split", split, "--seed", str(seed)]


def default_cache_dir() -> Path:
    return Path(os.environ.get("LIT_RLSEQ_GAMES") or Path.home() / ".cache" / "lit_rlseq" / "games")


def game_path(cache_dir: Path, env: str, split: str, seed: int) -> Path:
    return Path(cache_dir) / env / split / f"seed{seed}.z8"


def _tw_make_command() -> list[str]:
    # The tw-make installed beside this interpreter (a venv's bin/ need not be on PATH).
    local = Path(sys.executable).parent / "tw-make"
    return [str(local)] if local.exists() else ["tw-make"]


def make_game(env: str, split: str, seed: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cached game file of (env, split, seed), generated with ``tw-make`` if missing."""
    level, take = parse_cooking_env(env)
    if split not in SPLITS:
        raise UserError(f"cooking split {split!r} is not one of {SPLITS}")
    target = game_path(Path(cache_dir) if cache_dir else default_cache_dir(), env, split, seed)
    if target.exists() and target.with_suffix(".json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tw-make-") as tmp:
        out = Path(tmp) / target.name
        command = [*_tw_make_command(), *tw_make_args(level, take, split, seed), "--output", str(out), "-f", "--silent"]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise UserError(f"tw-make not found ({e}); install the text extra: pip install -e '.[text]'") from e
        if done.returncode != 0 or not out.exists():
            message = (done.stderr.strip() or done.stdout.strip() or "(no output)")[-3000:]
            raise UserError(
                f"tw-make failed (exit {done.returncode}) generating {env} split {split} seed {seed}:\n"
                f"  $ {' '.join(command)}\n{message}"
            )
        # The .json first: a .z8 in the cache means its game is complete (other processes may be reading).
        os.replace(out.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(out, target)
    return target


def make_games(env: str, split: str, count: int, first_seed: int = 0,
               cache_dir: str | os.PathLike | None = None, progress: bool = True) -> list[Path]:
    """``count`` games of a split (seeds first_seed, first_seed + 1, ...), generating those not cached."""
    if count < 1:
        raise UserError(f"the number of cooking games must be >= 1, got {count}")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    seeds = [first_seed + i for i in range(count)]
    missing = [s for s in seeds if not game_path(cache, env, split, s).exists()]
    if missing:
        from tqdm import tqdm

        bar = tqdm(missing, desc=f"tw-make {env} {split} -> {cache}", unit="game", disable=not progress)
        for seed in bar:
            make_game(env, split, seed, cache)
    return [game_path(cache, env, split, s) for s in seeds]


class CookingEnv(TextEnv):
    """A list of cooking game files played through TextWorld (one game per episode, cycling through them)."""

    def __init__(self, games: list[str | os.PathLike], max_actions: int = 100):
        paths = [str(g) for g in games]
        for path in paths:
            if not Path(path).exists():
                raise UserError(f"cooking game file not found: {path} (generate it with lit_rlseq.envs.text.make_games)")
        super().__init__(paths, max_actions)
        self._env = None

    def _load(self, index: int) -> None:
        import textworld

        if self._env is not None:
            self._env.close()
        infos = textworld.EnvInfos(admissible_commands=True, extras=["walkthrough"], max_score=True, score=True,
                                   moves=True, objective=True, won=True, lost=True)
        with warnings.catch_warnings():
            # TextWorld runs the game in Jericho's emulator, which warns that it cannot score it by itself.
            warnings.filterwarnings("ignore", message=".*is not fully supported")
            self._env = textworld.start(self.games[index], request_infos=infos)

    def _info(self, state) -> GameInfo:
        walkthrough = state.get("extra.walkthrough")
        return GameInfo(
            score=int(state.score or 0),
            max_score=int(state.max_score) if state.max_score is not None else None,
            moves=int(state.moves or 0),
            valid_actions=sorted(state.admissible_commands or []),
            walkthrough=list(walkthrough) if walkthrough else None,
            goal=state.objective or "",
            won=bool(state.won),
            lost=bool(state.lost),
            game=self.games[self.game_index if self.game_index >= 0 else 0],
        )

    def _reset_game(self) -> tuple[str, GameInfo]:
        state = self._env.reset()
        return clean_text(state.feedback), self._info(state)

    def _step_game(self, action: str) -> tuple[str, GameInfo, bool]:
        state, _, done = self._env.step(action)
        return clean_text(state.feedback), self._info(state), bool(done)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

