"""The scripted RTFM expert as a policy module, so `lightning collect` can record its demonstrations."""

from __future__ import annotations

from lit_rlseq.envs.rtfm.expert import ExpertPolicy
from lit_rlseq.loops.module import OnlineRLModule


class RTFMExpert(OnlineRLModule):
    """Plans with the true assignment (privileged access to the env); has no parameters to train."""

    def __init__(self, vocab: list[str] | None = None, num_actions: int | None = None):
        super().__init__()
        self.policy = ExpertPolicy()
