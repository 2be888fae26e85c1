"""Play RTFM yourself: ``python -m lit_rlseq.envs.rtfm.play --variant groups_simple_stationary``.

Type a key and Enter: w up, s down, a left, d right, a space (or an empty line) to stay, q to quit.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lit_rlseq.envs.play import play_in_terminal
from lit_rlseq.envs.rtfm.assignments import VARIANTS
from lit_rlseq.envs.rtfm.core import ACTION_NAMES
from lit_rlseq.envs.rtfm.env import RTFMEnv


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="groups_simple_stationary", choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=80)
    args = parser.parse_args(argv)

    env = RTFMEnv(args.variant, max_steps=args.max_steps)
    env.reset(seed=args.seed)
    play_in_terminal(env, env.render, ACTION_NAMES)


if __name__ == "__main__":
    main()
