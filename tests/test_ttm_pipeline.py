"""bin/ttm-cooking: the stage plan, the diversity measures and the results table/plot on a real store."""

import json

import pytest

from lit_rlseq.bench import load_all
from lit_rlseq.ttm.pipeline import diversity, main, plan, report


def test_diversity_measures():
    d = diversity(["look", "look", "", "eat apple"], ["a", "b", "b"])
    assert d == {"unique_action_ratio": 3 / 4, "unique_observation_ratio": 2 / 3, "blank_action_ratio": 1 / 4}


def test_plan_has_every_stage_per_filter(tmp_path):
    stages = plan(tmp_path, 2, 20, 10, 30, ["none", "closest"], ["--trainer.max_epochs=3"])
    names = [name for name, _, _ in stages]
    assert names == ["teacher play", "write_finetune", "fine-tune", "student_train play (filter none)",
                     "student_test play (filter none)", "student_train play (filter closest)",
                     "student_test play (filter closest)"]
    fit = stages[2][1]
    assert "--trainer.max_epochs=3" in fit and stages[2][2] == tmp_path / "lm"
    assert "--data.init_args.env=cooking_level_2" in stages[0][1] and "--data.init_args.max_rollouts=20" in stages[0][1]
    assert "--data.init_args.max_rollouts=10" in stages[6][1] and "--model.init_args.name=lm_student_closest" in stages[6][1]


def test_dry_run_prints_commands(tmp_path, capsys):
    assert main(["--dry-run", "--out", str(tmp_path)]) == 0
    assert "lit_rlseq play --config" in capsys.readouterr().out


@pytest.mark.slow
def test_report_on_a_teacher_store(ttm_store):
    out = ttm_store.parent
    text = report(out, level=1)
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 1 and rows[0]["partition"] == "teacher" and rows[0]["agent"] == "walkthrough"
    assert rows[0]["normalised"] == 1.0 and rows[0]["score"] == 3.0 and rows[0]["won"] == 1.0
    assert rows[0]["blank_action_ratio"] == 0.0 and 0 < rows[0]["unique_action_ratio"] <= 1
    assert "| teacher | walkthrough | 2 | 3.00 ± 0.00 / 3 | 1.000 ± 0.000 |" in text
    assert (out / "results.png").stat().st_size > 1000 and (out / "results.md").exists()


def test_ttm_benchmarks_are_registered():
    assert {"ttm.play_steps", "ttm.lm_train", "ttm.student_actions"} <= set(load_all())
