"""A tiny pixel memory task for learning tests: the agent sees a cue (left or right half lit) at the first step,
then blank frames, then a question frame; the action at the question earns +1 if it names the cue, else -1.
Observations have the Atari adapter's layout at 12x12 (pixels uint8 [4, 12, 12], last_reward) so the FWP agent runs on it.
Only a recurrent core can beat chance (expected return 0 without memory)."""

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

SIZE = 12


class CueEnv(gym.Env):
    def __init__(self, delay: int = 2):
        self.delay = delay
        self.action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.spaces.Dict({
            "pixels": gym.spaces.Box(0, 255, (4, SIZE, SIZE), np.uint8),
            "last_reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
        })

    def _obs(self, reward=0.0):
        pixels = np.zeros((4, SIZE, SIZE), np.uint8)
        if self.t == 0:
            half = slice(0, SIZE // 2) if self.cue == 0 else slice(SIZE // 2, SIZE)
            pixels[:, :, half] = 255
        elif self.t == self.delay + 1:
            pixels[:, 4:8, 4:8] = 128
        return {"pixels": pixels, "last_reward": np.float32(reward)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.cue = 0, int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        if self.t == self.delay + 1:
            reward = 1.0 if int(action) == self.cue else -1.0
            self.t += 1
            return self._obs(reward), reward, True, False, {}
        self.t += 1
        return self._obs(), 0.0, False, False, {}


def make_vector_env(variant, num_envs, seed=None, **kwargs):
    env = gym.vector.SyncVectorEnv([lambda: CueEnv(**kwargs) for _ in range(num_envs)],
                                   autoreset_mode=AutoresetMode.SAME_STEP)
    if seed is not None:
        env.reset(seed=seed)
    return env
