"""Videos of recorded episodes for a person to watch: frames from a store field written as an animated GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_rlseq.errors import DataError
from lit_rlseq.rollouts.store import EpisodeRef, RolloutStore


def to_hwc(frames: np.ndarray) -> np.ndarray:
    """uint8 frames [T, 3, H, W] or [T, H, W, 3] (or float in [0, 1]) -> uint8 [T, H, W, 3]."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    if frames.ndim == 4 and frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
        frames = frames.transpose(0, 2, 3, 1)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise DataError(f"frames must be [T, 3, H, W] or [T, H, W, 3] images, got shape {frames.shape}")
    return frames


def write_gif(frames: np.ndarray, path: str | Path, fps: int = 15, scale: int = 2) -> Path:
    """Writes frames (see ``to_hwc``) as a looping GIF, each pixel enlarged ``scale`` times."""
    import imageio.v2 as imageio

    frames = to_hwc(frames)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    return path


def write_episodes_gif(store: RolloutStore, refs: list[EpisodeRef], key: str, path: str | Path, fps: int = 15) -> Path:
    """The frames ``obs/<key>`` of the given episodes one after another, a black frame between episodes."""
    name = f"obs/{key}"
    if store.schema is None or name not in store.schema:
        raise DataError(f"store {store.path} has no field {name!r} to make a video of; its fields are "
                        f"{sorted(store.schema or {})}")
    loaded = store.load_fields(refs, [name])
    parts = []
    for i in range(len(refs)):
        frames = to_hwc(loaded.episode(i).fields[name])
        parts += [frames, np.zeros_like(frames[:1])]
    return write_gif(np.concatenate(parts[:-1]), path, fps=fps)
