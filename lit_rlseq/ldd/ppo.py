"""PPO with the txt2pi FiLM² network on text-grid environments (the toy env, RTFM): the PPO counterpart of
``TextGridImpala``. The vocabulary and the number of actions come from the data (the CLI links them)."""

from __future__ import annotations

from typing import Any

from lit_rlseq.ldd.impala import txt2pi_config
from lit_rlseq.loops.ppo import PPOModule
from lit_rlseq.nn.txt2pi import Txt2PiPolicy


class TextGridPPO(PPOModule):
    def __init__(
        self,
        vocab: list[str] | None = None,
        num_actions: int | None = None,
        d_word: int = 100,
        d_text: int = 200,
        channels: tuple[int, ...] = (16, 32, 64, 64, 64),
        d_rep: int = 400,
        dedupe_text: bool = True,
        **ppo: Any,
    ):
        """
        Args:
            vocab: the environment's word list (linked from the data).
            num_actions: size of the action space (linked from the data).
            d_word, d_text, channels, d_rep, dedupe_text: txt2pi sizes (see lit_rlseq.nn.txt2pi.Txt2PiConfig).
            **ppo: learner settings (see lit_rlseq.loops.ppo.PPOModule).
        """
        super().__init__(**ppo)
        self.save_hyperparameters()
        self.vocab = list(vocab or [])
        config = txt2pi_config(
            vocab, num_actions, type(self).__name__,
            d_word=d_word, d_text=d_text, channels=tuple(channels), d_rep=d_rep, dedupe_text=dedupe_text,
        )
        self.policy = Txt2PiPolicy(config)
