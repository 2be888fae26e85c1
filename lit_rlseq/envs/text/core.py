"""The text-game env interface shared by TextWorld cooking games and Jericho games.

A ``TextEnv`` is a ``gymnasium.Env`` whose observations and actions are strings:

    obs, info = env.reset(seed=None, options={"game": i})   # options optional: which game of the env's list
    obs, reward, terminated, truncated, info = env.step("take banana from counter")

``reward`` is the change of the game score (TextWorld reports a cumulative score, Jericho a per-step reward;
both come out as the per-step change here). ``info`` always holds:

    score           int        cumulative game score after this step
    max_score       int|None   the game's maximum score (None when the game does not say)
    moves           int        moves the game has counted (Jericho: our own count when the game does not say)
    valid_actions   list[str]  admissible actions now ([] when the game cannot tell)
    walkthrough     list[str]|None   a winning action sequence from the start, if the game has one
    goal            str        what the player should do (cooking: the game's objective)
    won, lost       bool
    game            str        path of the game file being played

``truncated`` becomes true after ``max_actions`` steps without the game ending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

# Characters that make up TextWorld's ASCII-art title banner; a line made only of these carries no text.
_BANNER_CHARS = set(" _|\\/$<>")
_PROMPT_LINE = re.compile(r"^>.*$", re.MULTILINE)  # the game's input prompt, followed by the status line

JERICHO_GOAL = "explore, get points, don't die"  # the reference's goal for Jericho games


def clean_text(raw: str) -> str:
    """Game output as a player would read it: without the prompt/status line and the ASCII-art banner.

    TextWorld and Frotz print the input prompt (">") followed by a status line (room name, score/moves) after
    every response; that line and lines made only of banner characters are removed, blank-line runs collapsed.
    """
    text = _PROMPT_LINE.sub("", raw)
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if not (line.strip() and set(line) <= _BANNER_CHARS)]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip()


@dataclass
class GameInfo:
    """The per-step facts a TextEnv reports (turned into the ``info`` dict by ``as_info``)."""

    score: int
    max_score: int | None
    moves: int
    valid_actions: list[str]
    walkthrough: list[str] | None
    goal: str
    won: bool
    lost: bool
    game: str

    def as_info(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TextEnv(gym.Env):
    """Base class: subclasses implement ``_load(game_index)``, ``_reset_game()`` and ``_step_game(action)``."""

    metadata = {"render_modes": ["ansi"]}
    observation_space = gym.spaces.Text(max_length=100_000)
    action_space = gym.spaces.Text(max_length=200)

    def __init__(self, games: list[str], max_actions: int = 100):
        super().__init__()
        if max_actions < 1:
            raise ValueError(f"max_actions must be >= 1, got {max_actions}")
        self.games = list(games)
        self.max_actions = max_actions
        self.game_index = -1
        self._next_game = 0
        self._actions = 0
        self._score = 0
        self._last_obs = ""

    # -- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Starts a game: ``options["game"]`` if given, else the next game of the list (cycling)."""
        super().reset(seed=seed)
        options = options or {}
        index = int(options["game"]) if "game" in options else self._next_game
        if not 0 <= index < len(self.games):
            raise ValueError(f"game index {index} out of range: this env has {len(self.games)} games")
        self._next_game = (index + 1) % len(self.games)
        if index != self.game_index:
            self._load(index)
            self.game_index = index
        obs, info = self._reset_game()
        self._actions, self._score = 0, info.score
        self._last_obs = obs
        return obs, info.as_info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.game_index < 0:
            raise RuntimeError("call reset() before step()")
        obs, info, done = self._step_game(action)
        reward = info.score - self._score
        self._score = info.score
        self._actions += 1
        truncated = not done and self._actions >= self.max_actions
        self._last_obs = obs
        return obs, float(reward), done, truncated, info.as_info()

    def render(self) -> str:
        return self._last_obs

    # -- per family
    def _load(self, index: int) -> None:
        raise NotImplementedError

    def _reset_game(self) -> tuple[str, GameInfo]:
        raise NotImplementedError

    def _step_game(self, action: str) -> tuple[str, GameInfo, bool]:
        raise NotImplementedError
