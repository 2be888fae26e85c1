"""Fine-tuning examples (prompt / completion) from trajectories: pure functions.

Two formats, one example per action of a trajectory (every prefix), the last ``history`` steps shown:

``hindsight_expectation_str`` (the reference's: return-conditioned behaviour cloning plus predicting a summary
of what will happen)::

    prompt:     goal: <goal>
                state: [<obs k>, expectation: <summaries of step k visible at step t>] action: [ <action k> ]
                ...                                         (k = t - history + 1 .. t - 1)
                state: [<obs t>] fitness: '<f>' batch_fitness: '<b>'
    completion:  expectation: <future summaries of step t, joined by " || "> summary: <summary at state t>
                 length: <its length> value: <mean value of the future summaries> action: [ <action t> ]

``bc`` (plain behaviour cloning)::

    prompt:     goal: <goal>
                state: [<obs k>] action: [ <action k> ]      (k = t - history + 1 .. t - 1)
                state: [<obs t>]
    completion:  action: [ <action t> ]

Every completion is one line ending in a newline (generation stops there). Labels are propagated backwards:
a summary at state ``i`` covering ``L`` steps belongs to steps ``i - L .. i - 1``; a past step shows only the
summaries already written by step ``t``. Fitness bins from the step's value (mean value of its future
summaries; 0 when it has none): low < 0.2 <= middle < 0.8 <= high; batch fitness from the mean final score of
the batch of rollouts: low < 1 <= middle < 3 <= high. At play time the student is prompted with high / high.
"""

from __future__ import annotations

import math
import re

from lit_rlseq.errors import UserError
from lit_rlseq.ttm.trajectory import SUMMARY_SEPARATOR, TextTrajectory, future_summaries

FORMATS = ("hindsight_expectation_str", "bc")
HISTORY = 6  # steps shown, the current one included (the reference's)
ACTION_CHARS = 50  # the reference cut parsed actions to 50 characters
PLAY_FITNESS = "high"


def fitness_label(value: float) -> str:
    return "low" if value < 0.2 else ("middle" if value < 0.8 else "high")


def batch_fitness_label(mean_score: float) -> str:
    return "low" if mean_score < 1 else ("middle" if mean_score < 3 else "high")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _state(obs: str) -> str:
    return f"state: [{_one_line(obs)}"


def step_value(trajectory: TextTrajectory, step: int) -> float:
    values = [trajectory.value[i] for i in future_summaries(trajectory, step)]
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else 0.0


def _expectation(trajectory: TextTrajectory, states: list[int]) -> str:
    return SUMMARY_SEPARATOR.join(_one_line(trajectory.hindsight_summary[i]) for i in states)


def hindsight_prompt(goal: str, past: list[tuple[str, str, str]], obs: str, fitness: str, batch_fitness: str) -> str:
    """The prompt from the goal, past (obs, visible expectation, action) steps and the current observation."""
    lines = [f"goal: {_one_line(goal)}"]
    lines += [f"{_state(o)}, expectation: {e}] action: [ {_one_line(a)} ]" for o, e, a in past]
    lines.append(f"{_state(obs)}] fitness: '{fitness}' batch_fitness: '{batch_fitness}'")
    return "\n".join(lines) + "\n"


def bc_prompt(goal: str, past: list[tuple[str, str]], obs: str) -> str:
    lines = [f"goal: {_one_line(goal)}"]
    lines += [f"{_state(o)}] action: [ {_one_line(a)} ]" for o, a in past]
    lines.append(f"{_state(obs)}]")
    return "\n".join(lines) + "\n"


def _hindsight_past(trajectory: TextTrajectory, t: int, history: int) -> list[tuple[str, str, str]]:
    """The shown past steps before step t: (obs, summaries visible at step t, action)."""
    return [
        (trajectory.observations[k], _expectation(trajectory, future_summaries(trajectory, k, visible_until=t)),
         trajectory.actions[k])
        for k in range(max(0, t - history + 1), t)
    ]


def _bc_past(trajectory: TextTrajectory, t: int, history: int) -> list[tuple[str, str]]:
    return [(trajectory.observations[k], trajectory.actions[k]) for k in range(max(0, t - history + 1), t)]


def hindsight_examples(trajectory: TextTrajectory, batch_mean_score: float,
                       history: int = HISTORY) -> list[dict[str, str]]:
    """One prompt/completion example per action of the trajectory, in the hindsight_expectation_str format."""
    examples = []
    batch = batch_fitness_label(batch_mean_score)
    for t in range(len(trajectory)):
        past = _hindsight_past(trajectory, t, history)
        value = step_value(trajectory, t)
        prompt = hindsight_prompt(trajectory.goal, past, trajectory.observations[t], fitness_label(value), batch)
        completion = (
            f" expectation: {_expectation(trajectory, future_summaries(trajectory, t))}"
            f" summary: {_one_line(trajectory.hindsight_summary[t])} length: {trajectory.hindsight_length[t]}"
            f" value: {value:.2f} action: [ {_one_line(trajectory.actions[t])} ]\n"
        )
        examples.append({"prompt": prompt, "completion": completion})
    return examples


def bc_examples(trajectory: TextTrajectory, history: int = HISTORY) -> list[dict[str, str]]:
    examples = []
    for t in range(len(trajectory)):
        past = _bc_past(trajectory, t, history)
        prompt = bc_prompt(trajectory.goal, past, trajectory.observations[t])
        examples.append({"prompt": prompt, "completion": f" action: [ {_one_line(trajectory.actions[t])} ]\n"})
    return examples


def examples(trajectory: TextTrajectory, format: str, batch_mean_score: float = 0.0,
             history: int = HISTORY) -> list[dict[str, str]]:
    if format == "hindsight_expectation_str":
        return hindsight_examples(trajectory, batch_mean_score, history)
    if format == "bc":
        return bc_examples(trajectory, history)
    raise UserError(f"unknown fine-tune format {format!r}; formats are {FORMATS}")


def play_prompt(trajectory: TextTrajectory, format: str, history: int = HISTORY) -> str:
    """The prompt for the student's next action after the trajectory so far (conditioned on high fitness)."""
    t = len(trajectory)
    if format == "bc":
        past = _bc_past(trajectory, t, history)
        return bc_prompt(trajectory.goal, past, trajectory.observations[t])
    if format == "hindsight_expectation_str":
        past = _hindsight_past(trajectory, t, history)
        return hindsight_prompt(trajectory.goal, past, trajectory.observations[t], PLAY_FITNESS, PLAY_FITNESS)
    raise UserError(f"unknown fine-tune format {format!r}; formats are {FORMATS}")


_ACTION = re.compile(r"action: \[(.*?)(?:\]|$)")


def parse_action(completion: str) -> str:
    """The action in a generated completion: the text inside the last ``action: [ ... ]`` (cut to 50 chars).

    An unclosed bracket (generation stopped early) still yields what was generated; no ``action: [`` gives "".
    """
    found = _ACTION.findall(completion.split("\n")[0])
    return found[-1].strip()[:ACTION_CHARS].strip() if found else ""
