"""A learned "copy" bonus for next-frame classifiers whose targets mostly equal the current frame."""

from __future__ import annotations

import torch


def add_copy_logit(logits: torch.Tensor, current: torch.Tensor, bonus: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``logits`` plus ``bonus`` on the class each position holds now.

    logits [..., C, ...] (classes along ``dim``), current: the current class ids, shaped like ``logits`` without
    ``dim``; bonus: a scalar (typically a learned parameter). Without it a fresh model first learns the most
    frequent class everywhere (an empty cell, a blank character) and has to unlearn it where something is;
    with it, "nothing changes" is the starting point and the model's capacity goes to what does change.
    """
    dim = dim % logits.dim()
    if current.shape != logits.shape[:dim] + logits.shape[dim + 1:]:
        raise ValueError(f"current ids {tuple(current.shape)} must have the logits' shape {tuple(logits.shape)} "
                         f"without the class dimension {dim}")
    index = current.long().unsqueeze(dim)
    return logits.scatter_add(dim, index, bonus.to(logits.dtype).expand(index.shape))
