"""A scripted Messenger expert that reads the simulator's true state (roles, movements, positions).

Each step it scores the five actions: a move on which any harmful NPC (enemy, decoys, the goal while the
avatar has no message) *could* touch the avatar this tick (NPCs move first, to any of the directions their
rule allows) is avoided; among the safe ones it prefers touching the target for certain (the message, or the
goal once it carries the message), then getting closer to the target's expected position, then keeping away
from harmful NPCs; ties are broken at random. It is a strong baseline, not an optimal planner.
"""

from __future__ import annotations

import numpy as np

from lit_rlseq.envs.messenger.core import AVATAR_MOVES, MAX_PX, NPC_MOVES, MessengerSimulator
from lit_rlseq.envs.messenger.games import CHASER, DECOY_GOAL, DECOY_MESSAGE, ENEMY, GOAL, IMMOVABLE, MESSAGE


def _reachable(sim: MessengerSimulator, i: int, k: int) -> np.ndarray:
    """Every position NPC k of env i may occupy after its move this tick ([M, 2] px)."""
    here = sim.pos[i, k]
    if sim.move[i, k] == IMMOVABLE:
        return here[None]
    there = here + NPC_MOVES
    before = np.abs(here - sim.avatar_pos[i]).sum()
    after = np.abs(there - sim.avatar_pos[i]).sum(-1)
    good = after < before if sim.move[i, k] == CHASER else after > before
    if not good.any():
        good[:] = True
    there = there[good]
    return np.where(((there >= 0) & (there <= MAX_PX)).all(-1, keepdims=True), there, here)


def _touch(avatar: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return (np.abs(positions - avatar) < 2).all(-1)


def expert_action(sim: MessengerSimulator, i: int, rng: np.random.Generator) -> int:
    harmful = [ENEMY] + ([DECOY_MESSAGE, DECOY_GOAL] if sim.spec.num_npcs == 5 else [])
    if not sim.has_message[i]:
        harmful.append(GOAL)
    target = GOAL if sim.has_message[i] else MESSAGE
    if sim.stage == 1 and sim.has_message[i]:
        harmful.append(MESSAGE)
    harmful = [k for k in harmful if sim.alive[i, k]]
    danger = [_reachable(sim, i, k) for k in harmful]
    goal_positions = _reachable(sim, i, target)
    scores = np.empty(len(AVATAR_MOVES))
    for a, move in enumerate(AVATAR_MOVES):
        avatar = sim.avatar_pos[i] + move
        if not ((avatar >= 0) & (avatar <= MAX_PX)).all():
            avatar = sim.avatar_pos[i]
        unsafe = any(_touch(avatar, d).any() for d in danger)
        certain = _touch(avatar, goal_positions).all()
        distance = np.abs(goal_positions - avatar).sum(-1).mean()
        closest_danger = min((np.abs(d - avatar).sum(-1).min() for d in danger), default=99)
        scores[a] = -1000.0 * unsafe + 100.0 * certain - distance + 0.5 * min(closest_danger, 4)
    best = np.flatnonzero(scores >= scores.max() - 1e-9)
    return int(best[rng.integers(len(best))])


def expert_actions(env, rng: np.random.Generator | None = None) -> np.ndarray:
    """The expert's action in every env of a MessengerVectorEnv."""
    rng = env.np_random if rng is None else rng
    return np.array([expert_action(env.sim, i, rng) for i in range(env.num_envs)], dtype=np.int64)


class ExpertPolicy:
    """The expert as a ScriptedPolicy (``act(env, obs)``) for lit_rlseq.loops.Collector."""

    def act(self, env, obs: dict[str, np.ndarray]) -> np.ndarray:
        return expert_actions(env)
