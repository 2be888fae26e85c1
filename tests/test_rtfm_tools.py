"""RTFM statistics script, benchmark and play loop, at a tiny scale."""

import pytest

from lit_rlseq.bench import REGISTRY
from lit_rlseq.bench.rtfm import rtfm_env_steps
from lit_rlseq.envs.rtfm import OUTCOMES, play, stats
from lit_rlseq.errors import UserError


def test_every_env_plays_exactly_its_share_of_episodes():
    outcomes, lengths = stats.run_episodes(
        "groups_simple_stationary", "uniform", episodes=50, max_steps=3, num_envs=8, seed=0
    )
    assert len(outcomes) == len(lengths) == 8 * 7  # ceil(50 / 8) episodes from each env
    assert set(outcomes.tolist()) <= {1, 2, 3, 4} and OUTCOMES.index("timeout") in outcomes
    assert lengths.min() >= 1 and lengths.max() <= 3
    assert (lengths[outcomes == OUTCOMES.index("timeout")] == 3).all()

    outcomes, lengths = stats.run_episodes("groups_simple", "valid", episodes=40, max_steps=None, num_envs=8)
    assert OUTCOMES.index("timeout") not in outcomes


def test_statistics_table(capsys):
    stats.main(["--episodes", "16", "--variants", "groups_simple", "--num-envs", "8"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["variant", "policy", "limit", "episodes"] and len(lines) == 2 + 4
    rows = [line.split() for line in lines[2:]]
    assert [row[1:3] for row in rows] == [["uniform", "80"], ["uniform", "none"], ["valid", "80"], ["valid", "none"]]
    for row in rows:
        shares = [float(x) for x in row[4:8]]
        assert row[3] == "16" and sum(shares) == pytest.approx(1.0, abs=0.003)
    assert float(rows[1][7]) == 0.0  # no timeouts without a limit

    stats.main(["--episodes", "16", "--variants", "groups_simple_stationary", "--num-envs", "8", "--expert"])
    assert capsys.readouterr().out.splitlines()[2].split()[1] == "expert"
    with pytest.raises(UserError, match="unknown RTFM variant"):
        stats.main(["--variants", "groups_hard"])


def test_env_step_benchmark_runs():
    assert REGISTRY["rtfm.env_steps"] is rtfm_env_steps
    result = rtfm_env_steps(0.01)
    assert result.figures["steps_per_s_1env"] > 0 and result.figures["steps_per_s_64envs"] > 0
    assert result.ratio == pytest.approx(result.figures["steps_per_s_64envs"] / 20_000)


def test_play_reads_keys_until_quit(monkeypatch, capsys):
    keys = iter(["d", "x", " ", "q", "w"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(keys))
    play.main(["--variant", "groups_simple_stationary", "--seed", "1"])
    out = capsys.readouterr().out
    assert "unknown key 'x'" in out and out.count("reward ") == 2 and next(keys) == "w"
    assert "step 0 of 80" in out and "| you " in out
