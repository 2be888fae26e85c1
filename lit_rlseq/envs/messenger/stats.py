"""Episode statistics of Messenger stages under a uniform random policy and under the scripted expert.

    python -m lit_rlseq.envs.messenger.stats [--episodes 5000] [--stages s1 s2 ...] [--max-steps 10]
    python -m lit_rlseq.envs.messenger.stats --stages s1 --policies random stay blind expert --gamma 0.8

Policies: ``random`` (uniform actions), ``expert`` (the scripted expert, reads the true roles), ``stay``
(never moves: in S1, where nothing moves, it avoids every contact and times out) and ``blind`` (walks to an
NPC drawn uniformly at the episode's start: what a policy that has not learned to read the manual can do).
``disc_return`` is the return discounted by ``--gamma`` (what PPO's critic estimates from the first step).

Every env of the batch plays exactly its share of the episodes, so long episodes are not cut off by stopping
early. Default step limits are EMMA's (4 / 64 / 128); ``--max-steps`` sets one limit for every stage (LDD: 10).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from lit_rlseq.envs.messenger.core import NUM_ACTIONS, OUTCOMES
from lit_rlseq.envs.messenger.env import DEFAULT, MessengerVectorEnv
from lit_rlseq.envs.messenger.expert import expert_actions
from lit_rlseq.envs.messenger.games import stage_spec
from lit_rlseq.errors import UserError

POLICIES = ("random", "expert", "stay", "blind")
DEFAULT_STAGES = ("s1", "s1_test", "s2", "s2_test", "s3", "s3_test")


def blind_actions(env: MessengerVectorEnv, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Moves that bring each avatar closer to its target NPC slot (ties at random; stays once on it)."""
    sim = env.sim
    offset = sim.pos[np.arange(env.num_envs), target] - sim.avatar_pos  # px (y, x)
    actions = np.full(env.num_envs, 4, dtype=np.int64)
    for i, (dy, dx) in enumerate(offset):
        options = ([0] if dy < 0 else [1] if dy > 0 else []) + ([2] if dx < 0 else [3] if dx > 0 else [])
        if options:
            actions[i] = options[rng.integers(len(options))]
    return actions


def run_episodes(stage: str, policy: str, episodes: int, max_steps: int | str | None = DEFAULT,
                 num_envs: int = 128, seed: int = 0, gamma: float = 1.0) -> dict[str, float]:
    """Outcome shares, mean return, mean discounted return and lengths of at least ``episodes`` finished
    episodes."""
    if policy not in POLICIES:
        raise UserError(f"unknown Messenger policy {policy!r}: use one of {', '.join(POLICIES)}")
    env = MessengerVectorEnv(stage, num_envs=num_envs, max_steps=max_steps, seed=seed)
    rng = np.random.default_rng(seed + 1)
    share = math.ceil(episodes / num_envs)
    env.reset()
    steps = np.zeros(num_envs, dtype=np.int64)
    returns = np.zeros(num_envs, dtype=np.float64)
    discounted = np.zeros(num_envs, dtype=np.float64)
    finished = np.zeros(num_envs, dtype=np.int64)
    target = rng.integers(env.sim.spec.num_npcs, size=num_envs)  # the blind policy's NPC slot per episode
    outcomes, lengths, totals, discounted_totals = [], [], [], []
    while (finished < share).any():
        if policy == "random":
            actions = rng.integers(NUM_ACTIONS, size=num_envs)
        elif policy == "stay":
            actions = np.full(num_envs, 4, dtype=np.int64)
        elif policy == "blind":
            actions = blind_actions(env, target, rng)
        else:
            actions = expert_actions(env, rng)
        _, reward, _, _, info = env.step(actions)
        discounted += gamma ** steps * reward
        steps += 1
        returns += reward
        done = info["_final_obs"]
        counted = done & (finished < share)
        outcomes.append(info["outcome"][counted])
        lengths.append(steps[counted])
        totals.append(returns[counted])
        discounted_totals.append(discounted[counted])
        finished += done
        steps[done] = 0
        returns[done] = 0.0
        discounted[done] = 0.0
        target[done] = rng.integers(env.sim.spec.num_npcs, size=int(done.sum()))
    outcome, length, total = np.concatenate(outcomes), np.concatenate(lengths), np.concatenate(totals)
    counts = np.bincount(outcome, minlength=len(OUTCOMES))
    row = {name: counts[code] / len(outcome) for code, name in enumerate(OUTCOMES) if code}
    return {"episodes": len(outcome), **row, "return": float(total.mean()),
            "disc_return": float(np.concatenate(discounted_totals).mean()), "length": float(length.mean()),
            "length_p95": float(np.percentile(length, 95))}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES))
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--max-steps", type=int, default=None, help="one step limit for all (default: EMMA's)")
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gamma", type=float, default=1.0, help="discount of the disc_return column")
    args = parser.parse_args(argv)
    for stage in args.stages:
        stage_spec(stage)  # unknown names fail before any work
    if args.episodes < 1 or args.num_envs < 1:
        raise UserError("--episodes and --num-envs must be positive")
    names = [n for n in OUTCOMES if n != "none"]
    header = f"{'stage':<11} {'policy':<7} {'limit':>5} {'episodes':>8}" + "".join(f" {n:>13}" for n in names)
    header += f" {'return':>7} {'disc_return':>11} {'length':>7} {'p95':>5}"
    print(header + "\n" + "-" * len(header), flush=True)
    for stage in args.stages:
        limit = args.max_steps if args.max_steps is not None else DEFAULT
        shown = limit if limit != DEFAULT else MessengerVectorEnv(stage).sim.max_steps
        for policy in args.policies:
            row = run_episodes(stage, policy, args.episodes, limit, args.num_envs, args.seed, args.gamma)
            line = f"{stage:<11} {policy:<7} {shown:>5} {row['episodes']:>8}"
            line += "".join(f" {row[n]:>13.3f}" for n in names)
            print(line + f" {row['return']:>7.3f} {row['disc_return']:>11.3f} {row['length']:>7.2f} "
                         f"{row['length_p95']:>5.0f}", flush=True)


if __name__ == "__main__":
    main()
