"""Environment ids -> vector env factories.

An env id is ``family`` or ``family:variant`` (``toy``, ``rtfm:groups_simple_stationary_dev``). Families are
imported lazily so that an optional simulator is only needed when it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from lit_rlseq.errors import UserError

# family -> "module:function"; the function is called as fn(variant, num_envs=..., seed=..., **kwargs)
# and returns a gymnasium VectorEnv with same-step autoreset (see lit_rlseq.envs).
FAMILIES: dict[str, str] = {
    "toy": "lit_rlseq.envs.toy:make_vector_env",
    "rtfm": "lit_rlseq.envs.rtfm:make_vector_env",
    "nethack": "lit_rlseq.envs.nethack:make_vector_env",
    "touchdown": "lit_rlseq.envs.touchdown:make_vector_env",
    "messenger": "lit_rlseq.envs.messenger:make_vector_env",
    "procgen": "lit_rlseq.envs.procgen:make_vector_env",
    "atari": "lit_rlseq.envs.atari:make_vector_env",
    "mujoco": "lit_rlseq.envs.mujoco:make_vector_env",
    "alfworld": "lit_rlseq.envs.alfworld:make_vector_env",
}


def split_env_id(env_id: str) -> tuple[str, str | None]:
    family, _, variant = env_id.partition(":")
    return family, (variant or None)


def make_vector_env(env_id: str, num_envs: int, seed: int | None = None, **kwargs: Any) -> gym.vector.VectorEnv:
    family, variant = split_env_id(env_id)
    if family not in FAMILIES:
        raise UserError(f"unknown environment {env_id!r}: the family {family!r} is not one of {sorted(FAMILIES)}")
    module_name, fn_name = FAMILIES[family].split(":")
    factory = getattr(importlib.import_module(module_name), fn_name)
    return factory(variant, num_envs=num_envs, seed=seed, **kwargs)
