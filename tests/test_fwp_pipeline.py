"""bin/fwp-atari's pieces that need no training: its time budget argument and the comparison drawn from partial
results (as it is re-drawn while the cores train)."""

import csv

import pytest

from lit_rlseq.fwp import pipeline
from lit_rlseq.loops.curves import FRAMES


@pytest.mark.parametrize("minutes, expected", [(80, "00:01:20:00"), (0.5, "00:00:00:30"), (1500.25, "01:01:00:15"),
                                               (1 / 120, "00:00:00:01")])
def test_max_minutes_becomes_lightnings_max_time(minutes, expected):
    assert pipeline.max_time_argument(minutes) == f"--trainer.max_time={expected}"


def test_bad_max_minutes_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["--max-minutes", "0", "--out", str(tmp_path)])
    assert "--max-minutes must be positive" in capsys.readouterr().err


def test_comparison_from_partial_results(tmp_path):
    """One core with a curve so far, one not started: the table and figure are written, the random policy's
    test score is the baseline, and what is missing reads as missing, not as a number."""
    (tmp_path / "lstm").mkdir()
    with (tmp_path / "lstm" / "learning_curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[FRAMES, "train/return", "eval/test/return"])
        writer.writeheader()
        writer.writerow({FRAMES: 4000, "train/return": 0.25, "eval/test/return": ""})
        writer.writerow({FRAMES: 8000, "train/return": 0.5, "eval/test/return": 0.75})
    random = {"life_return_mean": 0.18, "life_return_std_over_runs": 0.05, "game_return_mean": float("nan"),
              "games": 0.0}
    table = pipeline.compare(["lstm", "rdn"], "Breakout", tmp_path, {"random": random}, {}, 2, 30)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "8,000 | 0.50 | nan" in rows["lstm"]  # the last training return; no test mode yet
    assert "| rdn | 0 | nan |" in rows["rdn"]
    assert "0.18 ± 0.05" in rows["random policy"]
    assert (tmp_path / "comparison.md").read_text().strip() == table
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
