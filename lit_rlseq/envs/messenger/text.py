"""Messenger manuals: template sentences shipped with the package, or human-written texts from a user path.

Both are *text sources*: ``source.sample(rng, split, entity, role, movements)`` returns one sentence (word ids)
about ``entity`` in ``role``, drawn uniformly from the sentences of the given movement types (a tuple such as
("immovable", "unknown"); "unknown" sentences say nothing about movement).

Templates (our own phrasings): every entity is named by one of three synonyms, every role by an adjective and
a noun, every movement by a phrase; several sentence patterns per role and movement. The same templates
serve every split (the held-out part of Messenger is the entity-role combinations, not the wording).

Human texts (the original's crowd-sourced sentences, which we may not ship): a directory holding
``text_train.json``, ``text_val.json`` and ``text_test.json``, each ``{entity: {role: {movement: [sentence,
...]}}}`` with the 12 entity names, roles enemy/message/goal and movements chaser/fleeing/immovable/unknown.
Training envs read ``text_train.json``, validation envs ``text_val.json``, test envs ``text_test.json``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from lit_rlseq.envs.messenger.games import ENTITY_NAMES, MOVEMENTS, ROLES
from lit_rlseq.envs.vocab import Vocabulary
from lit_rlseq.errors import DataError, MissingArtifactError

MAX_WORDS = 36  # words per sentence (the original padded BERT tokens to 36)
TEXT_MOVEMENTS = (*MOVEMENTS, "unknown")
TEXT_FILES = {"train": "text_train.json", "val": "text_val.json", "test": "text_test.json"}
_TOKEN = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")


def tokenize(sentence: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _TOKEN.findall(sentence.lower())


# -- templates -----------------------------------------------------------------------------------------------
SYNONYMS = {
    "airplane": ("plane", "jet", "airplane"), "mage": ("mage", "wizard", "sorcerer"),
    "dog": ("dog", "hound", "canine"), "bird": ("bird", "eagle", "hawk"), "fish": ("fish", "whale", "shark"),
    "scientist": ("scientist", "scholar", "researcher"), "thief": ("thief", "bandit", "robber"),
    "ship": ("ship", "ferry", "boat"), "ball": ("ball", "sphere", "orb"), "robot": ("robot", "bot", "humanoid"),
    "queen": ("queen", "princess", "empress"), "sword": ("sword", "blade", "saber"),
}
ROLE_ADJECTIVES = {
    "enemy": ("deadly", "lethal", "dangerous"),
    "message": ("secret", "classified", "restricted"),
    "goal": ("vital", "crucial", "essential", "important"),
}
ROLE_NOUNS = {
    "enemy": ("enemy", "opponent", "adversary", "foe"),
    "message": ("message", "document", "report"),
    "goal": ("goal", "target", "objective"),
}
# {mov}: a phrase after the entity; {pre}: an adjective before it.
MOVEMENT_PHRASES = {
    "chaser": ("coming towards you", "approaching you", "chasing you", "heading your way"),
    "fleeing": ("running away from you", "fleeing from you", "escaping from you", "moving away from you"),
    "immovable": ("that is stationary", "that is not moving", "that cannot be moved", "that stays still"),
}
MOVEMENT_ADJECTIVES = {
    "chaser": ("approaching", "chasing", "pursuing"),
    "fleeing": ("fleeing", "escaping", "retreating"),
    "immovable": ("stationary", "motionless", "immobile"),
}
# Patterns with a movement ({mov} or {pre}); {a} is "a" or "an" for the word after it.
MOVING_PATTERNS = {
    "enemy": (
        "the {e} {mov} is {a} {adj} {noun}",
        "the {pre} {e} is {a} {adj} {noun}",
        "avoid the {pre} {e} , it is {a} {adj} {noun}",
        "{a} {adj} {noun} is the {e} {mov}",
    ),
    "message": (
        "the {e} {mov} has the {adj} {noun}",
        "the {pre} {e} carries the {adj} {noun}",
        "the {adj} {noun} is held by the {e} {mov}",
        "get the {adj} {noun} from the {pre} {e}",
    ),
    "goal": (
        "the {e} {mov} is the {adj} {noun}",
        "the {pre} {e} is the {adj} {noun}",
        "the {adj} {noun} is the {e} {mov}",
        "deliver the message to the {pre} {e} , the {adj} {noun}",
    ),
}
UNKNOWN_PATTERNS = {
    "enemy": ("the {e} is {a} {adj} {noun}", "watch out for the {e} , {a} {adj} {noun}"),
    "message": ("the {e} has the {adj} {noun}", "the {adj} {noun} is with the {e}"),
    "goal": ("the {e} is the {adj} {noun}", "the {adj} {noun} is the {e}"),
}


def _fill_choices(role: str, movement: str, entity: str) -> dict[str, tuple[str, ...]]:
    choices = {"e": SYNONYMS[entity], "adj": ROLE_ADJECTIVES[role], "noun": ROLE_NOUNS[role]}
    if movement != "unknown":
        choices["mov"] = MOVEMENT_PHRASES[movement]
        choices["pre"] = MOVEMENT_ADJECTIVES[movement]
    return choices


def _patterns(role: str, movement: str) -> tuple[str, ...]:
    return UNKNOWN_PATTERNS[role] if movement == "unknown" else MOVING_PATTERNS[role]


def template_words() -> set[str]:
    words = {"a", "an"}
    parts = [*SYNONYMS.values(), *ROLE_ADJECTIVES.values(), *ROLE_NOUNS.values(), *MOVEMENT_PHRASES.values(),
             *MOVEMENT_ADJECTIVES.values()]
    for group in parts:
        for phrase in group:
            words.update(tokenize(phrase))
    for patterns in (*MOVING_PATTERNS.values(), *UNKNOWN_PATTERNS.values()):
        for pattern in patterns:
            words.update(tokenize(re.sub(r"\{\w+\}", " ", pattern)))
    return words


class TemplateText:
    """Template sentences, composed at random from the tables above."""

    name = "templates"

    def __init__(self):
        self.vocab = Vocabulary(template_words())
        self._encoded: dict[str, list[int]] = {}

    def _ids(self, phrase: str) -> list[int]:
        if phrase not in self._encoded:
            self._encoded[phrase] = self.vocab.encode(tokenize(phrase))
        return self._encoded[phrase]

    def has(self, split: str, entity: str, role: str, movement: str) -> bool:
        return True

    def sample(self, rng: np.random.Generator, split: str, entity: str, role: str,
               movements: tuple[str, ...]) -> np.ndarray:
        # Uniform over the union of the movements' sentences: each movement weighted by its pattern count
        # (every pattern has the same number of fillings up to the few-percent differences of word lists).
        counts = np.array([len(_patterns(role, m)) for m in movements], dtype=np.float64)
        movement = movements[rng.choice(len(movements), p=counts / counts.sum())]
        patterns = _patterns(role, movement)
        pattern = patterns[rng.integers(len(patterns))]
        choices = _fill_choices(role, movement, entity)
        filled = {key: values[rng.integers(len(values))] for key, values in choices.items()}
        # Article: "a" / "an" before the word that follows it in the pattern.
        text = pattern.format(a="\0", **filled)
        text = re.sub(r"\0 (\w)", lambda m: ("an " if m.group(1) in "aeiou" else "a ") + m.group(1), text)
        return np.asarray(self._ids(text), dtype=np.int64)


# -- human texts ---------------------------------------------------------------------------------------------
class HumanText:
    """The original's human-written manuals from ``directory`` (never committed; see the module docstring)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.name = str(self.directory)
        if not self.directory.is_dir():
            raise MissingArtifactError(
                "Messenger human-text directory", str(self.directory),
                produce_with="copy text_train.json, text_val.json and text_test.json of the original Messenger "
                "there (or drop env_kwargs.text_path to use the shipped template sentences)",
            )
        self.texts: dict[str, dict[str, dict[str, dict[str, list[str]]]]] = {
            split: self._load(self.directory / filename) for split, filename in TEXT_FILES.items()
        }
        words = {w for split in self.texts.values() for e in split.values() for r in e.values() for s in r.values()
                 for sentence in s for w in tokenize(sentence)}
        self.vocab = Vocabulary(words)
        self._encoded = {
            (split, e, r, m): [np.asarray(self.vocab.encode(tokenize(s))[:MAX_WORDS], dtype=np.int64)
                               for s in sentences]
            for split, entities in self.texts.items() for e, roles in entities.items()
            for r, movements in roles.items() for m, sentences in movements.items()
        }

    def _load(self, path: Path) -> dict[str, dict[str, dict[str, list[str]]]]:
        if not path.is_file():
            raise DataError(
                f"Messenger human texts: {path} is missing; {self.directory} must hold "
                f"{', '.join(TEXT_FILES.values())} (the original Messenger's messenger/envs/texts layout)"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"Messenger human texts: {path} is not valid JSON ({e})") from None
        expected_layout = "{entity: {role: {movement: [sentence, ...]}}}"
        if not isinstance(data, dict) or set(data) != set(ENTITY_NAMES.values()):
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(
                f"Messenger human texts: {path} must map the 12 entity names {sorted(ENTITY_NAMES.values())} "
                f"to roles (layout {expected_layout}); found {found}"
            )
        for entity, roles in data.items():
            if not isinstance(roles, dict) or not set(roles) <= set(ROLES):
                raise DataError(f"Messenger human texts: {path}, key {entity!r} must map roles {list(ROLES)} to "
                                f"movements (layout {expected_layout}); found {roles!r:.200}")
            for role, movements in roles.items():
                if not isinstance(movements, dict) or not set(movements) <= set(TEXT_MOVEMENTS):
                    raise DataError(
                        f"Messenger human texts: {path}, key {entity}.{role} must map movements "
                        f"{list(TEXT_MOVEMENTS)} to lists of sentences; found {movements!r:.200}"
                    )
                for movement, sentences in movements.items():
                    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
                        raise DataError(f"Messenger human texts: {path}, key {entity}.{role}.{movement} must be a "
                                        f"list of sentences (strings); found {sentences!r:.200}")
        return data

    def has(self, split: str, entity: str, role: str, movement: str) -> bool:
        return bool(self._encoded.get((split, entity, role, movement)))

    def sample(self, rng: np.random.Generator, split: str, entity: str, role: str,
               movements: tuple[str, ...]) -> np.ndarray:
        pool = [s for m in movements for s in self._encoded.get((split, entity, role, m), [])]
        if not pool:
            raise DataError(
                f"Messenger human texts: {self.directory / TEXT_FILES[split]} has no sentence for "
                f"{entity}.{role}.{{{', '.join(movements)}}}, which a {split} game needs"
            )
        return pool[rng.integers(len(pool))]


@lru_cache(maxsize=8)
def text_source(text_path: str | None) -> TemplateText | HumanText:
    """The shipped templates (``None``) or the human texts at ``text_path`` (loaded once per process)."""
    return TemplateText() if text_path is None else HumanText(text_path)
