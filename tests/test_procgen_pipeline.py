"""bin/procgen-sim's plan: the stages in order, wired to each other's outputs, resumable (dry runs only)."""

import json

from lit_rlseq.procgen_sim.pipeline import main


def commands(capsys) -> list[str]:
    return [line[2:] for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]


def test_dry_run_wires_the_stages_together(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--dry-run", "--out", str(out)]) == 0
    agent, record, simulator, *analyses = commands(capsys)
    ckpt = out / "agent" / "checkpoints" / "last.ckpt"
    assert " fit " in agent and "procgen_agent.yaml" in agent
    assert " collect " in record and f"--ckpt_path={ckpt}" in record and f"store={out / 'recordings'}" in record
    assert "procgen_sim.yaml" in simulator and f"agent_checkpoint={ckpt}" in simulator
    assert [a.split()[3] for a in analyses] == ["hidden", "evaluate", "saliency", "optimise"]


def test_finished_stages_are_skipped_and_interrupted_ones_resume(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "agent").mkdir(parents=True)
    (out / "agent" / "complete").write_text(json.dumps({"seconds": 1.0}))
    (out / "simulator" / "checkpoints").mkdir(parents=True)
    (out / "simulator" / "checkpoints" / "last.ckpt").write_text("")
    (out / "report").mkdir()
    (out / "report" / "hidden.md").write_text("done")
    assert main(["--dry-run", "--out", str(out)]) == 0
    record, simulator, *analyses = commands(capsys)
    assert " collect " in record
    assert simulator.endswith(f"--ckpt_path {out / 'simulator' / 'checkpoints' / 'last.ckpt'}")
    assert len(analyses) == 3
    assert main(["--dry-run", "--out", str(out), "--from", "agent"]) == 0
    assert len(commands(capsys)) == 3 + 4 and not (out / "agent" / "complete").exists()
