"""Trajectory Transformer (Janner, Li, Levine 2021): offline RL as sequence modelling of discretised transitions.

    data.py        store episodes -> [obs | action | reward | value-to-go] -> tokens -> training windows
    discretize.py  quantile / uniform bins per dimension (pure functions)
    model.py       the trajectory GPT (nn.gpt.GPT + per-dimension offsets/heads + hidden value tokens)
    module.py      the LightningModule (weighted cross-entropy, AdamW, token warm-up + cosine)
"""

from lit_rlseq.trajectory.data import TrajectoryDataModule
from lit_rlseq.trajectory.module import TrajectoryTransformer

__all__ = ["TrajectoryDataModule", "TrajectoryTransformer"]
