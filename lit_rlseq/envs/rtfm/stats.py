"""Episode statistics of RTFM variants under random policies, or under the scripted expert.

    python -m lit_rlseq.envs.rtfm.stats [--episodes 10000] [--variants groups ...] [--expert]

Random policies: "uniform" draws each of the 5 actions with equal chance, "valid" draws uniformly among the
actions the ``valid`` mask allows. Each is run with the 80-step limit and without a limit. Every env of the
batch plays exactly its share of the episodes, so long episodes are not cut off by stopping early.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lit_rlseq.envs.rtfm.assignments import VARIANTS, variant_spec
from lit_rlseq.envs.rtfm.core import NUM_ACTIONS, OUTCOMES
from lit_rlseq.envs.rtfm.env import RTFMVectorEnv
from lit_rlseq.envs.rtfm.expert import expert_actions
from lit_rlseq.errors import UserError

TRAIN_VARIANTS = ("groups_simple_stationary", "groups_simple", "groups", "groups_nl")
RANDOM_POLICIES = ("uniform", "valid")
Policy = Callable[[dict[str, np.ndarray], RTFMVectorEnv], np.ndarray]


@dataclass(frozen=True)
class EpisodeStats:
    variant: str
    policy: str
    max_steps: int | None
    episodes: int
    outcome_share: dict[str, float]  # over the finished episodes, for each of OUTCOMES[1:]
    length_mean: float
    length_median: float
    length_p95: float


def make_policy(name: str, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    if name == "uniform":
        return lambda obs, env: rng.integers(NUM_ACTIONS, size=env.num_envs)
    if name == "valid":

        def uniform_valid(obs: dict[str, np.ndarray], env: RTFMVectorEnv) -> np.ndarray:
            keys = rng.random(obs["valid"].shape)
            return np.where(obs["valid"], keys, -1.0).argmax(1)

        return uniform_valid
    if name == "expert":
        return lambda obs, env: expert_actions(env)
    raise UserError(f"unknown RTFM policy {name!r}: use one of uniform, valid, expert")


def run_episodes(
    variant: str, policy: str, episodes: int, max_steps: int | None = 80, num_envs: int = 256, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Outcome codes and lengths of at least ``episodes`` finished episodes (each env plays the same share)."""
    env = RTFMVectorEnv(variant, num_envs=num_envs, max_steps=max_steps, seed=seed)
    act = make_policy(policy, seed + 1)
    share = math.ceil(episodes / num_envs)
    obs, _ = env.reset()
    steps = np.zeros(num_envs, dtype=np.int64)
    finished = np.zeros(num_envs, dtype=np.int64)
    outcomes, lengths = [], []
    while (finished < share).any():
        obs, _, _, _, info = env.step(act(obs, env))
        steps += 1
        done = info["_final_obs"]
        counted = done & (finished < share)
        outcomes.append(info["outcome"][counted])
        lengths.append(steps[counted])
        finished += done
        steps[done] = 0
    return np.concatenate(outcomes), np.concatenate(lengths)


def episode_stats(
    variant: str, policy: str, episodes: int, max_steps: int | None = 80, num_envs: int = 256, seed: int = 0
) -> EpisodeStats:
    outcomes, lengths = run_episodes(variant, policy, episodes, max_steps, num_envs, seed)
    counts = np.bincount(outcomes, minlength=len(OUTCOMES))
    return EpisodeStats(
        variant=variant,
        policy=policy,
        max_steps=max_steps,
        episodes=len(outcomes),
        outcome_share={name: counts[code] / len(outcomes) for code, name in enumerate(OUTCOMES) if code},
        length_mean=float(lengths.mean()),
        length_median=float(np.median(lengths)),
        length_p95=float(np.percentile(lengths, 95)),
    )


def table_header() -> str:
    header = f"{'variant':<26} {'policy':<8} {'limit':>5} {'episodes':>8}"
    header += "".join(f" {name:>15}" for name in OUTCOMES[1:]) + f" {'len mean':>8} {'median':>6} {'p95':>5}"
    return header + "\n" + "-" * len(header)


def table_row(row: EpisodeStats) -> str:
    limit = "none" if row.max_steps is None else str(row.max_steps)
    line = f"{row.variant:<26} {row.policy:<8} {limit:>5} {row.episodes:>8}"
    line += "".join(f" {row.outcome_share[name]:>15.3f}" for name in OUTCOMES[1:])
    return line + f" {row.length_mean:>8.2f} {row.length_median:>6.0f} {row.length_p95:>5.0f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10000, help="finished episodes per row (at least)")
    parser.add_argument("--variants", nargs="+", help="default: S1..S4 (train); with --expert all, train and dev")
    parser.add_argument("--expert", action="store_true", help="the scripted expert's results instead")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    variants = args.variants or (list(VARIANTS) if args.expert else list(TRAIN_VARIANTS))
    for variant in variants:
        variant_spec(variant)  # unknown names fail before any work
    if args.episodes < 1 or args.num_envs < 1:
        raise UserError("--episodes and --num-envs must be positive")
    runs = [("expert", 80)] if args.expert else [(p, limit) for p in RANDOM_POLICIES for limit in (80, None)]
    print(table_header(), flush=True)
    for variant in variants:
        for policy, max_steps in runs:
            row = episode_stats(variant, policy, args.episodes, max_steps, args.num_envs, args.seed)
            print(table_row(row), flush=True)


if __name__ == "__main__":
    main()
