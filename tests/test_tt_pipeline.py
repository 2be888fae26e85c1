"""bin/tt-mujoco: the stages it plans, skipping finished ones, and the comparison table and chart."""

import json

from lit_rlseq.trajectory.pipeline import compare, main, plan, run_stage


def test_plan_names_every_stage_with_its_dataset(tmp_path):
    stages = plan(tmp_path, "mujoco:Hopper-v5", "hopper", ["medium-replay", "medium-expert"], "small", 10, False)
    names = [s.name for s in stages]
    assert names[:2] == ["behaviour policy (PPO)", "datasets"]
    assert "TT on hopper-medium-expert" in names and "evaluate BC on hopper-medium-replay" in names
    tt = next(s for s in stages if s.name == "TT on hopper-medium-expert")
    assert '--data.init_args.select={"partition": ["medium", "expert"]}' in tt.command
    evaluate = next(s for s in stages if s.name == "evaluate TT on hopper-medium-replay")
    assert f"--model.init_args.checkpoint={tmp_path}/tt_hopper-medium-replay/checkpoints/last.ckpt" in evaluate.command
    assert evaluate.result == tmp_path / "results" / "tt_hopper-medium-replay.json"
    paper = plan(tmp_path, "mujoco:Hopper-v5", "hopper", ["medium"], "paper", 10, False)
    assert any("tt_hopper_evaluate_paper.yaml" in arg for s in paper for arg in s.command)


def test_finished_stages_are_skipped(tmp_path, capsys):
    stages = plan(tmp_path, "mujoco:Hopper-v5", "hopper", ["medium"], "small", 10, False)
    (tmp_path / "ppo").mkdir()
    (tmp_path / "ppo" / "complete").write_text(json.dumps({"command": [], "seconds": 1.0}))  # as run_stage writes it
    run_stage(stages[0], dry_run=True)
    evaluate = stages[-1]
    evaluate.result.parent.mkdir(parents=True)
    evaluate.result.write_text("{}")
    run_stage(evaluate, dry_run=True)
    out = capsys.readouterr().out
    assert out.count("done already") == 2
    assert main(["--dry-run", "--out", str(tmp_path / "dry")]) == 0
    assert "$ " in capsys.readouterr().out


def test_comparison_table_and_chart(tmp_path):
    (tmp_path / "datasets_summary.json").write_text(json.dumps({"datasets": {"medium": {
        "episodes": 50, "transitions": 9000, "return": 1000.0, "return_se": 10.0, "score": 31.4, "score_se": 0.3}}}))
    (tmp_path / "results").mkdir()
    for kind, score in (("bc", 25.0), ("tt", 40.0)):
        (tmp_path / "results" / f"{kind}_hopper-medium.json").write_text(json.dumps(
            {"episodes": 10, "return": score * 30, "return_se": 5.0, "score": score, "score_se": 1.5}))
    table = compare(tmp_path, "hopper", ["medium", "medium-replay"])
    assert "| hopper-medium | 31.4 ± 0.3 | 25.0 ± 1.5 | 40.0 ± 1.5 | 1000.0 ± 10.0 | 750.0 ± 5.0 | 1200.0 ± 5.0 " \
           "| 50 / 9000 | 10 / 10 |" in table
    assert "| hopper-medium-replay | n/a | n/a | n/a |" in table
    assert (tmp_path / "comparison.png").stat().st_size > 0
