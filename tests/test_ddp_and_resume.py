"""Multi-process behaviour, run as a user would: `lightning fit` in subprocesses, for the toy IMPALA run and
for the LDD stage on RTFM (whose frozen teacher and dynamics checkpoint must survive both)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY_NET = ["--model.init_args.d_word=8", "--model.init_args.d_text=8", "--model.init_args.d_rep=16",
            "--model.init_args.channels=[8,8,8,8,8]"]
COMMON = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu",
          "--data.init_args.num_envs=4", "--data.init_args.unroll_length=5", "--data.init_args.num_workers=0"]
FRAMES_PER_STEP = 4 * 5


def run_args(config: str, dynamics_checkpoint: Path) -> list[str]:
    if config == "toy_impala":
        return ["--config", str(ROOT / "configs" / "toy_impala.yaml"), *TINY_NET, *COMMON]
    return ["--config", str(ROOT / "configs" / "ldd_rtfm.yaml"), *COMMON,
            f"--model.init_args.dynamics_checkpoint={dynamics_checkpoint}"]


def lightning(args, cwd, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "lit_rlseq", "fit", *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def finish(process, timeout=600):
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-4000:]
    return out


def probe(out: Path) -> list[str]:
    return ["--trainer.callbacks+=tests.ddp_probe.RecordPerRank", f"--trainer.callbacks.out={out}"]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["toy_impala", "ldd_rtfm"])
def test_two_process_ddp_on_cpu(config, tmp_path, dynamics_checkpoint):
    out_dir = tmp_path / "probe"
    finish(lightning([
        *run_args(config, dynamics_checkpoint), "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.max_epochs=2", "--data.init_args.steps_per_epoch=3",
        "--data=tests.ddp_probe.UnevenEvaluation", "--data.init_args.eval_envs={test: toy}",
        "--data.init_args.eval_episodes=5", "--data.init_args.eval_num_envs=5", *probe(out_dir),
    ] + (["--data.init_args.env=toy"] if config == "toy_impala" else
         ["--data.init_args.env=rtfm:groups_simple_stationary",
          "--data.init_args.eval_envs={test: rtfm:groups_simple_stationary_dev}"]), tmp_path))
    ranks = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    # Each rank stepped its own envs (different seeds).
    assert ranks[0]["first_obs_sum"] != ranks[1]["first_obs_sum"]
    # Frames count both ranks: 2 epochs x 3 steps x (5 steps x 4 envs) x 2 ranks.
    assert ranks[0]["frames"] == ranks[1]["frames"] == 2 * 3 * FRAMES_PER_STEP * 2
    # Rank 0 evaluated 5 episodes, rank 1 six; the logged value is the mean over all 11 episodes.
    assert [len(r["eval_returns"]) for r in ranks] == [5, 6]
    all_returns = ranks[0]["eval_returns"] + ranks[1]["eval_returns"]
    logged = ranks[0]["metrics"]["eval/test/return"]
    assert logged == pytest.approx(np.mean(all_returns), abs=1e-5)
    assert ranks[1]["metrics"]["eval/test/return"] == pytest.approx(logged, abs=1e-6)
    per_rank_means = [np.mean(r["eval_returns"]) for r in ranks]
    if not np.isclose(np.mean(per_rank_means), np.mean(all_returns)):
        assert logged != pytest.approx(np.mean(per_rank_means), abs=1e-6)  # not a mean of per-rank means


@pytest.mark.slow
@pytest.mark.parametrize("config", ["toy_impala", "ldd_rtfm"])
def test_kill_and_resume_from_last_checkpoint(config, tmp_path, dynamics_checkpoint):
    epochs, steps = 6, 3
    common = [*run_args(config, dynamics_checkpoint), f"--trainer.max_epochs={epochs}",
              f"--data.init_args.steps_per_epoch={steps}", "--data.init_args.eval_episodes=4",
              "--seed_everything=3", "--trainer.logger.init_args.save_dir=runs",
              "--trainer.logger.init_args.name=run",
              # the learning rate decays linearly over twice the run, so it ends at half its initial value
              "--model.init_args.lr_schedule=linear",
              f"--model.init_args.lr_decay_frames={2 * epochs * steps * FRAMES_PER_STEP}"]
    last = tmp_path / "runs" / "run" / "checkpoints" / "last.ckpt"

    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    finish(lightning(common + probe(reference_dir / "probe"), reference_dir))
    reference = json.loads((reference_dir / "probe" / "rank0.json").read_text())

    # The same run, killed with SIGKILL once two epochs are checkpointed.
    run = lightning(common + ["--trainer.callbacks+=tests.ddp_probe.SlowDown", "--trainer.callbacks.seconds=0.3"],
                    tmp_path, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        if last.exists() and torch.load(last, weights_only=False, map_location="cpu")["epoch"] >= 1:
            break
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    saved = torch.load(last, weights_only=False, map_location="cpu")
    killed_at = int(saved["state_dict"]["frames"])
    assert 0 < killed_at < epochs * steps * FRAMES_PER_STEP
    assert killed_at == (saved["epoch"] + 1) * steps * FRAMES_PER_STEP

    finish(lightning(common + ["--ckpt_path", str(last), *probe(tmp_path / "probe")], tmp_path))
    resumed = json.loads((tmp_path / "probe" / "rank0.json").read_text())
    # The frame counter continued from the checkpoint and ended where the uninterrupted run ended, and the
    # learning-rate schedule (driven by frames) and the optimizer's step count ended at the same values.
    assert resumed["frames"] == reference["frames"] == epochs * steps * FRAMES_PER_STEP
    initial_lr = 1e-3
    assert resumed["lr"] == pytest.approx(reference["lr"]) == pytest.approx(0.5 * initial_lr)
    assert resumed["optimizer_steps"] == reference["optimizer_steps"] == epochs * steps
    # Only the epochs after the checkpoint were trained again.
    assert reference["train_batches"] == epochs * steps
    assert resumed["train_batches"] == (epochs - saved["epoch"] - 1) * steps
    curve = (tmp_path / "runs" / "run" / "learning_curve.csv").read_text().splitlines()
    assert len(curve) == 1 + epochs  # rows from before the kill are kept, none duplicated
