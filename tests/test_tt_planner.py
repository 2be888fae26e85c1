"""The beam-search planner: the pure sampling pieces, cropping, and cached == uncached plans."""

import numpy as np
import pytest
import torch

from lit_rlseq.errors import UserError
from lit_rlseq.trajectory.model import TrajectoryGPT, TrajectoryGPTConfig
from lit_rlseq.trajectory.planner import (
    PlannerSettings,
    beam_plan,
    beam_plan_reference,
    crop_start,
    expansion_rows,
    filter_cdf,
    top_k_logits,
)


def test_cdf_filter_drops_the_improbable_tail_and_its_ties():
    probs = torch.tensor([[0.05, 0.1, 0.15, 0.3, 0.4]])
    out = filter_cdf(probs.log(), 0.3)
    # ascending cumulative: 0.05, 0.15, 0.30, ... -> below 0.3: the first two; drop tokens with p <= 0.1
    assert (out[0, :2] == -1000).all() and torch.allclose(out[0, 2:], probs.log()[0, 2:])
    ties = torch.tensor([[0.1, 0.1, 0.1, 0.7]])
    out = filter_cdf(ties.log(), 0.15)  # only the first 0.1 is below, but its ties go too
    assert (out[0, :3] == -1000).all() and out[0, 3] > -1000
    # nothing below the threshold: the least probable tokens still go (the reference's behaviour)
    out = filter_cdf(torch.tensor([[0.5, 0.5]]).log(), 0.2)
    assert (out == -1000).all()


def test_top_k_keeps_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    out = top_k_logits(logits, 2)
    assert torch.isinf(out[0, [0, 4]]).all() and torch.equal(out[0, 1:4], logits[0, 1:4])


def test_crop_start_cuts_whole_transitions():
    # hopper: transition_dim 16, block 79 (5 context transitions)
    assert crop_start(79, 79, 16) == 0
    assert crop_start(80, 79, 16) == 16
    assert crop_start(91, 79, 16) == 16  # 5 transitions + an observation: the model sees the last 4 + obs
    assert crop_start(96, 79, 16) == 32 and crop_start(95, 79, 16) == 16


def test_expansion_tiles_each_envs_rows():
    assert expansion_rows(2, 3, 2, "cpu").tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]


def tiny_model(window=4) -> tuple[TrajectoryGPT, torch.Tensor]:
    torch.manual_seed(0)
    config = TrajectoryGPTConfig(observation_dim=3, action_dim=2, n_bins=10, window=window, n_layer=2, n_embd=32,
                                 n_head=2, dropout=0.0)
    model = TrajectoryGPT(config).double().eval()
    thresholds = torch.sort(torch.randn(11, config.transition_dim, dtype=torch.float64), dim=0).values
    return model, thresholds


@pytest.mark.parametrize("context", [0, 1, 3])  # the prefix grows past the crop window during the search
def test_cached_and_uncached_plans_are_identical(context):
    model, thresholds = tiny_model()
    settings = PlannerSettings(horizon=5, beam_width=6, n_expand=2, max_context_transitions=3)
    prefixes = torch.randint(0, 10, (3, context * 7 + 3))
    plans = beam_plan(model, prefixes, thresholds, settings, torch.Generator().manual_seed(1))
    reference = beam_plan_reference(model, prefixes, thresholds, settings, torch.Generator().manual_seed(1))
    assert plans.shape == (3, 5, 7)
    assert torch.equal(plans, reference)
    other = beam_plan(model, prefixes, thresholds, settings, torch.Generator().manual_seed(2))
    assert not torch.equal(plans, other)  # the plans do depend on the random draws
    if context:
        # the plan's first transition follows the prefix's observation: its observation tokens are the prefix's
        assert torch.equal(plans[:, 0, :3], prefixes[:, -3:])


def test_identical_with_top_k_actions_and_the_whole_block():
    model, thresholds = tiny_model()
    settings = PlannerSettings(horizon=3, beam_width=4, n_expand=3, max_context_transitions=None, k_act=3,
                               cdf_act=None)
    prefixes = torch.randint(0, 10, (2, 2 * 7 + 3))
    a = beam_plan(model, prefixes, thresholds, settings, torch.Generator().manual_seed(5))
    b = beam_plan_reference(model, prefixes, thresholds, settings, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_the_best_plan_maximises_expected_return():
    # A model whose reward head strongly prefers the top bin after action token 9 in the first action slot, and
    # the bottom bin otherwise: the planner must pick plans starting with action token 9.
    model, thresholds = tiny_model(window=3)
    settings = PlannerSettings(horizon=1, beam_width=8, n_expand=2, max_context_transitions=None, cdf_act=None)
    prefixes = torch.randint(0, 10, (1, 3))
    with torch.no_grad():
        gpt = model.gpt
        gpt.head.zero_()
    # reward is predicted at position of the last action (head index 4); make it copy the action via embeddings:
    # simplest exact construction: bias the reward head by the embedding of action 9 through the residual path.
    with torch.no_grad():
        for block in gpt.blocks:
            for p in block.parameters():
                p.zero_()
        gpt.ln_f.weight.fill_(1.0)
        emb = gpt.tok_emb.weight
        emb.zero_()
        gpt.pos_emb.zero_()
        # token id of action-dim 1 (dimension 4), bin b: 4 * 10 + b; give bin 9 a +1 feature, others -1
        emb[4 * 10 : 4 * 10 + 10, 0] = -1.0
        emb[4 * 10 + 9, 0] = 1.0
        emb[4 * 10 : 4 * 10 + 10, 1] = 1.0  # a second feature so LayerNorm keeps the sign of the first
        # head 4 (position 4 predicts the reward): class 9 follows feature 0, class 0 its negative
        gpt.head[4, 9, 0] = 20.0
        gpt.head[4, 0, 0] = -20.0
    thresholds = torch.arange(11, dtype=torch.float64)[:, None].repeat(1, 7)
    plan = beam_plan(model, prefixes, thresholds, settings, torch.Generator().manual_seed(0))
    assert plan[0, 0, 4] == 9


def test_context_longer_than_the_models_block_is_refused():
    model, thresholds = tiny_model(window=4)
    with pytest.raises(UserError, match="longer than the model's block of 4 transitions"):
        beam_plan(model, torch.zeros(1, 3, dtype=torch.long), thresholds, PlannerSettings(max_context_transitions=5))
    with pytest.raises(ValueError, match=r"k \* 7 \+ 3"):
        beam_plan(model, torch.zeros(1, 5, dtype=torch.long), thresholds, PlannerSettings(max_context_transitions=2))
    with pytest.raises(UserError, match="horizon"):
        PlannerSettings(horizon=0)
    assert np.isfinite(thresholds.numpy()).all()
