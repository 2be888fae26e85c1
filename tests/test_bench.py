"""Every benchmark runs (at a tiny scale) and reports what bin/bench prints; speed is never asserted here."""

import json
import math

import pytest

from lit_rlseq.bench import BenchResult, load_all
from lit_rlseq.bench.__main__ import main

BENCHMARKS = sorted(load_all())


def test_the_benchmarks_issue_2_and_3_ask_for_are_registered():
    assert {"rollouts.windows", "rollouts.bytes", "loops.toy_impala", "rtfm.env_steps", "ldd.rtfm_baseline"} <= set(BENCHMARKS)
    assert {"fwp.rules", "fwp.collector", "fwp.learner", "fwp.atari_vector"} <= set(BENCHMARKS)  # issue 8


def test_the_ppo_benchmarks_are_registered():
    assert {"ppo.toy", "ppo.hopper"} <= set(BENCHMARKS)


def test_the_procgen_benchmarks_issue_7_asks_for_are_registered():
    assert {"procgen.collector", "procgen.ppo", "procgen.simulator"} <= set(BENCHMARKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_and_reports_finite_figures(name):
    results = load_all()[name](0.01)
    results = results if isinstance(results, list) else [results]
    assert results and all(isinstance(r, BenchResult) for r in results)
    for result in results:
        assert result.name.startswith(name)
        assert result.figures and all(math.isfinite(v) and v >= 0 for v in result.figures.values())
        assert result.ratio is None or result.ratio > 0


def test_json_lines(capsys):
    assert main(["--json", "--scale", "0.01", "rtfm.env_steps"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    record = json.loads(lines[0])
    assert record["name"] == "rtfm.env_steps" and "steps_per_s_64envs" in record["figures"] and record["ratio"] > 0


def test_unknown_benchmark_is_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["no.such.bench"])
    assert "unknown benchmark" in capsys.readouterr().err


def test_the_trajectory_transformer_benchmarks_are_registered():
    assert {"trajectory.planner_latency", "trajectory.planning_throughput", "trajectory.training"} <= set(BENCHMARKS)
