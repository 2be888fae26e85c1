"""TTM trajectories, automatic annotations, label propagation and the fine-tune formats on hand-made data."""

import math

import pytest

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.ttm.formats import (
    batch_fitness_label,
    bc_examples,
    examples,
    fitness_label,
    hindsight_examples,
    parse_action,
    play_prompt,
)
from lit_rlseq.ttm.trajectory import TextTrajectory, auto_annotate, future_summaries


def make_trajectory(actions=("look", "take apple", "eat apple"), scores=(0, 0, 1, 2), won=True):
    t = TextTrajectory.start("You are in a kitchen.", {"goal": "eat", "score": scores[0], "max_score": 2})
    for i, action in enumerate(actions):
        t.add_step(action, f"obs {i + 1}\nsecond line", {"score": scores[i + 1], "won": won and i == len(actions) - 1})
    return t


def test_auto_annotation_rule():
    t = auto_annotate(make_trajectory())
    # Score changes at states 2 and 3; state 3 is also the final state.
    assert t.hindsight_length == [0, 0, 2, 1]
    assert t.hindsight_summary[2] == "look; take apple: score up by 1 to 1 of 2"
    assert t.hindsight_summary[3] == "eat apple: score up by 1 to 2 of 2, game won"
    assert t.value[2] == 1.0 and t.value[3] == 1.0 and math.isnan(t.value[1])


def test_auto_annotation_without_progress_has_value_zero():
    t = auto_annotate(make_trajectory(actions=("look", "wait"), scores=(0, 0, 0), won=False))
    assert t.hindsight_length == [0, 0, 2]
    assert t.hindsight_summary[2] == "look; wait: no points (score 0 of 2)"
    assert t.value[2] == 0.0


def test_label_propagation():
    t = auto_annotate(make_trajectory())
    assert future_summaries(t, 0) == [2]  # state 2 covers steps 0 and 1
    assert future_summaries(t, 1) == [2]
    assert future_summaries(t, 2) == [3]
    assert future_summaries(t, 0, visible_until=1) == []  # not yet written at step 1
    # A human summary that covers 3 steps reaches back to step 0.
    h = make_trajectory()
    h.annotate(3, "got everything", 3, 0.5)
    assert future_summaries(h, 0) == [3] and future_summaries(h, 2) == [3]


def test_bad_annotation_is_rejected():
    t = make_trajectory()
    with pytest.raises(DataError, match="can cover 1..2"):
        t.annotate(2, "too long", 3, 1.0)
    with pytest.raises(DataError, match="one line"):
        t.annotate(2, "two\nlines", 1, 1.0)


def test_hindsight_expectation_format():
    t = auto_annotate(make_trajectory())
    ex = hindsight_examples(t, batch_mean_score=2.0, history=6)
    assert len(ex) == 3
    assert ex[0]["prompt"] == ("goal: eat\nstate: [You are in a kitchen.] fitness: 'high' batch_fitness: 'middle'\n")
    assert ex[0]["completion"] == (" expectation: look; take apple: score up by 1 to 1 of 2 summary:  length: 0"
                                   " value: 1.00 action: [ look ]\n")
    # Step 2: past step 0 shows the summary written at state 2 (visible by then); step 1 too.
    assert ex[2]["prompt"].splitlines()[1] == (
        "state: [You are in a kitchen., expectation: look; take apple: score up by 1 to 1 of 2] action: [ look ]")
    assert ex[2]["prompt"].splitlines()[2].startswith("state: [obs 1 second line, expectation: look; take apple")
    assert ex[2]["completion"].endswith("summary: look; take apple: score up by 1 to 1 of 2 length: 2 value: 1.00"
                                        " action: [ eat apple ]\n")
    # Past steps are limited to the history window.
    short = hindsight_examples(t, 2.0, history=2)
    assert len(short[2]["prompt"].splitlines()) == 3  # goal, one past step, the current state


def test_hindsight_past_steps_show_only_visible_summaries():
    t = auto_annotate(make_trajectory())
    ex = hindsight_examples(t, 0.0)
    # At step 1 the summary at state 2 is not written yet: step 0's expectation is empty.
    assert ex[1]["prompt"].splitlines()[1] == "state: [You are in a kitchen., expectation: ] action: [ look ]"
    assert "batch_fitness: 'low'" in ex[1]["prompt"]


def test_bc_format():
    t = make_trajectory()
    ex = bc_examples(t, history=6)
    assert [e["completion"] for e in ex] == [" action: [ look ]\n", " action: [ take apple ]\n",
                                             " action: [ eat apple ]\n"]
    assert ex[1]["prompt"] == "goal: eat\nstate: [You are in a kitchen.] action: [ look ]\nstate: [obs 1 second line]\n"


def test_play_prompt_is_the_training_prompt_at_high_fitness():
    t = auto_annotate(make_trajectory())
    prefix = TextTrajectory.start("You are in a kitchen.", {"goal": "eat", "score": 0})
    assert play_prompt(prefix, "hindsight_expectation_str") == hindsight_examples(t, 5.0)[0]["prompt"]
    assert play_prompt(prefix, "bc") == bc_examples(t)[0]["prompt"]


def test_fitness_bins():
    assert [fitness_label(v) for v in (0.0, 0.19, 0.2, 0.79, 0.8, 1.0)] == ["low", "low", "middle", "middle",
                                                                              "high", "high"]
    assert [batch_fitness_label(s) for s in (0.5, 1, 2.9, 3, 4)] == ["low", "middle", "middle", "high", "high"]


def test_parse_action():
    assert parse_action(" expectation: x summary: y length: 1 value: 1.00 action: [ take apple ]\n") == "take apple"
    assert parse_action(" action: [ open the frid") == "open the frid"  # generation stopped early
    assert parse_action("no action here") == ""
    assert len(parse_action(" action: [ " + "a" * 80 + " ]")) == 50
    assert parse_action(" action: [ go north ]\n action: [ other line ]") == "go north"


def test_unknown_format():
    with pytest.raises(UserError, match="unknown fine-tune format"):
        examples(make_trajectory(), "gpt3")
