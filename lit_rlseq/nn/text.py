"""Reusable pieces for encoding padded word-id sequences: length masks, row dedupe, a BiLSTM, attention.

Every sequence here is a padded batch ``[N, L, ...]`` with its lengths ``[N]`` (each >= 1). Positions at or
beyond a row's length are padding: nothing computed here depends on what they hold.

Texts that repeat across a batch (a wiki is constant within an episode) are encoded once per distinct row:
an ``EncodedText`` holds the states of the U distinct rows and the ``RowGroups`` that map the N batch rows
onto them. Pooling and attention work on the distinct rows directly, so no [N, L, d] copy is ever built.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """bool [..., max_len]: True at positions inside each row's length."""
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(-1)


def unique_rows(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct (words, length) rows of a padded id batch and the index that maps them back.

    Returns ``(unique_ids [U, L], unique_lengths [U], inverse [N])`` with ``unique_ids[inverse]`` equal to
    ``ids`` with its padding zeroed. Padding is zeroed before comparing, so rows that differ only beyond
    their length count as one.
    """
    clean = ids.masked_fill(~length_mask(lengths, ids.shape[-1]), 0)
    keyed = torch.cat([clean, lengths.unsqueeze(-1).to(clean.dtype)], dim=-1)
    unique, inverse = torch.unique(keyed, dim=0, return_inverse=True)
    return unique[:, :-1], unique[:, -1].to(lengths.dtype), inverse


class RowGroups(NamedTuple):
    """Which distinct row each batch row is, and its slot among the batch rows sharing that distinct row."""

    inverse: torch.Tensor  # [N] index into the U distinct rows
    slot: torch.Tensor  # [N] position of the row within its group, in batch order
    size: int  # the largest group's size


def group_rows(inverse: torch.Tensor, num_groups: int) -> RowGroups:
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=num_groups)
    group_start = torch.cumsum(counts, dim=0) - counts
    slot = torch.empty_like(inverse)
    slot[order] = torch.arange(len(inverse), device=inverse.device) - group_start[inverse[order]]
    return RowGroups(inverse=inverse, slot=slot, size=int(counts.max()))


class EncodedText(NamedTuple):
    states: torch.Tensor  # [U, L, d] encoder states of the distinct rows (zero at padding)
    lengths: torch.Tensor  # [U]
    groups: RowGroups  # maps the N batch rows onto the U distinct rows


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [N, L, d] with each row's first lengths[n] positions reversed and its padding left in place."""
    positions = torch.arange(x.shape[1], device=x.device)
    source = torch.where(positions < lengths.unsqueeze(-1), lengths.unsqueeze(-1) - 1 - positions, positions)
    return x.gather(1, source.unsqueeze(-1).expand_as(x))


class BiLSTMEncoder(nn.Module):
    """A one-layer bidirectional LSTM over padded sequences; output size ``d_out`` (d_out / 2 per direction).

    The two directions are separate LSTMs over the padded batch: the forward one reads the padding only
    after the valid words (so it never affects them), the backward one reads each row reversed within its
    length. This equals a bidirectional LSTM over packed sequences but runs the unpacked kernels, whose
    backward pass on CPU is several times faster. Padded positions of the output are zero.
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        if d_out % 2:
            raise ValueError(f"BiLSTMEncoder: d_out={d_out} must be even (d_out / 2 units per direction)")
        self.forward_lstm = nn.LSTM(d_in, d_out // 2, batch_first=True)
        self.backward_lstm = nn.LSTM(d_in, d_out // 2, batch_first=True)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """embedded [N, L, d_in], lengths [N] -> [N, L', d_out] with L' = max(lengths) (<= L).

        Positions past the longest text are all padding: the LSTMs do not run over them (text fields are
        padded to a fixed width, often twice as long as any text of a batch).
        """
        embedded = embedded[:, : int(lengths.max())]
        forward_states, _ = self.forward_lstm(embedded)
        reversed_states, _ = self.backward_lstm(reverse_within_length(embedded, lengths))
        states = torch.cat([forward_states, reverse_within_length(reversed_states, lengths)], dim=-1)
        return states * length_mask(lengths, embedded.shape[1]).unsqueeze(-1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim with positions where mask is False at weight 0 (mask broadcasts)."""
    return scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(dim=-1)


def attend(text: EncodedText, query: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention of one query per batch row over that row's text -> [N, d].

    The states are both keys and values. Queries are gathered into [U, group size, d] so that each distinct
    text meets all its queries in one matrix product.
    """
    states, lengths, groups = text
    num_texts, max_len, d = states.shape
    queries = query.new_zeros(num_texts, groups.size, d).index_put((groups.inverse, groups.slot), query)
    scores = queries @ states.transpose(1, 2) / d**0.5  # [U, group size, L]
    weights = masked_softmax(scores, length_mask(lengths, max_len).unsqueeze(1))
    return (weights @ states)[groups.inverse, groups.slot]


class AttentionPool(nn.Module):
    """Self-attention pooling: a learned linear score per position, softmax over the valid positions."""

    def __init__(self, d: int):
        super().__init__()
        self.score = nn.Linear(d, 1, bias=False)  # a bias would cancel in the softmax over positions

    def forward(self, text: EncodedText) -> torch.Tensor:
        """-> [N, d], pooled once per distinct text."""
        states, lengths, groups = text
        weights = masked_softmax(self.score(states).squeeze(-1), length_mask(lengths, states.shape[1]))
        return torch.einsum("ul,uld->ud", weights, states)[groups.inverse]
