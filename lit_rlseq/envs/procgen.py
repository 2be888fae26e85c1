"""Procgen (Cobbe et al., 2020) as a gymnasium vector env: ``procgen:coinrun``, ``procgen:caveflyer``, ...

Wraps the ``procgen`` package (PyPI ``procgen2``), whose gym3 vector env steps all games in C++ threads.
Observations, per env:

    rgb         uint8 [3, 64, 64]   the frame the agent sees, channels first
    level_seed  int64 []            the seed of the level this frame belongs to

The level seed travels with every frame, so a recorded episode carries it (``obs/level_seed`` in a rollout
store) and any frame can be traced back to its level. Options (keyword arguments of ``make_vector_env``):
``distribution_mode`` ("easy", "hard", "extreme", "memory", "exploration"), ``num_levels`` (0 = unlimited),
``start_level``, and any other ``ProcgenGym3Env`` option (``use_backgrounds``, ``paint_vel_info``, ...).

Conventions (see lit_rlseq.envs): same-step autoreset; ``info["final_obs"]`` on the last step of an episode;
``info["success"]`` on that step is procgen's ``prev_level_complete`` (coinrun: the coin was reached).
Procgen ends an episode (goal, death or its own time limit) and starts the next level inside the same C++
step, so the frame after the last action is never rendered: ``final_obs`` repeats the episode's last observed
frame (with its level seed). Procgen does not tell time-outs from terminations: every end is ``terminated``.
``reset(seed=s)`` rebuilds the game with ``rand_seed=s`` (procgen cannot be reseeded in place).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from lit_rlseq.errors import UserError

FRAME_SHAPE = (3, 64, 64)
NUM_ACTIONS = 15  # every procgen game has the same 15 buttons
DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")


def game_names() -> list[str]:
    from procgen.env import ENV_NAMES

    return sorted(ENV_NAMES)


class ProcgenVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        game: str,
        num_envs: int,
        seed: int | None = None,
        distribution_mode: str = "hard",
        num_levels: int = 0,
        start_level: int = 0,
        **options: Any,
    ):
        self._env = None  # set before validating, so that close() (also from __del__) works on a refused env
        if game not in game_names():
            raise UserError(f"unknown procgen game {game!r}; valid games: {', '.join(game_names())}")
        if distribution_mode not in DISTRIBUTION_MODES:
            raise UserError(
                f"procgen distribution_mode {distribution_mode!r} is not one of {', '.join(DISTRIBUTION_MODES)}"
            )
        if num_envs < 1 or num_levels < 0 or start_level < 0:
            raise UserError(
                f"procgen needs num_envs >= 1, num_levels >= 0 and start_level >= 0; got {num_envs}, {num_levels}, "
                f"{start_level}"
            )
        self.game = game
        self.num_envs = num_envs
        self.options = dict(distribution_mode=distribution_mode, num_levels=num_levels, start_level=start_level,
                            **options)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.single_observation_space = gym.spaces.Dict({
            "rgb": gym.spaces.Box(0, 255, FRAME_SHAPE, dtype=np.uint8),
            "level_seed": gym.spaces.Box(0, np.iinfo(np.int64).max, (), dtype=np.int64),
        })
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self._make(seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0] >> 1))

    def _make(self, seed: int) -> None:
        from procgen import ProcgenGym3Env

        if self._env is not None:
            self._env.close()
        try:
            self._env = ProcgenGym3Env(num=self.num_envs, env_name=self.game, rand_seed=int(seed) % 2**31,
                                       **self.options)
        except TypeError as e:  # an option procgen does not know
            raise UserError(f"procgen:{self.game}: bad env option ({e}); options given: {self.options}") from e
        self._last = self._read_obs()

    def _read_obs(self) -> dict[str, np.ndarray]:
        _, obs, _ = self._env.observe()
        seeds = np.array([info["level_seed"] for info in self._env.get_info()], dtype=np.int64)
        return {"rgb": np.ascontiguousarray(obs["rgb"].transpose(0, 3, 1, 2)), "level_seed": seeds}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._make(seed)
        return {k: v.copy() for k, v in self._last.items()}, {}

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"procgen:{self.game} expects actions of shape ({self.num_envs},), got {actions.shape}")
        self._env.act(actions.astype(np.int32))
        reward, obs, first = self._env.observe()
        infos = self._env.get_info()
        done = np.asarray(first, dtype=bool).copy()
        current = {
            "rgb": np.ascontiguousarray(obs["rgb"].transpose(0, 3, 1, 2)),
            "level_seed": np.array([i["level_seed"] for i in infos], dtype=np.int64),
        }
        info: dict[str, Any] = {}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = {"rgb": self._last["rgb"][i].copy(),
                            "level_seed": np.int64(infos[i].get("prev_level_seed", self._last["level_seed"][i]))}
            info["final_obs"], info["_final_obs"] = final, done.copy()
            info["success"] = np.array([bool(i.get("prev_level_complete", 0)) for i in infos]) & done
            info["_success"] = done.copy()
        self._last = current
        truncated = np.zeros(self.num_envs, dtype=bool)
        return ({k: v.copy() for k, v in current.items()}, np.asarray(reward, dtype=np.float32), done, truncated,
                info)

    def close(self, **kwargs: Any) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def make_vector_env(variant: str | None, num_envs: int, seed: int | None = None, **kwargs: Any) -> ProcgenVectorEnv:
    if not variant:
        raise UserError(f"name a procgen game, e.g. procgen:coinrun; valid games: {', '.join(game_names())}")
    return ProcgenVectorEnv(variant, num_envs=num_envs, seed=seed, **kwargs)
