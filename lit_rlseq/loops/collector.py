"""Steps a vector of environments with a policy and turns what happens into unrolls or whole episodes.

The collector owns the environments' live state between calls (the last observation, which columns start an
episode, the policy's recurrent state, running episode returns), so consecutive ``unroll`` calls continue the
same episodes. Actions are sampled with the collector's own torch generator, which is part of its state_dict.

Discrete and continuous actions: the policy's ``action_dist`` (lit_rlseq.nn.distributions) samples actions
from its output parameters. Continuous actions are clipped to the env's ``Box`` bounds when the env is
stepped; unrolls keep the sampled action (see lit_rlseq.loops.unroll), recorded episodes the executed one.
An optional ``RewardScaler`` (reward normalisation) scales the rewards of training unrolls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from lit_rlseq.loops.unroll import EpisodeStats, Unroll
from lit_rlseq.nn.actor_critic import ActorCritic, State
from lit_rlseq.nn.distributions import ActionDistribution, Categorical
from lit_rlseq.nn.normalize import RewardScaler


@runtime_checkable
class ScriptedPolicy(Protocol):
    """A policy that reads the environment's true state (e.g. a planner with privileged access)."""

    def act(self, env: gym.vector.VectorEnv, obs: dict[str, np.ndarray]) -> np.ndarray: ...


Policy = ActorCritic | ScriptedPolicy


@dataclass
class RecordedEpisode:
    """One finished episode as numpy arrays: observations have L+1 rows (the final one included)."""

    obs: dict[str, np.ndarray]
    action: np.ndarray  # [L] int64 (discrete) or [L, D] float32 (continuous, as executed: clipped to the bounds)
    reward: np.ndarray  # [L]
    behaviour_logits: np.ndarray  # [L, P] the policy's distribution parameters
    success: float  # 1.0 / 0.0, NaN when the env reports none
    env_index: int
    behaviour_log_prob: np.ndarray | None = None  # [L] log-probability of the policy's (unclipped) action
    value: np.ndarray | None = None  # [L] the policy's value estimate (NaN for scripted policies)
    terminated: bool = True  # False: cut by a time limit (truncated), as gymnasium reports it
    # With ``record_outputs``: the policy's ``PolicyOutput.extras`` (e.g. "hx" [L, H]) at every step.
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def action_distribution(policy: Policy) -> ActionDistribution:
    """How to read a policy's output parameters (scripted policies act with discrete actions)."""
    return getattr(policy, "action_dist", None) or Categorical()


def policy_device(policy: Policy) -> torch.device:
    if isinstance(policy, torch.nn.Module):
        for p in policy.parameters():
            return p.device
    return torch.device("cpu")


class Collector:
    def __init__(self, env: gym.vector.VectorEnv, seed: int, reward_scaler: RewardScaler | None = None):
        if env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"{type(env).__name__} must use same-step autoreset (gymnasium AutoresetMode.SAME_STEP); "
                "see lit_rlseq.envs for the convention"
            )
        self.env = env
        self.num_envs = env.num_envs
        self.episode_info: tuple[str, ...] = tuple(getattr(env, "episode_info", ()))  # see lit_rlseq.envs
        self.generator = torch.Generator().manual_seed(seed)
        space = env.single_action_space
        self.continuous = isinstance(space, gym.spaces.Box)
        if not self.continuous and not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"{type(env).__name__}: action space {space} is neither Discrete nor Box")
        self.action_shape: tuple[int, ...] = tuple(space.shape) if self.continuous else ()
        self.action_dtype = np.float32 if self.continuous else np.int64
        if reward_scaler is not None and reward_scaler.returns.shape != (self.num_envs,):
            raise ValueError(f"reward_scaler tracks {reward_scaler.returns.shape[0]} envs, the env has {self.num_envs}")
        self.reward_scaler = reward_scaler
        self._obs: dict[str, np.ndarray] | None = None
        self._first = np.ones(self.num_envs, dtype=bool)
        # The policy's extra per-step outputs (PolicyOutput.extras) at the last ``_act``, [B, ...] each.
        self._outputs: dict[str, np.ndarray] = {}
        self._state: State | None = None
        self._episode_return = np.zeros(self.num_envs, dtype=np.float64)
        self._episode_length = np.zeros(self.num_envs, dtype=np.int64)

    # -- state -----------------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Starts fresh episodes in every env (seeded) and forgets the policy state."""
        self._obs, _ = self.env.reset(seed=seed)
        self._first[:] = True
        self._state = None
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state()}
        if self.reward_scaler is not None:
            state["reward_scaler"] = {k: v.clone() for k, v in self.reward_scaler.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if self.reward_scaler is not None and "reward_scaler" in state:
            self.reward_scaler.load_state_dict(state["reward_scaler"])

    # -- acting ----------------------------------------------------------------------------------------
    def _act(self, policy: Policy, greedy: bool) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Chooses actions for the current observations; returns them, the behaviour distribution's parameters
        [B, P] and the policy's values [B] (NaN for a scripted policy)."""
        assert self._obs is not None, "call reset(seed) before collecting"
        if isinstance(policy, ScriptedPolicy):
            if self.continuous:
                raise ValueError("scripted policies act in discrete action spaces only")
            actions = np.asarray(policy.act(self.env, self._obs), dtype=np.int64)
            logits = torch.full((self.num_envs, self.env.single_action_space.n), torch.finfo(torch.float32).min)
            logits[torch.arange(self.num_envs), torch.from_numpy(actions)] = 0.0
            self._outputs = {}
            return actions, logits, torch.full((self.num_envs,), float("nan"))
        device = policy_device(policy)
        obs = {k: torch.from_numpy(v).to(device)[None] for k, v in self._obs.items()}
        first = torch.from_numpy(self._first).to(device)[None]
        if self._state is None:
            self._state = policy.initial_state(self.num_envs, device)
        with torch.no_grad():
            out = policy(obs, first, self._state)
        self._state = out.state
        params = out.logits[0].float().cpu()
        dist = action_distribution(policy)
        if dist.discrete == self.continuous:
            raise ValueError(
                f"{type(policy).__name__} acts with {type(dist).__name__} but the env's action space is "
                f"{self.env.single_action_space}; use a policy for {'continuous' if self.continuous else 'discrete'} actions"
            )
        actions = dist.mode(params) if greedy else dist.sample(params, generator=self.generator)
        self._outputs = {name: value[0].cpu().numpy() for name, value in (out.extras or {}).items()}
        return actions.numpy().astype(self.action_dtype, copy=False), params, out.value[0].float().cpu()

    def _executed(self, actions: np.ndarray) -> np.ndarray:
        """What the env receives: continuous actions clipped to the action space's bounds."""
        if not self.continuous:
            return actions
        space = self.env.single_action_space
        return np.clip(actions, space.low, space.high).astype(self.action_dtype, copy=False)

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps the envs with executed actions; returns rewards, done, terminated (not a time limit) and info."""
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.logical_or(terminated, truncated)
        self._episode_return += reward
        self._episode_length += 1
        self._obs = obs
        self._first = done.copy()
        return np.asarray(reward, dtype=np.float32), done, np.asarray(terminated, dtype=bool), info

    def _finish(self, done: np.ndarray, info: dict[str, Any]) -> EpisodeStats:
        """Statistics of the episodes that just ended; resets their running counters."""
        ended = np.flatnonzero(done)
        if len(ended) == 0:
            return EpisodeStats.empty()
        if "success" in info:
            success = np.asarray(info["success"], dtype=np.float32)[ended]
        else:
            success = np.full(len(ended), np.nan, dtype=np.float32)
        stats = EpisodeStats(
            torch.from_numpy(self._episode_return[ended].astype(np.float32)),
            torch.from_numpy(self._episode_length[ended].copy()),
            torch.from_numpy(success),
            {key: torch.from_numpy(episode_info(info, key, ended)) for key in self.episode_info},
        )
        self._episode_return[ended] = 0.0
        self._episode_length[ended] = 0
        return stats

    # -- unrolls for learning --------------------------------------------------------------------------
    def unroll(self, policy: Policy, length: int, greedy: bool = False) -> Unroll:
        """Steps every env ``length`` times and returns the unroll (see lit_rlseq.loops.unroll)."""
        assert self._obs is not None, "call reset(seed) before collecting"
        device = policy_device(policy)
        if self._state is None and not isinstance(policy, ScriptedPolicy):
            self._state = policy.initial_state(self.num_envs, device)
        initial_state = tuple(s.detach().cpu().clone() for s in (self._state or ()))
        obs_buf = {k: np.empty((length + 1,) + v.shape, dtype=v.dtype) for k, v in self._obs.items()}
        first = np.empty((length + 1, self.num_envs), dtype=bool)
        action = np.empty((length, self.num_envs, *self.action_shape), dtype=self.action_dtype)
        reward = np.empty((length, self.num_envs), dtype=np.float32)
        done = np.empty((length, self.num_envs), dtype=bool)
        logits: list[torch.Tensor] = []
        finished: list[EpisodeStats] = []
        for t in range(length):
            for k, v in self._obs.items():
                obs_buf[k][t] = v
            first[t] = self._first
            action[t], step_logits, _ = self._act(policy, greedy)
            logits.append(step_logits)
            reward[t], done[t], _, info = self._step(self._executed(action[t]))
            if self.reward_scaler is not None:
                reward[t] = self.reward_scaler(torch.from_numpy(reward[t]), torch.from_numpy(done[t])).numpy()
            finished.append(self._finish(done[t], info))
        for k, v in self._obs.items():
            obs_buf[k][length] = v
        first[length] = self._first
        return Unroll(
            obs={k: torch.from_numpy(v) for k, v in obs_buf.items()},
            first=torch.from_numpy(first),
            action=torch.from_numpy(action),
            reward=torch.from_numpy(reward),
            done=torch.from_numpy(done),
            behaviour_logits=torch.stack(logits),
            initial_state=initial_state,
            episodes=EpisodeStats.cat(finished),
        )

    # -- whole episodes for evaluation and demonstrations ----------------------------------------------
    def run_episodes(
        self,
        policy: Policy,
        episodes_per_env: int | np.ndarray,
        greedy: bool,
        on_episode: Callable[[RecordedEpisode], None] | None = None,
        max_env_steps: int | None = None,
        record_outputs: bool = False,
    ) -> EpisodeStats:
        """Runs until env i has *started and finished* ``episodes_per_env[i]`` episodes since this call.

        Starts fresh episodes first (a reset with the next seed must have been done by the caller), so no
        episode is cut short and long episodes are not under-counted. ``on_episode`` receives every counted
        episode in full (observations, actions, rewards) when it ends. ``max_env_steps`` is a safety net for
        policies that never end an episode in an env without a step limit. ``record_outputs`` adds the
        network's ``PolicyOutput.extras`` (e.g. a recurrent agent's hidden state) at every step to the
        recorded episodes (``outputs``).
        """
        quota = np.broadcast_to(np.asarray(episodes_per_env, dtype=np.int64), (self.num_envs,)).copy()
        counted = np.zeros(self.num_envs, dtype=np.int64)
        record = on_episode is not None
        steps: list[list[_Step]] = [[] for _ in range(self.num_envs)]
        results: list[EpisodeStats] = []
        env_steps = 0
        while (counted < quota).any():
            if max_env_steps is not None and env_steps >= max_env_steps:
                raise RuntimeError(
                    f"{int((quota - counted).sum())} episodes still running after {env_steps} steps; "
                    "does this environment have a step limit?"
                )
            obs_before = self._obs
            actions, params, values = self._act(policy, greedy)
            executed = self._executed(actions)
            reward, done, terminated, info = self._step(executed)
            env_steps += 1
            active = counted < quota
            if record:
                log_probs = action_distribution(policy).log_prob(params, torch.from_numpy(actions)).numpy()
                for i in np.flatnonzero(active):
                    steps[i].append(_Step(
                        {k: v[i].copy() for k, v in obs_before.items()}, executed[i].copy(), float(reward[i]),
                        params[i].numpy(), float(log_probs[i]), float(values[i]),
                        {k: v[i].copy() for k, v in self._outputs.items()} if record_outputs else {},
                    ))
            stats = self._finish(done, info)
            ended = np.flatnonzero(done)
            keep = active[ended]
            if keep.any():
                results.append(stats.select(torch.from_numpy(keep)))
            for j, i in enumerate(ended):
                if not active[i]:
                    continue
                counted[i] += 1
                if record:
                    on_episode(_assemble(steps[i], info["final_obs"][i], float(stats.success[j]), int(i),
                                         bool(terminated[i])))
                    steps[i] = []
        return EpisodeStats.cat(results) if results else EpisodeStats.empty()


def episode_info(info: dict[str, Any], key: str, ended: np.ndarray) -> np.ndarray:
    """``info[key]`` of the envs ``ended`` as float32, NaN where the env did not report it (its ``_key`` mask)."""
    values = np.full(len(ended), np.nan, dtype=np.float32)
    if key in info:
        reported = np.asarray(info.get(f"_{key}", np.ones(len(info[key]), dtype=bool)), dtype=bool)[ended]
        values[reported] = np.asarray(info[key], dtype=np.float32)[ended][reported]
    return values


class _Step(NamedTuple):
    obs: dict[str, np.ndarray]
    action: np.ndarray  # executed
    reward: float
    params: np.ndarray
    log_prob: float
    value: float
    outputs: dict[str, np.ndarray]  # PolicyOutput.extras, with record_outputs


def _assemble(steps: list[_Step], final_obs: dict[str, np.ndarray], success: float, env_index: int,
              terminated: bool) -> RecordedEpisode:
    keys = steps[0].obs.keys()
    obs = {k: np.stack([s.obs[k] for s in steps] + [np.asarray(final_obs[k])]) for k in keys}
    return RecordedEpisode(
        obs=obs,
        action=np.stack([s.action for s in steps]),
        reward=np.array([s.reward for s in steps], dtype=np.float32),
        behaviour_logits=np.stack([s.params for s in steps]).astype(np.float32),
        success=success,
        env_index=env_index,
        behaviour_log_prob=np.array([s.log_prob for s in steps], dtype=np.float32),
        value=np.array([s.value for s in steps], dtype=np.float32),
        terminated=terminated,
        outputs={k: np.stack([s.outputs[k] for s in steps]) for k in steps[0].outputs},
    )
