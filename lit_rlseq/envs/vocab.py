"""A closed word-level vocabulary, built from an environment's own word set (nothing is downloaded)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from lit_rlseq.errors import DataError

PAD = "<pad>"


class Vocabulary:
    """Maps words to ids. Id 0 is padding. Unknown words are an error: the word set is closed."""

    def __init__(self, words: Iterable[str]):
        unique = [PAD] + sorted(set(words) - {PAD})
        self.words: list[str] = unique
        self.index: dict[str, int] = {w: i for i, w in enumerate(unique)}

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words, fingerprint={self.fingerprint()})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        try:
            return [self.index[t] for t in tokens]
        except KeyError as e:
            raise DataError(f"word {e.args[0]!r} is not in the vocabulary ({len(self)} words)") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids if i != 0]

    def fingerprint(self) -> str:
        """A short hash of the word list; two vocabularies with equal fingerprints map words identically."""
        return hashlib.sha256("\n".join(self.words).encode()).hexdigest()[:12]
