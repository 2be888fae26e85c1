"""The CUDA kernels of cuda_ext/ behind the fast paths of lit_rlseq.nn.fast_weights (used for float32 CUDA
tensors with head size <= 64; other CUDA inputs use the PyTorch fast path).

The extension is built on first use with torch.utils.cpp_extension (nvcc and ninja needed; the build is cached in
TORCH_EXTENSIONS_DIR). Kernels run on the current CUDA stream of the inputs' device, under a device guard, so no
CUDA_LAUNCH_BLOCKING is needed. Same signatures and semantics as the ``fast_*`` functions, ``grad`` included.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

SOURCES = Path(__file__).resolve().parents[2] / "cuda_ext"
FILES = ("fast_weights.cpp", "fast_weights_kernels.cu")
SOFTMAX_EPS = 1e-6


def supports(x: torch.Tensor) -> bool:
    """Whether the kernels handle these inputs (float32 on CUDA, head size <= 64)."""
    return x.is_cuda and x.dtype == torch.float32 and x.shape[-1] <= 64


@functools.lru_cache(maxsize=None)
def extension():
    """Builds (once per machine, then loads from the cache) and returns the compiled extension."""
    missing = [name for name in FILES if not (SOURCES / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the fast-weight CUDA sources {missing} are not in {SOURCES}; install lit_rlseq from a checkout "
            "(pip install -e .) so that cuda_ext/ is next to the package"
        )
    from torch.utils.cpp_extension import load

    return load(name="lit_rlseq_fast_weights", sources=[str(SOURCES / name) for name in FILES],
                extra_cuda_cflags=["-O3"], extra_cflags=["-O3"], verbose=False)


def _call(name: str, *args):
    """Runs one extension function under a device guard for the inputs' device, on that device's current stream."""
    device = args[0].device
    with torch.cuda.device(device):
        return getattr(extension(), name)(*args, torch.cuda.current_stream(device).cuda_stream)


def _bhtd(x: torch.Tensor) -> torch.Tensor:
    return x.permute(1, 2, 0, *range(3, x.dim())).contiguous()


def _tbhd(x: torch.Tensor) -> torch.Tensor:
    return x.permute(2, 0, 1, *range(3, x.dim()))


def _keep(first: torch.Tensor) -> torch.Tensor:
    return (~first).t().to(torch.float32).contiguous()  # [B, T]


def _grad(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if g is None else g.contiguous()


class _Delta(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, beta, W0, keep, sum_rule: bool, truncated: bool):
        out, Wprior, Wfinal = _call("delta_forward", q, k, v, beta, keep, W0, sum_rule)
        ctx.save_for_backward(q, k, v, beta, keep, Wprior)
        ctx.flags = (sum_rule, truncated)
        return out, Wfinal

    @staticmethod
    def backward(ctx, g_out, g_W):
        q, k, v, beta, keep, Wprior = ctx.saved_tensors
        sum_rule, truncated = ctx.flags
        gq, gk, gv, gbeta, gW0 = _call(
            "delta_backward", q, k, v, beta, keep, Wprior, _grad(g_out, q), _grad(g_W, Wprior[:, :, 0]), sum_rule, truncated)
        return gq, gk, gv, (None if sum_rule else gbeta), (None if truncated else gW0), None, None, None


class _RDN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, beta, R, W0, y0, keep, truncated: bool):
        out, Wprior, S, Q, K, U, D, Bt, Wfinal, yfinal = _call("rdn_forward", q, k, v, beta, R, keep, W0, y0)
        ctx.save_for_backward(R, keep, Wprior, S, Q, K, U, D, Bt)
        ctx.truncated = truncated
        return out, Wfinal, yfinal

    @staticmethod
    def backward(ctx, g_out, g_W, g_y):
        R, keep, Wprior, S, Q, K, U, D, Bt = ctx.saved_tensors
        gq, gk, gv, gb, gR, gW0, gy0 = _call(
            "rdn_backward", R, keep, Wprior, S, Q, K, U, D, Bt, _grad(g_out, Q), _grad(g_W, Wprior[:, :, 0]), _grad(g_y, Q[:, :, 0]),
            ctx.truncated)
        none = ctx.truncated
        return gq, gk, gv, gb, gR, (None if none else gW0), (None if none else gy0), None, None


class _DeltaRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, beta, kr, vr, betar, W0, R0, h0, keep, truncated: bool):
        out, Wprior, Rprior, P, Wf, Rf, hf = _call("delta_rnn_forward", q, k, v, beta, kr, vr, betar, keep, W0,
                                                                     R0, h0, SOFTMAX_EPS)
        ctx.save_for_backward(q, k, v, beta, kr, vr, betar, keep, Wprior, Rprior, P)
        ctx.truncated = truncated
        return out, Wf, Rf, hf

    @staticmethod
    def backward(ctx, g_out, g_W, g_R, g_h):
        q, k, v, beta, kr, vr, betar, keep, Wprior, Rprior, P = ctx.saved_tensors
        grads = _call(
            "delta_rnn_backward", q, k, v, beta, kr, vr, betar, keep, Wprior, Rprior, P, _grad(g_out, q), _grad(g_W, Wprior[:, :, 0]),
            _grad(g_R, Rprior[:, :, 0]), _grad(g_h, q[:, :, 0]), ctx.truncated)
        gq, gk, gv, gbeta, gkr, gvr, gbetar, gW0, gR0, gh0 = grads
        none = ctx.truncated
        return (gq, gk, gv, gbeta, gkr, gvr, gbetar, None if none else gW0, None if none else gR0,
                None if none else gh0, None, None)


def lt(q, k, v, state, first, grad="full"):
    beta = torch.zeros(q.shape[1], q.shape[2], q.shape[0], device=q.device)
    out, W = _Delta.apply(_bhtd(q), _bhtd(k), _bhtd(v), beta, state.contiguous(), _keep(first), True,
                          grad == "truncated")
    return _tbhd(out), W


def delta(q, k, v, beta, state, first, grad="full"):
    out, W = _Delta.apply(_bhtd(q), _bhtd(k), _bhtd(v), beta.permute(1, 2, 0).contiguous(), state.contiguous(),
                          _keep(first), False, grad == "truncated")
    return _tbhd(out), W


def rdn(q, k, v, beta, R_q, R_k, R_v, r_b, state, first, grad="full"):
    W0, y0 = state
    R = torch.cat([R_q, R_k, R_v, r_b[..., None]], -1).contiguous()
    out, W, y = _RDN.apply(_bhtd(q), _bhtd(k), _bhtd(v), beta.permute(1, 2, 0).contiguous(), R, W0.contiguous(),
                           y0.contiguous(), _keep(first), grad == "truncated")
    return _tbhd(out), (W, y)


def delta_rnn(q, k, v, beta, k_r, v_r, beta_r, state, first, grad="full"):
    W0, R0, h0 = state
    out, W, R, h = _DeltaRNN.apply(_bhtd(q), _bhtd(k), _bhtd(v), beta.permute(1, 2, 0).contiguous(), _bhtd(k_r),
                                   _bhtd(v_r), beta_r.permute(1, 2, 0).contiguous(), W0.contiguous(),
                                   R0.contiguous(), h0.contiguous(), _keep(first), grad == "truncated")
    return _tbhd(out), (W, R, h)
