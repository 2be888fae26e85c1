"""Recurrent cores of the FWP agents (Irie et al. 2021): the fast-weight layer stack and the LSTM baseline.

FWP cores: ``Linear(d_in -> d_model)``, then ``num_layers`` blocks of

    x = x + FastWeightSublayer(LN(x))      slow projection (no bias, rows ordered head by head) -> update rule
                                           (lit_rlseq.nn.fast_weights) -> Linear(heads * d_head -> d_model)
    x = x + FF(LN(x))                      Linear(d_model -> d_ff), ReLU, Linear(d_ff -> d_model)

(pre-LN, eps 1e-5, no final LayerNorm, no dropout). Per head, the slow projection gives

    lt          q | k | v                      φ(q), φ(k) with φ = ELU+1, sum-normalised
    delta       q | k | v | β̃                  φ(q), φ(k), β = σ(β̃)
    rdn         q̃ | k̃ | ṽ | β̃                 the rule mixes in its previous output (R_q, R_k, R_v, r_b)
    delta_rnn   q | k | v | k_r | v_r | β | β_r  softmax on q, k, k_r; σ on β, β_r

Every core is time-major: ``forward(x [T, B, d_in], first [T, B], state) -> (y [T, B, d_out], state)``; the
state is a flat tuple of tensors with the batch first (what the collector stores before each unroll), and it
is multiplied by 0 at every episode start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from lit_rlseq.nn import fast_weights as fw

RULE_NAMES = ("lt", "delta", "rdn", "delta_rnn")
Impl = Literal["fast", "naive"]


@dataclass
class FWPCoreConfig:
    rule: str = "rdn"
    d_in: int = 257
    d_model: int = 128
    num_heads: int = 4
    d_head: int = 32
    d_ff: int = 512
    num_layers: int = 2
    grad: fw.CoreGrad = "full"
    impl: Impl = "fast"

    def __post_init__(self) -> None:
        if self.rule not in RULE_NAMES:
            raise ValueError(f"FWPCoreConfig.rule={self.rule!r} is not one of {RULE_NAMES}")
        if self.grad not in ("full", "truncated"):
            raise ValueError(f"FWPCoreConfig.grad={self.grad!r} must be 'full' or 'truncated'")
        if self.impl not in ("fast", "naive"):
            raise ValueError(f"FWPCoreConfig.impl={self.impl!r} must be 'fast' or 'naive'")


PROJECTION_WIDTH = {"lt": lambda d: 3 * d, "delta": lambda d: 3 * d + 1, "rdn": lambda d: 3 * d + 1,
                    "delta_rnn": lambda d: 5 * d + 2}
STATE_SIZES = {"lt": 1, "delta": 1, "rdn": 2, "delta_rnn": 3}


class FastWeightSublayer(nn.Module):
    def __init__(self, config: FWPCoreConfig):
        super().__init__()
        self.config = c = config
        self.norm = nn.LayerNorm(c.d_model, eps=1e-5)
        self.slow = nn.Linear(c.d_model, c.num_heads * PROJECTION_WIDTH[c.rule](c.d_head), bias=False)
        self.out = nn.Linear(c.num_heads * c.d_head, c.d_model, bias=False)
        if c.rule == "rdn":
            std = 1.0 / math.sqrt(c.d_head)
            self.R_q = nn.Parameter(torch.randn(c.num_heads, c.d_head, c.d_head) * std)
            self.R_k = nn.Parameter(torch.randn(c.num_heads, c.d_head, c.d_head) * std)
            self.R_v = nn.Parameter(torch.randn(c.num_heads, c.d_head, c.d_head) * std)
            self.r_b = nn.Parameter(torch.randn(c.num_heads, c.d_head) * std)

    def initial_state(self, batch_size: int, device) -> tuple[torch.Tensor, ...]:
        c = self.config
        W = torch.zeros(batch_size, c.num_heads, c.d_head, c.d_head, device=device)
        vec = torch.zeros(batch_size, c.num_heads, c.d_head, device=device)
        return {"lt": (W,), "delta": (W,), "rdn": (W, vec), "delta_rnn": (W, W.clone(), vec)}[c.rule]

    def forward(self, x, first, state):
        c, (T, B) = self.config, x.shape[:2]
        d = c.d_head
        p = self.slow(self.norm(x)).view(T, B, c.num_heads, -1)
        naive, fast = fw.RULES[c.rule]
        rule = naive if c.impl == "naive" else fast
        if c.rule in ("lt", "delta"):
            q, k, v = fw.elu_feature_map(p[..., :d]), fw.elu_feature_map(p[..., d:2 * d]), p[..., 2 * d:3 * d]
            args = (q, k, v) if c.rule == "lt" else (q, k, v, torch.sigmoid(p[..., 3 * d]))
            out, W = rule(*args, state[0], first, grad=c.grad)
            new_state = (W,)
        elif c.rule == "rdn":
            out, new_state = rule(p[..., :d], p[..., d:2 * d], p[..., 2 * d:3 * d], p[..., 3 * d],
                                  self.R_q, self.R_k, self.R_v, self.r_b, tuple(state), first, grad=c.grad)
        else:
            sm = lambda z: torch.softmax(z, -1)  # noqa: E731
            out, new_state = rule(sm(p[..., :d]), sm(p[..., d:2 * d]), p[..., 2 * d:3 * d],
                                  torch.sigmoid(p[..., 5 * d]), sm(p[..., 3 * d:4 * d]), p[..., 4 * d:5 * d],
                                  torch.sigmoid(p[..., 5 * d + 1]), tuple(state), first, grad=c.grad)
        return self.out(out.reshape(T, B, -1)), tuple(new_state)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=1e-5)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.norm(x))))


class FWPCore(nn.Module):
    def __init__(self, config: FWPCoreConfig):
        super().__init__()
        self.config = config
        self.output_size = config.d_model
        self.input = nn.Linear(config.d_in, config.d_model)
        self.fast = nn.ModuleList(FastWeightSublayer(config) for _ in range(config.num_layers))
        self.ff = nn.ModuleList(FeedForward(config.d_model, config.d_ff) for _ in range(config.num_layers))

    def initial_state(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, ...]:
        return tuple(s for layer in self.fast for s in layer.initial_state(batch_size, device))

    def forward(self, x, first, state):
        n = STATE_SIZES[self.config.rule]
        if len(state) != n * len(self.fast):
            raise ValueError(f"FWPCore({self.config.rule}) expects {n * len(self.fast)} state tensors, got {len(state)}")
        x = self.input(x)
        new_state = []
        for i, (fast, ff) in enumerate(zip(self.fast, self.ff)):
            y, s = fast(x, first, state[i * n:(i + 1) * n])
            x = x + y
            x = x + ff(x)
            new_state.extend(s)
        return x, tuple(new_state)


class LSTMCore(nn.Module):
    """One LSTM layer; its (h, c) state is zeroed at episode starts. Spans without any episode start run as one
    nn.LSTM call (the fused kernel), so a learner's unroll costs as many calls as it has distinct reset steps."""

    def __init__(self, d_in: int = 257, hidden: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden)
        self.output_size = hidden

    def initial_state(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, ...]:
        zeros = torch.zeros(batch_size, self.output_size, device=device)
        return zeros, zeros.clone()

    def forward(self, x, first, state):
        h, c = state
        cuts = [0] + [t for t in range(1, x.shape[0]) if bool(first[t].any())] + [x.shape[0]]
        outs = []
        for a, z in zip(cuts[:-1], cuts[1:]):
            keep = (~first[a]).to(x.dtype)[:, None]
            y, (h, c) = self.lstm(x[a:z], ((h * keep)[None], (c * keep)[None]))
            h, c = h[0], c[0]
            outs.append(y)
        return torch.cat(outs), (h, c)


class FeedforwardCore(nn.Module):
    def __init__(self, d_in: int = 257):
        super().__init__()
        self.output_size = d_in

    def initial_state(self, batch_size: int, device="cpu") -> tuple[torch.Tensor, ...]:
        return ()

    def forward(self, x, first, state):
        return x, ()
