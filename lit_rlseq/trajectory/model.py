"""The trajectory GPT: the shared ``nn.gpt.GPT`` with the Trajectory Transformer's three additions.

* Per-dimension embedding offsets: token ``i`` of dimension ``j`` (position ``p``, ``j = p % transition_dim``)
  is embedded as ``i + j * n_bins``; the stop token (``n_bins``) of every dimension shares one id,
  ``transition_dim * n_bins``.
* Per-dimension output heads: position ``p`` predicts the next token with head ``p % transition_dim``
  (``n_bins + 1`` classes: the bins and the stop token).
* Value tokens are never attended to: positions ``transition_dim - 1, 2 * transition_dim - 1, ...`` are
  hidden as keys from every query (including their own), so the model cannot condition on value estimates.

Sequences must start at an observation's first token (the planner crops by whole transitions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lit_rlseq.errors import UserError
from lit_rlseq.nn.gpt import GPT, GPTConfig, KVCache


@dataclass
class TrajectoryGPTConfig:
    observation_dim: int
    action_dim: int
    n_bins: int = 100
    window: int = 10  # transitions per training sequence; block_size = window * transition_dim - 1
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for key in ("observation_dim", "action_dim", "n_bins", "window"):
            if getattr(self, key) < 1:
                raise UserError(f"TrajectoryGPTConfig.{key}={getattr(self, key)} must be a positive integer")

    @property
    def transition_dim(self) -> int:
        return self.observation_dim + self.action_dim + 2

    @property
    def block_size(self) -> int:
        return self.window * self.transition_dim - 1

    def gpt_config(self) -> GPTConfig:
        return GPTConfig(
            vocab_size=self.transition_dim * self.n_bins + 1,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            out_size=self.n_bins + 1,
            n_output_heads=self.transition_dim,
        )


def value_key_mask(block_size: int, transition_dim: int) -> torch.Tensor:
    """``[block, block]`` bool, False in the columns of value tokens (every ``transition_dim``-th, last one)."""
    mask = torch.ones(block_size, block_size, dtype=torch.bool)
    mask[:, transition_dim - 1 :: transition_dim] = False
    return mask


class TrajectoryGPT(nn.Module):
    def __init__(self, config: TrajectoryGPTConfig):
        super().__init__()
        self.config = config
        self.gpt = GPT(config.gpt_config(), attention_mask=value_key_mask(config.block_size, config.transition_dim))

    @property
    def stop_token(self) -> int:
        return self.config.n_bins

    def embedding_ids(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Per-dimension token ids ``[B, T]`` at positions ``start ...`` -> ids into the shared embedding."""
        c = self.config
        dims = torch.arange(start, start + tokens.shape[1], device=tokens.device) % c.transition_dim
        ids = tokens + dims * c.n_bins
        return torch.where(tokens == c.n_bins, c.transition_dim * c.n_bins, ids)

    def forward(
        self, tokens: torch.Tensor, cache: KVCache | None = None, use_cache: bool = False
    ) -> tuple[torch.Tensor, KVCache | None]:
        """``tokens [B, T]`` (bin ids or the stop token) -> ``(logits [B, T, n_bins + 1], cache)``."""
        start = cache.length if cache is not None else 0
        return self.gpt(self.embedding_ids(tokens, start), cache=cache, use_cache=use_cache)

    def new_cache(self, batch_size: int, capacity: int | None = None) -> KVCache:
        return self.gpt.new_cache(batch_size, capacity)
