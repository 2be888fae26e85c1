"""The four fast-weight rules: fast paths equal their naive references (outputs, final states, gradients incl.
the initial state's), float64 gradcheck, truncated vs full state gradients, resets at episode starts."""

import pytest
import torch

from lit_rlseq.nn import fast_weights as fw

T, B, H, D = 7, 3, 2, 4


def make_inputs(rule: str, dtype=torch.float64, t=T, b=B, h=H, d=D, seed=0, resets=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    first = torch.zeros(t, b, dtype=torch.bool)
    if resets:
        first[0, 0] = True
        first[3, 1] = True
        first[t - 2, 2 % b] = True
        first[4, 0] = True
    phi = fw.elu_feature_map
    if rule == "lt":
        args = [phi(r(t, b, h, d)), phi(r(t, b, h, d)), r(t, b, h, d)]
        state = (r(b, h, d, d),)
    elif rule == "delta":
        args = [phi(r(t, b, h, d)), phi(r(t, b, h, d)), r(t, b, h, d), torch.sigmoid(r(t, b, h))]
        state = (r(b, h, d, d),)
    elif rule == "rdn":
        args = [r(t, b, h, d), r(t, b, h, d), r(t, b, h, d), r(t, b, h)]
        args += [r(h, d, d) / d**0.5 for _ in range(3)] + [r(h, d) / d**0.5]
        state = (r(b, h, d, d) * 0.3, r(b, h, d))
    else:
        sm = lambda x: torch.softmax(x, -1)  # noqa: E731
        args = [sm(r(t, b, h, d)), sm(r(t, b, h, d)), r(t, b, h, d), torch.sigmoid(r(t, b, h)),
                sm(r(t, b, h, d)), r(t, b, h, d), torch.sigmoid(r(t, b, h))]
        state = (r(b, h, d, d) * 0.3, r(b, h, d, d) * 0.3, r(b, h, d))
    return args, state, first


def call(fn, args, state, first, **kw):
    s = state[0] if len(state) == 1 else state
    out, final = fn(*args, s, first, **kw)
    return out, (final,) if isinstance(final, torch.Tensor) else tuple(final)


def grads_of(fn, args, state, first, grad="full", seed=1):
    args = [a.clone().requires_grad_(True) for a in args]
    state = tuple(s.clone().requires_grad_(True) for s in state)
    out, final = call(fn, args, state, first, grad=grad)
    g = torch.Generator().manual_seed(seed)
    weights = lambda x: torch.randn(x.shape, generator=g, dtype=torch.float64).to(x)  # noqa: E731  (any device)
    loss = (out * weights(out)).sum()
    for f in final:
        loss = loss + (f * weights(f)).sum()
    inputs = [*args, *state]
    gs = torch.autograd.grad(loss, inputs, allow_unused=True)
    return out.detach(), [f.detach() for f in final], [torch.zeros_like(x) if gx is None else gx for x, gx in zip(inputs, gs)]


RULES = sorted(fw.RULES)


@pytest.mark.parametrize("grad", ["full", "truncated"])
@pytest.mark.parametrize("rule", RULES)
def test_fast_equals_naive_outputs_states_and_gradients(rule, grad):
    naive, fast = fw.RULES[rule]
    args, state, first = make_inputs(rule)
    out_n, fin_n, g_n = grads_of(naive, args, state, first, grad)
    out_f, fin_f, g_f = grads_of(fast, args, state, first, grad)
    torch.testing.assert_close(out_f, out_n)
    for a, b in zip(fin_f, fin_n):
        torch.testing.assert_close(a, b)
    for i, (a, b) in enumerate(zip(g_f, g_n)):
        torch.testing.assert_close(a, b, msg=lambda m, i=i: f"gradient of input {i}: {m}")


@pytest.mark.parametrize("rule", ["lt", "delta", "delta_rnn"])
def test_chunks_of_any_size_agree(rule):
    """The chunked forms carry the state from chunk to chunk (here: chunks of 3 over 7 steps, resets inside)."""
    naive, fast = fw.RULES[rule]
    args, state, first = make_inputs(rule)
    out_n, fin_n, g_n = grads_of(naive, args, state, first)
    out_f, fin_f, g_f = grads_of(lambda *a, **k: fast(*a, chunk=3, **k), args, state, first)
    torch.testing.assert_close(out_f, out_n)
    for a, b in zip(g_f + fin_f, g_n + fin_n):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("rule", RULES)
def test_fast_path_passes_gradcheck_in_float64(rule):
    _, fast = fw.RULES[rule]
    args, state, first = make_inputs(rule, t=5, b=2, h=1, d=3)
    n = len(args)

    def f(*xs):
        out, final = call(fast, list(xs[:n]), tuple(xs[n:]), first)
        return (out, *final)

    inputs = tuple(x.clone().requires_grad_(True) for x in (*args, *state))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("impl", [0, 1], ids=["naive", "fast"])
@pytest.mark.parametrize("rule", RULES)
def test_truncated_blocks_the_state_gradient_and_full_does_not(rule, impl):
    """d out[T-1] / d input[0]: only through the state (no reset in between), so 0 iff truncated."""
    fn = fw.RULES[rule][impl]
    args, state, first = make_inputs(rule, resets=False)
    for grad, expect_zero in (("truncated", True), ("full", False)):
        xs = [a.clone().requires_grad_(True) for a in args]
        st = tuple(s.clone().requires_grad_(True) for s in state)
        out, _ = call(fn, xs, st, first, grad=grad)
        gs = torch.autograd.grad(out[-1].sum(), [xs[2], *st], allow_unused=True)  # v (or ṽ) and the state
        g_v0 = gs[0][0]
        g_state = [torch.zeros(1) if g is None else g for g in gs[1:]]
        if expect_zero:
            assert torch.all(g_v0 == 0) and all(torch.all(g == 0) for g in g_state)
        else:
            assert g_v0.abs().sum() > 0 and all(g.abs().sum() > 0 for g in g_state)


@pytest.mark.parametrize("impl", [0, 1], ids=["naive", "fast"])
@pytest.mark.parametrize("rule", RULES)
def test_state_resets_at_episode_starts(rule, impl):
    """After an episode start at step r, outputs do not depend on anything before r (nor the initial state)."""
    fn = fw.RULES[rule][impl]
    args, state, first = make_inputs(rule, resets=False)
    first[3, :] = True
    out_a, _ = call(fn, args, state, first)
    # Change every input before step 3 and the initial state: outputs from step 3 on must not move.
    args2 = [a.clone() for a in args]
    for a in args2[:len(args) if rule != "rdn" else 4]:
        if a.dim() >= 2 and a.shape[0] == T:
            a[:3] = a[:3].flip(-1) * 0.5 + 0.1
    state2 = tuple(s * 2 + 1 for s in state)
    out_b, _ = call(fn, args2, state2, first)
    torch.testing.assert_close(out_a[3:], out_b[3:])
    assert not torch.allclose(out_a[:3], out_b[:3])


def test_lt_matches_a_hand_computed_two_steps():
    q = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])  # [T=2, B=1, H=1, d=2]
    k = torch.tensor([[[[0.5, 0.5]]], [[[1.0, 0.0]]]])
    v = torch.tensor([[[[2.0, 4.0]]], [[[1.0, 1.0]]]])
    W0 = torch.zeros(1, 1, 2, 2)
    first = torch.zeros(2, 1, dtype=torch.bool)
    for fn in fw.RULES["lt"]:
        out, W = fn(q, k, v, W0, first)
        # W1 = k0 v0ᵀ = [[1, 2], [1, 2]]; o0 = W1ᵀ q0 = [1, 2]; W2 = W1 + [[1, 1], [0, 0]]; o1 = W2ᵀ q1 = [1, 2]
        torch.testing.assert_close(out[:, 0, 0], torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
        torch.testing.assert_close(W[0, 0], torch.tensor([[2.0, 3.0], [1.0, 2.0]]))


def test_delta_rule_writes_the_target_value_when_beta_is_one():
    """With β = 1 and a one-hot key, the delta rule replaces the value stored under that key."""
    d = 3
    k = torch.eye(d)[None, None, None, 0].expand(2, 1, 1, d)
    v = torch.tensor([[[[1.0, 2.0, 3.0]]], [[[-1.0, 0.0, 5.0]]]])
    beta = torch.ones(2, 1, 1)
    first = torch.zeros(2, 1, dtype=torch.bool)
    for fn in fw.RULES["delta"]:
        out, W = fn(k, k, v, beta, torch.zeros(1, 1, d, d), first)
        torch.testing.assert_close(out[1, 0, 0], v[1, 0, 0])
        torch.testing.assert_close(W[0, 0, 0], v[1, 0, 0])


def test_feature_maps():
    z = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(fw.elu_feature_map(z), torch.full((1, 4), 1 / (4 + 1e-5)))
    torch.testing.assert_close(fw.softmax_eps(z), torch.full((1, 4), 1 / (4 + 1e-6)))
    assert torch.allclose(fw.softmax_eps(torch.tensor([1000.0, 0.0])), torch.tensor([1.0, 0.0]), atol=1e-6)


def test_bad_shapes_are_named():
    args, state, first = make_inputs("lt", dtype=torch.float32)
    with pytest.raises(ValueError, match=r"k must start with \[T, B\]"):
        fw.fast_lt(args[0], args[1][:-1], args[2], state[0], first)
