"""RTFM's closed word set: entity word lists, paraphrase templates, tokenisation and the shared vocabulary.

Every text the environment shows is built from the lists below, so the vocabulary is exactly their words.
One vocabulary serves all variants (train, dev, simple, full, natural-language): demonstrations,
checkpoints and evaluation on another variant then agree on word ids.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lit_rlseq.envs.vocab import Vocabulary

MONSTERS = ("wolf", "jaguar", "panther", "goblin", "bat", "imp", "shaman", "ghost", "zombie")
GROUPS = ("star alliance", "order of the forest", "rebel enclave")
MODIFIERS = ("grandmasters", "blessed", "shimmering", "gleaming", "fanatical", "mysterious", "soldiers", "arcane")
ITEMS = ("sword", "axe", "morningstar", "polearm", "knife", "katana", "cutlass", "spear")
ELEMENTS = ("cold", "fire", "lightning", "poison")

AGENT_WORD = "you"
EMPTY_WORD = "empty"
WALL_WORD = "wall"
NOTHING_WORD = "nothing"  # the inventory when no item is held: text fields are never empty

# Paraphrases of our own wording. Index 0 of each list is the canonical sentence used by the variants
# without natural language. Slots: {modifiers} {element}, {monsters} {group}, {group}.
BEAT_TEMPLATES = (
    "{modifiers} beat {element}.",
    "{modifiers} defeat {element}.",
    "{element} is weak to {modifiers}.",
    "{modifiers} are strong against {element}.",
    "{modifiers} overcome {element}.",
    "{element} falls to {modifiers}.",
    "use {modifiers} against {element}.",
    "{modifiers} work well against {element}.",
    "{element} monsters fear {modifiers}.",
    "{modifiers} are effective on {element}.",
    "against {element}, pick {modifiers}.",
    "{element} is no match for {modifiers}.",
)
GROUP_TEMPLATES = (
    "{monsters} are {group}.",
    "{monsters} belong to {group}.",
    "{monsters} are members of {group}.",
    "{group} is made up of {monsters}.",
    "{monsters} fight for {group}.",
    "the {group} includes {monsters}.",
    "{monsters} serve the {group}.",
    "{monsters} have joined the {group}.",
    "among the {group} are {monsters}.",
    "{monsters} are part of the {group}.",
)
TASK_TEMPLATES = (
    "defeat the {group}",
    "kill the {group}",
    "go and fight the {group}",
    "eliminate a member of the {group}",
    "attack the {group}",
    "your goal is to defeat the {group}",
    "slay the monster of the {group}",
    "destroy the {group}",
    "take down the {group}",
    "find and beat the {group}",
)

_PUNCTUATION = re.compile(r"([.,])")


def tokenize(text: str) -> list[str]:
    """Whitespace tokenisation with "." and "," as tokens of their own."""
    return _PUNCTUATION.sub(r" \1 ", text).split()


def join_names(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def beat_sentence(template: int, modifiers: Sequence[str], element: str) -> list[str]:
    return tokenize(BEAT_TEMPLATES[template].format(modifiers=join_names(modifiers), element=element))


def group_sentence(template: int, monsters: Sequence[str], group: str) -> list[str]:
    return tokenize(GROUP_TEMPLATES[template].format(monsters=join_names(monsters), group=group))


def task_sentence(template: int, group: str) -> list[str]:
    return tokenize(TASK_TEMPLATES[template].format(group=group))


def _template_words(templates: Sequence[str]) -> set[str]:
    words: set[str] = set()
    for template in templates:
        words.update(tokenize(re.sub(r"\{\w+\}", " ", template)))
    return words


@functools.cache
def rtfm_vocabulary() -> Vocabulary:
    """The one vocabulary of the whole RTFM family (every variant's entity names, templates and fixed words)."""
    words = set(MONSTERS) | set(MODIFIERS) | set(ITEMS) | set(ELEMENTS)
    for group in GROUPS:
        words.update(group.split())
    words.update([AGENT_WORD, EMPTY_WORD, WALL_WORD, NOTHING_WORD])
    words.update(set(tokenize(join_names(["a", "b", "c"]))) - {"a", "b", "c"})  # the list separators
    for templates in (BEAT_TEMPLATES, GROUP_TEMPLATES, TASK_TEMPLATES):
        words |= _template_words(templates)
    return Vocabulary(words)


def longest_wiki_tokens(monsters_per_group: int, modifiers_per_element: int, paraphrased: bool) -> int:
    """The longest wiki a variant can produce: every fact written with its longest template."""
    beat_templates = range(len(BEAT_TEMPLATES)) if paraphrased else [0]
    group_templates = range(len(GROUP_TEMPLATES)) if paraphrased else [0]
    modifiers = [max(MODIFIERS, key=len)] * modifiers_per_element  # each modifier is one word
    monsters = [MONSTERS[0]] * monsters_per_group  # each monster is one word
    beat = max(len(beat_sentence(t, modifiers, ELEMENTS[0])) for t in beat_templates)
    return len(ELEMENTS) * beat + sum(
        max(len(group_sentence(t, monsters, group)) for t in group_templates) for group in GROUPS
    )


def longest_task_tokens(paraphrased: bool) -> int:
    templates = range(len(TASK_TEMPLATES)) if paraphrased else [0]
    return max(len(task_sentence(t, group)) for t in templates for group in GROUPS)


# ------------------------------------------------------------------------------------- sentences as ids
@dataclass(frozen=True)
class SentenceTable:
    """Every sentence of one kind as word ids: ``ids[..., :lengths[...]]``, 0-padded."""

    ids: np.ndarray  # int64 [..., longest]
    lengths: np.ndarray  # int64 [...]


def subset_rank(members: np.ndarray, universe: int) -> np.ndarray:
    """Rank of each sorted subset (last axis of ``members``) among ``itertools.combinations(range(universe), k)``."""
    return _subset_ranks(universe, members.shape[-1])[tuple(np.moveaxis(members, -1, 0))]


@functools.cache
def _subset_ranks(universe: int, k: int) -> np.ndarray:
    rank = np.full((universe,) * k, -1, dtype=np.int64)
    for index, subset in enumerate(itertools.combinations(range(universe), k)):
        rank[subset] = index
    return rank


def _table(sentences: list[list[str]], shape: tuple[int, ...]) -> SentenceTable:
    """Sentences listed in row-major order of ``shape``, as one padded id array of that shape."""
    encode = rtfm_vocabulary().encode
    ids = [encode(words) for words in sentences]
    longest = max(len(words) for words in ids)
    padded = [words + [0] * (longest - len(words)) for words in ids]
    return SentenceTable(
        np.array(padded, dtype=np.int64).reshape(*shape, longest),
        np.array([len(words) for words in ids], dtype=np.int64).reshape(shape),
    )


def _fact_table(
    templates: Sequence[str],
    subjects: Sequence[str],
    names: Sequence[str],
    per_subject: int,
    sentence: Callable[[int, Sequence[str], str], list[str]],
) -> SentenceTable:
    """[template, subject, subset of ``names`` in itertools.combinations order] -> the fact's ids."""
    subsets = list(itertools.combinations(names, per_subject))
    grid = itertools.product(range(len(templates)), subjects, subsets)
    return _table(
        [sentence(t, subset, subject) for t, subject, subset in grid], (len(templates), len(subjects), len(subsets))
    )


@functools.cache
def beat_table(modifiers_per_element: int) -> SentenceTable:
    """[template, element, modifier subset (rank among the used modifiers)] -> "... beat {element} ." ids."""
    used = MODIFIERS[: modifiers_per_element * len(ELEMENTS)]
    return _fact_table(BEAT_TEMPLATES, ELEMENTS, used, modifiers_per_element, beat_sentence)


@functools.cache
def group_table(monsters_per_group: int) -> SentenceTable:
    """[template, group, monster subset (rank among the used monsters)] -> "... are {group} ." ids."""
    used = MONSTERS[: monsters_per_group * len(GROUPS)]
    return _fact_table(GROUP_TEMPLATES, GROUPS, used, monsters_per_group, group_sentence)


@functools.cache
def task_table() -> SentenceTable:
    """[template, group] -> "defeat the {group}" ids."""
    grid = itertools.product(range(len(TASK_TEMPLATES)), GROUPS)
    return _table([task_sentence(t, group) for t, group in grid], (len(TASK_TEMPLATES), len(GROUPS)))
