"""Pure RL math over time-major ``[T, B]`` tensors: returns, GAE, V-trace and loss terms (imports only torch)."""

from lit_rlseq.rl.losses import (
    action_log_probs,
    approx_kl,
    baseline_loss,
    clip_fraction,
    entropy,
    explained_variance,
    normalize_advantages,
    policy_gradient_loss,
    ppo_clip_loss,
    ppo_value_loss,
)
from lit_rlseq.rl.returns import discounted_returns, gae
from lit_rlseq.rl.vtrace import VTraceReturns, vtrace

__all__ = [
    "VTraceReturns",
    "action_log_probs",
    "approx_kl",
    "baseline_loss",
    "clip_fraction",
    "discounted_returns",
    "entropy",
    "explained_variance",
    "gae",
    "normalize_advantages",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "ppo_value_loss",
    "vtrace",
]
