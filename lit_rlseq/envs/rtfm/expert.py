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

It waits on a safe cell rather than step next to a killer. The chance that a monster it must not meet lands
where an action takes it this very step is known exactly (``monster_move_probabilities``) and priced in;
when no goal can be reached it takes the least risky move.
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
    monster_move_probabilities,
)
from lit_rlseq.envs.rtfm.env import RTFMEnv, RTFMVectorEnv

DANGER_DETOUR = 100.0  # more than any path on a 4x4 floor, so any safe path wins
RISK_COST = 2 * DANGER_DETOUR  # per unit of this step's chance of meeting a harmful monster
ITEM_DETOUR = 1000.0  # more than any path through danger
UNREACHABLE = 10 * ITEM_DETOUR  # onward cost from a cell with no way to the goal


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
    # This step's risk is known exactly: the chance that a harmful monster lands where the agent does
    # (monsters chase the agent's cell at the start of the step). Waiting on a safe cell beats stepping
    # next to a killer now, while danger further along the path may pass as the monsters move.
    # With no way to the goal from a cell (e.g. the distractor stands on it), only the risk tells moves apart.
    onward = np.where(np.isfinite(to_go[at]), to_go[at], UNREACHABLE)
    action_cost = cost[at] + onward + RISK_COST * _landing_risk(view, armed)[at]
    return action_cost.argmin(1)  # staying always has a finite cost


def _landing_risk(view: ExpertView, armed: np.ndarray) -> np.ndarray:
    """float [n, H, W]: the chance that a monster the agent must not meet steps onto each cell this step."""
    n = len(armed)
    safe = np.ones((n, HEIGHT, WIDTH))
    if view.stationary:
        return 1 - safe
    envs = np.arange(n)[:, None]
    for monster in MONSTER_SLOTS:
        harmful = view.present[:, monster] & (~armed if monster == TARGET else True)
        probabilities = monster_move_probabilities(view.pos[:, monster], view.pos[:, AGENT])  # [n, 5]
        lands = view.pos[:, monster, None, :] + MOVES[None]  # distinct cells; a wall gets probability 0
        safe[envs, lands[..., 0], lands[..., 1]] *= 1 - probabilities * harmful[:, None]
    return 1 - safe


def _grid_cells() -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    return np.stack([rows, cols], axis=-1)


def _set_cells(grid: np.ndarray, where: np.ndarray, cells: np.ndarray, value: float) -> None:
    rows = np.flatnonzero(where)
    grid[rows, cells[rows, 0], cells[rows, 1]] = value
