"""A GPT with a KV cache: one readable file, shared by the Trajectory Transformer and the text-game LM.

    token embedding + learned positions -> dropout -> n_layer pre-LN blocks -> LayerNorm -> output head(s)
    block:  x = x + attn(ln1(x));  x = x + mlp(ln2(x))       (attention causal, MLP 4x with GELU)

Options beyond a plain LM (all off by default):

* ``attention_mask`` (constructor): a fixed ``[block_size, block_size]`` boolean matrix (True = may attend),
  ANDed with the causal mask by absolute position. The Trajectory Transformer uses it to hide value tokens.
* ``attn_mask`` (forward): a per-batch boolean mask ``[B, S]`` (keys) or ``[B, T, S]`` (queries x keys),
  ``S`` = cached + new tokens, e.g. for padding.
* ``n_output_heads > 1``: a separate bias-free head per position modulo ``n_output_heads`` (position ``p``
  uses head ``p % n_output_heads``), each with ``out_size`` classes: per-dimension heads.

KV cache: ``logits, cache = model(idx, use_cache=True)`` encodes a prefix; ``model(next_idx, cache=cache)``
continues it without recomputing the prefix (positions continue from ``cache.length``). A cache is
preallocated to a capacity (default ``block_size``) and filled in place; ``cache.index_select(rows)``,
``cache.repeat(n)`` and ``cache.repeat_interleave(n)`` reindex its batch rows for beams (copies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lit_rlseq.errors import UserError


@dataclass
class GPTConfig:
    vocab_size: int  # input token ids are in [0, vocab_size)
    block_size: int  # the most positions the model sees at once
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1  # on embeddings, attention weights and residual branches
    bias: bool = True  # biases in the blocks' Linear layers and LayerNorms
    out_size: int | None = None  # classes per output head (None: vocab_size)
    n_output_heads: int = 1  # > 1: per-position heads, position p uses head p % n_output_heads
    tie_weights: bool = False  # share the embedding with the (single) output head

    def __post_init__(self) -> None:
        for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_output_heads"):
            if getattr(self, key) < 1:
                raise UserError(f"GPTConfig.{key}={getattr(self, key)} must be a positive integer")
        if self.n_embd % self.n_head:
            raise UserError(f"GPTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"GPTConfig.dropout={self.dropout} must be in [0, 1)")
        if self.out_size is None:
            self.out_size = self.vocab_size
        if self.tie_weights and (self.n_output_heads != 1 or self.out_size != self.vocab_size):
            raise UserError("GPTConfig.tie_weights needs one output head with out_size == vocab_size")


class KVCache:
    """Keys and values of every layer for the first ``length`` positions of ``batch_size`` sequences.

    ``keys``/``values``: ``[n_layer, B, n_head, capacity, head_dim]``, filled up to ``length``.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int = 0):
        self.keys = keys
        self.values = values
        self.length = length

    @classmethod
    def empty(cls, config: GPTConfig, batch_size: int, capacity: int, dtype: torch.dtype, device) -> KVCache:
        shape = (config.n_layer, batch_size, config.n_head, capacity, config.n_embd // config.n_head)
        return cls(torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device))

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new positions' ``k, v`` ``[B, H, T, D]`` of one layer; return the layer's keys/values so far."""
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def index_select(self, rows: torch.Tensor) -> KVCache:
        """A cache whose row ``i`` is this cache's row ``rows[i]`` (beam reordering, expansion)."""
        rows = rows.to(self.keys.device)
        shape = (self.keys.shape[0], len(rows), *self.keys.shape[2:])
        keys, values = self.keys.new_empty(shape), self.values.new_empty(shape)
        keys[:, :, :, : self.length] = self.keys[:, rows, :, : self.length]  # only the filled positions are copied
        values[:, :, :, : self.length] = self.values[:, rows, :, : self.length]
        return KVCache(keys, values, self.length)

    def repeat(self, n: int) -> KVCache:
        """Rows tiled like ``Tensor.repeat(n, 1)``: ``[r0, r1, ..., r0, r1, ...]``."""
        return self.index_select(torch.arange(self.batch_size).repeat(n))

    def repeat_interleave(self, n: int) -> KVCache:
        """Rows repeated like ``Tensor.repeat_interleave(n, 0)``: ``[r0, r0, ..., r1, r1, ...]``."""
        return self.index_select(torch.arange(self.batch_size).repeat_interleave(n))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k, v = cache.store(layer, k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), allowed, cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, attention_mask: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        n = config.block_size
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(n, config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        # [n_output_heads, out_size, n_embd], bias-free; None: the embedding's weight is the head
        self.head = None
        if not config.tie_weights:
            self.head = nn.Parameter(torch.empty(config.n_output_heads, config.out_size, config.n_embd))
        allowed = torch.ones(n, n, dtype=torch.bool).tril()
        if attention_mask is not None:
            if attention_mask.shape != (n, n) or attention_mask.dtype != torch.bool:
                raise UserError(
                    f"GPT attention_mask must be a bool tensor of shape ({n}, {n}) (block_size^2), "
                    f"got {attention_mask.dtype} {tuple(attention_mask.shape)}"
                )
            allowed = allowed & attention_mask
        self.register_buffer("allowed", allowed, persistent=False)
        self.apply(self._init_weights)
        if self.head is not None:
            nn.init.normal_(self.head, mean=0.0, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def new_cache(self, batch_size: int, capacity: int | None = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of at most ``capacity`` (default block_size) tokens."""
        capacity = capacity or self.config.block_size
        if capacity > self.config.block_size:
            raise UserError(f"cache capacity {capacity} exceeds the model's block_size {self.config.block_size}")
        return KVCache.empty(self.config, batch_size, capacity, self.pos_emb.dtype, self.pos_emb.device)

    def head_weights(self, positions: torch.Tensor) -> torch.Tensor:
        """The output head of every position: ``[T, out_size, n_embd]`` (per-position heads) or ``[out, n_embd]``."""
        if self.head is None:
            return self.tok_emb.weight
        if self.config.n_output_heads == 1:
            return self.head[0]
        return self.head[positions % self.config.n_output_heads]

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        attn_mask: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """``idx [B, T]`` -> ``(logits [B, T, out_size], cache)``.

        With ``cache``, ``idx`` continues the cached sequences (positions ``cache.length ...``) and the cache is
        filled in place and returned. Without one, ``use_cache=True`` starts a new cache (capacity block_size);
        otherwise the returned cache is None.
        """
        B, T = idx.shape
        if cache is None and use_cache:
            cache = self.new_cache(B)
        start = cache.length if cache is not None else 0
        end = start + T
        if cache is not None:
            if cache.batch_size != B:
                raise ValueError(f"cache holds {cache.batch_size} sequences but idx has batch size {B}")
            if end > cache.capacity:
                raise ValueError(f"{start} cached + {T} new tokens exceed the cache capacity {cache.capacity}")
        if end > self.config.block_size:
            raise ValueError(f"sequence of {end} tokens exceeds block_size {self.config.block_size}")
        allowed = self.allowed[start:end, :end]
        if attn_mask is not None:
            if attn_mask.dim() == 2:  # [B, S]: which keys exist
                attn_mask = attn_mask[:, None, :]
            allowed = allowed & attn_mask.bool()
            allowed = allowed[:, None]  # [B, 1, T, S] broadcast over heads
        positions = torch.arange(start, end, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb[start:end])
        for layer, block in enumerate(self.blocks):
            x = block(x, allowed, cache, layer)
        x = self.ln_f(x)
        weights = self.head_weights(positions)
        logits = torch.einsum("btc,toc->bto", x, weights) if weights.dim() == 3 else x @ weights.t()
        if cache is not None:
            cache.length = end
        return logits, cache

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """Parameter groups for AdamW: Linear and output-head weights decay; biases, norms, embeddings don't."""
        decay = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)}
        if self.head is not None:
            decay.add(id(self.head))
        params = list(self.parameters())
        return [
            {"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0},
        ]

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        stop_token: int | Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Sample ``max_new_tokens`` continuations of ``idx [B, T]`` with the KV cache; returns ``[B, T + new]``.
        See ``generate_with_cache``."""
        return generate_with_cache(self, idx, max_new_tokens, self.config.block_size, temperature, top_k, top_p,
                                   generator, stop_token)


@torch.no_grad()
def generate_with_cache(
    model: Callable,
    idx: torch.Tensor,
    max_new_tokens: int,
    block_size: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    stop_token: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Sample ``max_new_tokens`` continuations of ``idx [B, T]``; returns ``[B, T + new]``.

    ``model`` is called like ``GPT``: ``model(idx, use_cache=True) -> (logits, cache)`` starts a cache,
    ``model(next_idx, cache=cache)`` continues it, and ``cache.length`` counts the cached positions (the GPT
    here, or ``lit_rlseq.nn.hf_lm.HFCausalLM``). Sequences longer than ``block_size`` are cropped to their last
    block_size tokens (then re-encoded each step). ``temperature`` 0 is greedy. With ``stop_token`` (one id or
    several), sampling ends early once every row has produced one (rows that stopped earlier keep sampling
    until then; cut them at their first stop token).
    """
    n = block_size
    stops = None
    if stop_token is not None:
        stops = torch.as_tensor([stop_token] if isinstance(stop_token, int) else list(stop_token), device=idx.device)
    logits, cache = model(idx[:, -n:], use_cache=True)
    stopped = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        next_token = sample_logits(logits[:, -1], temperature, top_k, top_p, generator)
        idx = torch.cat([idx, next_token], dim=1)
        if stops is not None:
            stopped |= torch.isin(next_token[:, 0], stops)
            if bool(stopped.all()):
                break
        if cache.length < n:
            logits, cache = model(next_token, cache=cache)
        else:
            logits, cache = model(idx[:, -n:], use_cache=True)
    return idx


def sample_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per row of ``logits [B, V]`` -> ``[B, 1]``: temperature, then top-k, then nucleus (top-p)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already >= p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
