"""The interface every policy network in lit_rlseq implements, recurrent or not.

Inputs are time-major: observations are a dict of tensors shaped [T, B, ...]; ``first[t, b]`` is True when
observation t of column b starts a new episode, in which case a recurrent network resets its state to the
initial state before processing it. The state passed in is the state *before* observation 0.
Feedforward networks use the empty tuple as state.

Actions: ``PolicyOutput.logits`` holds the parameters of the network's action distribution, read by its
``action_dist`` (see lit_rlseq.nn.distributions): logits for discrete actions (the default, ``Categorical``),
``cat([mean, log_std], -1)`` for diagonal-Gaussian continuous actions (``DiagGaussian``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lit_rlseq.nn.distributions import ActionDistribution, Categorical

State = tuple[torch.Tensor, ...]


class PolicyOutput(NamedTuple):
    logits: torch.Tensor  # [T, B, A] distribution parameters; discrete: invalid actions masked to a large negative
    value: torch.Tensor  # [T, B]
    state: State  # state after the last observation
    # Optional per-step outputs a network exposes for recording (e.g. "hx": the recurrent state fed into every
    # step, [T, B, ...]); collectors asked to record policy outputs store each as a field of the episode.
    extras: dict[str, torch.Tensor] | None = None


class ActorCritic(nn.Module):
    """Base class: subclasses implement ``forward``; recurrent ones also ``initial_state``."""

    num_actions: int
    # How to read ``PolicyOutput.logits``; continuous-action networks set DiagGaussian().
    action_dist: ActionDistribution = Categorical()

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        return ()

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        raise NotImplementedError  # abstract: every concrete network defines its forward pass


def mask_invalid(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Sets the logits of invalid actions to the dtype's most negative value (so softmax gives them 0)."""
    if valid is None:
        return logits
    return logits.masked_fill(~valid.bool(), torch.finfo(logits.dtype).min)
