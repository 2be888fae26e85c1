"""The reference's test mode: greedy actions, ``runs`` x ``episodes`` episodes, per-life and full-game scores.

The test env keeps episodic life, so the reference's "episodes" are single lives; the full games they belong
to are reported beside them (a game that has not ended when a run's quota of lives is reached is not counted).
``noneg`` (the reference's BattleZone / UpNDown mode, against an ALE score wrap-around bug) discards episodes
with a negative score and keeps going until ``episodes`` non-negative ones are collected.

``policy="random"`` acts uniformly at random: the floor the agents are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lit_rlseq.envs.atari import game_results
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.nn.actor_critic import ActorCritic


@dataclass
class ScoreReport:
    life_returns: list[list[float]] = field(default_factory=list)  # per run
    game_returns: list[list[float]] = field(default_factory=list)  # per run
    discarded: int = 0  # negative episodes dropped in noneg mode

    def summary(self) -> dict[str, float]:
        life = [np.mean(r) for r in self.life_returns]
        games = [np.mean(r) for r in self.game_returns if r]
        return {
            "life_return_mean": float(np.mean(life)),
            "life_return_std_over_runs": float(np.std(life)),
            "game_return_mean": float(np.mean(games)) if games else float("nan"),
            "games": float(sum(len(r) for r in self.game_returns)),
            "episodes": float(sum(len(r) for r in self.life_returns)),
            "discarded_negative": float(self.discarded),
        }


def run_test_mode(policy: ActorCritic | str, env_id: str, runs: int = 5, episodes: int = 30, noneg: bool = False,
              num_envs: int = 10, seed: int = 0, env_kwargs: dict[str, Any] | None = None,
              max_steps: int = 1_000_000) -> ScoreReport:
    """Runs the test protocol; ``max_steps`` (vector steps per run) guards against a policy that never ends."""
    result = ScoreReport()
    device = next(policy.parameters()).device if isinstance(policy, torch.nn.Module) else torch.device("cpu")
    rng = np.random.default_rng(seed)
    for run in range(runs):
        env = make_vector_env(env_id, num_envs=num_envs, **(env_kwargs or {}))
        obs, _ = env.reset(seed=seed + 1000 * run)
        n = env.num_envs
        quota = np.full(n, episodes // n) + (np.arange(n) < episodes % n)
        counted = np.zeros(n, dtype=np.int64)
        running = np.zeros(n)
        first = np.ones(n, dtype=bool)
        state = policy.initial_state(n, device) if isinstance(policy, ActorCritic) else ()
        lives: list[float] = []
        games: list[float] = []
        for _ in range(max_steps):
            if (counted >= quota).all():
                break
            if isinstance(policy, ActorCritic):
                with torch.no_grad():
                    out = policy({k: torch.from_numpy(v).to(device)[None] for k, v in obs.items()},
                                 torch.from_numpy(first).to(device)[None], state)
                state = out.state
                actions = out.logits[0].argmax(-1).cpu().numpy()
            else:
                actions = rng.integers(0, env.single_action_space.n, n)
            obs, reward, terminated, truncated, info = env.step(actions)
            running += reward
            first = np.logical_or(terminated, truncated)
            scores, _, which = game_results(info)
            games.extend(float(s) for s, i in zip(scores, which) if counted[i] < quota[i])
            for i in np.flatnonzero(first):
                if counted[i] < quota[i]:
                    if noneg and running[i] < 0:
                        result.discarded += 1
                    else:
                        lives.append(float(running[i]))
                        counted[i] += 1
                running[i] = 0.0
        else:
            raise RuntimeError(f"test mode: {int((quota - counted).sum())} episodes of {env_id} still running "
                               f"after {max_steps} steps")
        env.close()
        result.life_returns.append(lives)
        result.game_returns.append(games)
    return result
