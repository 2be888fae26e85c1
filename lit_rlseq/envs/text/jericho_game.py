"""Jericho (Z-machine) games from a file the user gives, e.g. ``zork1.z5``. Game files are never shipped.

Jericho's valid-action helper loads a spaCy English model and downloads it when missing; we set
``jericho.util.spacy_nlp`` to a blank English pipeline first, so nothing is ever downloaded (the helper only
needs tokenisation). Games Jericho does not fully support (e.g. TextWorld's ``.z8`` games) still play, but
score, moves and valid actions come back empty; the env then counts moves itself.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from lit_rlseq.envs.text.core import JERICHO_GOAL, GameInfo, TextEnv, clean_text
from lit_rlseq.errors import MissingArtifactError


def _import_jericho():
    import jericho
    import jericho.util
    import spacy

    if not isinstance(getattr(jericho.util, "spacy_nlp", None), spacy.Language):
        jericho.util.spacy_nlp = spacy.blank("en")  # never let jericho download en_core_web_sm
    return jericho


def check_game_file(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingArtifactError(
            "Jericho game file", str(path),
            produce_with="nothing here: game files are not shipped with lit_rlseq; put your copy of the game "
                         "(e.g. zork1.z5 from the Jericho game collection) at that path or pass its path as the env",
        )
    return path


class JerichoEnv(TextEnv):
    """One Jericho game (the games list has one entry); goal: the reference's "explore, get points, don't die"."""

    def __init__(self, game: str | os.PathLike, max_actions: int = 100, seed: int | None = None):
        path = check_game_file(game)
        super().__init__([str(path)], max_actions)
        self.emulator_seed = seed
        self._env = None
        self._moves = 0

    def _load(self, index: int) -> None:
        jericho = _import_jericho()
        from jericho.jericho import UnsupportedGameWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsupportedGameWarning)
            self._env = jericho.FrotzEnv(self.games[index], seed=self.emulator_seed)
        self.supported = bool(self._env.is_fully_supported)
        self._walkthrough = self._env.get_walkthrough() if self.supported else []
        self._max_score = int(self._env.get_max_score()) if self.supported else None

    def _info(self, won: bool = False, lost: bool = False) -> GameInfo:
        if self.supported:
            valid = sorted(self._env.get_valid_actions())
            score, moves = int(self._env.get_score()), int(self._env.get_moves())
        else:
            valid, score, moves = [], 0, self._moves
        return GameInfo(score=score, max_score=self._max_score, moves=moves, valid_actions=valid,
                        walkthrough=list(self._walkthrough) or None, goal=JERICHO_GOAL, won=won, lost=lost,
                        game=self.games[0])

    def _reset_game(self) -> tuple[str, GameInfo]:
        obs, _ = self._env.reset()
        self._moves = 0
        return clean_text(obs), self._info()

    def _step_game(self, action: str) -> tuple[str, GameInfo, bool]:
        obs, _, done, _ = self._env.step(action)
        self._moves += 1
        won = bool(self.supported and self._env.victory())
        lost = bool(self.supported and self._env.game_over())
        return clean_text(obs), self._info(won, lost), bool(done)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
