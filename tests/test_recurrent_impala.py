"""The recurrent IMPALA agent: sizes, the trainable initial state at episode starts, soft resets, extras."""

import pytest
import torch

from lit_rlseq.errors import UserError
from lit_rlseq.nn.recurrent_impala import RecurrentImpala, RecurrentImpalaConfig


def frames(t, b, seed=0):
    return torch.randint(0, 256, (t, b, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_parameter_count_matches_the_reference():
    # The reference's agent has 254,800 parameters (CNN 16-32-32, Linear 64, GRU 64, h0, heads for 15 actions).
    assert sum(p.numel() for p in RecurrentImpala(RecurrentImpalaConfig()).parameters()) == 254_800


def test_shapes_and_recorded_hidden_states():
    agent = RecurrentImpala(RecurrentImpalaConfig())
    first = torch.zeros(4, 2, dtype=torch.bool)
    first[0] = True
    out = agent({"rgb": frames(4, 2)}, first, agent.initial_state(2))
    assert out.logits.shape == (4, 2, 15) and out.value.shape == (4, 2)
    assert out.state[0].shape == (2, 64) and out.extras["hx"].shape == (4, 2, 64)
    # hx[t] is the state fed into step t: at t=0 (episode start) it is h0, afterwards the previous step's output.
    torch.testing.assert_close(out.extras["hx"][0], agent.h0.expand(2, -1))
    assert not torch.allclose(out.extras["hx"][1], out.extras["hx"][0])


def test_trainable_initial_state_is_used_at_episode_starts_and_learns():
    agent = RecurrentImpala(RecurrentImpalaConfig())
    x = frames(3, 2)
    state = (torch.randn(2, 64) * 5,)  # some state from a previous episode
    first = torch.tensor([[True, False], [False, False], [False, True]])
    out = agent({"rgb": x}, first, state)
    torch.testing.assert_close(out.extras["hx"][0, 0], agent.h0)  # reset at the start of column 0
    torch.testing.assert_close(out.extras["hx"][0, 1], state[0][1])  # column 1 continues its episode
    torch.testing.assert_close(out.extras["hx"][2, 1], agent.h0)  # and starts a new one at t=2
    # The same frames after a reset give the same outputs whatever came before.
    fresh = agent({"rgb": x[:, :1]}, torch.tensor([[True], [False], [False]]), (torch.zeros(1, 64),))
    torch.testing.assert_close(fresh.logits[:, 0], out.logits[:, 0])
    # h0 receives gradient (the original's quirk left it untrained).
    out.value.sum().backward()
    assert agent.h0.grad is not None and agent.h0.grad.abs().sum() > 0


def test_zeros_reset_reproduces_the_original_quirk():
    agent = RecurrentImpala(RecurrentImpalaConfig(reset_state="zeros"))
    out = agent({"rgb": frames(2, 1)}, torch.tensor([[True], [False]]), (torch.randn(1, 64),))
    assert torch.count_nonzero(out.extras["hx"][0]) == 0


def test_soft_keep_blends_towards_the_initial_state():
    agent = RecurrentImpala(RecurrentImpalaConfig())
    h = torch.randn(3, 64)
    blended = agent.reset(h, torch.tensor([1.0, 0.25, 0.0]))
    torch.testing.assert_close(blended[0], h[0])
    torch.testing.assert_close(blended[1], 0.25 * h[1] + 0.75 * agent.h0)
    torch.testing.assert_close(blended[2], agent.h0.detach())
    logits, value, fed, nxt = agent.step(torch.rand(3, 3, 64, 64), h, torch.ones(3))
    assert logits.shape == (3, 15) and value.shape == (3,) and nxt.shape == (3, 64)


def test_bad_config():
    with pytest.raises(UserError, match="reset_state"):
        RecurrentImpalaConfig(reset_state="ones")
