"""Trajectory Transformer (Janner, Li, Levine 2021): offline RL as sequence modelling of discretised transitions.

    data.py        store episodes -> [obs | action | reward | value-to-go] -> tokens -> training windows
    discretize.py  quantile / uniform bins per dimension (pure functions)
    model.py       the trajectory GPT (nn.gpt.GPT + per-dimension offsets/heads + hidden value tokens)
    module.py      the LightningModule (weighted cross-entropy, AdamW, token warm-up + cosine)
    planner.py     beam-search planning, KV-cached and uncached (identical plans), batched over envs
    agents.py      the planner as an agent, and its `lightning evaluate` module
    evaluate.py    evaluation rounds in the MuJoCo env, D4RL-normalised scores, episodes recorded to a store
    bc.py          the behaviour-cloning baseline (data, module, evaluator)
    curves.py      training curves as CSV + PNG
"""

from lit_rlseq.trajectory.agents import PlanningAgent, TrajectoryPlannerEvaluator
from lit_rlseq.trajectory.bc import BCDataModule, BCEvaluator, BehaviourCloning
from lit_rlseq.trajectory.curves import TrainingCurves
from lit_rlseq.trajectory.data import TrajectoryDataModule
from lit_rlseq.trajectory.evaluate import EvaluationEpisodes
from lit_rlseq.trajectory.module import TrajectoryTransformer

__all__ = [
    "BCDataModule",
    "BCEvaluator",
    "BehaviourCloning",
    "EvaluationEpisodes",
    "PlanningAgent",
    "TrainingCurves",
    "TrajectoryDataModule",
    "TrajectoryPlannerEvaluator",
    "TrajectoryTransformer",
]
