"""Agents that play text games: human, walkthrough teacher, random over valid actions (the LM student is
``lit_rlseq.ttm.lm.TextLM``).

Every agent is a LightningModule (so ``lightning play --model ...`` can name it) with

    name: str                 the agent name recorded in the rollout tags
    annotates: bool           True: its annotations come from the agent (the human); False: automatic ones
    begin(obs, info)          a new game starts
    act(trajectory, info) -> Act      the next action (and, for the human, an annotation of the current state)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np

from lit_rlseq.errors import UserError
from lit_rlseq.ttm.trajectory import TextTrajectory


@dataclass
class Annotation:
    summary: str
    length: int
    value: float


@dataclass
class Act:
    action: str
    annotation: Annotation | None = None
    generated: str = ""  # the raw text an LM produced (before parsing/filtering), for the record


class TextAgent(L.LightningModule):
    """Base class of the agents; ``predict_step`` plays the rollouts of a ``PlayRequest`` batch."""

    name = "agent"
    annotates = False

    def begin(self, obs: str, info: dict[str, Any]) -> None:
        pass

    def act(self, trajectory: TextTrajectory, info: dict[str, Any]) -> Act:
        raise NotImplementedError

    def predict_step(self, batch: Any, batch_idx: int = 0) -> Any:
        return batch.run(self)


class WalkthroughAgent(TextAgent):
    """The scripted teacher: replays the game's walkthrough (TextWorld cooking games and supported Jericho games)."""

    name = "walkthrough"

    def begin(self, obs: str, info: dict[str, Any]) -> None:
        if not info.get("walkthrough"):
            raise UserError(
                f"the game {info.get('game')!r} has no walkthrough, so the walkthrough agent cannot play it; "
                "use the human or random agent"
            )
        self._plan = list(info["walkthrough"])

    def act(self, trajectory: TextTrajectory, info: dict[str, Any]) -> Act:
        step = len(trajectory)
        # Past the end of the walkthrough (the game did not end): look around rather than stop playing.
        return Act(self._plan[step] if step < len(self._plan) else "look")


class RandomAgent(TextAgent):
    """Uniformly random over the valid actions ("look" when the game gives none)."""

    name = "random"

    def __init__(self, seed: int = 0):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def act(self, trajectory: TextTrajectory, info: dict[str, Any]) -> Act:
        valid = info.get("valid_actions") or []
        return Act(str(valid[self.rng.integers(len(valid))]) if valid else "look")


HUMAN_HELP = """Type an action, or annotate what just happened first:
  /summary <text>   what the last steps did (one line)
  /length <n>       how many steps it covers (default 1)
  /value <v>        how good it was, 0..1 (default 1)
  /valid            list the valid actions
  /quit             end this game"""


class HumanAgent(TextAgent):
    """A person at the terminal. Annotations of the current state are typed before the action."""

    name = "human"
    annotates = True

    def __init__(self, input_fn: Callable[[str], str] | None = None, print_fn: Callable[[str], None] | None = None):
        super().__init__()
        self.input_fn = input_fn or builtins.input
        self.print_fn = print_fn or builtins.print

    def begin(self, obs: str, info: dict[str, Any]) -> None:
        self.print_fn(f"goal: {info.get('goal', '')}\n{HUMAN_HELP}")

    def act(self, trajectory: TextTrajectory, info: dict[str, Any]) -> Act:
        self.print_fn(f"\n{trajectory.observations[-1]}\n[score {info.get('score')}/{info.get('max_score')}, "
                      f"moves {info.get('moves')}]")
        summary, length, value = "", 1, 1.0
        while True:
            line = self.input_fn("> ").strip()
            if line.startswith("/summary "):
                summary = line[len("/summary "):].strip()
            elif line.startswith("/length "):
                length = self._number(line, int, length)
            elif line.startswith("/value "):
                value = self._number(line, float, value)
            elif line == "/valid":
                self.print_fn(", ".join(info.get("valid_actions") or ["(the game does not list them)"]))
            elif line == "/quit":
                return Act("/quit")
            elif line.startswith("/"):
                self.print_fn(HUMAN_HELP)
            elif line:
                annotation = None
                if summary and not len(trajectory):
                    self.print_fn("(no steps yet to summarise: the annotation is dropped)")
                elif summary:
                    annotation = Annotation(summary, max(1, min(length, len(trajectory))), value)
                return Act(line, annotation)

    def _number(self, line: str, kind: type, default: Any) -> Any:
        try:
            return kind(line.split(maxsplit=1)[1])
        except ValueError:
            self.print_fn(f"not a number: {line!r}")
            return default
