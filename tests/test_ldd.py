"""The LDD RL stage: initialisation from the dynamics encoder, the frozen teacher, the distillation loss."""

import pytest
import torch

from lit_rlseq.envs.rtfm import rtfm_vocabulary
from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.ldd import LDDImpala
from lit_rlseq.ldd.dynamics import load_dynamics_encoder
from lit_rlseq.loops.online import OnlineDataModule


@pytest.fixture
def data():
    return OnlineDataModule("rtfm:groups_simple_stationary", num_envs=4, unroll_length=6, steps_per_epoch=1,
                            eval_envs={}, seed=0)


def unroll_of(dm, policy):
    return dm.make_collector(0, 0).unroll(policy, dm.unroll_length)


def test_policy_starts_from_the_dynamics_encoder_and_the_teacher_is_frozen(data, dynamics_checkpoint):
    module = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions)
    _, encoder_state = load_dynamics_encoder(str(dynamics_checkpoint))
    for name, value in module.policy.encoder.state_dict().items():
        assert torch.equal(value, encoder_state[name]), name
    assert not any(p.requires_grad for p in module.teacher.parameters())
    trainable = {id(p) for p in module.trainable_parameters()}
    assert not trainable & {id(p) for p in module.teacher.parameters()}
    assert {id(p) for p in module.policy.parameters()} <= trainable


def test_distillation_is_zero_at_the_start_and_pulls_the_student_back(data, dynamics_checkpoint):
    module = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions)
    unroll = unroll_of(data, module.policy)
    out, extra = module.learner_forward(unroll)
    assert module.auxiliary_losses(unroll, out, extra)["distill"].item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():  # move the student away from the teacher
        for p in module.policy.encoder.fc.parameters():
            p.add_(0.1)
    out, extra = module.learner_forward(unroll)
    loss = module.auxiliary_losses(unroll, out, extra)["distill"]
    assert loss.item() > 0
    loss.backward()
    assert module.policy.encoder.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.teacher.parameters())


def test_the_loss_sums_per_step_errors_over_time_and_the_quirk_keeps_the_first_step(data, dynamics_checkpoint):
    every_step = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, distill_weight=2.0)
    first_only = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, distill_weight=2.0,
                           distill_first_step_only=True)
    first_only.load_state_dict(every_step.state_dict())
    with torch.no_grad():
        for module in (every_step, first_only):
            module.policy.encoder.fc.bias.add_(0.3)
    unroll = unroll_of(data, every_step.policy)
    out, extra = every_step.learner_forward(unroll)
    with torch.no_grad():
        teacher = every_step.teacher({k: v[:-1].flatten(0, 1) for k, v in unroll.obs.items()}).rep
    per_step = (extra["rep"][:-1].flatten(0, 1) - teacher).pow(2).mean(-1).unflatten(0, (6, 4))  # [T, B]
    total = every_step.auxiliary_losses(unroll, out, extra)["distill"]
    assert total.item() == pytest.approx(2.0 * per_step.sum(0).mean().item(), rel=1e-5)
    out, extra = first_only.learner_forward(unroll)
    quirk = first_only.auxiliary_losses(unroll, out, extra)["distill"]
    assert quirk.item() == pytest.approx(2.0 * per_step[0].mean().item(), rel=1e-5)


def test_tabula_rasa_switch_keeps_fresh_weights(data, dynamics_checkpoint):
    module = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, init_from_dynamics=False)
    _, encoder_state = load_dynamics_encoder(str(dynamics_checkpoint))
    assert not torch.equal(module.policy.encoder.fc.weight, encoder_state["fc.weight"])
    assert torch.equal(module.teacher.fc.weight, encoder_state["fc.weight"])


def test_missing_checkpoint_names_the_command_that_makes_it(data, tmp_path):
    with pytest.raises(MissingArtifactError, match="lightning fit --config configs/ldd_rtfm_dynamics.yaml"):
        LDDImpala(str(tmp_path / "best.ckpt"), data.vocab, data.num_actions)


def test_another_vocabulary_is_refused(data, dynamics_checkpoint):
    other = list(rtfm_vocabulary().words)
    other[5], other[6] = other[6], other[5]
    with pytest.raises(DataError, match="vocabulary"):
        LDDImpala(str(dynamics_checkpoint), other, data.num_actions)


def test_hand_over_scales_student_and_teacher_once_and_keeps_their_direction(data, dynamics_checkpoint):
    module = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, handover_rep_rms=0.2)
    unroll = unroll_of(data, module.policy)
    obs = {k: v.flatten(0, 1) for k, v in unroll.obs.items()}
    with torch.no_grad():
        before = module.teacher(obs).rep
    module.on_train_batch_start(unroll, 0)
    factor = module.handover_scale.item()
    with torch.no_grad():
        teacher, student = module.teacher(obs).rep, module.policy.encoder(obs).rep
    assert factor == pytest.approx(0.2 / before.pow(2).mean().sqrt().item(), rel=1e-5)
    assert teacher.pow(2).mean().sqrt().item() == pytest.approx(0.2, rel=1e-4)
    torch.testing.assert_close(teacher, before * factor, rtol=1e-4, atol=1e-6)  # the same features, rescaled
    torch.testing.assert_close(student, teacher)  # distillation still starts at zero
    # Done once: a later batch, or a module restored from a checkpoint taken after it, is not rescaled again.
    module.on_train_batch_start(unroll, 1)
    assert module.handover_scale.item() == factor
    restored = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, handover_rep_rms=0.2)
    restored.load_state_dict(module.state_dict())
    restored.on_train_batch_start(unroll, 0)
    torch.testing.assert_close(restored.teacher(obs).rep, teacher)


def test_hand_over_scaling_can_be_switched_off_and_refuses_a_bad_target(data, dynamics_checkpoint):
    module = LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, handover_rep_rms=None)
    weight = module.policy.encoder.fc.weight.clone()
    module.on_train_batch_start(unroll_of(data, module.policy), 0)
    assert torch.equal(module.policy.encoder.fc.weight, weight)
    with pytest.raises(UserError, match="handover_rep_rms"):
        LDDImpala(str(dynamics_checkpoint), data.vocab, data.num_actions, handover_rep_rms=0.0)
