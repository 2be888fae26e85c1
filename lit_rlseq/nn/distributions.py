"""Action distributions over a network's output parameters, for discrete and continuous actions.

A policy network returns one tensor of distribution *parameters* per step (``PolicyOutput.logits``); its
``action_dist`` says how to read them:

* ``Categorical``: the parameters are logits ``[..., A]``; actions are int64 ``[...]``.
* ``DiagGaussian``: the parameters are the mean and log standard deviation side by side, ``[..., 2 * D]``
  (``cat([mean, log_std], -1)``, the RLlib layout); actions are float32 ``[..., D]``. A state-independent
  log-std is a parameter broadcast to the mean's shape before concatenation.

Everything here is a pure function of the parameters (no weights), so a collector can sample and score
actions with the same object the learner uses, and recorded parameters (``behaviour_logits``) give back the
exact behaviour distribution.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class ActionDistribution:
    """Base class; ``event_dims`` is the number of trailing action dimensions (0 for a scalar action)."""

    event_dims: int = 0
    discrete: bool = True

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError  # abstract

    def mode(self, params: Tensor) -> Tensor:
        raise NotImplementedError  # abstract

    def log_prob(self, params: Tensor, action: Tensor) -> Tensor:
        raise NotImplementedError  # abstract

    def entropy(self, params: Tensor) -> Tensor:
        raise NotImplementedError  # abstract


class Categorical(ActionDistribution):
    """Softmax over logits ``[..., A]``; invalid actions are masked to the dtype's minimum beforehand."""

    event_dims = 0
    discrete = True

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        flat = params.reshape(-1, params.shape[-1])
        drawn = torch.multinomial(torch.softmax(flat, -1), 1, generator=generator)[:, 0]
        return drawn.reshape(params.shape[:-1])

    def mode(self, params: Tensor) -> Tensor:
        return params.argmax(-1)

    def log_prob(self, params: Tensor, action: Tensor) -> Tensor:
        if params.shape[:-1] != action.shape:
            raise ValueError(
                f"Categorical.log_prob: logits have shape {tuple(params.shape)} and actions {tuple(action.shape)}; "
                "expected logits [..., A] and integer actions [...]"
            )
        return torch.log_softmax(params, -1).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, params: Tensor) -> Tensor:
        # Masked actions (probability 0) contribute exactly 0, with finite gradients (see rl.losses.entropy).
        log_probs = torch.log_softmax(params, -1).clamp(min=torch.finfo(params.dtype).min)
        return -(log_probs.exp() * log_probs).sum(-1)


class DiagGaussian(ActionDistribution):
    """Independent normals per action dimension; parameters ``cat([mean, log_std], -1)``, ``[..., 2 * D]``."""

    event_dims = 1
    discrete = False

    @staticmethod
    def split(params: Tensor) -> tuple[Tensor, Tensor]:
        if params.shape[-1] % 2:
            raise ValueError(
                f"DiagGaussian: parameters have {params.shape[-1]} columns; expected 2 * action_dim "
                "(the mean and the log standard deviation side by side)"
            )
        mean, log_std = params.chunk(2, dim=-1)
        return mean, log_std

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean, log_std = self.split(params)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + log_std.exp() * noise

    def mode(self, params: Tensor) -> Tensor:
        return self.split(params)[0]

    def log_prob(self, params: Tensor, action: Tensor) -> Tensor:
        mean, log_std = self.split(params)
        if action.shape != mean.shape:
            raise ValueError(
                f"DiagGaussian.log_prob: actions have shape {tuple(action.shape)} but the mean has "
                f"{tuple(mean.shape)}; expected float actions [..., D] with D = parameters / 2"
            )
        z = (action - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        _, log_std = self.split(params)
        return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)
