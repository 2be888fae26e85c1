"""Variants and the train/dev split of the monster->group / modifier->element assignments.

A *combination* is one monster->group assignment together with one modifier->element assignment. Both are
enumerated in lexicographic order of their tuples (group of monster 0, group of monster 1, ...; element of
modifier 0, ...), combination ``c = a * num_modifier_assignments + b``. The combinations are shuffled by
a random permutation drawn with the fixed seed ``SPLIT_SEED``; the first half of the permutation is the
training half, the second the dev half. The full variants have 1680 x 2520 = 4,233,600 combinations: we
keep the permutation as one int32 array (17 MB, built on first use) and never materialise combinations.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from lit_rlseq.envs.rtfm.text import ELEMENTS, GROUPS, MODIFIERS, MONSTERS
from lit_rlseq.errors import UserError

SPLIT_SEED = 20200426  # fixed forever: changing it changes which dynamics are held out


@dataclass(frozen=True)
class VariantSpec:
    name: str
    monsters_per_group: int  # 1 in the simple variants (first 3 monsters), 3 in the full ones (all 9)
    modifiers_per_element: int  # 1 in the simple variants (first 4 modifiers), 2 in the full ones (all 8)
    stationary: bool  # monsters never move
    natural_language: bool  # paraphrased and shuffled wiki, paraphrased task
    dev: bool  # draws from the held-out half of the assignments


def _variants() -> dict[str, VariantSpec]:
    base = {
        "groups_simple_stationary": (1, 1, True, False),
        "groups_simple": (1, 1, False, False),
        "groups": (3, 2, False, False),
        "groups_nl": (3, 2, False, True),
    }
    variants = {}
    for name, (per_group, per_element, stationary, nl) in base.items():
        for dev in (False, True):
            full_name = name + "_dev" if dev else name
            variants[full_name] = VariantSpec(full_name, per_group, per_element, stationary, nl, dev)
    return variants


VARIANTS: dict[str, VariantSpec] = _variants()


def variant_spec(name: str | None) -> VariantSpec:
    if name not in VARIANTS:
        raise UserError(f"unknown RTFM variant {name!r}: use one of {', '.join(VARIANTS)} (as env id 'rtfm:<variant>')")
    return VARIANTS[name]


def _balanced_assignments(num_things: int, num_classes: int, per_class: int) -> np.ndarray:
    """All maps thing -> class with exactly ``per_class`` things per class, lexicographic, [count, num_things]."""
    rows = [
        labels
        for labels in itertools.product(range(num_classes), repeat=num_things)
        if all(labels.count(k) == per_class for k in range(num_classes))
    ]
    return np.array(rows, dtype=np.int64)


def _members(assignments: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """[count, num_classes, per_class]: the things of each class, in increasing order."""
    order = np.argsort(assignments, axis=1, kind="stable")  # things grouped by class, each class in order
    return order.reshape(len(assignments), num_classes, per_class)


@dataclass(frozen=True)
class AssignmentSplit:
    """All assignments of one size (simple or full) and their shuffled train/dev halves."""

    monster_group: np.ndarray  # [A, num_monsters] group of each used monster
    group_monsters: np.ndarray  # [A, 3, monsters_per_group] monsters of each group
    modifier_element: np.ndarray  # [B, num_modifiers] element each used modifier beats
    element_modifiers: np.ndarray  # [B, 4, modifiers_per_element] modifiers that beat each element
    permutation: np.ndarray  # int32 [A * B] shuffled combination ids; first half train, second half dev

    @property
    def num_combinations(self) -> int:
        return len(self.permutation)

    def half(self, dev: bool) -> np.ndarray:
        middle = self.num_combinations // 2
        return self.permutation[middle:] if dev else self.permutation[:middle]

    def sample(self, rng: np.random.Generator, count: int, dev: bool) -> tuple[np.ndarray, np.ndarray]:
        """``count`` combinations from one half, as (monster assignment ids, modifier assignment ids)."""
        half = self.half(dev)
        combination = half[rng.integers(len(half), size=count)].astype(np.int64)
        return np.divmod(combination, len(self.modifier_element))


@functools.cache
def assignment_split(monsters_per_group: int, modifiers_per_element: int) -> AssignmentSplit:
    num_monsters = monsters_per_group * len(GROUPS)
    num_modifiers = modifiers_per_element * len(ELEMENTS)
    assert num_monsters <= len(MONSTERS) and num_modifiers <= len(MODIFIERS)
    monster_group = _balanced_assignments(num_monsters, len(GROUPS), monsters_per_group)
    modifier_element = _balanced_assignments(num_modifiers, len(ELEMENTS), modifiers_per_element)
    count = len(monster_group) * len(modifier_element)
    permutation = np.random.default_rng(SPLIT_SEED).permutation(count).astype(np.int32)
    return AssignmentSplit(
        monster_group=monster_group,
        group_monsters=_members(monster_group, len(GROUPS), monsters_per_group),
        modifier_element=modifier_element,
        element_modifiers=_members(modifier_element, len(ELEMENTS), modifiers_per_element),
        permutation=permutation,
    )
