"""Play a grid env yourself in a terminal: w/a/s/d and Enter to move, a space (or an empty line) to stay, q to quit.

Shared by ``python -m lit_rlseq.envs.rtfm.play`` and ``python -m lit_rlseq.envs.messenger.play``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym

KEYS = {"w": "up", "s": "down", "a": "left", "d": "right", " ": "stay", "": "stay"}


def play_in_terminal(env: gym.Env, render: Callable[[], str], action_names: Sequence[str]) -> None:
    """Reads keys from standard input until q or end of input; prints the grid, rewards and episode outcomes.

    The env must already be reset; ``info`` of a finished episode carries ``success`` and ``outcome``.
    """
    episode_return, wins, episodes = 0.0, 0, 0
    while True:
        print(render())
        try:
            line = input("w/a/s/d, space = stay, q = quit > ")
        except EOFError:
            break
        key = line[:1].lower() if line.strip() else ""
        if key == "q":
            break
        if key not in KEYS:
            print(f"unknown key {line!r}")
            continue
        _, reward, terminated, truncated, info = env.step(list(action_names).index(KEYS[key]))
        episode_return += reward
        print(f"reward {reward:+.2f}")
        if terminated or truncated:
            episodes += 1
            wins += info["success"]
            print(f"episode over: {info['outcome']}, return {episode_return:+.2f} ({wins}/{episodes} won)\n")
            env.reset()
            episode_return = 0.0
