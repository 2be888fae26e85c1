"""Fast-weight update rules (Irie, Schlag, Csordás, Schmidhuber 2021): pure functions, a naive reference and a
fast path for each.

Shapes (time-major, as everywhere in lit_rlseq): per-step inputs are ``[T, B, H, d]`` (``beta``: ``[T, B, H]``),
``first`` is bool ``[T, B]`` (True: step t starts an episode, so *every* state is multiplied by 0 before step t),
a fast weight is ``W[b, h, key, value]`` (``[B, H, d, d]``). Every step writes first, then reads: ``o = W_tᵀ q``.
Feature maps (φ, softmax, sigmoid) of inputs that do not depend on the state are applied by the caller; the
functions below take their results. RDN's inputs depend on its state, so it takes the raw projections.

    lt          W_t = W_{t-1} + k vᵀ                                      o = W_tᵀ q
    delta       W_t = W_{t-1} + k (β (v - W_{t-1}ᵀ k))ᵀ                   o = W_tᵀ q
    rdn         s = tanh(y_{t-1});  q = softmax(q̃ + s R_q), k = softmax(k̃ + s R_k), v = ṽ + s R_v,
                β = σ(β̃ + ⟨s, r_b⟩);  delta update;                       y_t = W_tᵀ q    (state: W, y)
    delta_rnn   W: delta update with (k, v, β), z = W_tᵀ q;  R: delta update with (k_r, v_r, β_r);
                h_t = R_tᵀ softmax_eps(h_{t-1}) + z_t                                      (state: W, R, h)

``naive_*`` run one PyTorch step at a time (obviously correct, slow). ``fast_*`` compute the same numbers:
LT and Delta Net in a chunked parallel form (within a chunk, the delta rule's corrections solve a unit
lower-triangular system; episode starts inside a chunk are masks), Delta RNN with both of its delta rules in
that form and only ``h`` stepped in a loop with a hand-written backward, RDN (sequential by nature) as one fused
loop with a hand-written backward. The loops keep the number of small ops per step low (one read of the state
for two vectors, fused outer-product writes, matrix-vector products as row vector times matrix, which CPU bmm
runs several times faster, resets touching only their rows). Every function returns ``(outputs [T, B, H, d], final_state)`` and passes gradients to the initial
state. On float32 CUDA tensors (head size <= 64) the fast paths run the kernels of cuda_ext/
(lit_rlseq.nn.fast_weights_cuda), built on first use.

``grad="truncated"`` reproduces the original code: no gradient flows through any state from one step to the
next (its kernels were called one step at a time with the state outside autograd); the initial state then
gets no gradient either. ``grad="full"`` backpropagates through the whole unroll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from lit_rlseq.nn import fast_weights_cuda

CoreGrad = Literal["full", "truncated"]
FEATURE_EPS = 1e-5  # φ's sum-normalisation (LT, Delta Net)
SOFTMAX_EPS = 1e-6  # Delta RNN's softmax of the previous output
DEFAULT_CHUNK = 32  # at most; measured fastest on CPU for the learner's unroll of 51 (two chunks of 26 and 25)


# -- feature maps ----------------------------------------------------------------------------------------
def elu_feature_map(z: torch.Tensor, eps: float = FEATURE_EPS) -> torch.Tensor:
    """φ(z) = (ELU(z) + 1) / (Σ (ELU(z) + 1) + eps) over the last dimension."""
    x = F.elu(z) + 1.0
    return x / (x.sum(-1, keepdim=True) + eps)


def softmax_eps(z: torch.Tensor, eps: float = SOFTMAX_EPS) -> torch.Tensor:
    """exp(z - max) / (Σ exp(z - max) + eps): Delta RNN's softmax of h_{t-1} (uniform, not zero, for z = 0)."""
    e = torch.exp(z - z.amax(-1, keepdim=True).detach())
    return e / (e.sum(-1, keepdim=True) + eps)


def _keep(first: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """1 - first as ``like``'s dtype, shaped [T, B, 1, ...] to broadcast against [T, B, H, ...]."""
    return (~first).to(like.dtype)


def _check(name: str, first: torch.Tensor, **tensors: torch.Tensor) -> None:
    if first.dim() != 2:
        raise ValueError(f"{name}: first must be bool [T, B], got shape {tuple(first.shape)}")
    t, b = first.shape
    for key, x in tensors.items():
        if tuple(x.shape[:2]) != (t, b):
            raise ValueError(f"{name}: {key} must start with [T, B] = [{t}, {b}], got shape {tuple(x.shape)}")


# =========================================================================================================
# Naive references: one step at a time.
# =========================================================================================================
def naive_lt(q, k, v, state, first, grad: CoreGrad = "full"):
    _check("lt", first, q=q, k=k, v=v)
    W, keep, outs = state, _keep(first, q), []
    for t in range(q.shape[0]):
        W = W * keep[t, :, None, None, None]
        if grad == "truncated":
            W = W.detach()
        W = W + k[t, ..., :, None] * v[t, ..., None, :]
        outs.append(torch.einsum("bhkv,bhk->bhv", W, q[t]))
    return torch.stack(outs), W


def _delta_step(W, q, k, v, beta):
    v_old = torch.einsum("bhkv,bhk->bhv", W, k)
    W = W + k[..., :, None] * (beta[..., None] * (v - v_old))[..., None, :]
    return W, torch.einsum("bhkv,bhk->bhv", W, q)


def naive_delta(q, k, v, beta, state, first, grad: CoreGrad = "full"):
    _check("delta", first, q=q, k=k, v=v, beta=beta)
    W, keep, outs = state, _keep(first, q), []
    for t in range(q.shape[0]):
        W = W * keep[t, :, None, None, None]
        if grad == "truncated":
            W = W.detach()
        W, o = _delta_step(W, q[t], k[t], v[t], beta[t])
        outs.append(o)
    return torch.stack(outs), W


def naive_rdn(q, k, v, beta, R_q, R_k, R_v, r_b, state, first, grad: CoreGrad = "full"):
    """q, k, v [T, B, H, d] and beta [T, B, H] are the slow net's raw outputs; R_* [H, d, d], r_b [H, d];
    state = (W [B, H, d, d], y [B, H, d]) with y the previous (pre-tanh) output."""
    _check("rdn", first, q=q, k=k, v=v, beta=beta)
    (W, y), keep, outs = state, _keep(first, q), []
    for t in range(q.shape[0]):
        W = W * keep[t, :, None, None, None]
        y = y * keep[t, :, None, None]
        if grad == "truncated":
            W, y = W.detach(), y.detach()
        s = torch.tanh(y)
        qt = torch.softmax(q[t] + torch.einsum("bhi,hij->bhj", s, R_q), -1)
        kt = torch.softmax(k[t] + torch.einsum("bhi,hij->bhj", s, R_k), -1)
        vt = v[t] + torch.einsum("bhi,hij->bhj", s, R_v)
        bt = torch.sigmoid(beta[t] + (s * r_b).sum(-1))
        W, y = _delta_step(W, qt, kt, vt, bt)
        outs.append(y)
    return torch.stack(outs), (W, y)


def naive_delta_rnn(q, k, v, beta, k_r, v_r, beta_r, state, first, grad: CoreGrad = "full"):
    """q, k, k_r already softmaxed, beta, beta_r already sigmoided; state = (W, R [B, H, d, d], h [B, H, d])."""
    _check("delta_rnn", first, q=q, k=k, v=v, beta=beta, k_r=k_r, v_r=v_r, beta_r=beta_r)
    (W, R, h), keep, outs = state, _keep(first, q), []
    for t in range(q.shape[0]):
        m = keep[t, :, None, None, None]
        W, R, h = W * m, R * m, h * keep[t, :, None, None]
        if grad == "truncated":
            W, R, h = W.detach(), R.detach(), h.detach()
        W, z = _delta_step(W, q[t], k[t], v[t], beta[t])
        R, read = _delta_step(R, softmax_eps(h), k_r[t], v_r[t], beta_r[t])
        h = read + z
        outs.append(h)
    return torch.stack(outs), (W, R, h)


# =========================================================================================================
# Fast paths.
# =========================================================================================================
def _segments(first: torch.Tensor):
    """For one chunk (first [C, B]): same[b, t, s] = s <= t with no episode start in (s, t]; alive[b, t] = no
    episode start in [0, t] (the chunk's initial state survives to t)."""
    seg = torch.cumsum(first.to(torch.long), 0).transpose(0, 1)  # [B, C]
    c = first.shape[0]
    causal = torch.ones(c, c, dtype=torch.bool, device=first.device).tril()
    same = (seg[:, :, None] == seg[:, None, :]) & causal
    return same, seg == 0


def _bhtd(x: torch.Tensor) -> torch.Tensor:
    return x.permute(1, 2, 0, *range(3, x.dim()))  # [T, B, H, ...] -> [B, H, T, ...]


def _tbhd(x: torch.Tensor) -> torch.Tensor:
    return x.permute(2, 0, 1, *range(3, x.dim()))  # [B, H, T, ...] -> [T, B, H, ...]


def _chunks(t: int, size: int):
    """[start, end) of ceil(t / size) chunks of near-equal length (at most ``size`` steps each)."""
    n = -(-t // size)
    bounds = [round(i * t / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _lt_chunk(q, k, v, S, same, alive):
    """q [B, Hq, C, d], k, v [B, H, C, d], S [B, H, d, d], same [B, C, C], alive [B, C] -> (o [B, Hq, C, d],
    S_end). Outputs are read for the first Hq <= H heads only (the chunked functions take fewer queries than keys
    when the other heads' outputs are not needed)."""
    mask, g = same[:, None].to(q.dtype), alive[:, None, :, None].to(q.dtype)
    hq = q.shape[1]
    o = (q @ k[:, :hq].transpose(-1, -2) * mask) @ v[:, :hq] + g * (q @ S[:, :hq])
    last = mask[:, :, -1, :, None]  # which steps of the chunk reach its end
    return o, g[:, :, -1:] * S + (k * last).transpose(-1, -2) @ v


def _delta_chunk(q, k, v, beta, S, same, alive):
    """The delta rule over one chunk in parallel. With m_t the reset masks and W'_t = m_t W_{t-1}:
    W_t = alive_t S + Σ_{s<=t, same} k_s u_sᵀ, u_t = β_t (v_t - W'_tᵀ k_t), which is the unit lower-triangular
    system (I + L) U = β (V - alive K S), L[t, s] = β_t same[t, s] ⟨k_t, k_s⟩ for s < t. Returns (o, U, S_end)."""
    mask, g = same[:, None].to(q.dtype), alive[:, None, :, None].to(q.dtype)
    b = beta[..., None]
    L = (k @ k.transpose(-1, -2)) * mask.tril(-1) * b
    U = torch.linalg.solve_triangular(L, b * (v - g * (k @ S)), upper=False, unitriangular=True)
    hq = q.shape[1]  # outputs for the first hq heads (see _lt_chunk)
    o = (q @ k[:, :hq].transpose(-1, -2) * mask) @ U[:, :hq] + g * (q @ S[:, :hq])
    last = mask[:, :, -1, :, None]
    return o, U, g[:, :, -1:] * S + (k * last).transpose(-1, -2) @ U


def _prior_read(x, k, U, S, same, alive):
    """W'_tᵀ x_t for every step of a chunk, where W'_t = alive_t S + Σ_{s<t, same} k_s U_sᵀ (no gradient to
    k, U, S: the truncated mode's view of the state)."""
    mask, g = same[:, None].to(x.dtype).tril(-1), alive[:, None, :, None].to(x.dtype)
    return (x @ k.detach().transpose(-1, -2) * mask) @ U.detach() + g * (x @ S.detach())


def _rule_chunk(rule, q, k, v, beta, S, same, alive, grad):
    """One chunk of LT ("lt", U = v) or Delta Net ("delta") in either gradient mode -> (o, U, S_end). In the
    truncated mode the returned U carries only the gradient of its own step (as the step-by-step original)."""
    if grad == "full":
        if rule == "lt":
            o, S_end = _lt_chunk(q, k, v, S, same, alive)
            return o, v, S_end
        return _delta_chunk(q, k, v, beta, S, same, alive)
    with torch.no_grad():
        if rule == "lt":
            U0, (_, S_end) = v, _lt_chunk(q, k, v, S, same, alive)
        else:
            _, U0, S_end = _delta_chunk(q, k, v, beta, S, same, alive)
    u = v if rule == "lt" else beta[..., None] * (v - _prior_read(k, k, U0, S, same, alive))
    hq = q.shape[1]  # outputs for the first hq heads (see _lt_chunk)
    o = (_prior_read(q, k[:, :hq], U0[:, :hq], S[:, :hq], same, alive)
         + (q * k[:, :hq]).sum(-1, keepdim=True) * u[:, :hq])
    last = k[:, :, -1, :, None] * u[:, :, -1, None, :] - (k[:, :, -1, :, None] * U0[:, :, -1, None, :]).detach()
    return o, u, S_end + last  # the last write keeps its gradient, as in the step-by-step original


def _chunked(rule, q, k, v, beta, state, first, grad, chunk):
    """LT / Delta Net over [T, ...] chunk by chunk -> (o [T, B, Hq, d], final state, per-chunk (k, U, S, same,
    alive) for callers that read the states again). q may hold fewer heads (Hq) than k, v and the state (H): then
    only the first Hq heads' outputs are computed."""
    qb, kb, vb = _bhtd(q).contiguous(), _bhtd(k).contiguous(), _bhtd(v).contiguous()  # bmm is slow on interleaved batches
    bb = beta.permute(1, 2, 0).contiguous() if beta is not None else None
    S, outs, parts = (state.detach() if grad == "truncated" else state), [], []
    for a, z in _chunks(q.shape[0], chunk):
        same, alive = _segments(first[a:z])
        kc, bc = kb[:, :, a:z], (bb[:, :, a:z] if bb is not None else None)
        o, U, S_end = _rule_chunk(rule, qb[:, :, a:z], kc, vb[:, :, a:z], bc, S, same, alive, grad)
        outs.append(o)
        parts.append((kc, U, S, same, alive))
        S = S_end if grad == "full" else S_end.detach()
    return _tbhd(torch.cat(outs, 2)), S_end, parts


def fast_lt(q, k, v, state, first, grad: CoreGrad = "full", chunk: int = DEFAULT_CHUNK):
    _check("lt", first, q=q, k=k, v=v)
    if fast_weights_cuda.supports(q):
        return fast_weights_cuda.lt(q, k, v, state, first, grad)
    o, S, _ = _chunked("lt", q, k, v, None, state, first, grad, chunk)
    return o, S


def fast_delta(q, k, v, beta, state, first, grad: CoreGrad = "full", chunk: int = DEFAULT_CHUNK):
    _check("delta", first, q=q, k=k, v=v, beta=beta)
    if fast_weights_cuda.supports(q):
        return fast_weights_cuda.delta(q, k, v, beta, state, first, grad)
    o, S, _ = _chunked("delta", q, k, v, beta, state, first, grad, chunk)
    return o, S


def fast_delta_rnn(q, k, v, beta, k_r, v_r, beta_r, state, first, grad: CoreGrad = "full",
                   chunk: int = DEFAULT_CHUNK):
    """Both delta rules in chunked parallel form; only the read of R by softmax(h_{t-1}) is stepped, each step
    reading R_t from the chunk's writes (R_tᵀ p = alive_t R_0ᵀ p + Σ_{s<=t, same} ⟨p, k_s⟩ u_s) without ever
    forming R_t."""
    _check("delta_rnn", first, q=q, k=k, v=v, beta=beta, k_r=k_r, v_r=v_r, beta_r=beta_r)
    if fast_weights_cuda.supports(q):
        return fast_weights_cuda.delta_rnn(q, k, v, beta, k_r, v_r, beta_r, state, first, grad)
    W0, R0, h = state
    H = q.shape[2]
    # Both delta rules in one chunked pass, as 2H heads: W's (k, v, β) and R's (k_r, v_r, β_r); queries (and
    # outputs) only for W's heads.
    cat = lambda a, b, dim=2: torch.cat([a, b], dim)  # noqa: E731
    z, WR, parts = _chunked("delta", q, cat(k, k_r), cat(v, v_r), cat(beta, beta_r), cat(W0, R0, 1), first, grad,
                            chunk)
    W, R = WR[:, :H], WR[:, H:]
    zb, outs, t0 = _bhtd(z), [], 0
    h = h.detach() if grad == "truncated" else h
    for K, U, S, same, alive in parts:
        K, U, S = K[:, H:], U[:, H:], S[:, H:]
        c = K.shape[2]
        z_c, first_c = zb[:, :, t0:t0 + c], first[t0:t0 + c]
        if grad == "full":
            o = _RecurrentReadFunction.apply(z_c, K, U, S, h, same, alive, first_c)
        else:
            # Truncated: the values of the stepped loop (no gradient); gradients only within each step, where
            # h_t = R'_tᵀ p_t + ⟨p_t, k_t⟩ u_t + z_t with p_t = softmax(h_{t-1}) and R'_t held constant.
            with torch.no_grad():
                o, P, *_ = _recurrent_read_loop(z_c, K, U, S, h, same, alive, _reset_rows(first_c))
            own = (P * K).sum(-1, keepdim=True) * U + z_c
            o = o + (own - own.detach())
        outs.append(o)
        h = o[:, :, -1]
        t0 += c
    out = _tbhd(torch.cat(outs, 2))
    return out, (W, R, out[-1])


def _recurrent_read_loop(z, K, U, S, h, same, alive, resets):
    """Delta RNN's h_t = R_tᵀ softmax_eps(h_{t-1}) + z_t over one chunk, no autograd, with R_t read from the
    chunk's delta-rule writes: R_tᵀ p = [⟨p, k_s⟩ same[t, s] for s < C, alive_t p] @ [U; S] (two small products
    per step). z, K, U [B, H, C, d], S (R at the chunk's start) [B, H, d, d], h [B, H, d], same [B, C, C],
    alive [B, C]. Returns (h_t [B, H, C, d], p_t [B, H, C, d], the read coefficients a_t [B, H, C, C+d], Kᵀ,
    [U; S], the mask)."""
    B, H, C, d = K.shape
    n = B * H
    KT = K.reshape(n, C, d).transpose(1, 2)
    US = torch.cat([U, S], 2).reshape(n, C + d, d)
    mask = torch.cat([same, alive[..., None].expand(B, C, d)], -1).to(K.dtype)  # [B, C, C+d]
    outs, P, A = [], [], []
    for i in range(C):
        if resets[i] is not None:
            h = h.index_fill(0, resets[i], 0)
        e = torch.exp(h - h.amax(-1, keepdim=True))
        p = e / (e.sum(-1, keepdim=True) + SOFTMAX_EPS)
        a = torch.cat([torch.bmm(p.reshape(n, 1, d), KT).view(B, H, C), p], -1) * mask[:, None, i]
        h = torch.bmm(a.view(n, 1, C + d), US).view(B, H, d) + z[:, :, i]
        outs.append(h), P.append(p), A.append(a)
    return torch.stack(outs, 2), torch.stack(P, 2), torch.stack(A, 2), KT, US, mask


class _RecurrentReadFunction(torch.autograd.Function):
    """Delta RNN's stepped part (one chunk) as one loop with a hand-written backward: gradients to z, the
    chunk's keys and writes (K, U), its initial R (S) and the initial h; the per-step outer products of the
    backward are gathered into two batched products after the loop."""

    @staticmethod
    def forward(ctx, z, K, U, S, h0, same, alive, first):
        resets = _reset_rows(first)
        out, P, A, KT, US, mask = _recurrent_read_loop(z, K, U, S, h0, same, alive, resets)
        ctx.save_for_backward(P, A, KT, US, mask)
        ctx.resets = resets
        return out

    @staticmethod
    def backward(ctx, g_out):
        P, A, KT, US, mask = ctx.saved_tensors
        B, H, C, d = P.shape
        n = B * H
        g_out = g_out.contiguous()
        G = torch.empty_like(P)  # the gradient of every h_t, which is also z_t's
        GA = P.new_empty(B, H, C, C + d)
        gh = torch.zeros_like(P[:, :, 0])
        US_t, K = US.transpose(1, 2), KT.transpose(1, 2)
        for i in reversed(range(C)):
            gh = gh + g_out[:, :, i]
            G[:, :, i] = gh
            ga = torch.bmm(gh.reshape(n, 1, d), US_t).view(B, H, C + d) * mask[:, None, i]
            GA[:, :, i] = ga
            gp = ga[..., C:] + torch.bmm(ga[..., :C].reshape(n, 1, C), K).view(B, H, d)
            p = P[:, :, i]
            gh = p * (gp - (p * gp).sum(-1, keepdim=True))  # softmax_eps (its max is a constant)
            if ctx.resets[i] is not None:
                gh = gh.index_fill(0, ctx.resets[i], 0)
        g_US = torch.bmm(A.reshape(n, C, C + d).transpose(1, 2), G.reshape(n, C, d)).view(B, H, C + d, d)
        g_K = torch.bmm(GA[..., :C].reshape(n, C, C).transpose(1, 2), P.reshape(n, C, d)).view(B, H, C, d)
        return G, g_K, g_US[:, :, :C], g_US[:, :, C:], gh, None, None, None


def _reset_rows(first: torch.Tensor) -> list[torch.Tensor | None]:
    """Per step, the batch rows an episode starts in (None where there are none): resets touch only them."""
    any_reset = first.any(1).tolist()
    return [first[t].nonzero()[:, 0] if r else None for t, r in enumerate(any_reset)]


def _rdn_loop(x, R_cat, W0, y0, resets):
    """RDN's forward over time, no autograd. x [T, H, B, 3d+1] = q̃ | k̃ | ṽ | β̃, R_cat [H, d, 3d+1] =
    [R_q | R_k | R_v | r_b], W0 [H, B, d, d], y0 [H, B, d]. Returns (outputs [T, H, B, d], Wbuf [T+1, H, B, d, d]
    with Wbuf[t] = W'_t (after the reset, before the write) and Wbuf[T] = the final W, s = tanh(y_{t-1}) [T, H, B, d],
    q | k [T, H, B, 2, d], u = β (v - W'ᵀ k), v - W'ᵀ k, β [T, H, B])."""
    T, H, B, width = x.shape
    d, n = (width - 1) // 3, H * B
    Wbuf = x.new_empty(T + 1, H, B, d, d)
    Wbuf[0] = W0
    S, QK, U, D, Bt, outs = [], [], [], [], [], []
    y = y0
    for t in range(T):
        W = Wbuf[t]
        if resets[t] is not None:
            W[:, resets[t]] = 0
            y = y.index_fill(1, resets[t], 0)
        s = torch.tanh(y)
        proj = torch.baddbmm(x[t], s, R_cat)
        qk = torch.softmax(proj[..., :2 * d].unflatten(-1, (2, d)), -1)
        bt = torch.sigmoid(proj[..., 3 * d])
        read = torch.bmm(qk.view(n, 2, d), W.view(n, d, d)).view(H, B, 2, d)  # W'ᵀ q | W'ᵀ k in one read
        diff = proj[..., 2 * d:3 * d] - read[..., 1, :]
        u = diff * bt[..., None]
        k = qk[..., 1, :]
        y = torch.addcmul(read[..., 0, :], (qk[..., 0, :] * k).sum(-1, keepdim=True), u)  # W_tᵀ q
        torch.addcmul(W, k[..., :, None], u[..., None, :], out=Wbuf[t + 1])
        S.append(s), QK.append(qk), U.append(u), D.append(diff), Bt.append(bt), outs.append(y)
    st = torch.stack
    return st(outs), Wbuf, st(S), st(QK), st(U), st(D), st(Bt)


class _RDNFunction(torch.autograd.Function):
    """RDN as one fused loop over time with a hand-written backward. Layout inside: [T, H, B, ...] so the
    per-head recurrent matrices multiply with bmm. Every W'_t is kept in one buffer (a reset cannot be undone);
    per step the forward reads W' once for q and k together (y_t = W_tᵀ q = W'ᵀ q + ⟨q, k⟩ u) and writes W_t
    with one fused outer-product add, and the backward reads W' once for two vectors and never forms W_t."""

    @staticmethod
    def forward(ctx, x, R_cat, W0, y0, first):
        resets = _reset_rows(first)
        outs, Wbuf, S, QK, U, D, Bt = _rdn_loop(x, R_cat, W0, y0, resets)
        ctx.save_for_backward(R_cat, Wbuf, S, QK, U, D, Bt)
        ctx.resets = resets
        return outs, Wbuf[-1].clone(), outs[-1].clone()

    @staticmethod
    def backward(ctx, g_out, g_W, g_y):
        R_cat, Wbuf, S, QK, U, D, Bt = ctx.saved_tensors
        T, H, B, d = S.shape
        n = H * B
        gW = torch.zeros_like(Wbuf[0]) if g_W is None else g_W.clone(memory_format=torch.contiguous_format)
        gW3 = gW.view(n, d, d)  # the gradient of W_t (after the write) while step t is processed
        gy = torch.zeros_like(S[0]) if g_y is None else g_y.clone(memory_format=torch.contiguous_format)
        g_out = None if g_out is None else g_out.contiguous()
        g_x = S.new_empty(T, H, B, 3 * d + 1)
        R_t = R_cat.transpose(-1, -2)
        # Everything that does not depend on the gradients, for all steps at once.
        Q, K = QK[..., 0, :].contiguous(), QK[..., 1, :].contiguous()
        qk_dot, tanh_grad, sigmoid_grad = (Q * K).sum(-1, keepdim=True), 1 - S * S, Bt * (1 - Bt)
        for t in reversed(range(T)):
            if g_out is not None:
                gy = gy + g_out[t]
            q, k, u = Q[t], K[t], U[t]
            # gW3 is still the gradient of W_t from later steps; y_t = W_tᵀ q adds q gyᵀ, which the reads below
            # take into account without applying it first. Matrix-vector products as row vector times matrix
            # (bmm is several times faster that way).
            gk = torch.bmm(u.view(n, 1, d), gW3.transpose(1, 2)).view(H, B, d)  # W_t = W' + k uᵀ: g_k = gW u
            gu = torch.bmm(k.view(n, 1, d), gW3).view(H, B, d)  # g_u = gWᵀ k
            u_gy = (u * gy).sum(-1, keepdim=True)
            gk.addcmul_(q, u_gy)
            gu.addcmul_(qk_dot[t], gy)
            gx = g_x[t]
            gv = torch.mul(gu, Bt[t][..., None], out=gx[..., 2 * d:3 * d])  # u = β (v - W'ᵀ k)
            torch.mul((gu * D[t]).sum(-1), sigmoid_grad[t], out=gx[..., 3 * d])
            r = torch.bmm(torch.stack([gy, gv], -2).view(n, 2, d), Wbuf[t].view(n, d, d).transpose(1, 2))
            r = r.view(H, B, 2, d)  # W' gy | W' gv
            gW.addcmul_(q[..., :, None], gy[..., None, :]).addcmul_(k[..., :, None], gv[..., None, :], value=-1)
            gq = torch.addcmul(r[..., 0, :], k, u_gy)  # W_t gy = W' gy + k ⟨u, gy⟩
            gqk = torch.stack([gq, gk.sub_(r[..., 1, :])], -2)
            qk = QK[t]
            torch.mul(qk, gqk - (qk * gqk).sum(-1, keepdim=True), out=gx[..., :2 * d].view(H, B, 2, d))  # softmaxes
            gy = torch.bmm(gx, R_t).mul_(tanh_grad[t])  # s = tanh(y_{t-1})
            if ctx.resets[t] is not None:
                gy.index_fill_(1, ctx.resets[t], 0)
                gW[:, ctx.resets[t]] = 0
        gR = torch.bmm(S.permute(1, 3, 0, 2).reshape(H, d, T * B), g_x.transpose(0, 1).reshape(H, T * B, -1))
        return g_x, gR, gW, gy, None


def fast_rdn(q, k, v, beta, R_q, R_k, R_v, r_b, state, first, grad: CoreGrad = "full"):
    _check("rdn", first, q=q, k=k, v=v, beta=beta)
    if fast_weights_cuda.supports(q):
        return fast_weights_cuda.rdn(q, k, v, beta, R_q, R_k, R_v, r_b, state, first, grad)
    W0, y0 = state
    x = torch.cat([q, k, v, beta[..., None]], -1).transpose(1, 2).contiguous()  # [T, H, B, 3d+1]
    R_cat = torch.cat([R_q, R_k, R_v, r_b[..., None]], -1)
    W0h, y0h = W0.transpose(0, 1).contiguous(), y0.transpose(0, 1)
    if grad == "full":
        out, W, y = _RDNFunction.apply(x, R_cat, W0h, y0h, first)
        return out.transpose(1, 2), (W.transpose(0, 1), y.transpose(0, 1))
    # Truncated: every step's prior state without gradient, then all steps at once with gradients.
    with torch.no_grad():
        _, Wbuf, S, *_ = _rdn_loop(x, R_cat, W0h, y0h, _reset_rows(first))
    Wp, d = Wbuf[:-1], q.shape[-1]
    proj = torch.einsum("thbi,hij->thbj", S, R_cat) + x
    qt = torch.softmax(proj[..., :d], -1)
    kt = torch.softmax(proj[..., d:2 * d], -1)
    vt = proj[..., 2 * d:3 * d]
    bt = torch.sigmoid(proj[..., 3 * d])
    m = Wp.shape[0] * Wp.shape[1] * Wp.shape[2]
    read = torch.bmm(torch.stack([qt, kt], -2).view(m, 2, d), Wp.view(m, d, d)).view(*qt.shape[:3], 2, d)
    u = bt[..., None] * (vt - read[..., 1, :])  # W'ᵀ k
    o = read[..., 0, :] + (qt * kt).sum(-1, keepdim=True) * u  # W_tᵀ q = W'ᵀ q + ⟨q, k⟩ u
    W = Wp[-1] + kt[-1, ..., :, None] * u[-1, ..., None, :]  # the last write keeps its gradient
    return o.transpose(1, 2), (W.transpose(0, 1), o[-1].transpose(0, 1))


# =========================================================================================================
# Dispatch by name.
# =========================================================================================================
RULES: dict[str, tuple[Callable, Callable]] = {
    "lt": (naive_lt, fast_lt),
    "delta": (naive_delta, fast_delta),
    "rdn": (naive_rdn, fast_rdn),
    "delta_rnn": (naive_delta_rnn, fast_delta_rnn),
}
