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
from lit_rlseq.envs.play import play_in_terminal


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
    play_in_terminal(env, lambda: env.sim.render_text(0, reveal=args.reveal), ACTION_NAMES)


if __name__ == "__main__":
    main()
