"""Play Messenger yourself: ``python -m lit_rlseq.envs.messenger.play --stage s2``.

Type a key and Enter: w up, s down, a left, d right, a space (or an empty line) to stay, q to quit.
The grid shows entities by their first two letters; the manual under it says which is which.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lit_rlseq.envs.messenger.core import ACTION_NAMES
from lit_rlseq.envs.messenger.env import DEFAULT, MessengerEnv
from lit_rlseq.envs.messenger.games import VARIANT_NAMES

KEYS = {"w": "up", "s": "down", "a": "left", "d": "right", " ": "stay", "": "stay"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="s1", choices=sorted(VARIANT_NAMES))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None, help="default: EMMA's limit of the stage")
    parser.add_argument("--text-path", default=None, help="directory of the original's human texts")
    parser.add_argument("--reveal", action="store_true", help="also print the true roles (a cheat)")
    args = parser.parse_args(argv)

    env = MessengerEnv(args.stage, max_steps=args.max_steps or DEFAULT, text_path=args.text_path)
    env.reset(seed=args.seed)
    episode_return, wins, episodes = 0.0, 0, 0
    while True:
        print(env.sim.render_text(0, reveal=args.reveal))
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
