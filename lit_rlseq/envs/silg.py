"""What the SILG benchmark's environments share in its layout: the text tokenizer its download puts in
``<root>/cache/tokenizer/tokenizer.json`` (bert-base-uncased), read with ``tokenizers``; and ``TextGridView``,
which shows a SILG env in the text-grid layout of ``lit_rlseq.envs`` (what the txt2pi policy, the text-grid
dynamics model and LDD read), with a closed vocabulary made of the tokenizer's words and the env's own symbols.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from lit_rlseq.envs.vocab import PAD, Vocabulary
from lit_rlseq.errors import UserError

LAYOUTS = ("silg", "text_grid")  # the env option ``layout``: SILG's own observation, or the text-grid view

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


def tokenizer_words(tokenizer: Any) -> list[str]:
    """The tokenizer's words by id (id 0, the padding, is ours too)."""
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    return [by_id.get(i, f"<unused_{i}>") for i in range(tokenizer.get_vocab_size())]


def text_grid_vocabulary(tokenizer: Any, symbols: list[str]) -> tuple[Vocabulary, np.ndarray]:
    """A closed vocabulary of the tokenizer's words and the env's ``symbols`` (e.g. "<class_3>"), and the map
    from tokenizer ids to its ids (tokenizer id 0, the padding, maps to our padding 0)."""
    words = tokenizer_words(tokenizer)
    vocab = Vocabulary(words[1:] + list(symbols))
    return vocab, np.array([0] + [vocab.index[w] if w != PAD else 0 for w in words[1:]], dtype=np.int64)


def text_grid_space(height: int, width: int, words: int, wiki: int, vocab_size: int, num_actions: int
                    ) -> gym.spaces.Dict:
    """The text-grid observation (one placement per cell, a one-word task and inventory), per env."""
    ids = lambda *shape: gym.spaces.Box(0, vocab_size - 1, shape, np.int64)  # noqa: E731
    lengths = lambda high, *shape: gym.spaces.Box(0, high, shape, np.int64)  # noqa: E731
    return gym.spaces.Dict({
        "name": ids(height, width, 1, words), "name_len": lengths(words, height, width, 1),
        "wiki": ids(wiki), "wiki_len": lengths(wiki), "task": ids(1), "task_len": lengths(1),
        "inv": ids(1), "inv_len": lengths(1),
        "rel_pos": gym.spaces.Box(-1.0, 1.0, (height, width, 2), np.float32),
        "valid": gym.spaces.Box(0, 1, (num_actions,), np.bool_),
    })


def text_grid_observation(name: np.ndarray, name_len: np.ndarray, wiki: np.ndarray, wiki_len: np.ndarray,
                          task: int, none: int, rel_pos: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """A batch of text-grid observations (see text_grid_space): the one-word ``task`` and the inventory ``none``;
    an empty text becomes ``none`` (every text field holds a word, see lit_rlseq.envs)."""
    n = name.shape[0]
    wiki, wiki_len = wiki.copy(), wiki_len.copy()
    empty = wiki_len == 0
    wiki[empty, 0], wiki_len[empty] = none, 1
    return {
        "name": name, "name_len": name_len, "wiki": wiki, "wiki_len": wiki_len,
        "task": np.full((n, 1), task, dtype=np.int64), "task_len": np.ones(n, dtype=np.int64),
        "inv": np.full((n, 1), none, dtype=np.int64), "inv_len": np.ones(n, dtype=np.int64),
        "rel_pos": rel_pos.copy(), "valid": valid.copy(),
    }


class TextGridView(gym.vector.VectorEnv):
    """A SILG vector env whose observations (and ``info["final_obs"]``) are converted by ``convert`` (a batch of
    the env's observations -> a batch in ``space``, the text-grid layout); ``vocab`` names its word ids."""

    def __init__(self, env: gym.vector.VectorEnv, vocab: Vocabulary, space: gym.spaces.Dict,
                 convert: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]):
        self.env, self.vocab, self._convert = env, vocab, convert
        self.metadata = env.metadata
        self.num_envs = env.num_envs
        self.single_observation_space = space
        self.observation_space = batch_space(space, env.num_envs)
        self.single_action_space, self.action_space = env.single_action_space, env.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._convert(obs), info

    def step(self, actions: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        finals = info.get("final_obs")
        if finals is not None:
            info = dict(info, final_obs=finals.copy())
            for i in np.flatnonzero(info["_final_obs"]):
                single = self._convert({k: np.asarray(v)[None] for k, v in finals[i].items()})
                info["final_obs"][i] = {k: v[0] for k, v in single.items()}
        return self._convert(obs), reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def check_layout(layout: str, env: str) -> None:
    if layout not in LAYOUTS:
        raise UserError(f"{env} option layout must be one of {list(LAYOUTS)}, got {layout!r}")
