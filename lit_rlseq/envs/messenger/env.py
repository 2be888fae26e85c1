"""Gymnasium faces of the Messenger simulator: a same-step-autoreset vector env and a single env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

from lit_rlseq.envs.messenger.core import NUM_ACTIONS, OUTCOMES, WIN, MessengerSimulator
from lit_rlseq.envs.messenger.games import GRID, NUM_ENTITY_IDS, STAGE_MAX_STEPS, TRAIN_MULTI_P, stage_spec
from lit_rlseq.envs.messenger.text import MAX_WORDS, text_source
from lit_rlseq.errors import UserError

DEFAULT = "default"  # max_steps: EMMA's training limit of the stage (4 / 64 / 128)


def observation_space(num_layers: int, num_sentences: int, vocab_size: int) -> gym.spaces.Dict:
    """The per-env observation space: entity layers, the avatar layer and the manual's word ids."""
    return gym.spaces.Dict(
        {
            "entities": gym.spaces.Box(0, NUM_ENTITY_IDS - 1, (GRID, GRID, num_layers), dtype=np.int64),
            "avatar": gym.spaces.Box(0, NUM_ENTITY_IDS - 1, (GRID, GRID, 1), dtype=np.int64),
            "manual": gym.spaces.Box(0, vocab_size - 1, (num_sentences, MAX_WORDS), dtype=np.int64),
            "manual_len": gym.spaces.Box(1, MAX_WORDS, (num_sentences,), dtype=np.int64),
        }
    )


def _max_steps(spec, max_steps: int | str | None) -> int | None:
    if max_steps == DEFAULT:
        return STAGE_MAX_STEPS[spec.stage]
    if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
        raise UserError(f"Messenger max_steps must be a positive integer, 'default' or None, got {max_steps!r}")
    return max_steps


def _simulator(variant: str | None, num_envs: int, max_steps: int | str | None, text_path: str | None,
               multi_p: float, timeout_reward: float | None) -> MessengerSimulator:
    spec = stage_spec(variant)
    return MessengerSimulator(spec, num_envs, _max_steps(spec, max_steps), text_source(text_path), multi_p,
                              timeout_reward)


class MessengerVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` Messenger episodes of one stage and split, stepped together, with same-step autoreset.

    ``info`` always holds ``final_obs``/``_final_obs``, ``success``/``_success`` and ``outcome``/``_outcome``
    (an index into ``OUTCOMES``); the masks are true where an episode ended on this step.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}
    render_mode = "ansi"

    def __init__(self, variant: str, num_envs: int = 1, max_steps: int | str | None = DEFAULT,
                 seed: int | None = None, text_path: str | None = None, multi_p: float = TRAIN_MULTI_P,
                 timeout_reward: float | None = -1.0):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise UserError(f"Messenger num_envs must be a positive integer, got {num_envs!r}")
        self.sim = _simulator(variant, int(num_envs), max_steps, text_path, multi_p, timeout_reward)
        self.spec = self.sim.spec
        self.num_envs = int(num_envs)
        self.vocab = self.sim.vocab
        self.single_observation_space = observation_space(
            self.spec.num_layers, self.spec.num_sentences, len(self.vocab))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._reset_done = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if options:
            raise UserError(f"Messenger reset takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        self.sim.reset_envs(self.np_random, np.arange(self.num_envs))
        self._reset_done = True
        return self.sim.observe(self.np_random), {}

    def step(self, actions: np.ndarray
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._reset_done:
            raise UserError("MessengerVectorEnv.step() before reset(): call reset() first")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
            raise UserError(
                f"Messenger actions must be integers of shape ({self.num_envs},), got {actions.dtype} {actions.shape}"
            )
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise UserError(f"Messenger actions must be in 0..{NUM_ACTIONS - 1}, got {actions}")
        reward, terminated, truncated, outcome = self.sim.step(actions, self.np_random)
        done = terminated | truncated
        final_obs = np.full(self.num_envs, None, dtype=object)
        ended = np.flatnonzero(done)
        if len(ended):
            final = self.sim.observe(self.np_random, ended)
            for row, env in enumerate(ended):
                final_obs[env] = {key: value[row] for key, value in final.items()}
            self.sim.reset_envs(self.np_random, ended)
        info = {
            "final_obs": final_obs,
            "_final_obs": done,
            "success": done & (outcome == WIN),
            "_success": done.copy(),
            "outcome": outcome,
            "_outcome": done.copy(),
        }
        return self.sim.observe(self.np_random), reward, terminated, truncated, info

    def render(self) -> tuple[str, ...]:
        return tuple(self.sim.render_text(env) for env in range(self.num_envs))


class MessengerEnv(gym.Env):
    """One Messenger episode at a time (no autoreset): for play, debugging and gymnasium tooling."""

    metadata = {"render_modes": ["ansi"]}
    render_mode = "ansi"

    def __init__(self, variant: str, max_steps: int | str | None = DEFAULT, text_path: str | None = None,
                 multi_p: float = TRAIN_MULTI_P, timeout_reward: float | None = -1.0):
        self.sim = _simulator(variant, 1, max_steps, text_path, multi_p, timeout_reward)
        self.spec = self.sim.spec
        self.vocab = self.sim.vocab
        self.observation_space = observation_space(self.spec.num_layers, self.spec.num_sentences, len(self.vocab))
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self._episode_over = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if options:
            raise UserError(f"Messenger reset takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        self.sim.reset_envs(self.np_random, np.array([0]))
        self._episode_over = False
        return self._observe(), {}

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._episode_over:
            raise UserError("the Messenger episode is over (or never started): call reset()")
        if not 0 <= int(action) < NUM_ACTIONS:
            raise UserError(f"Messenger action must be in 0..{NUM_ACTIONS - 1}, got {action!r}")
        reward, terminated, truncated, outcome = self.sim.step(np.array([int(action)]), self.np_random)
        self._episode_over = bool(terminated[0] or truncated[0])
        info = {"success": bool(outcome[0] == WIN), "outcome": OUTCOMES[outcome[0]]} if self._episode_over else {}
        return self._observe(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def _observe(self) -> dict[str, np.ndarray]:
        return {key: value[0] for key, value in self.sim.observe(self.np_random).items()}

    def render(self) -> str:
        return self.sim.render_text(0)


def make_vector_env(variant: str | None, num_envs: int, seed: int | None = None,
                    max_steps: int | str | None = DEFAULT, text_path: str | None = None,
                    multi_p: float = TRAIN_MULTI_P, timeout_reward: float | None = -1.0,
                    **kwargs: Any) -> MessengerVectorEnv:
    """The registry's factory for ``messenger:<stage>``."""
    if kwargs:
        raise UserError(
            "Messenger takes the options max_steps, text_path, multi_p, timeout_reward and seed only, got unknown "
            f"{sorted(kwargs)}"
        )
    return MessengerVectorEnv(variant, num_envs=num_envs, max_steps=max_steps, seed=seed, text_path=text_path,
                              multi_p=multi_p, timeout_reward=timeout_reward)
