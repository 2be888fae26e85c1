"""Per-element actor-critic and PPO loss terms.

Every function returns an unreduced tensor (``[T, B]`` for time-major inputs) and the caller reduces it:
IMPALA as used by LDD sums over time and averages over the batch, the FWP Atari agent sums over T x B, PPO
averages over the minibatch. Targets and advantages passed in are detached here, so gradients flow only into
the policy logits / log-probabilities and the predicted values.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_same_shape(where: str, **tensors: Tensor) -> None:
    """Raises ValueError when elementwise inputs differ in shape (broadcasting [T, B] with [T, B, 1] is a bug)."""
    (first_name, first), *rest = tensors.items()
    for name, tensor in rest:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{where}: {name} has shape {tuple(tensor.shape)} but {first_name} has {tuple(first.shape)}; "
                "they must match exactly (squeeze a trailing value dimension before calling)"
            )


def action_log_probs(logits: Tensor, actions: Tensor) -> Tensor:
    """log pi(a_t|x_t) of the taken actions: ``log_softmax(logits)[..., actions]``, ``[T, B, A] -> [T, B]``."""
    if logits.shape[:-1] != actions.shape:
        raise ValueError(
            f"action_log_probs: logits have shape {tuple(logits.shape)} and actions {tuple(actions.shape)}; "
            "expected logits [T, B, A] and integer actions [T, B]"
        )
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def policy_gradient_loss(logits: Tensor, actions: Tensor, advantages: Tensor) -> Tensor:
    """REINFORCE term ``-log pi(a_t|x_t) * A_t``, ``[T, B]``; the advantage is detached.

    Its gradient w.r.t. the logits is ``-(onehot(a_t) - softmax(logits)) * A_t``.
    """
    _check_same_shape("policy_gradient_loss", actions=actions, advantages=advantages)
    return -action_log_probs(logits, actions) * advantages.detach()


def baseline_loss(targets: Tensor, values: Tensor) -> Tensor:
    """Squared value error ``0.5 * (target_t - V(x_t))^2``, ``[T, B]``; the target is detached."""
    _check_same_shape("baseline_loss", targets=targets, values=values)
    return 0.5 * (targets.detach() - values) ** 2


def entropy(logits: Tensor) -> Tensor:
    """Policy entropy ``H_t = -sum_a pi(a|x_t) log pi(a|x_t)``, ``[T, B, A] -> [T, B]``.

    Actions masked with ``torch.finfo(dtype).min`` (or ``-inf``) have probability 0 and contribute exactly 0,
    and the gradient stays finite: with log-probabilities floored at the dtype's most negative finite value,
    no ``0 * inf`` arises in the forward or the backward pass.
    """
    log_probs = torch.log_softmax(logits, dim=-1).clamp(min=torch.finfo(logits.dtype).min)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def ppo_clip_loss(new_log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    """PPO clipped surrogate (Schulman et al. 2017), elementwise; old log-probs and advantages are detached.

    ratio = exp(log pi_new - log pi_old);  loss = -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A).
    """
    _check_same_shape(
        "ppo_clip_loss", new_log_probs=new_log_probs, old_log_probs=old_log_probs, advantages=advantages
    )
    ratio = torch.exp(new_log_probs - old_log_probs.detach())
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -torch.minimum(unclipped, clipped)


def ppo_value_loss(new_values: Tensor, old_values: Tensor, returns: Tensor, clip_eps: float | None) -> Tensor:
    """PPO value loss, elementwise; old values and returns are detached.

    Without clipping: 0.5 * (V_new - R)^2. With ``clip_eps`` (PPO2): the new value may move at most eps from
    the old one, V_clip = V_old + clip(V_new - V_old, -eps, eps), and
    loss = 0.5 * max((V_new - R)^2, (V_clip - R)^2).
    """
    _check_same_shape("ppo_value_loss", new_values=new_values, old_values=old_values, returns=returns)
    returns = returns.detach()
    unclipped = (new_values - returns) ** 2
    if clip_eps is None:
        return 0.5 * unclipped
    old_values = old_values.detach()
    clipped_values = old_values + (new_values - old_values).clamp(-clip_eps, clip_eps)
    return 0.5 * torch.maximum(unclipped, (clipped_values - returns) ** 2)


def approx_kl(new_log_probs: Tensor, old_log_probs: Tensor) -> Tensor:
    """Per-sample estimator of KL(pi_old || pi_new) on actions drawn from pi_old, elementwise:
    ``(ratio - 1) - log ratio`` with ratio = pi_new / pi_old. Unbiased and never negative.
    """
    _check_same_shape("approx_kl", new_log_probs=new_log_probs, old_log_probs=old_log_probs)
    log_ratio = new_log_probs - old_log_probs
    return torch.expm1(log_ratio) - log_ratio


def clip_fraction(new_log_probs: Tensor, old_log_probs: Tensor, clip_eps: float) -> Tensor:
    """Fraction of samples whose probability ratio left [1 - eps, 1 + eps] (a scalar; PPO's diagnostic)."""
    _check_same_shape("clip_fraction", new_log_probs=new_log_probs, old_log_probs=old_log_probs)
    ratio = torch.exp(new_log_probs - old_log_probs)
    return ((ratio - 1.0).abs() > clip_eps).float().mean()


def normalize_advantages(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """``(A - mean(A)) / (std(A) + eps)`` over all elements (PPO's per-minibatch advantage normalisation).
    A single element has no spread: it is only centred (to 0)."""
    centred = advantages - advantages.mean()
    if advantages.numel() < 2:
        return centred
    return centred / (advantages.std() + eps)


def explained_variance(values: Tensor, returns: Tensor) -> Tensor:
    """``1 - Var(returns - values) / Var(returns)`` (a scalar): 1 is a perfect value function, 0 no better than a
    constant, negative worse; NaN when the returns do not vary."""
    _check_same_shape("explained_variance", values=values, returns=returns)
    var_returns = returns.var(unbiased=False)
    if var_returns == 0:
        return torch.tensor(float("nan"), dtype=returns.dtype, device=returns.device)
    return 1.0 - (returns - values).var(unbiased=False) / var_returns
