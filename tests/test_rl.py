"""Tests for lit_rlseq.rl: hand-worked values, independent naive references and invariants."""

from __future__ import annotations

import math

import pytest
import torch

from lit_rlseq.rl import (
    VTraceReturns,
    action_log_probs,
    approx_kl,
    baseline_loss,
    discounted_returns,
    entropy,
    gae,
    policy_gradient_loss,
    ppo_clip_loss,
    ppo_value_loss,
    vtrace,
)

F64 = torch.float64


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def random_unroll(seed: int, T: int = 6, B: int = 3, gamma: float = 0.9) -> dict[str, torch.Tensor]:
    """Random float64 unroll with episode boundaries (at least one inside every column) and log-ratios
    spread so that importance weights both above and below 1 (and above 2) occur."""
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(T, B, generator=g, dtype=F64) < 0.2
    done[T // 2] = True
    behaviour = torch.log_softmax(torch.randn(T, B, 4, generator=g, dtype=F64), -1)[..., 0]
    target = behaviour + torch.randn(T, B, generator=g, dtype=F64)
    return dict(
        behaviour_log_probs=behaviour,
        target_log_probs=target,
        rewards=torch.randn(T, B, generator=g, dtype=F64),
        discounts=gamma * (~done).to(F64),
        values=torch.randn(T, B, generator=g, dtype=F64),
        bootstrap_value=torch.randn(B, generator=g, dtype=F64),
    )


# ---------------------------------------------------------------- discounted returns and GAE


def test_discounted_returns_by_hand_with_episode_end_inside_the_unroll():
    # gamma = 0.5, T = 3, B = 2, rewards [1, 2, 3] in both columns, bootstrap V(x_3) = 4.
    # column 0, no episode end:     G2 = 3 + .5*4 = 5,  G1 = 2 + .5*5 = 4.5,  G0 = 1 + .5*4.5 = 3.25
    # column 1, episode ends after action 1 (discount 0 at t=1):
    #                               G2 = 3 + .5*4 = 5,  G1 = 2 + 0*5 = 2,     G0 = 1 + .5*2 = 2
    # (had the return leaked across the boundary, column 1 would equal column 0.)
    rewards = t64([[1, 1], [2, 2], [3, 3]])
    discounts = t64([[0.5, 0.5], [0.5, 0.0], [0.5, 0.5]])
    returns = discounted_returns(rewards, discounts, t64([4, 4]))
    torch.testing.assert_close(returns, t64([[3.25, 2.0], [4.5, 2.0], [5.0, 5.0]]))


def test_gae_by_hand_with_episode_end_inside_the_unroll():
    # gamma = 0.5, lam = 0.5 (so discount*lam = 0.25), rewards [1, 2, 3], bootstrap 4.
    # column 0: V = [1, 1, 1], no end.
    #   deltas: d2 = 3 + .5*4 - 1 = 4,  d1 = 2 + .5*1 - 1 = 1.5,  d0 = 1 + .5*1 - 1 = 0.5
    #   A2 = 4,  A1 = 1.5 + .25*4 = 2.5,  A0 = 0.5 + .25*2.5 = 1.125;  returns = A + V = [2.125, 3.5, 5]
    # column 1: V = [2, 4, 2], episode ends after action 1.
    #   deltas: d2 = 3 + .5*4 - 2 = 3,  d1 = 2 + 0*2 - 4 = -2,  d0 = 1 + .5*4 - 2 = 1
    #   A2 = 3,  A1 = -2 + 0*3 = -2,  A0 = 1 + .25*(-2) = 0.5;  returns = [2.5, 2, 5]
    rewards = t64([[1, 1], [2, 2], [3, 3]])
    values = t64([[1, 2], [1, 4], [1, 2]])
    discounts = t64([[0.5, 0.5], [0.5, 0.0], [0.5, 0.5]])
    advantages, returns = gae(rewards, values, t64([4, 4]), discounts, lam=0.5)
    torch.testing.assert_close(advantages, t64([[1.125, 0.5], [2.5, -2.0], [4.0, 3.0]]))
    torch.testing.assert_close(returns, t64([[2.125, 2.5], [3.5, 2.0], [5.0, 5.0]]))


def test_gae_lambda_one_is_discounted_returns_minus_values_and_lambda_zero_is_td_error():
    u = random_unroll(seed=1)
    r, d, v, boot = u["rewards"], u["discounts"], u["values"], u["bootstrap_value"]
    expected_returns = discounted_returns(r, d, boot)

    advantages, returns = gae(r, v, boot, d, lam=1.0)
    torch.testing.assert_close(advantages, expected_returns - v)
    torch.testing.assert_close(returns, expected_returns)

    advantages, _ = gae(r, v, boot, d, lam=0.0)
    next_v = torch.cat([v[1:], boot[None]])
    torch.testing.assert_close(advantages, r + d * next_v - v)


def test_targets_are_detached_and_shapes_are_checked():
    r = torch.randn(3, 2, requires_grad=True)
    v = torch.randn(3, 2, requires_grad=True)
    boot = torch.randn(2, requires_grad=True)
    d = torch.full((3, 2), 0.9)
    assert not discounted_returns(r, d, boot).requires_grad
    assert not any(x.requires_grad for x in gae(r, v, boot, d, lam=0.95))
    assert not any(x.requires_grad for x in vtrace(r, v, r, d, v, boot))

    with pytest.raises(ValueError, match="bootstrap_value has shape"):
        discounted_returns(r, d, torch.zeros(3))
    with pytest.raises(ValueError, match=r"values has shape \(3, 2, 1\)"):
        gae(r, v[..., None], boot, d, lam=0.95)


# ---------------------------------------------------------------- V-trace


def naive_vtrace(u: dict[str, torch.Tensor], rho_bar: float, c_bar: float, lam: float, pg_rho_bar: float):
    """The IMPALA paper's eq. 1 written out literally in python floats, one column at a time:
    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} d_i c_i) rho'_t (r_t + d_t V(x_{t+1}) - V(x_t))."""
    T, B = u["rewards"].shape
    vs = [[0.0] * B for _ in range(T)]
    pg = [[0.0] * B for _ in range(T)]
    for b in range(B):
        mu = [u["behaviour_log_probs"][t, b].item() for t in range(T)]
        pi = [u["target_log_probs"][t, b].item() for t in range(T)]
        r = [u["rewards"][t, b].item() for t in range(T)]
        d = [u["discounts"][t, b].item() for t in range(T)]
        V = [u["values"][t, b].item() for t in range(T)] + [u["bootstrap_value"][b].item()]
        rho = [math.exp(pi[t] - mu[t]) for t in range(T)]
        for s in range(T):
            total = V[s]
            for t in range(s, T):
                trace = 1.0
                for i in range(s, t):
                    trace *= d[i] * lam * min(c_bar, rho[i])
                total += trace * min(rho_bar, rho[t]) * (r[t] + d[t] * V[t + 1] - V[t])
            vs[s][b] = total
        next_vs = [vs[s][b] for s in range(1, T)] + [V[T]]
        for s in range(T):
            pg[s][b] = min(pg_rho_bar, rho[s]) * (r[s] + d[s] * next_vs[s] - V[s])
    return t64(vs), t64(pg)


@pytest.mark.parametrize(
    "rho_bar, c_bar, lam, pg_rho_bar",
    [
        (1.0, 1.0, 1.0, None),
        (1.0, 1.0, 0.5, None),
        (2.0, 0.5, 0.9, None),
        (1.0, 1.0, 1.0, 3.0),
        (math.inf, math.inf, 1.0, None),
    ],
)
def test_vtrace_matches_naive_sum_formula(rho_bar, c_bar, lam, pg_rho_bar):
    u = random_unroll(seed=2)
    rhos = torch.exp(u["target_log_probs"] - u["behaviour_log_probs"])
    # truncation must actually bite somewhere for this test to mean anything
    assert (rhos > 2.0).any() and (rhos < 0.5).any()
    assert (u["discounts"] == 0).any()

    out = vtrace(**u, rho_bar=rho_bar, c_bar=c_bar, lam=lam, pg_rho_bar=pg_rho_bar)
    expected_vs, expected_pg = naive_vtrace(
        u, rho_bar, c_bar, lam, rho_bar if pg_rho_bar is None else pg_rho_bar
    )
    assert isinstance(out, VTraceReturns)
    torch.testing.assert_close(out.vs, expected_vs)
    torch.testing.assert_close(out.pg_advantages, expected_pg)
    torch.testing.assert_close(out.clipped_rhos, rhos.clamp(max=rho_bar))


def test_vtrace_on_policy_is_bootstrapped_discounted_return():
    u = random_unroll(seed=3)
    u["target_log_probs"] = u["behaviour_log_probs"].clone()
    out = vtrace(**u)
    returns = discounted_returns(u["rewards"], u["discounts"], u["bootstrap_value"])
    torch.testing.assert_close(out.vs, returns)
    # r_t + d_t v_{t+1} is the return G_t on-policy, so the advantage is G_t - V(x_t)
    torch.testing.assert_close(out.pg_advantages, returns - u["values"])
    torch.testing.assert_close(out.clipped_rhos, torch.ones_like(returns))


@pytest.mark.parametrize(
    "lam, pg_rho_bar, expected_vs, expected_pg",
    [
        # lam = 1: c0 = min(1, .5) = .5
        #   delta1 = min(1, 2) * (2 + .9*3 - 2) = 2.7            v1 = 2 + 2.7 = 4.7
        #   delta0 = .5 * (1 + .9*2 - 1) = .9                    v0 = 1 + .9 + .9*.5*2.7 = 3.115
        #   pg0 = .5 * (1 + .9*4.7 - 1) = 2.115                  pg1 = 1 * (2 + .9*3 - 2) = 2.7
        (1.0, None, [3.115, 4.7], [2.115, 2.7]),
        # lam = .5: c0 = .25, so v0 = 1 + .9 + .9*.25*2.7 = 2.5075; v1 and pg unchanged
        (0.5, None, [2.5075, 4.7], [2.115, 2.7]),
        # pg_rho_bar = 3 lets rho1 = 2 through in the advantage only: pg1 = 2 * 2.7 = 5.4
        (1.0, 3.0, [3.115, 4.7], [2.115, 5.4]),
    ],
)
def test_vtrace_off_policy_by_hand(lam, pg_rho_bar, expected_vs, expected_pg):
    # T = 2, B = 1, gamma = 0.9 with no episode end; rho_bar = c_bar = 1.
    # mu(a) = [.5, .4], pi(a) = [.25, .8]  ->  rho = [.5, 2], clipped rho = [.5, 1]
    # rewards [1, 2], V(x_0), V(x_1) = [1, 2], bootstrap V(x_2) = 3
    out = vtrace(
        behaviour_log_probs=t64([[0.5], [0.4]]).log(),
        target_log_probs=t64([[0.25], [0.8]]).log(),
        rewards=t64([[1.0], [2.0]]),
        discounts=t64([[0.9], [0.9]]),
        values=t64([[1.0], [2.0]]),
        bootstrap_value=t64([3.0]),
        lam=lam,
        pg_rho_bar=pg_rho_bar,
    )
    torch.testing.assert_close(out.vs, t64(expected_vs)[:, None])
    torch.testing.assert_close(out.pg_advantages, t64(expected_pg)[:, None])
    torch.testing.assert_close(out.clipped_rhos, t64([[0.5], [1.0]]))


def test_vtrace_rejects_mismatched_shapes():
    u = random_unroll(seed=4)
    u["target_log_probs"] = u["target_log_probs"][:-1]
    with pytest.raises(ValueError, match="vtrace: target_log_probs has shape"):
        vtrace(**u)


# ---------------------------------------------------------------- losses


def test_action_log_probs_matches_categorical():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 3, 6, generator=g)
    actions = torch.randint(0, 6, (4, 3), generator=g)
    expected = torch.distributions.Categorical(logits=logits).log_prob(actions)
    torch.testing.assert_close(action_log_probs(logits, actions), expected)
    with pytest.raises(ValueError, match="action_log_probs"):
        action_log_probs(logits, actions[:, :2])


def test_policy_gradient_loss_gradient_is_minus_onehot_minus_softmax_times_advantage():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(4, 3, 5, generator=g, dtype=F64, requires_grad=True)
    actions = torch.randint(0, 5, (4, 3), generator=g)
    advantages = torch.randn(4, 3, generator=g, dtype=F64, requires_grad=True)
    loss = policy_gradient_loss(logits, actions, advantages)
    assert loss.shape == (4, 3)
    loss.sum().backward()
    onehot = torch.nn.functional.one_hot(actions, 5).to(F64)
    expected = -(onehot - torch.softmax(logits.detach(), -1)) * advantages.detach()[..., None]
    torch.testing.assert_close(logits.grad, expected)
    assert advantages.grad is None


def test_baseline_loss_value_and_gradient():
    targets = t64([[3.0, -1.0]]).requires_grad_()
    values = t64([[1.0, 1.0]]).requires_grad_()
    loss = baseline_loss(targets, values)
    torch.testing.assert_close(loss, t64([[2.0, 2.0]]))  # 0.5 * 2^2, 0.5 * (-2)^2
    loss.sum().backward()
    torch.testing.assert_close(values.grad, t64([[-2.0, 2.0]]))  # d/dV = V - target
    assert targets.grad is None
    with pytest.raises(ValueError, match=r"values has shape \(1, 2, 1\)"):
        baseline_loss(targets, values[..., None])


def test_entropy_of_uniform_and_random_logits():
    assert torch.allclose(entropy(torch.zeros(2, 3, 7)), torch.full((2, 3), math.log(7)))
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 2, 5, generator=g, dtype=F64, requires_grad=True)
    h = entropy(logits)
    p = torch.softmax(logits.detach(), -1)
    torch.testing.assert_close(h, -(p * p.log()).sum(-1))
    h.sum().backward()
    # dH/dx_j = -p_j (log p_j + H)
    torch.testing.assert_close(logits.grad, -p * (p.log() + h.detach()[..., None]))


@pytest.mark.parametrize("mask_value", ["finfo_min", "-inf"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_entropy_with_masked_actions_ignores_them_and_has_finite_gradient(mask_value, dtype):
    fill = torch.finfo(dtype).min if mask_value == "finfo_min" else -math.inf
    valid = torch.tensor([True, False, True, False, True])
    uniform = torch.zeros(2, 2, 5, dtype=dtype).masked_fill(~valid, fill)
    torch.testing.assert_close(entropy(uniform), torch.full((2, 2), math.log(3), dtype=dtype))

    g = torch.Generator().manual_seed(8)
    raw = torch.randn(2, 2, 5, generator=g, dtype=dtype)
    masked = raw.masked_fill(~valid, fill).requires_grad_()
    only_valid = raw[..., valid].clone().requires_grad_()
    h = entropy(masked)
    torch.testing.assert_close(h, entropy(only_valid))
    h.sum().backward()
    entropy(only_valid).sum().backward()
    assert torch.isfinite(masked.grad).all()
    assert (masked.grad[..., ~valid] == 0).all()
    torch.testing.assert_close(masked.grad[..., valid], only_valid.grad)


def test_ppo_clip_loss_clips_on_both_sides():
    eps = 0.2
    # ratio, advantage -> min(ratio*A, clip(ratio, .8, 1.2)*A), loss = -that, d loss / d log pi_new
    #   1.5, +2  -> min(3.0, 2.4)   = 2.4   loss -2.4   grad 0    (clipped above)
    #   0.5, -1  -> min(-.5, -.8)   = -.8   loss  .8    grad 0    (clipped below)
    #   0.5, +2  -> min(1.0, 1.6)   = 1.0   loss -1.0   grad -1.0 (= -ratio*A, unclipped side is lower)
    #   1.5, -1  -> min(-1.5, -1.2) = -1.5  loss  1.5   grad 1.5
    #   1.1, +3  -> inside the range        loss -3.3   grad -3.3
    ratios = t64([1.5, 0.5, 0.5, 1.5, 1.1])
    advantages = t64([2.0, -1.0, 2.0, -1.0, 3.0])
    old = t64([-1.0, -2.0, -0.5, -3.0, -0.7])
    new = (old + ratios.log()).requires_grad_()
    loss = ppo_clip_loss(new, old, advantages, eps)
    torch.testing.assert_close(loss, t64([-2.4, 0.8, -1.0, 1.5, -3.3]))
    loss.sum().backward()
    torch.testing.assert_close(new.grad, t64([0.0, 0.0, -1.0, 1.5, -3.3]))


def test_ppo_value_loss_clipped_and_unclipped():
    # old V = 1, return R = 2, eps = 0.2
    #   V_new 1.5: unclipped .25, V_clip 1.2 -> .64; max .64 -> .32, grad 0 (clipped term is constant)
    #   V_new 0.5: unclipped 2.25, V_clip 0.8 -> 1.44; max 2.25 -> 1.125, grad V_new - R = -1.5
    #   V_new 1.1: inside, both .81 -> .405, grad -0.9
    new = t64([1.5, 0.5, 1.1]).requires_grad_()
    old = torch.ones(3, dtype=F64)
    returns = torch.full((3,), 2.0, dtype=F64)
    loss = ppo_value_loss(new, old, returns, clip_eps=0.2)
    torch.testing.assert_close(loss, t64([0.32, 1.125, 0.405]))
    loss.sum().backward()
    torch.testing.assert_close(new.grad, t64([0.0, -1.5, -0.9]))
    torch.testing.assert_close(ppo_value_loss(new, old, returns, clip_eps=None), t64([0.125, 1.125, 0.405]))


def test_approx_kl_by_hand_and_unbiased_for_the_exact_kl():
    # ratio = .5 / .25 = 2: (2 - 1) - log 2
    torch.testing.assert_close(approx_kl(t64([0.5]).log(), t64([0.25]).log()), t64([1 - math.log(2)]))
    g = torch.Generator().manual_seed(9)
    old = torch.log_softmax(torch.randn(6, generator=g, dtype=F64), -1)
    new = torch.log_softmax(torch.randn(6, generator=g, dtype=F64), -1)
    per_action = approx_kl(new, old)
    assert (per_action >= 0).all()
    assert torch.allclose(approx_kl(old, old), torch.zeros(6, dtype=F64))
    # expectation over a ~ pi_old equals KL(pi_old || pi_new) exactly
    exact_kl = (old.exp() * (old - new)).sum()
    torch.testing.assert_close((old.exp() * per_action).sum(), exact_kl)
