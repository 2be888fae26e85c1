"""Language Dynamics Distillation (Zhong et al., NeurIPS 2022) on text-grid environments and NetHack."""

from lit_rlseq.ldd.dynamics import DynamicsDataModule, DynamicsMetricsPlot, DynamicsModule, load_dynamics_encoder
from lit_rlseq.ldd.distill import LDDImpala
from lit_rlseq.ldd.expert import RTFMExpert
from lit_rlseq.ldd.impala import TextGridImpala
from lit_rlseq.ldd.nethack import LDDNetHackImpala, NetHackImpala
from lit_rlseq.ldd.ppo import TextGridPPO

__all__ = [
    "DynamicsDataModule",
    "DynamicsMetricsPlot",
    "DynamicsModule",
    "LDDImpala",
    "LDDNetHackImpala",
    "NetHackImpala",
    "RTFMExpert",
    "TextGridImpala",
    "TextGridPPO",
    "load_dynamics_encoder",
]
