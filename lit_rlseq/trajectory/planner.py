"""Beam-search planning with the trajectory GPT, exactly as the reference does it, cached and batched.

One planning call (per environment step, for ``E`` environments at once):

1. Each env's prefix (its last ``max_context_transitions`` executed transitions + the current observation, all
   tokens) is tiled to ``beam_width`` rows.
2. For ``t`` in ``0 .. horizon-1``: tile every env's rows ``n_expand`` times (``[b0..bW-1, b0..bW-1, ...]``),
   sample the action tokens (cdf filter / top-k), sample the reward and value tokens (top-1), score every row by
   ``sum_{i<=t} discount^i r_i + discount^(t+1) V_t`` with ``r_i, V_t`` the **expectations** of the unfiltered
   softmax over bin midpoints, keep each env's ``beam_width`` best rows (``topk``), and, unless ``t`` is the
   last step, sample the next observation tokens (top-1).
3. The best row's last ``horizon`` transitions are the plan; its first action is executed.

The model sees at most ``block = min(block_size, max_context_transitions * transition_dim - 1)`` tokens:
a longer sequence is cropped from the left by whole transitions (``n_crop`` = ``len - block`` rounded up to a
multiple of ``transition_dim``), so its window starts at an observation and positions restart at 0.

Sampling: a token is drawn with ``torch.multinomial`` from ``softmax(filter(logits))`` where the cdf filter
sets to -1000 the logits of the least probable tokens whose ascending cumulative probability is below the
threshold (and every token as improbable as the last of them), and top-k sets to -inf the logits below the
k-th largest (ties kept).

``beam_plan_reference`` does this the reference's way: one full forward pass over the (cropped) sequence per
sampled token. ``beam_plan`` gives the same plans (same model, same generator: identical tokens) with the KV
cache: each env's prefix is encoded once and shared by its beams; a sampled token costs a one-token forward
pass, except when the crop window moves (every ``transition_dim`` tokens), which re-encodes the window (its
part shared by all of an env's rows once per env); rows are reindexed in the cache after every expansion and
selection. Both run all envs in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lit_rlseq.errors import UserError
from lit_rlseq.trajectory.discretize import expectation
from lit_rlseq.trajectory.model import TrajectoryGPT


@dataclass
class PlannerSettings:
    """Reference defaults (Hopper/Walker2d medium and medium-expert). Per-dataset overrides in the reference:
    halfcheetah-medium/-medium-replay horizon 5, beam 32; halfcheetah-medium-expert beam 32; walker2d-medium-expert
    horizon 5; walker2d-medium-replay horizon 20, beam 32, k_act 40, cdf_act None."""

    horizon: int = 15
    beam_width: int = 128
    n_expand: int = 2
    discount: float = 0.99
    max_context_transitions: int | None = 5  # None: the model's whole block
    k_obs: int | None = 1
    k_act: int | None = None
    k_rew: int | None = 1
    cdf_obs: float | None = None
    cdf_act: float | None = 0.6
    cdf_rew: float | None = None

    def __post_init__(self) -> None:
        for key in ("horizon", "beam_width", "n_expand"):
            if getattr(self, key) < 1:
                raise UserError(f"planner {key}={getattr(self, key)} must be >= 1")
        if self.max_context_transitions is not None and self.max_context_transitions < 1:
            raise UserError(f"planner max_context_transitions={self.max_context_transitions} must be >= 1 or None")


# ---- pure pieces


def filter_cdf(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Drop (logit -1000) the least probable tokens whose ascending cumulative probability is < ``threshold``,
    and every token whose probability is at most that of the last one dropped (ties go too).

    If no or only the least probable token is below the threshold, the tokens as improbable as the least
    probable one are dropped (the reference's behaviour).
    """
    probs = logits.softmax(dim=-1)
    ordered = probs.sort(dim=-1).values
    below = ordered.cumsum(dim=-1) < threshold
    last_below = (below * torch.arange(logits.shape[-1], device=logits.device)).argmax(dim=-1)
    cutoff = ordered.gather(-1, last_below[:, None])
    return logits.masked_fill(probs <= cutoff, -1000.0)


def top_k_logits(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits below the k-th largest of their row become -inf (ties with the k-th are kept)."""
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, -float("inf"))


def sample_token(
    logits: torch.Tensor, top_k: int | None, cdf: float | None, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits [B, V]`` -> ``(token [B, 1], unfiltered softmax [B, V])``: cdf filter, then top-k, then a draw."""
    raw = logits.softmax(dim=-1)
    if cdf is not None:
        logits = filter_cdf(logits, cdf)
    if top_k is not None:
        logits = top_k_logits(logits, top_k)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator), raw


def crop_start(length: int, block: int, transition_dim: int) -> int:
    """First token the model sees of a ``length``-token sequence: 0, or ``length - block`` rounded up to whole
    transitions."""
    if length <= block:
        return 0
    return -(-(length - block) // transition_dim) * transition_dim


def expansion_rows(n_envs: int, rows_per_env: int, n_expand: int, device) -> torch.Tensor:
    """Row index that tiles each env's ``rows_per_env`` rows ``n_expand`` times, envs kept contiguous."""
    base = torch.arange(n_envs * rows_per_env, device=device).view(n_envs, 1, rows_per_env)
    return base.expand(n_envs, n_expand, rows_per_env).reshape(-1)


def planning_block(model: TrajectoryGPT, settings: PlannerSettings) -> int:
    c = model.config
    if settings.max_context_transitions is None:
        return c.block_size
    if settings.max_context_transitions > c.window:
        raise UserError(
            f"planner max_context_transitions={settings.max_context_transitions} is longer than the model's block "
            f"of {c.window} transitions ({c.block_size} tokens); use at most {c.window}"
        )
    return min(c.block_size, settings.max_context_transitions * c.transition_dim - 1)


def check_prefixes(model: TrajectoryGPT, prefixes: torch.Tensor) -> None:
    c = model.config
    if prefixes.dim() != 2 or prefixes.shape[1] % c.transition_dim != c.observation_dim:
        raise ValueError(
            f"prefixes must be [envs, k * {c.transition_dim} + {c.observation_dim}] tokens (k transitions and an "
            f"observation), got {tuple(prefixes.shape)}"
        )


# ---- the search, written once over a "next-token logits" source


class _ReferenceSource:
    """One full forward pass over the cropped sequence per requested token (the reference's way)."""

    def __init__(self, model: TrajectoryGPT, x: torch.Tensor, block: int):
        self.model, self.x, self.block = model, x, block

    def next_logits(self) -> torch.Tensor:
        start = crop_start(self.x.shape[1], self.block, self.model.config.transition_dim)
        return self.model(self.x[:, start:])[0][:, -1]

    def append(self, tokens: torch.Tensor) -> None:
        self.x = torch.cat([self.x, tokens], dim=1)

    def select(self, rows: torch.Tensor) -> None:
        self.x = self.x[rows]


class _CachedSource:
    """The same logits from a KV cache of the current crop window, fed lazily with the tokens it has not seen.

    Rows stay grouped by env (``n_envs`` equal, contiguous groups). When the window moves, it is re-encoded in
    two parts: the leading tokens that every row of each env shares (the context, the current observation,
    common ancestry) once per env, then the rest per row on top of that cache. Row selections are applied to
    the cache lazily, so none is copied when the window moves before the cache is used again.
    """

    def __init__(self, model: TrajectoryGPT, x: torch.Tensor, block: int):
        self.model, self.x, self.block, self.n_envs = model, x, block, len(x)
        self.start = crop_start(x.shape[1], block, model.config.transition_dim)
        self.cache = model.new_cache(len(x), capacity=block)
        logits, _ = model(x[:, self.start :], cache=self.cache)
        self.logits = logits[:, -1]  # valid while the cache covers all of x
        self.rows: torch.Tensor | None = None  # selection not yet applied to the cache and logits

    def _encode_window(self) -> None:
        window = self.x[:, self.start :]
        per_env = len(window) // self.n_envs
        groups = window.view(self.n_envs, per_env, -1)
        agree = (groups == groups[:, :1]).all(dim=1).all(dim=0)  # positions where each env's rows agree
        shared = min(int(agree.long().cumprod(0).sum()), window.shape[1] - 1)
        self.cache = self.model.new_cache(self.n_envs, capacity=self.block)
        if shared:
            self.model(groups[:, 0, :shared], cache=self.cache)
        self.cache = self.cache.repeat_interleave(per_env)
        self.logits = self.model(window[:, shared:], cache=self.cache)[0][:, -1]

    def next_logits(self) -> torch.Tensor:
        length = self.x.shape[1]
        start = crop_start(length, self.block, self.model.config.transition_dim)
        if start != self.start:  # the window moved: positions restart, re-encode it
            self.start, self.rows = start, None
            self._encode_window()
            return self.logits
        if self.rows is not None:
            self.cache, self.logits = self.cache.index_select(self.rows), self.logits[self.rows]
            self.rows = None
        seen = self.start + self.cache.length
        if seen < length:
            self.logits = self.model(self.x[:, seen:], cache=self.cache)[0][:, -1]
        return self.logits

    def append(self, tokens: torch.Tensor) -> None:
        self.x = torch.cat([self.x, tokens], dim=1)

    def select(self, rows: torch.Tensor) -> None:
        self.x = self.x[rows]
        self.rows = rows if self.rows is None else self.rows[rows]


def _search(
    source: _ReferenceSource | _CachedSource,
    model: TrajectoryGPT,
    n_envs: int,
    thresholds: torch.Tensor,
    settings: PlannerSettings,
    generator: torch.Generator | None,
) -> torch.Tensor:
    c, s = model.config, settings
    W, H, device = s.beam_width, s.horizon, source.x.device

    def sample_n(n: int, top_k: int | None, cdf: float | None) -> torch.Tensor:
        probs = []
        for _ in range(n):
            token, raw = sample_token(source.next_logits(), top_k, cdf, generator)
            source.append(token)
            probs.append(raw)
        return torch.stack(probs, dim=1)  # [rows, n, V]

    source.select(torch.arange(n_envs, device=device).repeat_interleave(W))
    dtype = next(model.parameters()).dtype
    rewards = torch.zeros(n_envs * W, H + 1, dtype=dtype, device=device)
    discounts = s.discount ** torch.arange(H + 1, dtype=dtype, device=device)
    reward_value_thresholds = thresholds[:, -2:].to(device=device, dtype=dtype)
    for t in range(H):
        expand = expansion_rows(n_envs, W, s.n_expand, device)
        source.select(expand)
        rewards = rewards[expand]
        sample_n(c.action_dim, s.k_act, s.cdf_act)
        r_probs = sample_n(2, s.k_rew, s.cdf_rew)
        reward_value = expectation(r_probs, reward_value_thresholds)  # [rows, 2]
        rewards[:, t] = reward_value[:, 0]
        rewards[:, t + 1] = reward_value[:, 1]
        values = (rewards * discounts).sum(dim=-1).view(n_envs, W * s.n_expand)
        values, best = torch.topk(values, W, dim=-1)
        keep = (best + torch.arange(n_envs, device=device)[:, None] * W * s.n_expand).reshape(-1)
        source.select(keep)
        rewards = rewards[keep]
        if t < H - 1:
            sample_n(c.observation_dim, s.k_obs, s.cdf_obs)
    sequences = source.x.view(n_envs, W, -1, c.transition_dim)[:, :, -H:]
    return sequences[torch.arange(n_envs, device=device), values.argmax(dim=-1)]  # [E, H, D]


def _plan(source_class, model, prefixes, thresholds, settings, generator) -> torch.Tensor:
    check_prefixes(model, prefixes)
    model.eval()
    with torch.no_grad():
        source = source_class(model, prefixes, planning_block(model, settings))
        return _search(source, model, len(prefixes), thresholds, settings, generator)


def beam_plan(
    model: TrajectoryGPT,
    prefixes: torch.Tensor,
    thresholds: torch.Tensor,
    settings: PlannerSettings,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Plans for ``E`` envs at once with the KV cache. ``prefixes [E, P]`` tokens -> plans ``[E, horizon, D]``."""
    return _plan(_CachedSource, model, prefixes, thresholds, settings, generator)


def beam_plan_reference(
    model: TrajectoryGPT,
    prefixes: torch.Tensor,
    thresholds: torch.Tensor,
    settings: PlannerSettings,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The same plans without a cache: one full forward pass per sampled token, like the original."""
    return _plan(_ReferenceSource, model, prefixes, thresholds, settings, generator)
