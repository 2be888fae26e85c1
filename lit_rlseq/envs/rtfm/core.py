"""The RTFM rules as a batched numpy simulator: every array holds one row per env, every rule is one
vectorised update over all envs at once. The gymnasium classes in ``env.py`` wrap it.

Every episode has five objects in fixed *slots* (their names and cells are sampled): the agent, the target
monster, the distractor monster, the good item (beats the target) and the distractor item (beats the
distractor). The slot says what an object *is*; the agent only sees names and the wiki.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lit_rlseq.envs.rtfm.assignments import VariantSpec, assignment_split
from lit_rlseq.envs.rtfm.text import (
    AGENT_WORD,
    BEAT_TEMPLATES,
    ELEMENTS,
    EMPTY_WORD,
    GROUP_TEMPLATES,
    GROUPS,
    ITEMS,
    MODIFIERS,
    MONSTERS,
    NOTHING_WORD,
    TASK_TEMPLATES,
    WALL_WORD,
    beat_table,
    group_table,
    longest_task_tokens,
    longest_wiki_tokens,
    rtfm_vocabulary,
    subset_rank,
    task_table,
)
from lit_rlseq.errors import UserError

AGENT, TARGET, DISTRACTOR, GOOD_ITEM, DISTRACTOR_ITEM = range(5)
SLOT_NAMES = ("agent", "target", "distractor", "good_item", "distractor_item")
MONSTER_SLOTS = (TARGET, DISTRACTOR)
ITEM_SLOTS = (GOOD_ITEM, DISTRACTOR_ITEM)
# A cell shows one occupant (max_placement 1): a monster over an item (the reference draws the faster first);
# of two monsters, ours shows the target (the reference's pick is arbitrary, a set's order).
DRAWING_ORDER = (GOOD_ITEM, DISTRACTOR_ITEM, DISTRACTOR, TARGET, AGENT)

HEIGHT = WIDTH = 6  # including the wall border
INTERIOR = 4  # rows and columns 1..4 are floor
MAX_PLACEMENT, MAX_NAME = 1, 8
WIKI_LEN, TASK_LEN, INV_LEN = 80, 40, 8
ACTION_NAMES = ("stay", "up", "down", "left", "right")
NUM_ACTIONS = len(ACTION_NAMES)
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)  # (row, col) per action

TIME_PENALTY = -0.02
WIN_REWARD = 1.0
LOSS_REWARD = -1.0  # the distractor died, the agent died, or the step limit was reached
SIGHT = 5  # a monster sees the agent within this Euclidean distance: always, on a 4x4 floor
CHASE_PROBABILITY = 0.6  # chance that a monster that sees the agent steps toward it

# Combat. The agent strikes first, then they alternate until one has no hit points left.
AGENT_HP = 11
MONSTER_HP = 20
MONSTER_HIT = 11
EFFECTIVE_HIT = 20  # a weapon whose modifier beats the monster's element
RESISTED_HIT = 1  # any other weapon, or bare hands: the monster resists everything but its weakness


def agent_wins_fight(agent_hit: int) -> bool:
    agent_strikes_needed = math.ceil(MONSTER_HP / agent_hit)
    monster_strikes_needed = math.ceil(AGENT_HP / MONSTER_HIT)
    return agent_strikes_needed <= monster_strikes_needed  # the agent's strike lands first


WINS_WITH_EFFECTIVE_WEAPON = agent_wins_fight(EFFECTIVE_HIT)  # True: one hit kills the monster
WINS_OTHERWISE = agent_wins_fight(RESISTED_HIT)  # False: the monster's first hit kills the agent

OUTCOMES = ("running", "win", "agent_died", "distractor_died", "timeout")
RUNNING, WIN, AGENT_DIED, DISTRACTOR_DIED, TIMEOUT = range(len(OUTCOMES))
NUM_FACTS = len(ELEMENTS) + len(GROUPS)  # wiki sentences: one per element, then one per group

_ROWS = np.broadcast_to(np.arange(HEIGHT, dtype=np.float32)[:, None], (HEIGHT, WIDTH))
_COLS = np.broadcast_to(np.arange(WIDTH, dtype=np.float32)[None, :], (HEIGHT, WIDTH))


def is_interior(cells: np.ndarray) -> np.ndarray:
    """cells [..., 2] (row, col) -> bool [...]: on the floor, not a wall or outside."""
    return ((cells >= 1) & (cells <= INTERIOR)).all(-1)


def _pad_last(ids: np.ndarray, length: int) -> np.ndarray:
    padded = np.zeros((*ids.shape[:-1], length), dtype=np.int64)
    padded[..., : ids.shape[-1]] = ids
    return padded


def pack_sentences(ids: np.ndarray, lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sentences ids [m, k, longest] (0-padded) written one after the other into rows of ``width`` ids."""
    flat = ids.reshape(len(ids), -1)
    words_first = np.argsort(flat == 0, axis=1, kind="stable")  # words keep their order, padding moves last
    packed = np.zeros((len(ids), max(width, flat.shape[1])), dtype=np.int64)
    packed[:, : flat.shape[1]] = np.take_along_axis(flat, words_first, axis=1)
    return packed[:, :width], lengths.sum(1)


def monster_move_probabilities(monster: np.ndarray, agent: np.ndarray) -> np.ndarray:
    """P(action) [..., 5] of a moving monster at ``monster`` [..., 2] that chases ``agent`` [..., 2].

    A monster that sees the agent (Euclidean distance <= SIGHT) chases with probability CHASE_PROBABILITY:
    a uniform pick among the moves that bring it closer. Otherwise (or with no such move) it takes a uniform
    pick among staying and the moves not into a wall: only walls block a monster.
    """
    candidates = monster[..., None, :] + MOVES  # [..., 5, 2]
    allowed = is_interior(candidates)
    distance2 = ((monster - agent) ** 2).sum(-1)
    closer = allowed & (((candidates - agent[..., None, :]) ** 2).sum(-1) < distance2[..., None])
    can_chase = (distance2 <= SIGHT**2) & closer.any(-1)
    chase = np.where(can_chase, CHASE_PROBABILITY, 0.0)[..., None]
    chasing = closer / np.maximum(closer.sum(-1, keepdims=True), 1)
    wandering = allowed / allowed.sum(-1, keepdims=True)
    return chase * chasing + (1 - chase) * wandering


@dataclass(frozen=True)
class ExpertView:
    """What a scripted expert may read: the true state and what the true assignment says about weapons."""

    pos: np.ndarray  # int64 [n, 5, 2] cell of each slot (the last cell of a removed object)
    present: np.ndarray  # bool [n, 5] agent alive, monster alive, item on the floor
    held: np.ndarray  # int64 [n] slot of the held item (GOOD_ITEM / DISTRACTOR_ITEM) or -1
    item_beats: np.ndarray  # bool [n, 2, 2] item (good, distractor) kills monster (target, distractor)
    stationary: bool


class RTFMSimulator:
    """State and rules of ``num_envs`` independent RTFM episodes of one variant (no autoreset here)."""

    def __init__(self, spec: VariantSpec, num_envs: int, max_steps: int | None):
        self.spec = spec
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.vocab = rtfm_vocabulary()
        self.split = assignment_split(spec.monsters_per_group, spec.modifiers_per_element)
        longest_wiki = longest_wiki_tokens(spec.monsters_per_group, spec.modifiers_per_element, spec.natural_language)
        assert longest_wiki <= WIKI_LEN
        assert longest_task_tokens(spec.natural_language) <= TASK_LEN and MAX_NAME <= INV_LEN

        encode = self.vocab.encode
        self._monster_ids = np.array(encode(MONSTERS))
        self._element_ids = np.array(encode(ELEMENTS))
        self._modifier_ids = np.array(encode(MODIFIERS))
        self._item_ids = np.array(encode(ITEMS))
        self._agent_id = encode([AGENT_WORD])[0]
        self._nothing_id = encode([NOTHING_WORD])[0]
        interior = is_interior(np.stack(np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij"), -1))
        self._base_name = np.zeros((1, HEIGHT, WIDTH, MAX_PLACEMENT, MAX_NAME), dtype=np.int64)
        self._base_name[0, :, :, 0, 0] = np.where(interior, encode([EMPTY_WORD])[0], encode([WALL_WORD])[0])
        self._base_name_len = np.ones((1, HEIGHT, WIDTH, MAX_PLACEMENT), dtype=np.int64)
        self._all_envs = np.arange(num_envs)

        n = num_envs
        self.pos = np.zeros((n, 5, 2), dtype=np.int64)
        self.present = np.zeros((n, 5), dtype=bool)
        self.held = np.full(n, -1, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.element = np.full((n, 5), -1, dtype=np.int64)  # monsters: their element; items: what they beat
        self.assignment = np.zeros((n, 2), dtype=np.int64)  # (monster->group id, modifier->element id)
        self.target_group = np.zeros(n, dtype=np.int64)
        self.modifier = np.zeros((n, 2), dtype=np.int64)  # modifier of (good item, distractor item)
        self.name_tokens = np.zeros((n, 5, MAX_NAME), dtype=np.int64)
        self.name_len = np.zeros((n, 5), dtype=np.int64)
        self.wiki = np.zeros((n, WIKI_LEN), dtype=np.int64)
        self.wiki_len = np.zeros(n, dtype=np.int64)
        self.task = np.zeros((n, TASK_LEN), dtype=np.int64)
        self.task_len = np.zeros(n, dtype=np.int64)

    # ----------------------------------------------------------------------------------------- episodes
    def reset_envs(self, rng: np.random.Generator, envs: np.ndarray) -> None:
        """Start a fresh episode in each of ``envs`` (env indices)."""
        m = len(envs)
        spec, split = self.spec, self.split
        a, b = split.sample(rng, m, spec.dev)
        per_group, per_element = spec.monsters_per_group, spec.modifiers_per_element
        groups, elements, items = len(GROUPS), len(ELEMENTS), len(ITEMS)
        sizes = [groups, groups - 1, per_group, per_group, elements, elements - 1, per_element, per_element]
        choices = np.array([*sizes, items, items - 1])
        (
            target_group,
            distractor_group_shift,  # the distractor's group, element and item noun differ from the target's
            target_member,
            distractor_member,
            target_element,
            distractor_element_shift,
            good_member,
            distractor_item_member,
            good_noun,
            distractor_noun_shift,
        ) = rng.integers(choices[:, None], size=(len(choices), m))  # one uniform draw from each range
        distractor_group = (target_group + 1 + distractor_group_shift) % groups
        distractor_element = (target_element + 1 + distractor_element_shift) % elements
        distractor_noun = (good_noun + 1 + distractor_noun_shift) % items
        target_monster = split.group_monsters[a, target_group, target_member]
        distractor_monster = split.group_monsters[a, distractor_group, distractor_member]
        good_modifier = split.element_modifiers[b, target_element, good_member]
        distractor_modifier = split.element_modifiers[b, distractor_element, distractor_item_member]
        cells = np.argsort(rng.random((m, INTERIOR * INTERIOR)), axis=1)[:, :5]  # five distinct floor cells
        if spec.natural_language:
            beat_template = rng.integers(len(BEAT_TEMPLATES), size=(m, len(ELEMENTS)))
            group_template = rng.integers(len(GROUP_TEMPLATES), size=(m, len(GROUPS)))
            task_template = rng.integers(len(TASK_TEMPLATES), size=m)
            fact_order = np.argsort(rng.random((m, NUM_FACTS)), axis=1)
        else:
            beat_template = np.zeros((m, len(ELEMENTS)), dtype=np.int64)
            group_template = np.zeros((m, len(GROUPS)), dtype=np.int64)
            task_template = np.zeros(m, dtype=np.int64)
            fact_order = np.broadcast_to(np.arange(NUM_FACTS), (m, NUM_FACTS))

        self.pos[envs] = np.stack([1 + cells // INTERIOR, 1 + cells % INTERIOR], axis=-1)
        self.present[envs] = True
        self.held[envs] = -1
        self.steps[envs] = 0
        self.element[envs] = np.stack(
            [np.full(m, -1), target_element, distractor_element, target_element, distractor_element], axis=1
        )
        self.assignment[envs] = np.stack([a, b], axis=1)
        self.target_group[envs] = target_group
        self.modifier[envs] = np.stack([good_modifier, distractor_modifier], axis=1)

        self.name_tokens[envs] = 0
        self.name_tokens[envs, AGENT, 0] = self._agent_id
        self.name_tokens[envs, TARGET, :2] = np.stack(
            [self._element_ids[target_element], self._monster_ids[target_monster]], axis=1
        )
        self.name_tokens[envs, DISTRACTOR, :2] = np.stack(
            [self._element_ids[distractor_element], self._monster_ids[distractor_monster]], axis=1
        )
        self.name_tokens[envs, GOOD_ITEM, :2] = np.stack(
            [self._modifier_ids[good_modifier], self._item_ids[good_noun]], axis=1
        )
        self.name_tokens[envs, DISTRACTOR_ITEM, :2] = np.stack(
            [self._modifier_ids[distractor_modifier], self._item_ids[distractor_noun]], axis=1
        )
        self.name_len[envs] = [1, 2, 2, 2, 2]

        # the wiki: each fact's sentence looked up in the id tables, in fact order, packed into WIKI_LEN ids
        beats, members = beat_table(per_element), group_table(per_group)
        beat_at = (beat_template, np.arange(elements), subset_rank(split.element_modifiers[b], per_element * elements))
        group_at = (group_template, np.arange(groups), subset_rank(split.group_monsters[a], per_group * groups))
        longest = max(beats.ids.shape[-1], members.ids.shape[-1])
        fact_ids = np.concatenate(
            [_pad_last(beats.ids[beat_at], longest), _pad_last(members.ids[group_at], longest)], 1
        )
        fact_len = np.concatenate([beats.lengths[beat_at], members.lengths[group_at]], axis=1)
        self.wiki[envs], self.wiki_len[envs] = pack_sentences(
            np.take_along_axis(fact_ids, fact_order[:, :, None], axis=1),
            np.take_along_axis(fact_len, fact_order, axis=1),
            WIKI_LEN,
        )
        tasks = task_table()
        self.task[envs] = _pad_last(tasks.ids[task_template, target_group], TASK_LEN)
        self.task_len[envs] = tasks.lengths[task_template, target_group]

    # -------------------------------------------------------------------------------------------- rules
    def step(
        self, actions: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every env one step. Returns reward float32, terminated, truncated, outcome code int64.

        The reference's order: every actor chooses its move before any actor moves; then the agent (speed 2)
        moves and the two monsters (speed 1) follow in an order shuffled every step. Each arrival resolves
        its cell: the agent picks up an item there, then fights each live monster there in turn. A death
        does not stop the step: a dead actor's queued move is dropped, the others still move. Stationary
        variants draw nothing from ``rng`` (their monsters never choose a move).
        """
        envs = self._all_envs
        alive_before = self.present.copy()
        if self.spec.stationary:
            order = np.broadcast_to(np.array(MONSTER_SLOTS), (self.num_envs, 2))  # only orders shared cells
        else:
            chosen = self.choose_monster_moves(self.pos[:, AGENT], rng)  # [n, 2] action per monster
            distractor_first = rng.random(self.num_envs) < 0.5
            order = np.where(distractor_first[:, None], MONSTER_SLOTS[::-1], MONSTER_SLOTS)

        agent = self.pos[:, AGENT]
        moved = agent + MOVES[actions]
        agent[...] = np.where(is_interior(moved)[:, None], moved, agent)  # into a wall: stay
        for item in ITEM_SLOTS:  # one weapon slot: the held item is replaced and gone
            picked = self.present[:, item] & (self.pos[:, item] == agent).all(1)
            self.held[picked] = item
            self.present[picked, item] = False
        for turn in range(2):  # a cell holding both monsters: fight them in this step's monster order
            monster = order[:, turn]
            meets = self.present[envs, monster] & (self.pos[envs, monster] == agent).all(1)
            self._fight(meets & self.present[:, AGENT], monster)
        if not self.spec.stationary:
            for turn in range(2):
                monster = order[:, turn]
                live = self.present[envs, monster]  # a monster killed earlier in the step does not move
                destination = self.pos[envs, monster] + MOVES[chosen[envs, monster - TARGET]]
                self.pos[envs[live], monster[live]] = destination[live]
                meets = live & self.present[:, AGENT] & (destination == agent).all(1)
                self._fight(meets, monster)

        died = alive_before & ~self.present
        outcome = np.full(self.num_envs, RUNNING, dtype=np.int64)
        outcome[died[:, DISTRACTOR]] = DISTRACTOR_DIED
        outcome[died[:, TARGET]] = WIN
        outcome[died[:, AGENT]] = AGENT_DIED  # the agent's death overrides a kill in the same step
        self.steps += 1
        reward = np.full(self.num_envs, TIME_PENALTY, dtype=np.float32)
        reward[outcome == WIN] = WIN_REWARD
        reward[(outcome == AGENT_DIED) | (outcome == DISTRACTOR_DIED)] = LOSS_REWARD
        terminated = outcome != RUNNING
        if self.max_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = ~terminated & (self.steps >= self.max_steps)
        reward[truncated] = LOSS_REWARD
        outcome[truncated] = TIMEOUT
        return reward, terminated, truncated, outcome

    def choose_monster_moves(self, agent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each monster's action (int64 [n, 2]: target, distractor), drawn from ``monster_move_probabilities``
        toward the agent's cell ``agent`` [n, 2] (the reference's: where it stands at the step's start)."""
        probabilities = monster_move_probabilities(self.pos[:, list(MONSTER_SLOTS)], agent[:, None])
        cumulative = probabilities.cumsum(-1)
        cumulative /= cumulative[..., -1:]  # exactly 1 at the end: every draw in [0, 1) finds a move
        draw = rng.random((self.num_envs, 2))
        return (cumulative > draw[..., None]).argmax(-1)

    def _fight(self, fighting: np.ndarray, monster: np.ndarray) -> None:
        """Resolve, where ``fighting``, the agent's fight with the monster in slot ``monster`` [n] (agent first)."""
        envs = self._all_envs
        weapon = np.maximum(self.held, 0)
        effective = (self.held >= 0) & (self.element[envs, weapon] == self.element[envs, monster])
        agent_wins = np.where(effective, WINS_WITH_EFFECTIVE_WEAPON, WINS_OTHERWISE)
        kills, dies = fighting & agent_wins, fighting & ~agent_wins
        self.present[kills, monster[kills]] = False
        self.present[dies, AGENT] = False

    # ---------------------------------------------------------------------------------- observations
    def observe(self, envs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Fresh observation arrays (see ``lit_rlseq.envs``) for ``envs`` (default: all), batch first."""
        if envs is None:
            envs = self._all_envs
        m = len(envs)
        pos, present, held = self.pos[envs], self.present[envs], self.held[envs]

        name = np.repeat(self._base_name, m, axis=0)
        name_len = np.repeat(self._base_name_len, m, axis=0)
        for slot in DRAWING_ORDER:  # later slots cover earlier ones in a shared cell
            rows = np.flatnonzero(present[:, slot])
            cells = pos[rows, slot]
            name[rows, cells[:, 0], cells[:, 1], 0] = self.name_tokens[envs[rows], slot]
            name_len[rows, cells[:, 0], cells[:, 1], 0] = self.name_len[envs[rows], slot]

        inv = np.zeros((m, INV_LEN), dtype=np.int64)
        inv[:, 0] = self._nothing_id
        inv_len = np.ones(m, dtype=np.int64)
        holding = np.flatnonzero(held >= 0)
        inv[holding, :MAX_NAME] = self.name_tokens[envs[holding], held[holding]]
        inv_len[holding] = self.name_len[envs[holding], held[holding]]

        agent = pos[:, AGENT]
        rel_pos = np.empty((m, HEIGHT, WIDTH, 2), dtype=np.float32)
        rel_pos[..., 0] = (_ROWS - agent[:, 0, None, None]) / HEIGHT
        rel_pos[..., 1] = (_COLS - agent[:, 1, None, None]) / WIDTH
        valid = is_interior(agent[:, None, :] + MOVES[None])
        return {
            "name": name,
            "name_len": name_len,
            "wiki": self.wiki[envs],
            "wiki_len": self.wiki_len[envs],
            "task": self.task[envs],
            "task_len": self.task_len[envs],
            "inv": inv,
            "inv_len": inv_len,
            "rel_pos": rel_pos,
            "valid": valid,
        }

    def expert_view(self) -> ExpertView:
        # what each item's modifier beats, read from the true modifier->element assignment of the episode
        item_element = self.split.modifier_element[self.assignment[:, 1:2], self.modifier]
        monster_element = self.element[:, list(MONSTER_SLOTS)]
        return ExpertView(
            pos=self.pos.copy(),
            present=self.present.copy(),
            held=self.held.copy(),
            item_beats=item_element[:, :, None] == monster_element[:, None, :],
            stationary=self.spec.stationary,
        )

    # ------------------------------------------------------------------------------ tests and debugging
    def place(
        self,
        env: int,
        *,
        agent: tuple[int, int],
        target: tuple[int, int] | None,
        distractor: tuple[int, int] | None,
        good_item: tuple[int, int] | None,
        distractor_item: tuple[int, int] | None,
        held: str | None = None,
        steps: int | None = None,
    ) -> None:
        """Set up an exact scenario in env ``env`` of a reset simulator (names, text and elements stay).

        Cells are (row, col) of the 6x6 grid, floor is 1..4. ``None`` removes the object (a dead monster,
        an item already taken). Monsters may share a cell with an item or with each other (as they can in
        play); the agent and the items each need a cell of their own. ``held`` is None, "good_item" or
        "distractor_item"; ``steps`` sets the step counter (e.g. to one below the limit).
        """
        cells = {"agent": agent, "target": target, "distractor": distractor}
        cells |= {"good_item": good_item, "distractor_item": distractor_item}
        placed = [tuple(cell) for cell in cells.values() if cell is not None]
        own = [tuple(cells[name]) for name in ("agent", "good_item", "distractor_item") if cells[name] is not None]
        monsters = [tuple(cells[name]) for name in ("target", "distractor") if cells[name] is not None]
        clash = len(set(own)) != len(own) or tuple(agent or ()) in monsters
        if agent is None or clash or not all(is_interior(np.array(placed))):
            raise UserError(
                f"place(): need an agent and floor cells (1..{INTERIOR}), the agent's and each item's its own"
                f" (monsters may share), got {cells}"
            )
        if held not in (None, "good_item", "distractor_item") or (held and cells[held] is not None):
            raise UserError(f"place(): held={held!r} must be None or an item slot that is not on the floor")
        for slot, cell in enumerate(cells.values()):
            self.present[env, slot] = cell is not None
            if cell is not None:
                self.pos[env, slot] = cell
        self.held[env] = -1 if held is None else SLOT_NAMES.index(held)
        if steps is not None:
            self.steps[env] = steps

    def describe(self, env: int) -> dict[str, object]:
        """The episode's names and true assignment, in words."""
        a, b = self.assignment[env]
        words = self.vocab.decode
        return {
            "task": " ".join(words(self.task[env])),
            "target_group": GROUPS[self.target_group[env]],
            **{SLOT_NAMES[s]: " ".join(words(self.name_tokens[env, s])) for s in range(1, 5)},
            "monster_group": {MONSTERS[m]: GROUPS[g] for m, g in enumerate(self.split.monster_group[a])},
            "modifier_element": {MODIFIERS[m]: ELEMENTS[e] for m, e in enumerate(self.split.modifier_element[b])},
        }

    def render_text(self, env: int) -> str:
        """The floor as a fixed-width grid (the frame is the wall), then wiki, task and inventory."""
        obs = self.observe(np.array([env]))
        decode = self.vocab.decode
        width = max(len(f"{m} {i}") for m in MODIFIERS for i in ITEMS)  # the longest possible name
        border = "+" + "+".join("-" * (width + 2) for _ in range(INTERIOR)) + "+"
        lines = [border]
        for row in range(1, INTERIOR + 1):
            names = [" ".join(decode(obs["name"][0, row, col, 0])) for col in range(1, INTERIOR + 1)]
            cells = ["" if name == EMPTY_WORD else name for name in names]
            lines += ["|" + "|".join(f" {cell:<{width}} " for cell in cells) + "|", border]
        limit = "no limit" if self.max_steps is None else f"of {self.max_steps}"
        lines += [
            "wiki: " + " ".join(decode(obs["wiki"][0])),
            "task: " + " ".join(decode(obs["task"][0])),
            "inventory: " + " ".join(decode(obs["inv"][0])),
            f"step {self.steps[env]} {limit}",
        ]
        return "\n".join(lines)
