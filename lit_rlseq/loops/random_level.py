"""The random policy's level: success rate and return of uniformly random actions in an environment (and the
means of the env's extra per-episode numbers, its ``episode_info``: e.g. NetHack's score and depth).

Comparison plots draw it as a reference line, so a curve below it reads as "not learned yet". Actions are
uniform over the legal ones when the observation has a ``valid`` mask (RTFM), else over all actions. Every env
of the batch plays exactly its share of the episodes (long episodes are not cut off by stopping early).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.loops.collector import episode_info


def random_policy_level(env_id: str, episodes: int = 1000, env_kwargs: dict[str, Any] | None = None,
                        num_envs: int = 100, seed: int = 0) -> dict[str, float]:
    """``{"success": mean success, "return": mean return, "episodes": n, <episode_info key>: mean, ...}`` of a
    uniform random policy."""
    env = make_vector_env(env_id, num_envs=num_envs, seed=seed, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    share = math.ceil(episodes / num_envs)
    obs, _ = env.reset(seed=seed)
    finished = np.zeros(num_envs, dtype=np.int64)
    running = np.zeros(num_envs)
    successes, returns = [], []
    info_keys = tuple(getattr(env, "episode_info", ()))
    extra: dict[str, list[float]] = {key: [] for key in info_keys}
    actions = int(env.single_action_space.n)
    while (finished < share).any():
        keys = rng.random((num_envs, actions))
        if "valid" in obs:
            keys = np.where(obs["valid"], keys, -1.0)
        obs, reward, terminated, truncated, info = env.step(keys.argmax(1))
        running += reward
        done = np.logical_or(terminated, truncated)
        counted = done & (finished < share)
        if "success" in info:
            successes.extend(np.asarray(info["success"])[counted].tolist())
        returns.extend(running[counted].tolist())
        for key in info_keys:
            values = episode_info(info, key, np.flatnonzero(counted))
            extra[key].extend(values[~np.isnan(values)].tolist())
        finished += done
        running[done] = 0.0
    env.close()
    return {"success": float(np.mean(successes)) if successes else math.nan, "return": float(np.mean(returns)),
            "episodes": float(len(returns)),
            **{key: float(np.mean(values)) if values else math.nan for key, values in extra.items()}}
