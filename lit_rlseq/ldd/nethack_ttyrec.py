"""NetHack games the user has as ttyrec files -> demonstrations in a rollout store, for LDD's NetHack dynamics
model (the reference trained it on human games; none are shipped or downloaded here).

    lightning import_ttyrecs --store runs/ldd_nethack/demos path/to/*.ttyrec3.bz2
    lightning fit --config configs/ldd_nethack_dynamics.yaml --data.init_args.select='{run_id: ttyrec}'

The files are read with NLE's own ttyrec converter (``nle._pyconverter``, what ``nle.dataset`` uses): ttyrec
version 3, bzip2-compressed, which records the key pressed after every frame (NLE writes them with its
``savedir`` / ``save_ttyrec_every`` options; the NLD-AA dataset is in this format). Each file is one episode:
frame t's screen (characters, colours, cursor) is observation t and the key pressed on it is action t, as an
index into ``NetHackChallenge-v0``'s 121 actions (a few actions share a key: a ttyrec cannot tell them apart, so
such a key becomes the first of them); the in-game score's differences are the rewards. The last frame
is the final observation: the key pressed on it has no recorded outcome, so it is not a transition. A key that
is not one of the env's actions, a missing or unreadable file, or a file of fewer than two frames is an error
naming the file (nothing is skipped).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from lit_rlseq.envs.nethack import COLUMNS, ROWS, NetHackVectorEnv
from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore

TTYREC_VERSION = 3
CHUNK = 4096  # frames converted per call
PRODUCE_WITH = "NLE's recorder (gym.make(<NetHack task>, savedir=..., save_ttyrec_every=1)) or the NLD-AA dataset"


def env_keys(env_id: str = "nethack") -> tuple[int, ...]:
    """The key code of each action of a NetHack env id (action i presses ``keys[i]``)."""
    from lit_rlseq.envs.registry import make_vector_env

    env = make_vector_env(env_id, num_envs=1)
    if not isinstance(env, NetHackVectorEnv):
        env.close()
        raise UserError(f"{env_id!r} is not a NetHack env: ttyrec games are NetHack games (use nethack[:<task>])")
    keys = tuple(int(key) for key in env.envs[0].unwrapped.actions)
    env.close()
    return keys


def read_ttyrec(path: str | Path, keys: tuple[int, ...]) -> dict[str, np.ndarray]:
    """One ttyrec (version 3) file as episode fields: ``obs/tty_chars``, ``obs/tty_colors``, ``obs/tty_cursor``
    (L+1 rows), ``action`` and ``reward`` (L rows)."""
    from nle import _pyconverter

    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError("ttyrec file", str(path), produce_with=PRODUCE_WITH)
    converter = _pyconverter.Converter(ROWS, COLUMNS, TTYREC_VERSION)
    try:
        converter.load_ttyrec(str(path))
    except (RuntimeError, OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable ttyrec file ({type(e).__name__}: {e}); expected a bzip2 ttyrec "
                        f"of version {TTYREC_VERSION} from {PRODUCE_WITH}") from e
    parts: list[dict[str, np.ndarray]] = []
    while True:
        buffers = {
            "chars": np.zeros((CHUNK, ROWS, COLUMNS), dtype=np.uint8),
            "colors": np.zeros((CHUNK, ROWS, COLUMNS), dtype=np.int8),
            "cursor": np.zeros((CHUNK, 2), dtype=np.int16),
            "time": np.zeros(CHUNK, dtype=np.int64),
            "key": np.zeros(CHUNK, dtype=np.uint8),
            "score": np.zeros(CHUNK, dtype=np.int32),
        }
        try:
            remaining = converter.convert(*buffers.values())
        except (RuntimeError, ValueError) as e:
            raise DataError(f"{path}: the ttyrec could not be decoded ({type(e).__name__}: {e})") from e
        filled = CHUNK - remaining
        parts.append({k: v[:filled] for k, v in buffers.items()})
        if remaining > 0:
            break
    frames = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    length = len(frames["key"]) - 1
    if length < 1:
        raise DataError(f"{path} holds {length + 1} frame(s): a demonstration needs at least two (one transition)")
    index: dict[int, int] = {}
    for i, key in enumerate(keys):  # a key some actions share (aliases) maps to the first of them
        index.setdefault(key, i)
    actions = np.empty(length, dtype=np.int64)
    for t, key in enumerate(frames["key"][:-1].tolist()):
        if key not in index:
            raise DataError(f"{path}: frame {t} was answered with key {key} ({chr(key)!r}), which is not one of the "
                            f"env's {len(keys)} actions")
        actions[t] = index[key]
    cursor = frames["cursor"]
    if (cursor < 0).any() or (cursor[:, 0] >= ROWS).any() or (cursor[:, 1] >= COLUMNS).any():
        raise DataError(f"{path}: a cursor position lies outside the {ROWS}x{COLUMNS} terminal")
    return {
        "obs/tty_chars": frames["chars"],
        "obs/tty_colors": frames["colors"],
        "obs/tty_cursor": cursor.astype(np.uint8),
        "action": actions,
        "reward": np.diff(frames["score"]).astype(np.float32),
    }


def import_ttyrecs(paths: list[str | Path], store: str | Path, run_id: str = "ttyrec", env: str = "nethack",
                   agent: str = "ttyrec") -> int:
    """Appends one episode per ttyrec file to the store (metadata ``env`` as the dynamics data expects);
    returns the number of transitions written. Every file is read before anything is written."""
    if not paths:
        raise UserError("import_ttyrecs: give at least one ttyrec file")
    keys = env_keys(env)
    episodes = [read_ttyrec(path, keys) for path in paths]
    metadata: dict[str, Any] = {"env": env, "env_kwargs": {}}
    with RolloutStore(store).writer(metadata) as writer:
        for path, fields in zip(paths, episodes):
            tags = EpisodeTags(run_id=run_id, env=env, agent=agent, metadata={"source": str(path), "success": None})
            writer.append(Episode(fields, tags))
    return sum(len(fields["action"]) for fields in episodes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lightning import_ttyrecs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, exit_on_error=False)
    parser.add_argument("--store", required=True, help="rollout store to append to (created if missing)")
    parser.add_argument("--run_id", default="ttyrec", help="tag of the imported episodes")
    parser.add_argument("--env", default="nethack", help="the NetHack env id whose actions the keys map to")
    parser.add_argument("ttyrecs", nargs="+", help="ttyrec (version 3, .bz2) files, one game each")
    args = parser.parse_args(argv)
    steps = import_ttyrecs(args.ttyrecs, args.store, args.run_id, args.env)
    print(f"import_ttyrecs: {args.store} gained {len(args.ttyrecs)} episodes ({steps} transitions) of run "
          f"{args.run_id!r}")
