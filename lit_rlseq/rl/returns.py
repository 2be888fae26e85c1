"""Discounted returns and generalized advantage estimation over time-major unrolls.

Conventions shared by everything in ``lit_rlseq.rl``: tensors are time-major ``[T, B]``; ``rewards[t]`` is
the reward for the action taken at step t; ``discounts[t] = gamma * (1 - done[t])`` where ``done[t]`` means
the episode ended after action t, so an episode boundary inside an unroll is carried only by a zero
discount; ``values[t] = V(x_t)`` and ``bootstrap_value = V(x_T)`` is the value of the observation after the
last step. Returned targets are computed without autograd: they never require grad.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_time_major(where: str, bootstrap_value: Tensor, **per_step: Tensor) -> None:
    """Raises ValueError unless all ``per_step`` tensors share one ``[T, B]`` shape and the bootstrap is ``[B]``."""
    (first_name, first), *rest = per_step.items()
    if first.dim() < 1:
        raise ValueError(f"{where}: {first_name} must be time-major [T, B], got a scalar")
    for name, tensor in rest:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{where}: {name} has shape {tuple(tensor.shape)} but {first_name} has {tuple(first.shape)}; "
                "every per-step input must be time-major [T, B] with the same T and B"
            )
    if bootstrap_value.shape != first.shape[1:]:
        raise ValueError(
            f"{where}: bootstrap_value has shape {tuple(bootstrap_value.shape)}, expected {tuple(first.shape[1:])} "
            "(one value V(x_T) per column, for the observation after the last step)"
        )


@torch.no_grad()
def discounted_returns(rewards: Tensor, discounts: Tensor, bootstrap_value: Tensor) -> Tensor:
    """Bootstrapped discounted returns, ``[T, B]`` (detached).

    G_t = r_t + discounts_t * G_{t+1}, with G_T = bootstrap_value.

    The same backward recursion with other inputs gives GAE (``x = TD errors``, ``discounts * lam``) and
    V-trace (``x = rho-weighted TD errors``, ``discounts * c``), which reuse it.

    Args:
        rewards: ``[T, B]``.
        discounts: ``[T, B]``, ``gamma * (1 - done)``.
        bootstrap_value: ``[B]``, V(x_T).
    """
    _check_time_major("discounted_returns", bootstrap_value, rewards=rewards, discounts=discounts)
    returns = torch.empty_like(rewards)
    next_return = bootstrap_value
    for t in reversed(range(rewards.shape[0])):
        next_return = rewards[t] + discounts[t] * next_return
        returns[t] = next_return
    return returns


@torch.no_grad()
def gae(
    rewards: Tensor, values: Tensor, bootstrap_value: Tensor, discounts: Tensor, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016); returns ``(advantages, returns)``, both ``[T, B]``
    and detached.

    delta_t = r_t + discounts_t * V(x_{t+1}) - V(x_t)
    A_t     = delta_t + discounts_t * lam * A_{t+1},   A_T = 0
    returns = A + V

    ``lam = 1`` gives ``discounted_returns - values``; ``lam = 0`` gives the one-step TD error.

    Args:
        rewards, values, discounts: ``[T, B]``.
        bootstrap_value: ``[B]``, V(x_T).
        lam: the GAE lambda in [0, 1].
    """
    _check_time_major("gae", bootstrap_value, rewards=rewards, values=values, discounts=discounts)
    next_values = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)
    deltas = rewards + discounts * next_values - values
    advantages = discounted_returns(deltas, discounts * lam, torch.zeros_like(bootstrap_value))
    return advantages, advantages + values
