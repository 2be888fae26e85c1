"""bin/ldd-rtfm: the comparison at equal frame budgets, and the whole pipeline at smoke scale."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lit_rlseq.ldd.pipeline import at_frames, compare, mean_std, plan
from lit_rlseq.loops.curves import FRAMES, write_curve

ROOT = Path(__file__).resolve().parents[1]


def curve(out: Path, method: str, seed: int, points: list[tuple[float, float, float]]) -> None:
    directory = out / method / f"seed{seed}"
    directory.mkdir(parents=True)
    rows = [{FRAMES: f, "eval/train/success": tr, "eval/dev/success": dv} for f, tr, dv in points]
    write_curve(directory / "learning_curve.csv", rows)


def test_values_are_read_at_equal_frame_budgets(tmp_path):
    rows = [{FRAMES: 100.0, "m": 0.1}, {FRAMES: 200.0, "m": 0.2}, {FRAMES: 300.0, "m": 0.3}]
    assert at_frames(rows, 250, "m") == 0.2 and at_frames(rows, 300, "m") == 0.3
    assert at_frames(rows, 50, "m") != at_frames(rows, 50, "m")  # NaN before the first evaluation
    assert mean_std([0.2, 0.4]) == "0.300 ± 0.100" and mean_std([0.5]) == "0.500"

    curve(tmp_path, "baseline", 0, [(100, 0.1, 0.0), (200, 0.2, 0.1), (300, 0.3, 0.2)])
    curve(tmp_path, "baseline", 1, [(100, 0.1, 0.0), (200, 0.4, 0.3), (300, 0.5, 0.4)])
    curve(tmp_path, "ldd", 0, [(100, 0.5, 0.4), (200, 0.6, 0.5)])  # stopped early: the budget is 200 frames
    curve(tmp_path, "ldd", 1, [(100, 0.7, 0.6), (200, 0.8, 0.7), (300, 0.9, 0.8)])
    table = compare(tmp_path, [0, 1], {"baseline 0": 10.0, "baseline 1": 30.0, "ldd 0": 20.0, "ldd 1": 20.0})
    assert "| IMPALA baseline | 200 | 0.300 ± 0.100 | 0.200 ± 0.100 | 20.000 ± 10.000 |" in table
    assert "| LDD | 200 | 0.700 ± 0.100 | 0.600 ± 0.100 | 20.000 ± 0.000 |" in table
    assert "| LDD | 300 |" not in table  # no method is compared beyond what every run reached
    # Learning speed: the mean of each run's evaluations up to the common budget, then over seeds.
    assert "| IMPALA baseline | mean of evaluations ≤ 200 | 0.200 ± 0.050 | 0.100 ± 0.050 | |" in table
    assert "| LDD | mean of evaluations ≤ 200 | 0.650 ± 0.100 | 0.550 ± 0.100 | |" in table
    level = json.loads((tmp_path / "random_level.json").read_text())["success"]
    assert 0 < level["train"] < 0.5 and 0 < level["dev"] < 0.5  # RTFM S1's random level is drawn, not made up
    assert f"| random policy | | {level['train']:.3f} | {level['dev']:.3f} | |" in table
    assert (tmp_path / "comparison.png").stat().st_size > 0


def test_plan_runs_baselines_before_the_stages_ldd_needs():
    stages = plan(Path("/tmp/out/ldd_rtfm"), [0, 1], "small", ["--trainer.devices=2"])
    names = [s.name for s in stages]
    assert names == ["baseline seed 0", "baseline seed 1", "demonstrations", "dynamics model", "LDD seed 0",
                     "LDD seed 1"]
    ldd = stages[-1].command
    assert "--model.init_args.dynamics_checkpoint=/tmp/out/ldd_rtfm/dynamics/checkpoints/best.ckpt" in ldd
    assert "--trainer.devices=2" in ldd and "--trainer.devices=2" not in stages[2].command
    with pytest.raises(SystemExit, match="no tiny-scale settings"):
        plan(Path("/tmp/out"), [0], "tiny", [])


@pytest.mark.slow
def test_the_whole_pipeline_at_smoke_scale_then_a_rerun_skips_every_stage(tmp_path):
    command = [sys.executable, "-m", "lit_rlseq.ldd.pipeline", "--smoke", "--out", str(tmp_path / "ldd_rtfm")]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = tmp_path / "ldd_rtfm"
    report = (out / "comparison.md").read_text()
    assert "| IMPALA baseline |" in report and "| LDD |" in report
    assert (out / "comparison.png").exists() and (out / "dynamics" / "dynamics_metrics.png").exists()
    for stage in ("baseline/seed0", "dynamics", "ldd/seed0"):
        assert json.loads((out / stage / "complete").read_text())["seconds"] > 0

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert again.stdout.count("done already") == 3  # baseline, dynamics, LDD
    assert "collecting 0" in again.stdout + again.stderr  # the store already holds every episode
