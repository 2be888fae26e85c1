"""A scripted RTFM expert with privileged access: it reads the true state and assignment, not the text.

Each step and in every env at once, it plans a cheapest path on the grid (value iteration over the 6x6
cells) to its goal, the item that beats the target while it does not hold one, then the target:

* never into a monster that is not the goal, nor into the target while it cannot kill it, nor onto its goal
  while the distractor stands there (monsters may stand on items; the target on the good item is fine:
  picked up first, then the fight is won);
* never onto another item while it holds the good one (that would destroy it); onto another item before
  that only when no other way exists (``ITEM_DETOUR``; harmless then, avoided all the same);
* through cells next to a moving monster it must not meet (one that kills it, or the distractor) only when
  no other way exists (``DANGER_DETOUR``): that monster may step into the agent right after the agent's
  move (monsters choose their moves toward where the agent stood before it moved, so a cell next to one
  can be stepped into). Stationary monsters are harmless next door: in stationary variants it takes no such
  detours.

It waits on a safe cell rather than step next to a killer, and stays put when no goal can be reached.
"""

from __future__ import annotations

import numpy as np

from lit_rlseq.envs.rtfm.core import (
    AGENT,
    DISTRACTOR,
    GOOD_ITEM,
    HEIGHT,
    INTERIOR,
    ITEM_SLOTS,
    MONSTER_SLOTS,
    MOVES,
    TARGET,
    WIDTH,
    ExpertView,
    is_interior,
)
from lit_rlseq.envs.rtfm.env import RTFMEnv, RTFMVectorEnv

DANGER_DETOUR = 100.0  # more than any path on a 4x4 floor, so any safe path wins
ITEM_DETOUR = 1000.0  # more than any path through danger


def expert_actions(env: RTFMVectorEnv | RTFMEnv) -> np.ndarray:
    """The expert's action in every env of ``env`` (int64 [num_envs]); wrappers around it are fine."""
    return plan_actions(env.unwrapped.sim.expert_view())


class ExpertPolicy:
    """The expert as a scripted policy for the collector (``act(env, obs)``, see lit_rlseq.loops.collector)."""

    def act(self, env: RTFMVectorEnv, obs: dict[str, np.ndarray]) -> np.ndarray:
        return expert_actions(env)


def plan_actions(view: ExpertView) -> np.ndarray:
    n = len(view.held)
    envs = np.arange(n)
    holding = view.held >= 0
    held_item = np.maximum(view.held - GOOD_ITEM, 0)  # 0 good-item slot, 1 distractor-item slot
    armed = holding & view.item_beats[envs, held_item, 0]  # the held item kills the target
    wanted_item = view.item_beats[:, :, 0] & view.present[:, list(ITEM_SLOTS)]  # [n, item] on the floor
    goal_slot = np.where(armed, TARGET, np.array(ITEM_SLOTS)[wanted_item.argmax(1)])
    has_goal = np.where(armed, view.present[:, TARGET], wanted_item.any(1))
    goal = view.pos[envs, goal_slot]

    # danger: cells where a moving monster can step into the agent right after its move, and that contact
    # loses (every monster but the target once the agent holds what kills it)
    danger = np.zeros((n, HEIGHT, WIDTH), dtype=bool)
    blocked = np.zeros((n, HEIGHT, WIDTH), dtype=bool)
    for monster in MONSTER_SLOTS:
        alive = view.present[:, monster]
        _set_cells(blocked, alive, view.pos[:, monster], True)
        if view.stationary:
            continue
        for move in MOVES[1:]:
            near = view.pos[:, monster] + move
            harmful = alive & ~armed if monster == TARGET else alive
            _set_cells(danger, harmful & is_interior(near), near, True)
    cost = np.where(is_interior(_grid_cells()), 1.0, np.inf) + DANGER_DETOUR * danger
    for item in ITEM_SLOTS:
        on_floor = view.present[:, item]
        _set_cells(cost, on_floor & armed, view.pos[:, item], np.inf)
        _set_cells(cost, on_floor & ~armed, view.pos[:, item], ITEM_DETOUR)
    cost[blocked] = np.inf  # after the items: a monster may stand on one
    _set_cells(cost, has_goal, goal, 1.0)
    # Monsters may stand on items. Entering such a cell picks the item up, then fights: the good item beats
    # the target there, never the distractor; and any fight the distractor is in loses.
    distractor_on_goal = view.present[:, DISTRACTOR] & (view.pos[:, DISTRACTOR] == goal).all(1)
    _set_cells(cost, has_goal & distractor_on_goal, goal, np.inf)

    to_go = np.full_like(cost, np.inf)  # cheapest cost from each cell to the goal
    _set_cells(to_go, has_goal, goal, 0.0)
    for _ in range(INTERIOR * INTERIOR):
        via = cost + to_go  # enter this cell, then go on from it
        best = np.full_like(to_go, np.inf)
        best[:, 1:-1, 1:-1] = np.minimum.reduce(
            [via[:, :-2, 1:-1], via[:, 2:, 1:-1], via[:, 1:-1, :-2], via[:, 1:-1, 2:]]
        )
        updated = np.minimum(to_go, best)
        if np.array_equal(updated, to_go):
            break
        to_go = updated

    agent = view.pos[:, AGENT]
    landing = agent[:, None, :] + MOVES[None]  # [n, 5, 2]; staying lands where the agent stands
    at = (envs[:, None], landing[..., 0], landing[..., 1])
    # Danger where an action lands counts twice: waiting on a safe cell beats stepping next to a killer
    # now, while danger further along the path may pass as the monsters move.
    action_cost = cost[at] + to_go[at] + DANGER_DETOUR * danger[at]
    return np.where(np.isfinite(action_cost.min(1)), action_cost.argmin(1), 0)


def _grid_cells() -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    return np.stack([rows, cols], axis=-1)


def _set_cells(grid: np.ndarray, where: np.ndarray, cells: np.ndarray, value: float) -> None:
    rows = np.flatnonzero(where)
    grid[rows, cells[rows, 0], cells[rows, 1]] = value
