"""Rollouts: the episode schema and tags, the HDF5 rollout store, the D4RL reader and the window DataModule.

This layer knows no models and no environments: everything that records or trains on episodes goes through it.

Names are imported from their modules on first use: processes that only write or read the store do not pay
for importing Lightning (about 4 s), and ``python -m lit_rlseq.rollouts.store`` / ``.d4rl`` run their module
without it having been imported already.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lit_rlseq.rollouts.d4rl import export_d4rl, import_d4rl, read_d4rl
    from lit_rlseq.rollouts.datamodule import RolloutDataModule, WindowDataset, split_episodes
    from lit_rlseq.rollouts.episode import Episode, EpisodeTags, FieldSpec
    from lit_rlseq.rollouts.store import DamagedShardError, EpisodeRef, LoadedEpisodes, RolloutStore, RolloutWriter

_MODULE_OF = {
    "Episode": "episode",
    "EpisodeTags": "episode",
    "FieldSpec": "episode",
    "DamagedShardError": "store",
    "EpisodeRef": "store",
    "LoadedEpisodes": "store",
    "RolloutStore": "store",
    "RolloutWriter": "store",
    "read_d4rl": "d4rl",
    "import_d4rl": "d4rl",
    "export_d4rl": "d4rl",
    "RolloutDataModule": "datamodule",
    "WindowDataset": "datamodule",
    "split_episodes": "datamodule",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return __all__
