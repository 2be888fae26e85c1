"""A played text-game trajectory, its annotations, and how it is laid out in the rollout store.

A trajectory of ``L`` actions has ``L + 1`` states. State ``i`` is what the player saw before action ``i``
(state ``L`` is the final one). Per state: the observation text, the cumulative score, the moves counter,
the valid actions, and the optional annotations of the reference:

* ``hindsight_summary`` -- what just happened (``""`` = no annotation at this state),
* ``hindsight_length``  -- how many of the previous steps the summary covers (0 = none),
* ``value``             -- how good that was (0 .. 1; NaN = none).

Per action: the action text and the reward (change of score).

Automatic annotations (``auto_annotate``), used for every agent but the human, so the whole loop runs without
a person. The rule: a summary is written at every state where the score changed and at the final state; it
covers the steps since the previous summary (its ``hindsight_length``), lists their actions, and says how the
score moved and whether the game was won or lost. Its value is 1 when the score rose over those steps or the
game was won, else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lit_rlseq.errors import DataError
from lit_rlseq.rollouts import Episode, EpisodeTags

SUMMARY_SEPARATOR = " || "


@dataclass
class TextTrajectory:
    goal: str
    observations: list[str]  # L + 1
    actions: list[str] = field(default_factory=list)  # L
    scores: list[int] = field(default_factory=list)  # L + 1, cumulative
    moves: list[int] = field(default_factory=list)  # L + 1
    valid_actions: list[list[str]] = field(default_factory=list)  # L + 1
    hindsight_summary: list[str] = field(default_factory=list)  # L + 1 ("" = none)
    hindsight_length: list[int] = field(default_factory=list)  # L + 1 (0 = none)
    value: list[float] = field(default_factory=list)  # L + 1 (nan = none)
    max_score: int | None = None
    won: bool = False
    lost: bool = False

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def start(cls, obs: str, info: dict[str, Any]) -> TextTrajectory:
        trajectory = cls(goal=info.get("goal", ""), observations=[], max_score=info.get("max_score"))
        trajectory.add_state(obs, info)
        return trajectory

    def add_state(self, obs: str, info: dict[str, Any]) -> None:
        self.observations.append(obs)
        self.scores.append(int(info.get("score", 0)))
        self.moves.append(int(info.get("moves", len(self.observations) - 1)))
        self.valid_actions.append(list(info.get("valid_actions") or []))
        self.hindsight_summary.append("")
        self.hindsight_length.append(0)
        self.value.append(math.nan)
        self.won, self.lost = bool(info.get("won", False)), bool(info.get("lost", False))

    def add_step(self, action: str, obs: str, info: dict[str, Any]) -> None:
        self.actions.append(action)
        self.add_state(obs, info)

    def annotate(self, state: int, summary: str, length: int, value: float) -> None:
        """Annotates state ``state`` with a summary of the ``length`` steps that led to it."""
        if not 1 <= length <= state:
            raise DataError(f"a summary at state {state} can cover 1..{state} previous steps, not {length}")
        if "\n" in summary:
            raise DataError(f"a hindsight summary must be one line, got {summary!r}")
        self.hindsight_summary[state] = summary
        self.hindsight_length[state] = int(length)
        self.value[state] = float(value)

    @property
    def rewards(self) -> list[float]:
        return [float(b - a) for a, b in zip(self.scores[:-1], self.scores[1:])]

    @property
    def final_score(self) -> int:
        return self.scores[-1]


def auto_annotate(trajectory: TextTrajectory) -> TextTrajectory:
    """Annotations by the documented rule (module docstring), replacing any the trajectory has."""
    t = replace(trajectory, hindsight_summary=[""] * len(trajectory.observations),
                hindsight_length=[0] * len(trajectory.observations), value=[math.nan] * len(trajectory.observations))
    previous = 0
    for i in range(1, len(t.observations)):
        final = i == len(t.observations) - 1
        if t.scores[i] == t.scores[i - 1] and not final:
            continue
        gained = t.scores[i] - t.scores[previous]
        out_of = f" of {t.max_score}" if t.max_score is not None else ""
        if gained > 0:
            outcome = f"score up by {gained} to {t.scores[i]}{out_of}"
        elif gained < 0:
            outcome = f"score down by {-gained} to {t.scores[i]}{out_of}"
        else:
            outcome = f"no points (score {t.scores[i]}{out_of})"
        if final and t.won:
            outcome += ", game won"
        elif final and t.lost:
            outcome += ", game lost"
        summary = f"{'; '.join(t.actions[previous:i])}: {outcome}"
        t.annotate(i, summary, i - previous, 1.0 if gained > 0 or (final and t.won) else 0.0)
        previous = i
    return t


def future_summaries(trajectory: TextTrajectory, step: int, visible_until: int | None = None) -> list[int]:
    """States whose summary covers ``step`` (label propagation), optionally only those at or before a state.

    A summary at state ``i`` covering ``L`` steps is attached to steps ``i - L .. i - 1``.
    """
    last = len(trajectory.observations) - 1 if visible_until is None else visible_until
    return [
        i for i in range(step + 1, last + 1)
        if trajectory.hindsight_length[i] > 0 and i - trajectory.hindsight_length[i] <= step
    ]


# -- the rollout store layout --------------------------------------------------------------------------------
def trajectory_fields(trajectory: TextTrajectory) -> dict[str, Any]:
    """Per-state fields (L + 1 rows) and per-action fields (L rows) of a trajectory, as stored."""
    return {
        "obs": list(trajectory.observations),
        "action": list(trajectory.actions),
        "reward": np.asarray(trajectory.rewards, dtype=np.float32),
        "score": np.asarray(trajectory.scores, dtype=np.int64),
        "moves": np.asarray(trajectory.moves, dtype=np.int64),
        "valid_actions": [list(v) for v in trajectory.valid_actions],
        "hindsight_summary": list(trajectory.hindsight_summary),
        "hindsight_length": np.asarray(trajectory.hindsight_length, dtype=np.int64),
        "value": np.asarray(trajectory.value, dtype=np.float32),
    }


def trajectory_episode(trajectory: TextTrajectory, tags: EpisodeTags) -> Episode:
    """The store episode of a trajectory; the goal, scores and outcome go into the tag metadata."""
    if len(trajectory) < 1:
        raise DataError("a trajectory without actions cannot be stored (the rollout store needs >= 1 step)")
    metadata = {**tags.metadata, "goal": trajectory.goal, "score": trajectory.final_score,
                "max_score": trajectory.max_score, "won": trajectory.won, "lost": trajectory.lost}
    return Episode(trajectory_fields(trajectory), replace(tags, metadata=metadata))


def episode_trajectory(episode: Episode) -> TextTrajectory:
    """The trajectory of a stored episode (the inverse of ``trajectory_episode``)."""
    f, meta = episode.fields, episode.tags.metadata
    missing = [k for k in ("obs", "action", "score") if k not in f]
    if missing:
        raise DataError(f"episode of run {episode.tags.run_id!r} is not a text-game trajectory: lacks {missing}")
    states = len(f["obs"])
    return TextTrajectory(
        goal=meta.get("goal", ""),
        observations=list(f["obs"]),
        actions=list(f["action"]),
        scores=[int(s) for s in f["score"]],
        moves=[int(m) for m in f.get("moves", range(states))],
        valid_actions=[list(v) for v in f.get("valid_actions", [[]] * states)],
        hindsight_summary=list(f.get("hindsight_summary", [""] * states)),
        hindsight_length=[int(x) for x in f.get("hindsight_length", [0] * states)],
        value=[float(x) for x in f.get("value", [math.nan] * states)],
        max_score=meta.get("max_score"),
        won=bool(meta.get("won", False)),
        lost=bool(meta.get("lost", False)),
    )
