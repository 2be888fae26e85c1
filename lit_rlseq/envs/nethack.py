"""NetHack through the NetHack Learning Environment (``nle``, extra ``nethack``) as a batched vector env.

Env ids: ``nethack`` is ``NetHackChallenge-v0`` (what LDD used: the full keyboard of 121 actions, menus and
"--More--" not skipped, a random character); ``nethack:<gym id>`` takes any other NLE task, e.g.
``nethack:NetHackScore-v0``.

Observations per env (numpy arrays, the ones the policy and the dynamics model read):

    tty_chars   uint8 [24, 80]  the terminal's characters (what a person sees; top line = messages,
                                bottom two lines = status)
    tty_colors  int8  [24, 80]  their colours
    tty_cursor  uint8 [2]       the cursor's (row, col): on the hero while the map has focus
    blstats     int64 [27]      the status line as numbers (``nle.nethack.NLE_BL_*`` indices)
    message     uint8 [256]     the top-line message, 0-padded

Conventions (see ``lit_rlseq.envs``): same-step autoreset; on the step an episode ends, ``info`` holds
``final_obs`` and, each masked by its ``_key``, ``success`` (the game was won: ascended), ``score`` (the
episode's in-game score gained: the sum of NLE's rewards, which are score differences) and ``depth`` (the
deepest dungeon level the hero reached). NLE's step limit (``max_steps``, NLE's ``max_episode_steps``) and
its no-progress abort end an episode as *truncated*, not terminated.

NetHack's own randomness is not seedable in ``NetHackChallenge-v0`` (the challenge forbids it): ``seed``
only seeds gymnasium's generator, so games are not reproducible; seedable NLE tasks (e.g.
``NetHackScore-v0``) are not reseeded by ``seed`` either.

The envs are stepped one after the other in this process (NetHack is C and fast: tens of thousands of steps
per second); ``bin/bench nethack.env_steps`` measures the batch against one env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from lit_rlseq.errors import UserError

DEFAULT_TASK = "NetHackChallenge-v0"
OBSERVATION_KEYS = ("tty_chars", "tty_colors", "tty_cursor", "blstats", "message")
ROWS, COLUMNS = 24, 80


def _import_nle() -> Any:
    try:
        import nle  # noqa: F401  (registers the NetHack gymnasium ids)
        from nle import nethack
    except ImportError as e:
        raise UserError(
            f"NetHack needs the `nle` package ({e}); install the extra: pip install -e '.[nethack]' "
            "(bin/setup installs every extra)"
        ) from e
    return nethack


class NetHackVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` NetHack games stepped together (same-step autoreset); see the module docstring."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}
    render_mode = "ansi"
    episode_info = ("score", "depth")  # reported when an episode ends; the learners log their means

    def __init__(
        self, task: str = DEFAULT_TASK, num_envs: int = 1, max_steps: int | None = None, seed: int | None = None
    ):
        nethack = _import_nle()
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise UserError(f"NetHack num_envs must be a positive integer, got {num_envs!r}")
        if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
            raise UserError(f"NetHack max_steps must be a positive integer or None (NLE's own), got {max_steps!r}")
        nle_ids = sorted(i for i, spec in gym.registry.items() if str(spec.entry_point).startswith("nle."))
        if task not in nle_ids:
            raise UserError(f"unknown NetHack task {task!r}: use one of {nle_ids} (env id 'nethack:<task>')")
        kwargs: dict[str, Any] = {"observation_keys": OBSERVATION_KEYS}
        if max_steps is not None:
            kwargs["max_episode_steps"] = int(max_steps)
        self.task = task
        self.num_envs = int(num_envs)
        self.envs = [gym.make(task, disable_env_checker=True, **kwargs) for _ in range(self.num_envs)]
        spaces = self.envs[0].observation_space
        self.single_observation_space = gym.spaces.Dict({k: spaces[k] for k in OBSERVATION_KEYS})
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._depth_index = nethack.NLE_BL_DEPTH
        self._score = np.zeros(self.num_envs, dtype=np.float64)
        self._depth = np.zeros(self.num_envs, dtype=np.int64)
        self._last: list[dict[str, np.ndarray]] | None = None
        self._seed = seed

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        seed = self._seed if seed is None else seed
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        self._last = [self._start(i, seeds[i]) for i in range(self.num_envs)]
        return self._batch(self._last), {}

    def _start(self, index: int, seed: int | None = None) -> dict[str, np.ndarray]:
        obs, _ = self.envs[index].reset(seed=seed)
        self._score[index] = 0.0
        self._depth[index] = obs["blstats"][self._depth_index]
        return _copy(obs)

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._last is None:
            raise UserError("NetHackVectorEnv.step() before reset(): call reset first")
        actions = np.asarray(actions)
        n, choices = self.num_envs, self.single_action_space.n
        if actions.shape != (n,) or not np.issubdtype(actions.dtype, np.integer):
            raise UserError(f"NetHack actions must be integers of shape ({n},), got {actions.dtype} {actions.shape}")
        if ((actions < 0) | (actions >= choices)).any():
            raise UserError(f"NetHack actions must be in 0..{choices - 1}, got {actions.tolist()}")
        reward = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        ended = np.zeros(n, dtype=bool)
        final_obs = np.full(n, None, dtype=object)
        success = np.zeros(n, dtype=bool)
        score = np.zeros(n, dtype=np.float64)
        depth = np.zeros(n, dtype=np.int64)
        for i, env in enumerate(self.envs):
            obs, r, done, cut, info = env.step(int(actions[i]))
            reward[i] = r
            self._score[i] += r
            self._depth[i] = max(self._depth[i], obs["blstats"][self._depth_index])
            if done or cut:  # NLE reports an abort (step limit, no progress) as done *and* truncated
                ended[i], truncated[i], terminated[i] = True, cut, not cut
                final_obs[i] = _copy(obs)
                success[i] = bool(info.get("is_ascended", False))
                score[i], depth[i] = self._score[i], self._depth[i]
                self._last[i] = self._start(i)
            else:
                self._last[i] = _copy(obs)
        info = {
            "final_obs": final_obs,
            "_final_obs": ended,
            "success": success,
            "_success": ended.copy(),
            "score": score,
            "_score": ended.copy(),
            "depth": depth,
            "_depth": ended.copy(),
        }
        return self._batch(self._last), reward, terminated, truncated, info

    def _batch(self, observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.stack([obs[k] for obs in observations]) for k in OBSERVATION_KEYS}

    def render(self) -> str:
        """The first env's terminal as text."""
        if self._last is None:
            raise UserError("NetHackVectorEnv.render() before reset(): call reset first")
        return screen_text(self._last[0]["tty_chars"])

    def close_extras(self, **kwargs: Any) -> None:
        for env in getattr(self, "envs", ()):  # also when the constructor failed part way
            env.close()


def _copy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(obs[k], copy=True) for k in OBSERVATION_KEYS}  # NLE reuses its buffers


def screen_text(tty_chars: np.ndarray) -> str:
    """A [24, 80] character screen as 24 lines of text."""
    return "\n".join(bytes(row).decode("latin-1").rstrip() for row in np.asarray(tty_chars, dtype=np.uint8))


def make_vector_env(
    variant: str | None, num_envs: int, seed: int | None = None, max_steps: int | None = None, **kwargs: Any
) -> NetHackVectorEnv:
    if kwargs:
        raise UserError(f"unknown NetHack env options {sorted(kwargs)}: the options are num_envs, seed, max_steps")
    return NetHackVectorEnv(variant or DEFAULT_TASK, num_envs=num_envs, max_steps=max_steps, seed=seed)
