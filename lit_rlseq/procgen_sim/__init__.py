"""The Procgen generative simulator (Sharkey et al., 2021): a recurrent PPO agent, recordings of it with its
hidden states, a VAE simulator with the frozen agent in the loop, and the analyses built on them.

    bin/procgen-sim                      the whole pipeline at a small scale (see lit_rlseq.procgen_sim.pipeline)
    configs/procgen_agent.yaml           train the agent (recurrent PPO)
    configs/procgen_collect.yaml         record episodes with hidden states
    configs/procgen_sim.yaml             train the simulator
"""

from lit_rlseq.procgen_sim.agent import ProcgenAgent
from lit_rlseq.procgen_sim.data import SimulatorDataModule
from lit_rlseq.procgen_sim.model import Simulator, SimulatorConfig
from lit_rlseq.procgen_sim.module import SimulatorModule

__all__ = ["ProcgenAgent", "Simulator", "SimulatorConfig", "SimulatorDataModule", "SimulatorModule"]
