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
that form and only ``h`` stepped in a loop, RDN (sequential by nature) as one fused loop with a hand-written
backward. Every function returns ``(outputs [T, B, H, d], final_state)`` and passes gradients to the initial
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
DEFAULT_CHUNK = 64


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
    return [(s, min(s + size, t)) for s in range(0, t, size)]


def _lt_chunk(q, k, v, S, same, alive):
    """q, k, v [B, H, C, d], S [B, H, d, d], same [B, C, C], alive [B, C] -> (o, S_end)."""
    mask, g = same[:, None].to(q.dtype), alive[:, None, :, None].to(q.dtype)
    o = (q @ k.transpose(-1, -2) * mask) @ v + g * (q @ S)
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
    o = (q @ k.transpose(-1, -2) * mask) @ U + g * (q @ S)
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
    o = _prior_read(q, k, U0, S, same, alive) + (q * k).sum(-1, keepdim=True) * u
    last = k[:, :, -1, :, None] * u[:, :, -1, None, :] - (k[:, :, -1, :, None] * U0[:, :, -1, None, :]).detach()
    return o, u, S_end + last  # the last write keeps its gradient, as in the step-by-step original


def _chunked(rule, q, k, v, beta, state, first, grad, chunk):
    """LT / Delta Net over [T, ...] chunk by chunk -> (o [T, B, H, d], final state, per-chunk (k, U, S, same,
    alive) for callers that read the states again)."""
    qb, kb, vb = _bhtd(q), _bhtd(k), _bhtd(v)
    bb = beta.permute(1, 2, 0) if beta is not None else None
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
    z, W, _ = _chunked("delta", q, k, v, beta, W0, first, grad, chunk)
    _, R, parts = _chunked("delta", k_r, k_r, v_r, beta_r, R0, first, grad, chunk)
    zb, keep, outs, t0 = _bhtd(z), _keep(first, q), [], 0
    h = h.detach() if grad == "truncated" else h
    for K, U, S, same, alive in parts:
        if grad == "full":
            att_mask, K_read, U_read = same[:, None].to(q.dtype), K, U
        else:
            att_mask, K_read, U_read = same[:, None].to(q.dtype).tril(-1), K.detach(), U.detach()
        g = alive[:, None].to(q.dtype)
        for i in range(K.shape[2]):
            h = h * keep[t0 + i, :, None, None]
            p = softmax_eps(h)[..., None, :]  # [B, H, 1, d]
            read = (p @ K_read.transpose(-1, -2) * att_mask[:, :, i:i + 1]) @ U_read + g[:, :, i, None, None] * (p @ S)
            if grad == "truncated":
                read = read + (p * K[:, :, i:i + 1]).sum(-1, keepdim=True) * U[:, :, i:i + 1]
            h = read[:, :, 0] + zb[:, :, t0 + i]
            if grad == "truncated":
                outs.append(h)
                h = h.detach()
            else:
                outs.append(h)
        t0 += K.shape[2]
    out = torch.stack(outs)
    return out, (W, R, out[-1])


class _RDNFunction(torch.autograd.Function):
    """RDN as one fused loop over time with a hand-written backward (states kept, not re-derived: a reset
    cannot be undone). Layout inside: [T, H, B, ...] so the per-head recurrent matrices multiply with bmm."""

    @staticmethod
    def forward(ctx, q, k, v, beta, R_cat, W0, y0, keep):
        # q, k, v [T, H, B, d]; beta [T, H, B]; R_cat [H, d, 3d+1] = [R_q | R_k | R_v | r_b]; W0 [H, B, d, d];
        # y0 [H, B, d]; keep [T, 1, B] (0 where an episode starts).
        T, d = q.shape[0], q.shape[-1]
        W, y = W0, y0
        Ws, Ss, Qs, Ks, Us, Ds, Bs, outs = [], [], [], [], [], [], [], []
        for t in range(T):
            m = keep[t]
            W = W * m[..., None, None]
            y = y * m[..., None]
            s = torch.tanh(y)
            proj = torch.bmm(s, R_cat)
            qt = torch.softmax(q[t] + proj[..., :d], -1)
            kt = torch.softmax(k[t] + proj[..., d:2 * d], -1)
            vt = v[t] + proj[..., 2 * d:3 * d]
            bt = torch.sigmoid(beta[t] + proj[..., 3 * d])
            diff = vt - (kt[..., None, :] @ W)[..., 0, :]
            u = bt[..., None] * diff
            Ws.append(W)  # W'_t, before the write
            W = W + kt[..., :, None] * u[..., None, :]
            y = (qt[..., None, :] @ W)[..., 0, :]
            Ss.append(s), Qs.append(qt), Ks.append(kt), Us.append(u), Ds.append(diff), Bs.append(bt)
            outs.append(y)
        ctx.save_for_backward(R_cat, keep, torch.stack(Ws), W, torch.stack(Ss), torch.stack(Qs), torch.stack(Ks),
                              torch.stack(Us), torch.stack(Ds), torch.stack(Bs))
        return torch.stack(outs), W, y

    @staticmethod
    def backward(ctx, g_out, g_W, g_y):
        R_cat, keep, Wp, W_last, S, Q, K, U, D, Bt = ctx.saved_tensors
        T, d = Q.shape[0], Q.shape[-1]
        gW = torch.zeros_like(W_last) if g_W is None else g_W.clone()
        gy = torch.zeros_like(Q[0]) if g_y is None else g_y.clone()
        g_out = torch.zeros_like(Q) if g_out is None else g_out
        g_cat = torch.empty(T, *Q.shape[1:-1], 3 * d + 1, dtype=Q.dtype, device=Q.device)
        gR = torch.zeros_like(R_cat)
        for t in reversed(range(T)):
            qt, kt, u, diff, bt, s = Q[t], K[t], U[t], D[t], Bt[t], S[t]
            Wt = Wp[t] + kt[..., :, None] * u[..., None, :]
            gy = gy + g_out[t]
            gW = gW + qt[..., :, None] * gy[..., None, :]  # y = Wᵀq
            gq = (Wt @ gy[..., None])[..., 0]
            gk = (gW @ u[..., None])[..., 0]  # W = W' + k uᵀ
            gu = (kt[..., None, :] @ gW)[..., 0, :]
            gb = (gu * diff).sum(-1)  # u = β (v - W'ᵀ k)
            gv = bt[..., None] * gu
            gW = gW - kt[..., :, None] * gv[..., None, :]  # v̄ = W'ᵀ k, g_v̄ = -β gu = -gv
            gk = gk - (Wp[t] @ gv[..., None])[..., 0]
            ga_q = qt * (gq - (qt * gq).sum(-1, keepdim=True))
            ga_k = kt * (gk - (kt * gk).sum(-1, keepdim=True))
            ga_b = gb * bt * (1 - bt)
            gc = torch.cat([ga_q, ga_k, gv, ga_b[..., None]], -1)
            g_cat[t] = gc
            gR = gR + torch.bmm(s.transpose(-1, -2), gc)
            gs = torch.bmm(gc, R_cat.transpose(-1, -2))
            gy = gs * (1 - s * s) * keep[t][..., None]
            gW = gW * keep[t][..., None, None]
        return (g_cat[..., :d], g_cat[..., d:2 * d], g_cat[..., 2 * d:3 * d], g_cat[..., 3 * d], gR, gW, gy, None)


class _Ctx:
    """Stands in for autograd's ctx when the fused forward is run without autograd."""

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


def fast_rdn(q, k, v, beta, R_q, R_k, R_v, r_b, state, first, grad: CoreGrad = "full"):
    _check("rdn", first, q=q, k=k, v=v, beta=beta)
    if fast_weights_cuda.supports(q):
        return fast_weights_cuda.rdn(q, k, v, beta, R_q, R_k, R_v, r_b, state, first, grad)
    W0, y0 = state
    hb = lambda x: x.transpose(1, 2)  # noqa: E731  [T, B, H, ...] -> [T, H, B, ...]
    R_cat = torch.cat([R_q, R_k, R_v, r_b[..., None]], -1)
    keep = _keep(first, q)[:, None, :]
    args = (hb(q), hb(k), hb(v), beta.transpose(1, 2), R_cat, W0.transpose(0, 1), y0.transpose(0, 1), keep)
    if grad == "full":
        out, W, y = _RDNFunction.apply(*args)
        return out.transpose(1, 2), (W.transpose(0, 1), y.transpose(0, 1))
    # Truncated: every step's prior state without gradient, then all steps at once with gradients.
    ctx = _Ctx()
    with torch.no_grad():
        _RDNFunction.forward(ctx, *[a.detach() for a in args])
    Wp, S = ctx.saved_tensors[2], ctx.saved_tensors[4]  # [T, H, B, d, d], [T, H, B, d]
    d = q.shape[-1]
    proj = torch.einsum("thbi,hij->thbj", S, R_cat)
    qt = torch.softmax(args[0] + proj[..., :d], -1)
    kt = torch.softmax(args[1] + proj[..., d:2 * d], -1)
    vt = args[2] + proj[..., 2 * d:3 * d]
    bt = torch.sigmoid(args[3] + proj[..., 3 * d])
    u = bt[..., None] * (vt - torch.einsum("thbkv,thbk->thbv", Wp, kt))
    o = torch.einsum("thbkv,thbk->thbv", Wp, qt) + (qt * kt).sum(-1, keepdim=True) * u
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
