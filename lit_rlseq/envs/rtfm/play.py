"""Play RTFM yourself: ``python -m lit_rlseq.envs.rtfm.play --variant groups_simple_stationary``.

Type a key and Enter: w up, s down, a left, d right, a space (or an empty line) to stay, q to quit.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lit_rlseq.envs.rtfm.assignments import VARIANTS
from lit_rlseq.envs.rtfm.core import ACTION_NAMES
from lit_rlseq.envs.rtfm.env import RTFMEnv

KEYS = {"w": "up", "s": "down", "a": "left", "d": "right", " ": "stay", "": "stay"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="groups_simple_stationary", choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=80)
    args = parser.parse_args(argv)

    env = RTFMEnv(args.variant, max_steps=args.max_steps)
    env.reset(seed=args.seed)
    episode_return, wins, episodes = 0.0, 0, 0
    while True:
        print(env.render())
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
        _, reward, terminated, truncated, info = env.step(ACTION_NAMES.index(KEYS[key]))
        episode_return += reward
        print(f"reward {reward:+.2f}")
        if terminated or truncated:
            episodes += 1
            wins += info["success"]
            print(f"episode over: {info['outcome']}, return {episode_return:+.2f} ({wins}/{episodes} won)\n")
            env.reset()
            episode_return = 0.0


if __name__ == "__main__":
    main()
