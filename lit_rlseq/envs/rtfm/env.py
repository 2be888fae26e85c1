"""Gymnasium faces of the RTFM simulator: a same-step-autoreset vector env and a single env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

from lit_rlseq.envs.rtfm.assignments import variant_spec
from lit_rlseq.envs.rtfm.core import (
    HEIGHT,
    INV_LEN,
    MAX_NAME,
    MAX_PLACEMENT,
    NUM_ACTIONS,
    OUTCOMES,
    TASK_LEN,
    WIDTH,
    WIKI_LEN,
    WIN,
    RTFMSimulator,
)
from lit_rlseq.envs.vocab import Vocabulary
from lit_rlseq.errors import UserError


def observation_space(vocab: Vocabulary) -> gym.spaces.Dict:
    """The per-env observation space (the layout of ``lit_rlseq.envs``)."""
    word = len(vocab) - 1

    def ids(*shape: int) -> gym.spaces.Box:
        return gym.spaces.Box(0, word, shape, dtype=np.int64)

    def length(low: int, high: int, *shape: int) -> gym.spaces.Box:
        return gym.spaces.Box(low, high, shape, dtype=np.int64)

    return gym.spaces.Dict(
        {
            "name": ids(HEIGHT, WIDTH, MAX_PLACEMENT, MAX_NAME),
            "name_len": length(0, MAX_NAME, HEIGHT, WIDTH, MAX_PLACEMENT),
            "wiki": ids(WIKI_LEN),
            "wiki_len": length(1, WIKI_LEN),
            "task": ids(TASK_LEN),
            "task_len": length(1, TASK_LEN),
            "inv": ids(INV_LEN),
            "inv_len": length(1, INV_LEN),
            "rel_pos": gym.spaces.Box(-1.0, 1.0, (HEIGHT, WIDTH, 2), dtype=np.float32),
            "valid": gym.spaces.Box(0, 1, (NUM_ACTIONS,), dtype=np.bool_),
        }
    )


def _check_max_steps(max_steps: int | None) -> None:
    if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
        raise UserError(f"RTFM max_steps must be a positive integer or None (no limit), got {max_steps!r}")


class RTFMVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` RTFM episodes of one variant stepped together, with same-step autoreset.

    ``info`` always holds ``final_obs``/``_final_obs``, ``success``/``_success`` and ``outcome``/``_outcome``
    (an index into ``OUTCOMES``); the masks are true where an episode ended on this step. ``sim`` is the
    simulator: ``sim.place`` builds exact scenarios for tests, ``sim.expert_view`` serves the scripted expert.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}
    render_mode = "ansi"

    def __init__(self, variant: str, num_envs: int = 1, max_steps: int | None = 80, seed: int | None = None):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise UserError(f"RTFM num_envs must be a positive integer, got {num_envs!r}")
        _check_max_steps(max_steps)
        self.variant = variant_spec(variant)
        self.num_envs = int(num_envs)
        self.sim = RTFMSimulator(self.variant, self.num_envs, max_steps)
        self.vocab = self.sim.vocab
        self.single_observation_space = observation_space(self.vocab)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._reset_done = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if options:
            raise UserError(f"RTFM reset takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        self.sim.reset_envs(self.np_random, np.arange(self.num_envs))
        self._reset_done = True
        return self.sim.observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._reset_done:
            raise UserError("RTFMVectorEnv.step() before reset(): call reset() first")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
            raise UserError(
                f"RTFM actions must be integers of shape ({self.num_envs},), got {actions.dtype} {actions.shape}"
            )
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise UserError(f"RTFM actions must be in 0..{NUM_ACTIONS - 1}, got {actions}")

        reward, terminated, truncated, outcome = self.sim.step(actions, self.np_random)
        done = terminated | truncated
        final_obs = np.full(self.num_envs, None, dtype=object)
        ended = np.flatnonzero(done)
        if len(ended):
            final = self.sim.observe(ended)
            for row, env in enumerate(ended):
                final_obs[env] = {key: value[row, ...] for key, value in final.items()}
            self.sim.reset_envs(self.np_random, ended)
        info = {
            "final_obs": final_obs,
            "_final_obs": done,
            "success": done & (outcome == WIN),
            "_success": done.copy(),
            "outcome": outcome,
            "_outcome": done.copy(),
        }
        return self.sim.observe(), reward, terminated, truncated, info

    def render(self) -> tuple[str, ...]:
        return tuple(self.sim.render_text(env) for env in range(self.num_envs))


class RTFMEnv(gym.Env):
    """One RTFM episode at a time (no autoreset): for play, debugging and gymnasium tooling."""

    metadata = {"render_modes": ["ansi"]}
    render_mode = "ansi"

    def __init__(self, variant: str, max_steps: int | None = 80):
        _check_max_steps(max_steps)
        self.variant = variant_spec(variant)
        self.sim = RTFMSimulator(self.variant, 1, max_steps)
        self.vocab = self.sim.vocab
        self.observation_space = observation_space(self.vocab)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self._episode_over = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if options:
            raise UserError(f"RTFM reset takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        self.sim.reset_envs(self.np_random, np.array([0]))
        self._episode_over = False
        return self._observe(), {}

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._episode_over:
            raise UserError("the RTFM episode is over (or never started): call reset()")
        if not 0 <= int(action) < NUM_ACTIONS:
            raise UserError(f"RTFM action must be in 0..{NUM_ACTIONS - 1}, got {action!r}")
        reward, terminated, truncated, outcome = self.sim.step(np.array([int(action)]), self.np_random)
        self._episode_over = bool(terminated[0] or truncated[0])
        info = {"success": bool(outcome[0] == WIN), "outcome": OUTCOMES[outcome[0]]} if self._episode_over else {}
        return self._observe(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def _observe(self) -> dict[str, np.ndarray]:
        return {key: value[0, ...] for key, value in self.sim.observe().items()}

    def render(self) -> str:
        return self.sim.render_text(0)


def make_vector_env(
    variant: str | None, num_envs: int, seed: int | None = None, max_steps: int | None = 80, **kwargs: Any
) -> RTFMVectorEnv:
    """The registry's factory for ``rtfm:<variant>``."""
    if kwargs:
        raise UserError(f"RTFM takes the options max_steps and seed only, got unknown {sorted(kwargs)}")
    return RTFMVectorEnv(variant, num_envs=num_envs, max_steps=max_steps, seed=seed)
