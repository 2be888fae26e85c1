"""Recurrent Fast Weight Programmers on Atari (Irie, Schlag, Csordás, Schmidhuber, NeurIPS 2021)."""

from lit_rlseq.fwp.agent import CORES, AtariAgent, AtariAgentConfig
from lit_rlseq.fwp.module import FWPAtari

__all__ = ["CORES", "AtariAgent", "AtariAgentConfig", "FWPAtari"]
