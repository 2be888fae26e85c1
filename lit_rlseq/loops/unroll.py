"""What a collector hands to a learner: one time-major unroll of B environments.

Index convention (T transitions, T+1 observations):

    obs[t], first[t]      t = 0..T    observation t and whether it starts an episode; obs[T] is the bootstrap
    action[t], reward[t]  t = 0..T-1  the action taken at obs[t] and the reward it earned
    done[t]               t = 0..T-1  the episode ended after action t (so first[t + 1] == done[t])
    behaviour_logits[t]   t = 0..T-1  the acting policy's distribution parameters at obs[t] (logits for discrete
                                      actions; for V-trace's and PPO's importance ratios)
    initial_state                     the agent's recurrent state before obs[0] (empty for feedforward nets)
    policy_version                    learner updates in the weights that acted (-1: the learner's own weights)

A time limit counts as the end of an episode (done), as in IMPALA: the value is not bootstrapped through it.

Actions follow the policy's action distribution (``policy.action_dist``, see lit_rlseq.nn.distributions):
int64 [T, B] for discrete actions, float32 [T, B, D] for continuous ones. A continuous action is recorded as
the policy sampled it (so its log-probability is exact); the env receives it clipped to its action space.
With reward normalisation on (``Collector(reward_scaler=...)``), ``reward`` holds the scaled rewards the learner
uses, while ``episodes`` reports the environment's own returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EpisodeStats:
    """Episodes that finished during an unroll (one entry per episode)."""

    episode_return: torch.Tensor  # float32 [n]
    length: torch.Tensor  # int64 [n]
    success: torch.Tensor  # float32 [n]; 1.0 / 0.0, NaN where the env reports no success flag
    # More per-episode numbers the env reports when an episode ends (its ``episode_info`` keys, see
    # lit_rlseq.envs; e.g. NetHack's "depth"): float32 [n] each, NaN where the env did not report one.
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    @staticmethod
    def empty() -> EpisodeStats:
        return EpisodeStats(torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0))

    @staticmethod
    def cat(parts: list[EpisodeStats]) -> EpisodeStats:
        keys = sorted({key for part in parts for key in part.info})
        info = {
            key: torch.cat([part.info.get(key, torch.full((len(part),), float("nan"))) for part in parts])
            for key in keys
        }
        return EpisodeStats(
            torch.cat([p.episode_return for p in parts]),
            torch.cat([p.length for p in parts]),
            torch.cat([p.success for p in parts]),
            info,
        )

    def select(self, keep: torch.Tensor) -> EpisodeStats:
        """The episodes where the bool mask ``keep`` [n] is true."""
        return EpisodeStats(self.episode_return[keep], self.length[keep], self.success[keep],
                            {key: value[keep] for key, value in self.info.items()})

    def __len__(self) -> int:
        return len(self.length)


@dataclass
class Unroll:
    obs: dict[str, torch.Tensor]  # [T+1, B, ...]
    first: torch.Tensor  # bool [T+1, B]
    action: torch.Tensor  # int64 [T, B] (discrete) or float32 [T, B, D] (continuous)
    reward: torch.Tensor  # float32 [T, B]
    done: torch.Tensor  # bool [T, B]
    behaviour_logits: torch.Tensor  # float32 [T, B, P] distribution parameters (discrete: P = A logits)
    initial_state: tuple[torch.Tensor, ...] = ()  # each [B, ...]
    episodes: EpisodeStats = field(default_factory=EpisodeStats.empty)
    policy_version: int = -1

    @property
    def num_steps(self) -> int:
        return self.action.shape[0]

    @property
    def batch_size(self) -> int:
        return self.action.shape[1]

    @property
    def frames(self) -> int:
        return self.num_steps * self.batch_size

    def to(self, device: torch.device | str) -> Unroll:
        return Unroll(
            obs={k: v.to(device, non_blocking=True) for k, v in self.obs.items()},
            first=self.first.to(device, non_blocking=True),
            action=self.action.to(device, non_blocking=True),
            reward=self.reward.to(device, non_blocking=True),
            done=self.done.to(device, non_blocking=True),
            behaviour_logits=self.behaviour_logits.to(device, non_blocking=True),
            initial_state=tuple(s.to(device, non_blocking=True) for s in self.initial_state),
            episodes=self.episodes,  # statistics stay on the CPU
            policy_version=self.policy_version,
        )


def concat_unrolls(unrolls: list[Unroll]) -> Unroll:
    """Joins unrolls side by side along the batch dimension (all must have the same T)."""
    if len(unrolls) == 1:
        return unrolls[0]
    steps = {u.num_steps for u in unrolls}
    if len(steps) != 1:
        raise ValueError(f"cannot join unrolls of different lengths {sorted(steps)}")
    return Unroll(
        obs={k: torch.cat([u.obs[k] for u in unrolls], dim=1) for k in unrolls[0].obs},
        first=torch.cat([u.first for u in unrolls], dim=1),
        action=torch.cat([u.action for u in unrolls], dim=1),
        reward=torch.cat([u.reward for u in unrolls], dim=1),
        done=torch.cat([u.done for u in unrolls], dim=1),
        behaviour_logits=torch.cat([u.behaviour_logits for u in unrolls], dim=1),
        initial_state=tuple(
            torch.cat(parts, dim=0) for parts in zip(*(u.initial_state for u in unrolls), strict=True)
        ),
        episodes=EpisodeStats.cat([u.episodes for u in unrolls]),
        policy_version=min(u.policy_version for u in unrolls),
    )
