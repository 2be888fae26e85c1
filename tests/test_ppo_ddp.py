"""PPO under 2-process CPU DDP (gloo), run as a user would: every rank does the same optimizer steps, the
weights stay identical, and the observation statistics are pooled over both ranks' batches."""

import json

import pytest

from tests.test_ddp_and_resume import ROOT, finish, lightning


@pytest.mark.slow
def test_two_process_ddp_ppo_keeps_ranks_in_step(tmp_path):
    out = tmp_path / "probe"
    epochs, steps, envs, length, ppo_epochs, minibatches = 2, 2, 4, 16, 2, 4
    finish(lightning([
        "--config", str(ROOT / "configs" / "ppo_hopper.yaml"), "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.max_epochs={epochs}", "--data.init_args.env=toy:reach", "--data.init_args.eval_envs={test: toy:reach}",
        "--data.init_args.eval_episodes=4", "--data.init_args.eval_num_envs=4", f"--data.init_args.num_envs={envs}",
        f"--data.init_args.unroll_length={length}", f"--data.init_args.steps_per_epoch={steps}",
        f"--model.init_args.ppo_epochs={ppo_epochs}", f"--model.init_args.num_minibatches={minibatches}",
        "--trainer.callbacks+=tests.ddp_probe.RecordPolicyStatistics", f"--trainer.callbacks.out={out}",
        "--trainer.logger.init_args.save_dir=runs",
    ], tmp_path))
    ranks = [json.loads((out / f"stats{r}.json").read_text()) for r in range(2)]
    frames = epochs * steps * envs * length * 2
    for r in ranks:
        assert r["frames"] == frames
        assert r["optimizer_steps"] == epochs * steps * ppo_epochs * minibatches
        assert r["count"] == pytest.approx(frames, abs=1e-3)  # both ranks' observations, each counted once
    assert ranks[0]["mean"] == ranks[1]["mean"] and ranks[0]["var"] == ranks[1]["var"]
    assert ranks[0]["weights"] == pytest.approx(ranks[1]["weights"], rel=1e-6)
