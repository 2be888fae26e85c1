"""Gymnasium MuJoCo locomotion (extra ``mujoco``): ``mujoco:Hopper-v5``, ``mujoco:HalfCheetah-v5``,
``mujoco:Walker2d-v5`` or any other registered gymnasium MuJoCo id.

Follows the conventions in ``lit_rlseq.envs``: a ``SyncVectorEnv`` with same-step autoreset whose observation
is ``{"obs": float32 [D]}`` (the simulator's float64 state vector, cast), ``info["final_obs"]`` holding the last
observation of an ended episode in the same layout. Actions are float32 ``Box`` vectors; the collector clips
them to the bounds. The time limit (gymnasium's ``TimeLimit``, 1000 steps for the locomotion tasks) is
reported as ``truncated`` and a fall as ``terminated``, kept apart (D4RL's ``timeouts`` vs ``terminals``).
Extra keyword arguments go to ``gymnasium.make`` (e.g. ``max_episode_steps``, ``terminate_when_unhealthy``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from lit_rlseq.errors import UserError

MUJOCO_ENTRY_POINT = "gymnasium.envs.mujoco"


def mujoco_env_ids() -> list[str]:
    """Every gymnasium id whose environment is one of gymnasium's MuJoCo environments."""
    return sorted(
        env_id for env_id, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith(MUJOCO_ENTRY_POINT)
    )


class DictObservation(gym.ObservationWrapper):
    """A flat Box observation as ``{"obs": float32 [D]}``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise UserError(f"{env.spec.id if env.spec else env}: expected a Box observation space, got {space}")
        self.observation_space = gym.spaces.Dict(
            {"obs": gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)}
        )

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        return {"obs": np.asarray(observation, dtype=np.float32)}


def make_vector_env(variant: str | None, num_envs: int, seed: int | None = None, **kwargs: Any) -> gym.vector.VectorEnv:
    ids = mujoco_env_ids()
    if variant is None or variant not in ids:
        given = "no env id" if variant is None else f"unknown id {variant!r}"
        raise UserError(f"mujoco: {given}; use mujoco:<id> with one of {ids}")
    if num_envs < 1:
        raise UserError(f"num_envs must be >= 1, got {num_envs}")
    try:
        import mujoco  # noqa: F401  (the simulator; gymnasium's MuJoCo envs import it lazily)
    except ImportError as e:
        raise UserError("the MuJoCo simulator is not installed: pip install -e '.[mujoco]'") from e

    def make_one() -> gym.Env:
        return DictObservation(gym.make(variant, **kwargs))

    env = gym.vector.SyncVectorEnv([make_one for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
