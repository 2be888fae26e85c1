"""The batched Messenger simulator: numpy arrays over N episodes of one stage, stepped together.

Positions are kept in the engine's half-cell units ("px", 0..18 on each axis, 2 px per cell): the avatar moves
2 px per step, chasing and fleeing NPCs 1 px, and the observation shows cell ``px // 2``. Two sprites touch
when their 2x2-px squares overlap strictly (|dy| < 2 and |dx| < 2), so an NPC half-way between cells touches
the sprites of both. See ``lit_rlseq.envs.messenger`` for the rules and our choices.
"""

from __future__ import annotations

import numpy as np

from lit_rlseq.envs.messenger.games import (
    AVATAR,
    AVATAR_WITH_MESSAGE,
    CHASER,
    DECOY_GOAL,
    DECOY_MESSAGE,
    ENEMY,
    ENTITY_NAMES,
    GOAL,
    GRID,
    IMMOVABLE,
    MESSAGE,
    MOVEMENTS,
    S1_AVATAR,
    S1_SPOTS,
    S2_CORNERS,
    S3_SPOTS,
    TRAIN_MULTI_P,
    StageSpec,
    sample_game,
)
from lit_rlseq.envs.messenger.text import MAX_WORDS, TemplateText, HumanText
from lit_rlseq.errors import UserError

NUM_ACTIONS = 5
ACTION_NAMES = ("up", "down", "left", "right", "stay")
# Avatar moves in px (y, x) per action.
AVATAR_MOVES = np.array([[-2, 0], [2, 0], [0, -2], [0, 2], [0, 0]], dtype=np.int64)
# NPC moves in px, in the engine's order [up, left, down, right].
NPC_MOVES = np.array([[-1, 0], [0, -1], [1, 0], [0, 1]], dtype=np.int64)
MAX_PX = 2 * (GRID - 1)

OUTCOMES = ("none", "win", "enemy", "wrong_contact", "decoy", "timeout")
NONE, WIN, KILLED_BY_ENEMY, WRONG_CONTACT, KILLED_BY_DECOY, TIMEOUT = range(len(OUTCOMES))
SLOT_NAMES = ("enemy", "message", "goal", "decoy message", "decoy goal")
SLOT_ROLES = ("enemy", "message", "goal", "enemy", "enemy")


class MessengerSimulator:
    """State of ``num_envs`` episodes; ``reset_envs`` starts new ones, ``step`` advances all of them."""

    def __init__(self, spec: StageSpec, num_envs: int, max_steps: int | None, text: TemplateText | HumanText,
                 multi_p: float = TRAIN_MULTI_P, timeout_reward: float | None = -1.0):
        if not 0.0 <= multi_p <= 1.0:
            raise UserError(f"Messenger multi_p (share of multi-combination training games) must be in [0, 1], "
                            f"got {multi_p!r}")
        self.spec = spec
        self.stage = spec.stage
        self.num_envs = n = num_envs
        self.max_steps = max_steps
        self.text = text
        self.vocab = text.vocab
        self.multi_p = multi_p
        self.timeout_reward = timeout_reward
        self.variants = spec.variants()
        k, s = spec.num_npcs, spec.num_sentences
        self.kind = np.zeros((n, k), dtype=np.int64)  # entity id each NPC shows
        self.move = np.full((n, k), IMMOVABLE, dtype=np.int64)
        self.pos = np.zeros((n, k, 2), dtype=np.int64)  # px (y, x)
        self.alive = np.zeros((n, k), dtype=bool)
        self.avatar_pos = np.zeros((n, 2), dtype=np.int64)
        self.has_message = np.zeros(n, dtype=bool)
        self.avatar_alive = np.zeros(n, dtype=bool)
        self.steps = np.zeros(n, dtype=np.int64)
        self.game = np.zeros((n, 3), dtype=np.int64)
        self.manual = np.zeros((n, s, MAX_WORDS), dtype=np.int64)
        self.manual_len = np.zeros((n, s), dtype=np.int64)

    # -- episodes ----------------------------------------------------------------------------------------
    def reset_envs(self, rng: np.random.Generator, envs: np.ndarray) -> None:
        for i in envs:
            self._reset_one(rng, int(i))

    def _reset_one(self, rng: np.random.Generator, i: int) -> None:
        game = sample_game(rng, self.spec.split, self.multi_p)
        variant = self.variants[rng.integers(len(self.variants))]
        self.game[i] = game
        kinds = list(game) + ([game[1], game[2]] if self.stage == 3 else [])
        self.kind[i] = kinds
        self.move[i] = variant
        self.alive[i] = True
        self.avatar_alive[i] = True
        self.steps[i] = 0
        if self.stage == 1:
            spots = rng.permutation(len(S1_SPOTS))[:3]
            self.avatar_pos[i] = np.multiply(S1_AVATAR, 2)
            self.pos[i] = 2 * np.asarray(S1_SPOTS)[spots]
            self.has_message[i] = rng.random() < 0.2
        else:
            spots = np.asarray(S2_CORNERS if self.stage == 2 else S3_SPOTS)[rng.permutation(self.spec.num_npcs + 1)]
            self.avatar_pos[i] = 2 * spots[0]
            self.pos[i] = 2 * spots[1:]
            self.has_message[i] = False
        self._write_manual(rng, i, game, variant)

    def _write_manual(self, rng: np.random.Generator, i: int, game: tuple[int, ...], variant: tuple[int, ...]) -> None:
        split = self.spec.split.text
        names = [ENTITY_NAMES[e] for e in game]
        roles = ("enemy", "message", "goal")
        sentences = []
        if self.stage == 1:
            for name, role in zip(names, roles):
                sentences.append(self.text.sample(rng, split, name, role, ("immovable", "unknown")))
        elif self.stage == 2:
            for name, role, move in zip(names, roles, variant):
                movement = "unknown" if rng.random() < 0.15 else MOVEMENTS[move]
                sentences.append(self.text.sample(rng, split, name, role, (movement,)))
        else:
            for name, role, move in zip(names, roles, variant):
                sentences.append(self.text.sample(rng, split, name, role, (MOVEMENTS[move],)))
            # The decoys: the message's and the goal's entities described as enemies that move like the decoys.
            sentences.append(self.text.sample(rng, split, names[1], "enemy", (MOVEMENTS[variant[DECOY_MESSAGE]],)))
            sentences.append(self.text.sample(rng, split, names[2], "enemy", (MOVEMENTS[variant[DECOY_GOAL]],)))
            # A distractor: the enemy's entity in a message or goal role (the first, in random order, that the
            # text source has sentences for), moving unlike the enemy.
            others = [m for m in range(3) if m != variant[ENEMY]]
            movement = MOVEMENTS[others[rng.integers(2)]]
            candidates = [("message", "goal")[j] for j in rng.permutation(2)]
            role = next((r for r in candidates if self.text.has(split, names[0], r, movement)), candidates[0])
            sentences.append(self.text.sample(rng, split, names[0], role, (movement,)))
        order = rng.permutation(len(sentences))
        self.manual[i] = 0
        for row, j in enumerate(order):
            ids = sentences[j][:MAX_WORDS]
            self.manual[i, row, : len(ids)] = ids
            self.manual_len[i, row] = len(ids)

    def place(self, i: int, avatar: tuple[float, float], enemy: tuple[float, float] | None = None,
              message: tuple[float, float] | None = None, goal: tuple[float, float] | None = None,
              decoy_message: tuple[float, float] | None = None, decoy_goal: tuple[float, float] | None = None,
              moves: tuple[str, ...] | None = None, has_message: bool = False) -> None:
        """Sets up an exact scenario in env ``i`` (cell coordinates (y, x); x.5 = half-way to the next cell).
        An NPC given as None is absent. ``moves`` names the movement of each NPC slot."""
        spots = (enemy, message, goal, decoy_message, decoy_goal)[: self.spec.num_npcs]
        self.avatar_pos[i] = np.rint(np.multiply(avatar, 2)).astype(np.int64)
        for k, spot in enumerate(spots):
            self.alive[i, k] = spot is not None
            if spot is not None:
                self.pos[i, k] = np.rint(np.multiply(spot, 2)).astype(np.int64)
        if moves is not None:
            self.move[i] = [MOVEMENTS.index(m) for m in moves]
        self.has_message[i] = has_message
        self.avatar_alive[i] = True
        self.steps[i] = 0

    # -- dynamics ----------------------------------------------------------------------------------------
    def step(self, actions: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advances every env by one step; returns reward, terminated, truncated and outcome arrays."""
        n = self.num_envs
        if self.stage >= 2:
            self._move_npcs(rng)
        target = self.avatar_pos + AVATAR_MOVES[actions]
        on_grid = ((target >= 0) & (target <= MAX_PX)).all(-1)
        self.avatar_pos = np.where(on_grid[:, None], target, self.avatar_pos)

        delta = np.abs(self.pos - self.avatar_pos[:, None, :])
        touch = self.alive & (delta < 2).all(-1)  # [N, K]
        reward = np.zeros(n, dtype=np.float32)
        outcome = np.full(n, NONE, dtype=np.int64)
        if self.stage == 1:
            right = np.where(self.has_message, touch[:, GOAL], touch[:, MESSAGE])
            wrong = np.where(self.has_message, touch[:, MESSAGE], touch[:, GOAL])
            enemy = touch[:, ENEMY]
            # The three sit on distinct cells, so at most one is touched.
            reward[right] = 1.0
            reward[wrong | enemy] = -1.0
            outcome[right], outcome[wrong], outcome[enemy] = WIN, WRONG_CONTACT, KILLED_BY_ENEMY
            terminated = touch.any(-1)
            self.avatar_alive &= ~(wrong | enemy)
        else:
            wrong = touch[:, GOAL] & ~self.has_message
            enemy = touch[:, ENEMY]
            if self.stage == 2:
                # The engine's order: enemy contact, then goal without the message; the first kill ends the tick.
                harm = (enemy | wrong).astype(np.float32)
                decoy = np.zeros(n, dtype=bool)
            else:
                # S3: every harmful pair adds -1 before the kill check (-2 is possible).
                decoy = touch[:, DECOY_MESSAGE] | touch[:, DECOY_GOAL]
                harm = (enemy.astype(np.float32) + wrong + touch[:, DECOY_MESSAGE] + touch[:, DECOY_GOAL])
            dead = harm > 0
            reward -= harm
            outcome[wrong] = WRONG_CONTACT
            outcome[decoy] = KILLED_BY_DECOY
            outcome[enemy] = KILLED_BY_ENEMY
            pickup = ~dead & touch[:, MESSAGE] & ~self.has_message
            reward[pickup] += 0.5
            self.has_message |= pickup
            self.alive[pickup, MESSAGE] = False
            win = ~dead & self.has_message & touch[:, GOAL]
            reward[win] += 1.0
            self.alive[win, GOAL] = False
            outcome[win] = WIN
            self.avatar_alive &= ~dead
            terminated = dead | win

        self.steps += 1
        truncated = ~terminated & (self.steps >= self.max_steps) if self.max_steps is not None else np.zeros(n, bool)
        if self.timeout_reward is not None:
            reward[truncated] = self.timeout_reward
        outcome[truncated] = TIMEOUT
        return reward, terminated, truncated, outcome

    def _move_npcs(self, rng: np.random.Generator) -> None:
        """Chasers step to a random neighbour that brings them closer to the avatar (Manhattan, px), fleeing
        NPCs to one that takes them farther; uniformly among all four if none does. Off-grid moves are undone."""
        mobile = self.alive & (self.move != IMMOVABLE)
        if not mobile.any():
            return
        here = self.pos[:, :, None, :]  # [N, K, 1, 2]
        there = here + NPC_MOVES  # [N, K, 4, 2]
        avatar = self.avatar_pos[:, None, None, :]
        before = np.abs(here - avatar).sum(-1)
        after = np.abs(there - avatar).sum(-1)
        good = np.where((self.move == CHASER)[..., None], after < before, after > before)
        good |= ~good.any(-1, keepdims=True)
        choice = np.where(good, rng.random(good.shape), -1.0).argmax(-1)  # [N, K]
        target = np.take_along_axis(there, choice[..., None, None], axis=2)[:, :, 0]
        ok = mobile & ((target >= 0) & (target <= MAX_PX)).all(-1)
        self.pos = np.where(ok[..., None], target, self.pos)

    # -- observations ------------------------------------------------------------------------------------
    def observe(self, rng: np.random.Generator, envs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        envs = np.arange(self.num_envs) if envs is None else envs
        m = len(envs)
        layers = self.spec.num_layers
        entities = np.zeros((m, GRID, GRID, layers), dtype=np.int64)
        avatar = np.zeros((m, GRID, GRID, 1), dtype=np.int64)
        pos, alive, kind = self.pos[envs], self.alive[envs], self.kind[envs]
        if self.stage == 1:
            layer = np.zeros(alive.shape, dtype=np.int64)
        else:
            # One NPC per layer, in an order drawn afresh at every observation (as the original does).
            layer = rng.random(alive.shape).argsort(-1)
        row, slot = np.nonzero(alive)
        cell = pos[row, slot] // 2
        entities[row, cell[:, 0], cell[:, 1], layer[row, slot]] = kind[row, slot]
        live = np.flatnonzero(self.avatar_alive[envs])
        cell = self.avatar_pos[envs[live]] // 2
        avatar[live, cell[:, 0], cell[:, 1], 0] = np.where(self.has_message[envs[live]], AVATAR_WITH_MESSAGE, AVATAR)
        return {
            "entities": entities,
            "avatar": avatar,
            "manual": self.manual[envs].copy(),
            "manual_len": self.manual_len[envs].copy(),
        }

    # -- words -------------------------------------------------------------------------------------------
    def describe(self, i: int) -> str:
        parts = [f"stage {self.stage} ({self.spec.env_id})"]
        for k in range(self.spec.num_npcs):
            state = "" if self.alive[i, k] else " (gone)"
            y, x = self.pos[i, k] / 2
            parts.append(f"{SLOT_NAMES[k]}: {ENTITY_NAMES[self.kind[i, k]]}, {MOVEMENTS[self.move[i, k]]}, "
                         f"at ({y:g}, {x:g}){state}")
        y, x = self.avatar_pos[i] / 2
        parts.append(f"avatar at ({y:g}, {x:g}), {'with' if self.has_message[i] else 'without'} the message")
        return "\n".join(parts)

    def manual_text(self, i: int) -> list[str]:
        return [" ".join(self.vocab.decode(self.manual[i, s, : self.manual_len[i, s]]))
                for s in range(self.spec.num_sentences)]

    def render_text(self, i: int, reveal: bool = False) -> str:
        """The grid with each NPC shown by its entity's first two letters (``..`` empty, ``@@`` you, ``&&`` you
        with the message), then the manual; ``reveal`` adds the true roles."""
        grid = [[".." for _ in range(GRID)] for _ in range(GRID)]
        for k in range(self.spec.num_npcs):
            if self.alive[i, k]:
                y, x = self.pos[i, k] // 2
                grid[y][x] = ENTITY_NAMES[self.kind[i, k]][:2]
        if self.avatar_alive[i]:
            y, x = self.avatar_pos[i] // 2
            grid[y][x] = "&&" if self.has_message[i] else "@@"
        lines = [" ".join(row) for row in grid]
        lines += [f"@@ you, && you with the message; step {self.steps[i]}; manual:"]
        lines += [f"  {s}" for s in self.manual_text(i)]
        if reveal:
            lines.append(self.describe(i))
        return "\n".join(lines)
