"""EMMA with PPO on Messenger and LDD's RL stage: curriculum checkpoints, freezing, and distillation that
reaches the trained policy."""

import copy

import pytest
import torch

from lit_rlseq.envs.messenger import MessengerVectorEnv
from lit_rlseq.errors import DataError, UserError
from lit_rlseq.ldd.messenger import MessengerDynamicsModule
from lit_rlseq.ldd.messenger_pipeline import plan
from lit_rlseq.ldd.messenger_rl import EmmaPPO, LDDEmmaPPO
from lit_rlseq.loops.ppo import Minibatch

SIZES = dict(d_word=16, d_model=16, conv_channels=8, hidden=16)


@pytest.fixture(scope="module")
def vocab():
    return MessengerVectorEnv("s1").vocab.words


@pytest.fixture(scope="module")
def dynamics_ckpt(tmp_path_factory, vocab):
    torch.manual_seed(0)
    module = MessengerDynamicsModule(vocab=vocab, num_actions=5, num_layers=1, num_classes=17, **SIZES)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    path = tmp_path_factory.mktemp("dyn") / "best.ckpt"
    torch.save(checkpoint, path)
    return path, module


def minibatch(vocab, steps=4, envs=6):
    env = MessengerVectorEnv("s1", num_envs=envs, seed=0)
    obs, _ = env.reset()
    seq = []
    for _ in range(steps):
        seq.append(obs)
        obs, *_ = env.step(torch.randint(0, 5, (envs,)).numpy())
    obs = {k: torch.stack([torch.from_numpy(s[k]) for s in seq]) for k in seq[0]}
    zeros = torch.zeros(steps, envs)
    first = torch.zeros(steps, envs, dtype=torch.bool)
    first[0] = True
    return Minibatch(obs=obs, first=first, initial_state=(), action=torch.zeros(steps, envs, dtype=torch.long),
                     behaviour_logits=torch.zeros(steps, envs, 5), old_log_prob=zeros, old_value=zeros,
                     advantages=zeros, returns=zeros)


def test_ldd_starts_from_the_dynamics_model_and_its_distillation_gradient_reaches_the_policy(vocab, dynamics_ckpt):
    path, dynamics = dynamics_ckpt
    module = LDDEmmaPPO(dynamics_checkpoint=str(path), vocab=vocab, num_actions=5)
    for name, value in dynamics.model.trunk.state_dict().items():
        torch.testing.assert_close(module.policy.state_dict()[name], value)
        torch.testing.assert_close(module.teacher.state_dict()[name], value)
    assert not any(p.requires_grad for p in module.teacher.parameters())
    assert all(p.requires_grad for p in module.policy.parameters())
    batch = minibatch(vocab)
    # Move the student away from its teacher (as PPO updates do), then the distillation term pulls it back.
    with torch.no_grad():
        module.policy.conv.weight.add_(0.1 * torch.randn_like(module.policy.conv.weight))
    out, extra = module.learner_forward(batch)
    distill = module.auxiliary_losses(batch, out, extra)["distill"]
    assert distill > 0
    distill.backward()
    assert module.policy.conv.weight.grad.abs().sum() > 0
    assert module.policy.manual_encoder.words.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.teacher.parameters())
    before = copy.deepcopy(module.policy.state_dict())
    optimizer = torch.optim.SGD(module.trainable_parameters(), lr=1.0)
    optimizer.step()
    assert not torch.equal(before["conv.weight"], module.policy.conv.weight)
    out, extra = module.learner_forward(batch)
    assert module.auxiliary_losses(batch, out, extra)["distill"] < distill  # one step toward the teacher


def test_distillation_can_be_switched_off(vocab, dynamics_ckpt):
    module = LDDEmmaPPO(dynamics_checkpoint=str(dynamics_ckpt[0]), vocab=vocab, num_actions=5, distill_weight=0.0)
    batch = minibatch(vocab)
    assert module.auxiliary_losses(batch, *module.learner_forward(batch)) == {}


def test_handover_scales_student_and_teacher_features_exactly_once(vocab, dynamics_ckpt):
    from lit_rlseq.loops.unroll import Unroll

    path = str(dynamics_ckpt[0])
    batch = minibatch(vocab)
    unroll = Unroll(obs=batch.obs, first=batch.first, action=batch.action[:-1], reward=batch.advantages[:-1],
                    done=batch.first[1:], behaviour_logits=batch.behaviour_logits[:-1])
    module = LDDEmmaPPO(dynamics_checkpoint=path, vocab=vocab, num_actions=5, handover_feature_rms=0.01)
    features = lambda net: net.forward_with_features(batch.obs, batch.first, ()).features  # noqa: E731
    with torch.no_grad():
        before = features(module.policy)
    module.on_train_batch_start(unroll, 0)
    factor = float(module.handover_scale)
    assert factor > 0
    with torch.no_grad():
        assert torch.allclose(features(module.teacher).pow(2).mean().sqrt(), torch.tensor(0.01), rtol=1e-4)
        torch.testing.assert_close(features(module.policy), factor * before)  # the same direction, rescaled
    conv = module.policy.conv.weight.clone()
    module.on_train_batch_start(unroll, 1)  # once only
    assert torch.equal(module.policy.conv.weight, conv)
    resumed = LDDEmmaPPO(dynamics_checkpoint=path, vocab=vocab, num_actions=5, handover_feature_rms=0.01)
    resumed.load_state_dict(module.state_dict())
    resumed.on_train_batch_start(unroll, 0)  # a resumed run keeps the checkpoint's scale
    assert torch.equal(resumed.policy.conv.weight, conv)
    off = LDDEmmaPPO(dynamics_checkpoint=path, vocab=vocab, num_actions=5)
    off.on_train_batch_start(unroll, 0)  # the default keeps the dynamics model's scale, as the reference
    assert float(off.handover_scale) == 0
    with pytest.raises(UserError, match="handover_feature_rms must be positive"):
        LDDEmmaPPO(dynamics_checkpoint=path, vocab=vocab, num_actions=5, handover_feature_rms=0.0)


def test_vocabulary_mismatch_is_refused(vocab, dynamics_ckpt):
    with pytest.raises(DataError, match="another vocabulary"):
        LDDEmmaPPO(dynamics_checkpoint=str(dynamics_ckpt[0]), vocab=vocab[:-1], num_actions=5)


def test_curriculum_checkpoint_and_freezing(vocab, tmp_path):
    torch.manual_seed(0)
    s1 = EmmaPPO(vocab=vocab, num_actions=5, **SIZES)
    path = tmp_path / "s1.ckpt"
    torch.save({"state_dict": s1.state_dict(), "hyper_parameters": dict(s1.hparams)}, path)
    s2 = EmmaPPO(vocab=vocab, num_actions=5, init_checkpoint=str(path),
                 freeze=["manual_encoder.key", "manual_encoder.key_score", "entities"], **SIZES)
    for name, value in s1.policy.state_dict().items():
        torch.testing.assert_close(s2.policy.state_dict()[name], value)
    frozen = {n for n, p in s2.policy.named_parameters() if not p.requires_grad}
    assert frozen == {"manual_encoder.key.weight", "manual_encoder.key.bias", "manual_encoder.key_score.weight",
                      "manual_encoder.key_score.bias", "entities.weight"}
    assert len(s2.trainable_parameters()) == len(list(s2.policy.parameters())) - 5
    with pytest.raises(UserError, match="names no EMMA parameter"):
        EmmaPPO(vocab=vocab, num_actions=5, freeze=["nothing"], **SIZES)
    with pytest.raises(DataError, match="another vocabulary"):
        EmmaPPO(vocab=vocab[:-1], num_actions=5, init_checkpoint=str(path), **SIZES)


def test_pipeline_plan_runs_the_curriculum_per_method():
    from pathlib import Path

    out = Path("/tmp/out/ldd_messenger")
    stages = plan(out, [0, 1], ["s1", "s2"], "small", ["--trainer.devices=2"])
    assert [s.name for s in stages] == [
        "EMMA baseline S1 seed 0", "EMMA baseline S1 seed 1", "EMMA baseline S2 seed 0", "EMMA baseline S2 seed 1",
        "demonstrations", "dynamics model", "LDD S1 seed 0", "LDD S1 seed 1", "LDD S2 seed 0", "LDD S2 seed 1"]
    ldd_s2 = stages[-1].command
    assert f"--model.init_args.init_checkpoint={out}/ldd_s1/seed1/checkpoints/last.ckpt" in ldd_s2
    assert f"--model.init_args.dynamics_checkpoint={out}/dynamics/checkpoints/best.ckpt" in ldd_s2
    assert any(a.endswith("ldd_messenger_s2.yaml") for a in ldd_s2)
    assert f"--model.init_args.init_checkpoint={out}/baseline_s1/seed0/checkpoints/last.ckpt" in stages[2].command
    assert not any("init_checkpoint" in a for a in stages[0].command)
    assert stages[-1].directory == out / "ldd_s2" / "seed1" and "--trainer.devices=2" in ldd_s2


def test_pipeline_plan_s3_continues_from_s2_and_stages_must_be_a_prefix(capsys):
    from pathlib import Path

    from lit_rlseq.ldd.messenger_pipeline import comparison, eval_max_steps, main

    out = Path("/tmp/out/ldd_messenger")
    stages = plan(out, [0], ["s1", "s2", "s3"], "paper", [])
    by_name = {s.name: s.command for s in stages}
    for method, config in (("EMMA baseline", "ldd_messenger_baseline_s3"), ("LDD", "ldd_messenger_s3")):
        command = by_name[f"{method} S3 seed 0"]
        previous = "baseline" if method == "EMMA baseline" else "ldd"
        assert f"--model.init_args.init_checkpoint={out}/{previous}_s2/seed0/checkpoints/last.ckpt" in command
        assert any(a.endswith(f"configs/{config}.yaml") for a in command)
        assert any(a.endswith(f"configs/scale/{config}_paper.yaml") for a in command)
    # The random policy's level is measured at each stage's own evaluation limit, at the chosen scale.
    assert eval_max_steps(out, "baseline_s3", [0], "s3") == 128
    assert eval_max_steps(out, "baseline_s1", [0], "s1") == 4  # the small configs: EMMA's S1 limit
    assert eval_max_steps(out, "baseline_s1", [0], "s1", "paper") == 10  # the paper overlay: LDD's
    assert dict(comparison("s2", 10).random_envs)["win rate val"] == ("messenger:s2_val", {"max_steps": 10})
    assert dict(comparison("s1", 4).random_envs)["val"] == ("messenger:s1_val", {"max_steps": 4})
    with pytest.raises(SystemExit):
        main(["--stages", "s1", "s3", "--dry-run"])
    assert "prefix of the curriculum" in capsys.readouterr().err


def test_pipeline_s2_at_emmas_setting_has_its_own_runs_and_reads_their_limit(tmp_path):
    from lit_rlseq.ldd.messenger_pipeline import comparison, eval_max_steps

    out = tmp_path / "ldd_messenger"
    stages = {s.name: s for s in plan(out, [1], ["s1", "s2", "s3"], "small", [], s2_setting="emma")}
    s1, s2, s3 = (stages[f"LDD S{k} seed 1"] for k in (1, 2, 3))
    assert s1.directory == out / "ldd_s1" / "seed1"  # S1 is shared by both settings
    assert s2.directory == out / "ldd_s2_emma" / "seed1" and s3.directory == out / "ldd_s3_emma" / "seed1"
    assert f"--model.init_args.init_checkpoint={out}/ldd_s1/seed1/checkpoints/last.ckpt" in s2.command
    assert "--model.init_args.discount=0.99" in s2.command
    assert "--data.init_args.eval_env_kwargs={max_steps: 64}" in s2.command
    assert f"--model.init_args.init_checkpoint={out}/ldd_s2_emma/seed1/checkpoints/last.ckpt" in s3.command
    assert "--model.init_args.discount=0.99" not in s3.command  # S3's configs hold EMMA's S3 setting
    # The comparison reads the runs' saved config, which holds the command line's limit.
    saved = out / "baseline_s2_emma" / "seed1"
    saved.mkdir(parents=True)
    (saved / "config.yaml").write_text("data:\n  init_args:\n    eval_env_kwargs: {max_steps: 64}\n")
    assert eval_max_steps(out, "baseline_s2_emma", [0, 1], "s2") == 64
    spec = comparison("s2", 64, "emma")
    assert spec.methods == ("baseline_s2_emma", "ldd_s2_emma") and spec.name == "comparison_s2_emma"
    assert dict(spec.random_envs)["win rate test"] == ("messenger:s2_test", {"max_steps": 64})
    assert dict(spec.random_envs)["return val"] == ("messenger:s2_val", {"max_steps": 64})
    assert dict(spec.metrics)["return test"] == "eval/test/return"
    assert dict(spec.random_keys) == {"return val": "return", "return test": "return"}


def test_s2_comparison_reports_returns_beside_win_rates(tmp_path):
    import dataclasses
    import json

    from lit_rlseq.ldd.messenger_pipeline import comparison
    from lit_rlseq.ldd.pipeline import compare
    from lit_rlseq.loops.curves import FRAMES, write_curve

    for method, returns in (("baseline_s2", (-0.98, -0.95)), ("ldd_s2", (-0.97, -0.90))):
        directory = tmp_path / method / "seed0"
        directory.mkdir(parents=True)
        write_curve(directory / "learning_curve.csv", [
            {FRAMES: f, "eval/val/success": 0.0, "eval/test/success": 0.0, "eval/val/return": r,
             "eval/test/return": r} for f, r in zip((100.0, 200.0), returns)])
    spec = dataclasses.replace(comparison("s2", 10), random_episodes=200)
    table = compare(tmp_path, [0], {}, spec)
    assert "| method | frames | win rate val | win rate test | return val | return test |" in table
    assert "| LDD | 200 | 0.000 | 0.000 | -0.900 | -0.900 |" in table
    assert "| EMMA baseline | mean of evaluations ≤ 200 | 0.000 | 0.000 | -0.965 | -0.965 |" in table
    levels = json.loads((tmp_path / "random_level_comparison_s2.json").read_text())["levels"]
    # The random policy at S2's 10-step limit almost never wins and mostly times out (return near -1).
    assert levels["win rate val"]["success"] < 0.05 and -1.0 <= levels["return val"]["return"] < -0.8
    assert (tmp_path / "comparison_s2.png").stat().st_size > 0


@pytest.mark.slow
def test_the_messenger_pipeline_at_smoke_scale_with_s2_at_emmas_setting(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ldd_messenger"
    command = [sys.executable, "-m", "lit_rlseq.ldd.messenger_pipeline", "--smoke", "--out", str(out),
               "--stages", "s1", "s2", "--s2-setting", "emma"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for method in ("baseline", "ldd"):
        for directory in (f"{method}_s1", f"{method}_s2_emma"):
            assert (out / directory / "seed0" / "complete").exists()
    s2 = (out / "comparison_s2_emma.md").read_text()
    assert "(64-step limit, EMMA's setting)" in s2 and "| return val |" in s2
    assert "(4-step limit)" in (out / "comparison_s1.md").read_text()
    assert (out / "comparison_s2_emma.png").exists() and (out / "dynamics" / "dynamics_metrics.png").exists()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert again.stdout.count("done already") == 5  # 2 baselines, the dynamics model, 2 LDD runs
