"""RL loops on Lightning's public API: collectors, the online DataModule, evaluation, the IMPALA and PPO learners."""

from lit_rlseq.loops.collect import CollectDataModule
from lit_rlseq.loops.collector import Collector, ScriptedPolicy
from lit_rlseq.loops.curves import LearningCurve
from lit_rlseq.loops.impala import ImpalaModule
from lit_rlseq.loops.module import OnlineRLModule
from lit_rlseq.loops.online import OnlineDataModule
from lit_rlseq.loops.ppo import MLPPPO, PPOModule
from lit_rlseq.loops.unroll import EpisodeStats, Unroll

__all__ = [
    "CollectDataModule",
    "Collector",
    "EpisodeStats",
    "ImpalaModule",
    "LearningCurve",
    "MLPPPO",
    "OnlineDataModule",
    "OnlineRLModule",
    "PPOModule",
    "ScriptedPolicy",
    "Unroll",
]
