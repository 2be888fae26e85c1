"""The NetHack policy network and its IMPALA module (reference settings as defaults)."""

import pytest
import torch

from lit_rlseq.errors import UserError
from lit_rlseq.ldd import NetHackImpala
from lit_rlseq.nn.nethack import NetHackPolicy, NetHackPolicyConfig, crop_around

SMALL = dict(d_char=8, d_line=16, map_channels=(8,), d_map=16, crop=5, crop_channels=(8,), d_crop=16, d_core=24)


def test_crop_is_centred_on_the_cursor_and_filled_outside():
    grid = torch.arange(6 * 7).view(1, 6, 7).repeat(2, 1, 1)
    window = crop_around(grid, torch.tensor([[2, 3], [0, 6]]), 3, fill=-1)
    assert window[0].tolist() == [[9, 10, 11], [16, 17, 18], [23, 24, 25]]
    assert window[1].tolist() == [[-1, -1, -1], [5, 6, -1], [12, 13, -1]]


def observations(steps, batch, generator):
    chars = torch.randint(32, 127, (steps, batch, 24, 80), generator=generator, dtype=torch.uint8)
    colours = torch.randint(0, 16, (steps, batch, 24, 80), generator=generator).to(torch.int8)
    rows = torch.randint(1, 22, (steps, batch), generator=generator)
    cols = torch.randint(0, 80, (steps, batch), generator=generator)
    cursor = torch.stack([rows, cols], -1).to(torch.uint8)
    return {"tty_chars": chars, "tty_colors": colours, "tty_cursor": cursor}


def test_forward_shapes_and_the_state_restarting_with_an_episode():
    torch.manual_seed(0)
    policy = NetHackPolicy(NetHackPolicyConfig(num_actions=7, **SMALL)).eval()
    obs = observations(3, 2, torch.Generator().manual_seed(1))
    first = torch.tensor([[True, True], [False, True], [False, False]])
    out = policy(obs, first, policy.initial_state(2))
    assert out.logits.shape == (3, 2, 7) and out.value.shape == (3, 2)
    assert [s.shape for s in out.state] == [(2, 24), (2, 24)]
    # column 1 starts an episode at t=1: from there it must equal a fresh run on its last two observations
    tail = {k: v[1:, 1:2] for k, v in obs.items()}
    fresh = policy(tail, torch.tensor([[True], [False]]), policy.initial_state(1))
    assert torch.allclose(out.logits[1:, 1], fresh.logits[:, 0], atol=1e-5)
    # and the state carries over: one call over 3 steps equals 3 calls of one step
    state, pieces = policy.initial_state(2), []
    for t in range(3):
        step = policy({k: v[t : t + 1] for k, v in obs.items()}, first[t : t + 1], state)
        state, pieces = step.state, pieces + [step.logits]
    assert torch.allclose(torch.cat(pieces), out.logits, atol=1e-5)
    # the map and the crop matter: changing a character near the hero changes the output
    changed = {k: v.clone() for k, v in obs.items()}
    row, col = (int(x) for x in obs["tty_cursor"][0, 0])
    changed["tty_chars"][0, 0, row, col] = ord("@") if obs["tty_chars"][0, 0, row, col] != ord("@") else ord(".")
    assert not torch.allclose(policy(changed, first, policy.initial_state(2)).logits[0, 0], out.logits[0, 0])


def test_the_module_defaults_to_the_reference_learner_settings():
    module = NetHackImpala(num_actions=121, lr_schedule="constant", **SMALL)
    assert (module.lr, module.discount, module.entropy_cost, module.baseline_cost, module.grad_norm_clip) == (
        1e-4, 0.999, 0.001, 0.25, 4.0,
    )
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 1e-4
    assert module.policy.num_actions == 121 and module.policy.config.d_core == 24
    assert NetHackPolicyConfig().d_core == 512  # the reference's LSTM
    with pytest.raises(UserError, match="number of actions"):
        NetHackImpala(**SMALL)
    with pytest.raises(UserError, match="optimizer must be 'rmsprop' or 'adam'"):
        NetHackImpala(num_actions=3, optimizer="sgd", lr_schedule="constant", **SMALL).configure_optimizers()
    with pytest.raises(UserError, match="crop odd"):
        NetHackPolicyConfig(crop=4)
