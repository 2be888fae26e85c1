"""Atari 2600 games through ale-py (ROMs ship in its wheel), preprocessed as torchbeast's / DQN's Atari setting.

Env ids: ``atari:Pong``, ``atari:MsPacman``, ``atari:ms_pacman`` (any ROM ale-py ships; CamelCase or snake_case).
Per step, in this order (the reference's wrapper stack, ``*NoFrameskip-v4`` underneath):

* no sticky actions (repeat_action_probability 0), minimal action set, no time limit unless asked for;
* no-op reset: after a real reset, 1..30 (uniform) no-op frames;
* max-and-skip: each action is repeated for 4 frames, rewards summed, the observation is the pixel-wise max of
  the last two frames (the two-frame buffer persists across steps, as in the reference, so an early game over
  maxes with an older frame);
* episodic life: losing a life ends the episode (``terminated``); the next "reset" only steps a no-op, a real
  reset happens after game over;
* fire reset (games whose action 1 is FIRE): every reset is followed by FIRE then action 2, their rewards
  dropped;
* 84x84 grey (RGB -> grey, area interpolation, OpenCV as in the reference), a stack of the last 4 frames.

Observations are dicts (lit_rlseq convention): ``pixels`` uint8 [4, 84, 84] and ``last_reward`` float32 [] (the
unclipped reward that led to this observation; 0 at an episode's first observation; the agent clips it).
A full game spans several episodes (lives). On the step where a game ends, ``info["game_return"]`` and
``info["game_length"]`` (agent steps; masked by ``_game_return``) report its score and length (a vector env
files them under ``info["final_info"]``: read them with ``game_results(info)``).

``vector="sync"`` (default) steps the envs in this process with gymnasium's SyncVectorEnv, ``"async"`` in one
subprocess each (gymnasium's AsyncVectorEnv). See docs/fwp_atari.md for the measurements behind the default.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from lit_rlseq.errors import UserError

GAME_LIST_HINT = "python -c 'import ale_py.roms as r; print(sorted(r.get_all_rom_ids()))'"


def rom_id(game: str) -> str:
    """``Pong`` / ``MsPacman`` / ``ms_pacman`` / ``PongNoFrameskip-v4`` -> ale-py's ROM id (``ms_pacman``)."""
    from ale_py import roms

    name = re.sub(r"(NoFrameskip)?-v\d+$", "", game.removeprefix("ALE/"))
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() if not name.islower() else name
    available = roms.get_all_rom_ids()
    if snake not in available:
        close = difflib.get_close_matches(snake, available, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(
            f"unknown Atari game {game!r}{hint}. ale-py ships {len(available)} ROMs; list them with:\n  "
            f"{GAME_LIST_HINT}\n  and name one as atari:<Name>, e.g. atari:Pong or atari:MsPacman"
        )
    return snake


class AtariGame(gym.Env):
    """One preprocessed Atari game (see the module docstring). Step counts are agent steps (4 frames each)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        game: str,
        noop_max: int = 30,
        frame_skip: int = 4,
        episodic_life: bool = True,
        fire_reset: bool = True,
        size: int = 84,
        stack: int = 4,
        max_episode_frames: int | None = None,
    ):
        import cv2
        from ale_py import ALEInterface, LoggerMode, roms

        self._cv2 = cv2
        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.game = rom_id(game)
        self.ale = ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.setInt("frame_skip", 1)
        self.ale.setInt("max_num_frames_per_episode", int(max_episode_frames or 0))
        self._rom = roms.get_rom_path(self.game)
        self.ale.loadROM(self._rom)
        self.actions = self.ale.getMinimalActionSet()
        meanings = [str(a).split(".")[-1] for a in self.actions]
        self.noop_max, self.frame_skip, self.episodic_life = noop_max, frame_skip, episodic_life
        self.fire_reset = fire_reset and len(meanings) >= 3 and meanings[1] == "FIRE"
        self.size, self.stack = size, stack
        self.action_space = gym.spaces.Discrete(len(self.actions))
        self.observation_space = gym.spaces.Dict({
            "pixels": gym.spaces.Box(0, 255, (stack, size, size), np.uint8),
            "last_reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
        })
        h, w = self.ale.getScreenDims()
        self._rgb = np.zeros((h, w, 3), np.uint8)
        self._pool = np.zeros((2, h, w, 3), np.uint8)  # max-and-skip's last two frames (persist across steps)
        self._frames = np.zeros((stack, size, size), np.uint8)
        self._lives = 0
        self._real_done = True
        self._game_return = 0.0
        self._game_length = 0
        self._seeded = False

    # -- the wrapper stack, innermost first --------------------------------------------------------------
    def _frame(self) -> np.ndarray:
        self.ale.getScreenRGB(self._rgb)
        return self._rgb

    def _noop_reset(self) -> np.ndarray:
        self.ale.reset_game()
        for _ in range(int(self.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0):
            self.ale.act(self.actions[0])
            if self.ale.game_over():
                self.ale.reset_game()
        return self._frame()

    def _skip(self, action: int) -> tuple[np.ndarray, float, bool]:
        total = 0.0
        done = False
        for i in range(self.frame_skip):
            total += self.ale.act(self.actions[action])
            done = self.ale.game_over()
            if i >= self.frame_skip - 2:
                self._pool[i - (self.frame_skip - 2)] = self._frame()
            if done:
                break
        return self._pool.max(0), total, done

    def _life_step(self, action: int) -> tuple[np.ndarray, float, bool]:
        frame, reward, done = self._skip(action)
        self._real_done = done
        lives = self.ale.lives()
        if self.episodic_life and 0 < lives < self._lives:
            done = True
        self._lives = lives
        return frame, reward, done

    def _life_reset(self) -> np.ndarray:
        if self._real_done or not self.episodic_life:
            frame = self._noop_reset()
        else:
            frame, _, _ = self._skip(0)
        self._lives = self.ale.lives()
        return frame

    def _fire_reset(self) -> np.ndarray:
        frame = self._life_reset()
        if self.fire_reset:
            for action in (1, 2):
                frame, _, done = self._life_step(action)
                if done:
                    frame = self._life_reset()
        return frame

    def _warp(self, frame: np.ndarray) -> np.ndarray:
        grey = self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)
        return self._cv2.resize(grey, (self.size, self.size), interpolation=self._cv2.INTER_AREA)

    def _observation(self, reward: float) -> dict[str, np.ndarray]:
        return {"pixels": self._frames.copy(), "last_reward": np.float32(reward)}

    # -- gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.ale.setInt("random_seed", int(self.np_random.integers(0, 2**31 - 1)))
            self.ale.loadROM(self._rom)
            self._real_done, self._seeded = True, True
        if self._real_done:
            self._game_return, self._game_length = 0.0, 0
        self._frames[:] = self._warp(self._fire_reset())
        return self._observation(0.0), {"lives": self._lives}

    def step(self, action: int):
        frame, reward, done = self._life_step(int(action))
        self._frames[:-1] = self._frames[1:]
        self._frames[-1] = self._warp(frame)
        self._game_return += reward
        self._game_length += 1
        info: dict[str, Any] = {"lives": self._lives}
        if self._real_done:
            info["game_return"] = np.float32(self._game_return)
            info["game_length"] = np.int64(self._game_length)
        return self._observation(reward), float(reward), bool(done), False, info

    def action_meanings(self) -> list[str]:
        return [str(a).split(".")[-1] for a in self.actions]


def make_vector_env(variant: str | None, num_envs: int, seed: int | None = None, vector: str = "sync",
                    **kwargs: Any) -> gym.vector.VectorEnv:
    """``atari:<Game>`` -> a vector of preprocessed games with same-step autoreset (lit_rlseq.envs convention).

    kwargs go to AtariGame (noop_max, frame_skip, episodic_life, fire_reset, size, stack, max_episode_frames).
    """
    if not variant:
        raise UserError(f"name the Atari game: atari:<Game>, e.g. atari:Pong; list the games with:\n  {GAME_LIST_HINT}")
    rom_id(variant)  # an unknown game fails here, before any process starts
    fns = [lambda: AtariGame(variant, **kwargs) for _ in range(num_envs)]
    if vector == "sync":
        env = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    elif vector == "async":
        env = gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP, context="spawn")
    else:
        raise UserError(f"env_kwargs.vector must be 'sync' or 'async', got {vector!r}")
    if seed is not None:
        env.reset(seed=seed)
    return env


def game_results(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full games that ended on this vector step: (scores float32 [n], lengths int64 [n], env indices [n]).

    The game ends on an episode's last step, so gymnasium's same-step autoreset files the numbers under
    ``info["final_info"]`` (the reset's info replaces the top level); both places are read.
    """
    for source in (info.get("final_info", {}), info):
        if "_game_return" in source:
            ended = np.flatnonzero(source["_game_return"])
            if len(ended):
                return (np.asarray(source["game_return"], np.float32)[ended],
                        np.asarray(source["game_length"], np.int64)[ended], ended)
    return np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
