"""Small synthetic offline datasets in a rollout store, in the layout the Trajectory Transformer reads."""

from pathlib import Path

import numpy as np

from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore


def write_synthetic_store(
    path: Path, episodes: int = 6, obs_dim: int = 3, act_dim: int = 2, seed: int = 0, lengths=None,
    run_id: str = "synthetic", partition: str = "",
) -> Path:
    """Random-walk episodes: obs (L + 1 rows), action, reward, terminal, timeout; odd episodes time out."""
    rng = np.random.default_rng(seed)
    with RolloutStore(path) as store, store.writer() as writer:
        for i in range(episodes):
            length = lengths[i] if lengths is not None else int(rng.integers(12, 30))
            obs = np.cumsum(rng.normal(size=(length + 1, obs_dim)), axis=0).astype(np.float32)
            terminal = np.zeros(length, dtype=bool)
            timeout = np.zeros(length, dtype=bool)
            (timeout if i % 2 else terminal)[-1] = True
            fields = {
                "obs": obs,
                "action": rng.uniform(-1, 1, size=(length, act_dim)).astype(np.float32),
                "reward": rng.normal(1.0, 0.5, size=length).astype(np.float32),
                "terminal": terminal,
                "timeout": timeout,
            }
            writer.append(Episode(fields, EpisodeTags(run_id=run_id, partition=partition, env="synthetic", seed=i)))
    return path
