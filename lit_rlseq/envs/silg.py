"""What the SILG benchmark's environments share in its layout: the text tokenizer its download puts in
``<root>/cache/tokenizer/tokenizer.json`` (bert-base-uncased), read with ``tokenizers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lit_rlseq.errors import UserError

SILG_URL = "https://github.com/vzhong/silg"


def tokenizer_path(root: Path) -> Path:
    return root / "cache" / "tokenizer" / "tokenizer.json"


def load_tokenizer(root: Path) -> Any:
    """The ``tokenizers.Tokenizer`` of a SILG checkout (the caller has checked that the file exists)."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise UserError(f"SILG's envs read their tokenizer with `tokenizers` ({e}): pip install -e '.[text]'") from e
    return Tokenizer.from_file(str(tokenizer_path(root)))


def encode(tokenizer: Any, text: str, length: int) -> tuple[list[int], int]:
    """Ids of ``text`` truncated to ``length`` and 0-padded to it, and how many are real."""
    ids = tokenizer.encode(text).ids[:length]
    return ids + [0] * (length - len(ids)), len(ids)


def require_root(root: str | Path | None, env: str, module: str) -> Path:
    """The env option ``root`` (a SILG checkout) as a path, or a clear error when it was not given."""
    if root is None:
        raise UserError(
            f"{env} needs the option root: the path of your SILG checkout with its downloaded data "
            f"(see {module} for the layout)"
        )
    return Path(root).expanduser()


def check_actions(actions: Any, num_envs: int, choices: int, env: str) -> np.ndarray:
    """``actions`` as an int array of shape (num_envs,) in 0..choices-1, or a clear error."""
    actions = np.asarray(actions)
    shape_ok = actions.shape == (num_envs,) and np.issubdtype(actions.dtype, np.integer)
    if not shape_ok or ((actions < 0) | (actions >= choices)).any():
        raise UserError(f"{env} actions must be ints in 0..{choices - 1} of shape ({num_envs},), got {actions!r}")
    return actions
