"""Read D4RL-format HDF5 datasets (the offline-RL standard) as episodes, and import them into a store.

A D4RL file holds ``N`` transitions concatenated over episodes: ``observations [N, obs_dim]``,
``actions [N, act_dim]``, ``rewards [N]``, ``terminals [N]``, ``timeouts [N]``, optionally
``next_observations [N, obs_dim]`` and per-step ``infos/*``. An episode ends at every row where
``terminals | timeouts``.

Episode fields (``L`` transitions):

* ``obs``: ``L + 1`` rows (per state) when the file has ``next_observations`` (the episode's observations
  plus the observation after its last step); otherwise ``L`` rows, the observation before each step, because
  the final observation is not in the file.
* ``action``, ``reward``, ``terminal``, ``timeout``: ``L`` rows, dtypes as in the file.
* ``infos/<key>``: ``L`` rows for every per-step dataset under ``infos/``.

Other entries (D4RL's ``metadata/*`` group: algorithm name, policy weights) describe the dataset, not steps,
and are not read. Rows after the last terminal/timeout form a trailing partial episode; it is kept, with tag
metadata ``{"complete": false}`` (every other episode has ``{"complete": true}``), so select
``metadata={"complete": True}`` to leave it out.

``python -m lit_rlseq.rollouts.d4rl FILE STORE --env hopper-medium-v2`` imports a file from the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.rollouts.episode import Episode, EpisodeTags
from lit_rlseq.rollouts.store import RolloutStore

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
FIELD_NAMES = {"actions": "action", "rewards": "reward", "terminals": "terminal", "timeouts": "timeout"}


def read_d4rl(path: str | os.PathLike, run_id: str = "d4rl", env: str = "") -> Iterator[Episode]:
    """The episodes of a D4RL HDF5 file in file order, tagged with ``run_id`` and ``env``.

    The file is read and checked when this is called; episodes are cut from it as they are iterated. Tag
    metadata records the source file name, the episode's first row in it and whether it is complete.
    """
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError("D4RL dataset", str(path))
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path} is not a readable HDF5 file: {e}") from e
    with f:
        columns = _read_columns(f, path)
    return _split_episodes(columns, path.name, run_id, env)


def _split_episodes(columns: dict[str, np.ndarray], source: str, run_id: str, env: str) -> Iterator[Episode]:
    done = np.logical_or(columns["terminals"], columns["timeouts"])
    ends = np.flatnonzero(done) + 1
    if len(ends) == 0 or ends[-1] != len(done):
        ends = np.append(ends, len(done))
    start = 0
    for end in ends.tolist():
        complete = bool(done[end - 1])
        fields = {
            FIELD_NAMES.get(key, key): columns[key][start:end]
            for key in columns
            if key not in ("observations", "next_observations")
        }
        if "next_observations" in columns:
            fields["obs"] = np.concatenate(
                [columns["observations"][start:end], columns["next_observations"][end - 1 : end]]
            )
        else:
            fields["obs"] = columns["observations"][start:end]
        tags = EpisodeTags(
            run_id=run_id, env=env, metadata={"source": source, "first_row": start, "complete": complete}
        )
        yield Episode(fields, tags, length=end - start)
        start = end


def _read_columns(f: h5py.File, path: Path) -> dict[str, np.ndarray]:
    """Every per-step array of the file, checked for presence and equal length."""
    missing = [key for key in REQUIRED_KEYS if not isinstance(f.get(key), h5py.Dataset)]
    if missing:
        raise DataError(f"D4RL file {path} lacks dataset(s) {missing}; a D4RL file has {list(REQUIRED_KEYS)}")
    keys = list(REQUIRED_KEYS)
    if "next_observations" in f:
        keys.append("next_observations")
    if isinstance(f.get("infos"), h5py.Group):
        f["infos"].visititems(lambda name, obj: keys.append(f"infos/{name}") if isinstance(obj, h5py.Dataset) else None)
    n = f["observations"].shape[0] if f["observations"].ndim else 0
    if n == 0:
        raise DataError(f"D4RL file {path}: 'observations' is empty")
    columns = {}
    for key in keys:
        dataset = f[key]
        if dataset.ndim == 0 or dataset.shape[0] != n:
            raise DataError(
                f"D4RL file {path}: {key!r} has shape {dataset.shape} but 'observations' has {n} rows; every "
                "per-step dataset needs one row per transition"
            )
        if dataset.dtype.kind not in "biuf":
            raise DataError(f"D4RL file {path}: {key!r} has dtype {dataset.dtype}, expected a numeric array")
        columns[key] = dataset[()]
    for key in ("terminals", "timeouts"):
        if columns[key].ndim != 1:
            raise DataError(f"D4RL file {path}: {key!r} must be one flag per row, got shape {columns[key].shape}")
    if "next_observations" in columns and columns["next_observations"].shape != columns["observations"].shape:
        raise DataError(
            f"D4RL file {path}: 'next_observations' has shape {columns['next_observations'].shape}, "
            f"'observations' {columns['observations'].shape}"
        )
    return columns


def import_d4rl(
    path: str | os.PathLike, store: RolloutStore | str | os.PathLike, run_id: str, env: str
) -> int:
    """Write every episode of a D4RL file into a store (new shard); returns the number of episodes written.

    A new store gets metadata ``{"env": env}``; an existing store keeps its own metadata.
    """
    if not isinstance(store, RolloutStore):
        store = RolloutStore(store)
    metadata = None if store.path.exists() and store.schema is not None else {"env": env}
    with store.writer(metadata) as writer:
        for episode in read_d4rl(path, run_id=run_id, env=env):
            writer.append(episode)
        return writer.episodes_written


EXPORT_FIELDS = ("obs", "action", "reward", "terminal", "timeout")


def export_d4rl(store: RolloutStore | str | os.PathLike, path: str | os.PathLike, **filters: Any) -> int:
    """Write the episodes of ``store`` matching the tag ``filters`` to a D4RL-format HDF5 file at ``path``.

    Episodes need the fields ``obs`` with L + 1 rows (the final observation gives ``next_observations``),
    ``action``, ``reward``, ``terminal`` and ``timeout``. The file holds ``observations, actions, rewards,
    terminals, timeouts, next_observations`` (episodes concatenated in store order); ``read_d4rl`` reads the same
    episodes back. Returns the number of episodes written.
    """
    if not isinstance(store, RolloutStore):
        store = RolloutStore(store)
    schema = store.schema
    if schema is None:
        raise DataError(f"rollout store {store.path} holds no episodes to export")
    missing = [name for name in EXPORT_FIELDS if name not in schema]
    if missing:
        raise DataError(
            f"rollout store {store.path} lacks field(s) {missing} needed for a D4RL file (it has {sorted(schema)})"
        )
    if schema["obs"].kind != "state":
        raise DataError(
            f"rollout store {store.path}: 'obs' has one row per transition, so the final observations that "
            "'next_observations' needs are missing; only episodes recorded with L + 1 observations can be exported"
        )
    refs = store.episodes(**filters)
    if not refs:
        raise DataError(f"no episode in rollout store {store.path} matches {filters}:\n{store.describe_tags()}")
    loaded = store.load_fields(refs, list(EXPORT_FIELDS))
    columns: dict[str, list[np.ndarray]] = {key: [] for key in (*REQUIRED_KEYS, "next_observations")}
    for i in range(len(loaded)):
        fields = loaded.episode(i).fields
        columns["observations"].append(fields["obs"][:-1])
        columns["next_observations"].append(fields["obs"][1:])
        for key, name in FIELD_NAMES.items():
            columns[key].append(fields[name])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, pieces in columns.items():
            f.create_dataset(key, data=np.concatenate(pieces), compression="gzip")
    return len(refs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_rlseq.rollouts.d4rl", description="Import a D4RL HDF5 file into a rollout store."
    )
    parser.add_argument("file", help="the D4RL .hdf5 file")
    parser.add_argument("store", help="the rollout store directory (created if missing)")
    parser.add_argument("--env", required=True, help="environment / dataset name tag, e.g. hopper-medium-v2")
    parser.add_argument("--run-id", default="d4rl", help="run_id tag of the imported episodes (default: d4rl)")
    args = parser.parse_args(argv)
    try:
        count = import_d4rl(args.file, args.store, run_id=args.run_id, env=args.env)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"imported {count} episodes from {args.file} into {args.store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
