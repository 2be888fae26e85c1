"""A tiny text-grid environment for tests and smoke experiments: "go to the goal", where the wiki says
which object the goal is.

A 6x6 room (walls around a 4x4 interior) holds the agent ("you") and two objects named "{colour} {shape}"
that differ in colour or shape. The wiki names the goal ("the goal is the red ball ."), the task is always
"go to the goal". Reaching the goal gives +1 (success), reaching the other object -1, each other step -0.02,
and the episode is cut at ``max_steps`` with -1 (truncated). Like RTFM, the information is in the wiki, which
the txt2pi network reads with attention conditioned on the task.

Observations follow the text-grid convention in ``lit_rlseq.envs`` (the same keys and shapes as RTFM), so
the same networks, collectors and stores serve both. The whole batch is simulated with numpy at once.

``toy:reach`` is a second, continuous-action toy (``ReachVectorEnv``) for testing continuous-control learners.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from lit_rlseq.envs.vocab import Vocabulary
from lit_rlseq.errors import UserError

COLOURS = ("red", "blue", "green", "yellow")
SHAPES = ("ball", "box", "key")
ROOM = 6  # including the wall border
NAME_WORDS = 8
WIKI_WORDS = 8
TASK_WORDS = 8
INV_WORDS = 2
WIKI = "the goal is the {colour} {shape} ."
TASK = "go to the goal"
INVENTORY = "nothing"
# stay, up, down, left, right
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)
STEP_PENALTY = -0.02


def toy_vocabulary() -> Vocabulary:
    words = {"you", "empty", "wall", INVENTORY, *COLOURS, *SHAPES, *WIKI.split(), *TASK.split()}
    return Vocabulary(words)


def _padded(ids: list[int], width: int) -> np.ndarray:
    out = np.zeros(width, dtype=np.int64)
    out[: len(ids)] = ids
    return out


class ToyVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` independent toy rooms stepped together (same-step autoreset)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, max_steps: int = 20, seed: int | None = None):
        if num_envs < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.vocab = toy_vocabulary()
        self.single_action_space = gym.spaces.Discrete(len(MOVES))
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.single_observation_space = _observation_space(len(self.vocab))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)

        v = self.vocab
        self._word = {w: v.index[w] for w in v.words}
        self._base_grid = np.zeros((ROOM, ROOM, 1, NAME_WORDS), dtype=np.int64)
        self._base_grid[:, :, 0, 0] = v.index["wall"]
        self._base_grid[1:-1, 1:-1, 0, 0] = v.index["empty"]
        # Every object name "{colour} {shape}" as ids, indexed [colour, shape].
        self._object_ids = np.array([[v.index[c], v.index[s]] for c in COLOURS for s in SHAPES]).reshape(
            len(COLOURS), len(SHAPES), 2
        )
        self._task = _padded(v.encode(TASK.split()), TASK_WORDS)
        self._inv = _padded(v.encode([INVENTORY]), INV_WORDS)

        self._rng = np.random.default_rng(seed)
        self.agent = np.zeros((num_envs, 2), dtype=np.int64)
        self.objects = np.zeros((num_envs, 2, 2), dtype=np.int64)  # [env, object, (row, col)]
        self.object_kind = np.zeros((num_envs, 2, 2), dtype=np.int64)  # [env, object, (colour, shape)]
        self.target = np.zeros(num_envs, dtype=np.int64)  # which object the task names
        self.steps = np.zeros(num_envs, dtype=np.int64)

    # -- episode set-up -------------------------------------------------------------------------------
    def _reset_envs(self, which: np.ndarray) -> None:
        n = len(which)
        if n == 0:
            return
        rng = self._rng
        interior = (ROOM - 2) ** 2
        cells = np.argsort(rng.random((n, interior)), axis=1)[:, :3]  # three distinct interior cells
        rows, cols = cells // (ROOM - 2) + 1, cells % (ROOM - 2) + 1
        self.agent[which] = np.stack([rows[:, 0], cols[:, 0]], axis=1)
        self.objects[which] = np.stack([rows[:, 1:], cols[:, 1:]], axis=2)
        colour = rng.integers(0, len(COLOURS), size=(n, 2))
        shape = rng.integers(0, len(SHAPES), size=(n, 2))
        same = (colour[:, 0] == colour[:, 1]) & (shape[:, 0] == shape[:, 1])
        shape[same, 1] = (shape[same, 1] + 1) % len(SHAPES)  # the two objects always differ
        self.object_kind[which] = np.stack([colour, shape], axis=2)
        self.target[which] = rng.integers(0, 2, size=n)
        self.steps[which] = 0

    # -- observations ---------------------------------------------------------------------------------
    def _observe(self, which: np.ndarray | None = None) -> dict[str, np.ndarray]:
        idx = np.arange(self.num_envs) if which is None else which
        n = len(idx)
        grid = np.repeat(self._base_grid[None], n, axis=0)
        name_len = np.zeros((n, ROOM, ROOM, 1), dtype=np.int64)
        name_len[...] = 1
        arange = np.arange(n)
        for k in range(2):
            pos = self.objects[idx, k]
            kind = self.object_kind[idx, k]
            grid[arange, pos[:, 0], pos[:, 1], 0, :2] = self._object_ids[kind[:, 0], kind[:, 1]]
            name_len[arange, pos[:, 0], pos[:, 1], 0] = 2
        # The agent is drawn last: in a terminal observation it stands on the object it reached.
        agent = self.agent[idx]
        grid[arange, agent[:, 0], agent[:, 1], 0, :] = 0
        grid[arange, agent[:, 0], agent[:, 1], 0, 0] = self._word["you"]
        name_len[arange, agent[:, 0], agent[:, 1], 0] = 1

        target_kind = self.object_kind[idx, self.target[idx]]
        wiki = np.zeros((n, WIKI_WORDS), dtype=np.int64)
        wiki[:, :4] = [self._word[w] for w in WIKI.split()[:4]]  # "the goal is the"
        wiki[:, 4:6] = self._object_ids[target_kind[:, 0], target_kind[:, 1]]
        wiki[:, 6] = self._word["."]

        coords = np.arange(ROOM)
        rel_pos = np.empty((n, ROOM, ROOM, 2), dtype=np.float32)
        rel_pos[..., 0] = (coords[None, :, None] - agent[:, 0, None, None]) / ROOM
        rel_pos[..., 1] = (coords[None, None, :] - agent[:, 1, None, None]) / ROOM

        nxt = agent[:, None, :] + MOVES[None]
        valid = (nxt >= 1).all(-1) & (nxt <= ROOM - 2).all(-1)
        return {
            "name": grid,
            "name_len": name_len,
            "wiki": wiki,
            "wiki_len": np.full(n, 7, dtype=np.int64),
            "task": np.repeat(self._task[None], n, axis=0),
            "task_len": np.full(n, np.count_nonzero(self._task), dtype=np.int64),
            "inv": np.repeat(self._inv[None], n, axis=0),
            "inv_len": np.ones(n, dtype=np.int64),
            "rel_pos": rel_pos,
            "valid": valid,
        }

    # -- gymnasium API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        return self._observe(), {}

    def step(self, actions: Any):
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if ((actions < 0) | (actions >= len(MOVES))).any():
            raise UserError(f"toy env actions must be in [0, {len(MOVES)}), got {actions}")
        moved = self.agent + MOVES[actions]
        inside = (moved >= 1).all(-1) & (moved <= ROOM - 2).all(-1)
        self.agent = np.where(inside[:, None], moved, self.agent)
        self.steps += 1

        on_object = (self.objects == self.agent[:, None, :]).all(-1)  # [env, object]
        reached_target = on_object[np.arange(self.num_envs), self.target]
        reached_other = on_object.any(-1) & ~reached_target
        terminated = reached_target | reached_other
        truncated = ~terminated & (self.steps >= self.max_steps)
        reward = np.full(self.num_envs, STEP_PENALTY, dtype=np.float32)
        reward[reached_target] = 1.0
        reward[reached_other | truncated] = -1.0

        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            finished = np.flatnonzero(done)
            final = self._observe(finished)
            final_obs = np.empty(self.num_envs, dtype=object)
            for j, env in enumerate(finished):
                final_obs[env] = {k: v[j] for k, v in final.items()}
            info = {
                "final_obs": final_obs,
                "_final_obs": done,
                "success": reached_target,
                "_success": done,
            }
            self._reset_envs(finished)
        return self._observe(), reward, terminated, truncated, info

    def render_text(self, env: int = 0) -> str:
        """The room of one env as text, one cell per column, plus the wiki and the task."""
        obs = self._observe(np.array([env]))
        cells = [[" ".join(self.vocab.decode(obs["name"][0, r, c, 0])) for c in range(ROOM)] for r in range(ROOM)]
        width = max(len(c) for row in cells for c in row)
        lines = [" | ".join(c.ljust(width) for c in row) for row in cells]
        lines.append("wiki: " + " ".join(self.vocab.decode(obs["wiki"][0])))
        lines.append("task: " + " ".join(self.vocab.decode(obs["task"][0])))
        return "\n".join(lines)


def _observation_space(vocab_size: int) -> gym.spaces.Dict:
    ids = lambda *shape: gym.spaces.Box(0, vocab_size - 1, shape=shape, dtype=np.int64)  # noqa: E731
    length = lambda high: gym.spaces.Box(0, high, shape=(), dtype=np.int64)  # noqa: E731
    return gym.spaces.Dict(
        {
            "name": ids(ROOM, ROOM, 1, NAME_WORDS),
            "name_len": gym.spaces.Box(0, NAME_WORDS, shape=(ROOM, ROOM, 1), dtype=np.int64),
            "wiki": ids(WIKI_WORDS),
            "wiki_len": length(WIKI_WORDS),
            "task": ids(TASK_WORDS),
            "task_len": length(TASK_WORDS),
            "inv": ids(INV_WORDS),
            "inv_len": length(INV_WORDS),
            "rel_pos": gym.spaces.Box(-1.0, 1.0, shape=(ROOM, ROOM, 2), dtype=np.float32),
            "valid": gym.spaces.Box(0, 1, shape=(len(MOVES),), dtype=np.bool_),
        }
    )


REACH_SPEED = 0.25
REACH_TOLERANCE = 0.05


class ReachVectorEnv(gym.vector.VectorEnv):
    """``toy:reach``, a 1-D continuous-control test: move a point on [-1, 1] to a target.

    Observation ``{"obs": float32 [2]}`` = (position, target); action float32 [1] in [-1, 1] (the collector
    clips), moving the point by ``0.25 * action``. Reward ``-|position - target|`` after each move; the episode
    terminates when the point is within 0.05 of the target and is truncated after ``max_steps`` steps. Standing
    still returns about -6.7 per episode (the mean distance 2/3, ten times), heading straight for the target
    about -1.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, max_steps: int = 10, seed: int | None = None):
        if num_envs < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.single_observation_space = gym.spaces.Dict({"obs": gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)})
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self.position = np.zeros(num_envs)
        self.target = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, dtype=np.int64)

    def _reset_envs(self, which: np.ndarray) -> None:
        self.position[which] = self._rng.uniform(-1.0, 1.0, len(which))
        self.target[which] = self._rng.uniform(-1.0, 1.0, len(which))
        self.steps[which] = 0

    def _observe(self) -> dict[str, np.ndarray]:
        return {"obs": np.stack([self.position, self.target], axis=1).astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        return self._observe(), {}

    def step(self, actions: Any):
        actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 1)[:, 0]
        if not np.isfinite(actions).all():
            raise UserError(f"toy:reach actions must be finite, got {actions}")
        self.position = np.clip(self.position + REACH_SPEED * np.clip(actions, -1.0, 1.0), -1.0, 1.0)
        self.steps += 1
        distance = np.abs(self.position - self.target)
        reward = (-distance).astype(np.float32)
        terminated = distance < REACH_TOLERANCE
        truncated = ~terminated & (self.steps >= self.max_steps)
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            final = self._observe()
            final_obs = np.empty(self.num_envs, dtype=object)
            for env in np.flatnonzero(done):
                final_obs[env] = {"obs": final["obs"][env]}
            info = {"final_obs": final_obs, "_final_obs": done}
            self._reset_envs(np.flatnonzero(done))
        return self._observe(), reward, terminated, truncated, info


VARIANTS = {"reach": ReachVectorEnv}


def make_vector_env(variant: str | None, num_envs: int, seed: int | None = None,
                    max_steps: int | None = None) -> gym.vector.VectorEnv:
    """``toy`` (the text-grid room, 20 steps by default) or ``toy:reach`` (continuous, 10 steps)."""
    if variant is not None and variant not in VARIANTS:
        raise UserError(f"unknown toy variant 'toy:{variant}'; use env 'toy' or one of {[f'toy:{v}' for v in VARIANTS]}")
    cls = ToyVectorEnv if variant is None else VARIANTS[variant]
    return cls(num_envs, seed=seed, **({} if max_steps is None else {"max_steps": max_steps}))
