"""Errors that mean "the user's input is wrong", as opposed to a bug in lit_rlseq.

The CLI prints these as one line (no traceback) and exits with status 2. Every message names the file,
key or shape that is wrong and says what to do next.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a config value, a file, a dataset."""


class MissingArtifactError(UserError, FileNotFoundError):
    """A file that an earlier stage produces (checkpoint, rollout store) does not exist yet."""

    def __init__(self, what: str, path: str, produce_with: str | None = None):
        message = f"{what} not found: {path}"
        if produce_with:
            message += f"\n  create it with: {produce_with}"
        super().__init__(message)
        self.path = path
        self.produce_with = produce_with


class DataError(UserError, ValueError):
    """A data file exists but its contents are wrong (schema, shape, vocabulary, corruption)."""
