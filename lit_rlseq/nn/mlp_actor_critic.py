"""An MLP actor-critic for flat vector observations (``obs["obs"]``, float [D]): the MuJoCo PPO network.

Defaults are CleanRL's continuous-action PPO (``ppo_continuous_action.py``): separate actor and critic
trunks of 2 x 64 tanh units, orthogonal initialisation (hidden layers gain sqrt(2), the action-mean layer
0.01, the value layer 1), a state-independent log standard deviation initialised to 0, observations
normalised by running statistics. ``shared_trunk`` shares one trunk between the heads; ``state_dependent_std``
predicts the log-std from the actor's trunk instead; ``num_actions`` makes the policy categorical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, State
from lit_rlseq.nn.distributions import Categorical, DiagGaussian
from lit_rlseq.nn.normalize import ObservationNormalizer

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class MLPActorCriticConfig:
    obs_dim: int
    action_dim: int | None = None  # continuous: a diagonal Gaussian over this many dimensions
    num_actions: int | None = None  # discrete: a categorical over this many actions (exactly one of the two)
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False
    state_dependent_std: bool = False
    init_log_std: float = 0.0
    normalize_obs: bool = True
    obs_clip: float = 10.0
    obs_key: str = "obs"

    def __post_init__(self):
        if (self.action_dim is None) == (self.num_actions is None):
            raise ValueError(
                f"MLPActorCriticConfig needs exactly one of action_dim (continuous) and num_actions (discrete), "
                f"got action_dim={self.action_dim}, num_actions={self.num_actions}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.obs_dim < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"obs_dim and every hidden size must be >= 1, got {self.obs_dim}, {self.hidden}")


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [orthogonal(nn.Linear(a, b), math.sqrt(2)), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class MLPActorCritic(ActorCritic):
    def __init__(self, config: MLPActorCriticConfig):
        super().__init__()
        self.config = c = config
        self.continuous = c.action_dim is not None
        self.action_dist = DiagGaussian() if self.continuous else Categorical()
        self.num_actions = c.action_dim if self.continuous else c.num_actions
        self.normalizer = ObservationNormalizer({c.obs_key: (c.obs_dim,)}, clip=c.obs_clip) if c.normalize_obs else None
        sizes = [c.obs_dim, *c.hidden]
        self.actor_trunk = mlp(sizes, c.activation)
        self.critic_trunk = None if c.shared_trunk else mlp(sizes, c.activation)
        out = self.num_actions * (2 if self.continuous and c.state_dependent_std else 1)
        self.actor_head = orthogonal(nn.Linear(c.hidden[-1], out), 0.01)
        self.critic_head = orthogonal(nn.Linear(c.hidden[-1], 1), 1.0)
        if self.continuous and not c.state_dependent_std:
            self.log_std = nn.Parameter(torch.full((c.action_dim,), float(c.init_log_std)))
        elif self.continuous:
            with torch.no_grad():  # the log-std half of the head starts at init_log_std
                self.actor_head.bias[c.action_dim:] = c.init_log_std

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        c = self.config
        shape = tuple(obs[c.obs_key].shape)
        if shape[:2] != tuple(first.shape) or shape[2:] != (c.obs_dim,):
            raise ValueError(
                f"obs[{c.obs_key!r}] has shape {shape}, expected [T, B, {c.obs_dim}] with [T, B] = {tuple(first.shape)}"
            )
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        x = obs[c.obs_key].float()
        h = self.actor_trunk(x)
        params = self.actor_head(h)
        if self.continuous and not c.state_dependent_std:
            params = torch.cat([params, self.log_std.expand_as(params)], -1)
        value_h = h if self.critic_trunk is None else self.critic_trunk(x)
        return PolicyOutput(params, self.critic_head(value_h).squeeze(-1), ())
