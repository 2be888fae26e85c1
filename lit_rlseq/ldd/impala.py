"""IMPALA with the txt2pi FiLM² network on text-grid environments: LDD's RTFM baseline.

Defaults are the SILG/LDD RTFM settings (see lit_rlseq.loops.impala for the learner's). The vocabulary and
the number of actions come from the data (the CLI links them), so a config only sets sizes and rates.
"""

from __future__ import annotations

from typing import Any

from lit_rlseq.errors import UserError
from lit_rlseq.loops.impala import ImpalaModule
from lit_rlseq.nn.txt2pi import Txt2PiConfig, Txt2PiPolicy


def txt2pi_config(vocab: list[str] | None, num_actions: int | None, owner: str, **sizes: Any) -> Txt2PiConfig:
    if not vocab or num_actions is None:
        raise UserError(
            f"{owner} needs the environment's vocabulary and number of actions; use data with a text-grid env "
            "(e.g. data.init_args.env: rtfm:groups_simple_stationary), which provides them"
        )
    return Txt2PiConfig(vocab_size=len(vocab), num_actions=num_actions, **sizes)


class TextGridImpala(ImpalaModule):
    def __init__(
        self,
        vocab: list[str] | None = None,
        num_actions: int | None = None,
        d_word: int = 100,
        d_text: int = 200,
        channels: tuple[int, ...] = (16, 32, 64, 64, 64),
        d_rep: int = 400,
        dedupe_text: bool = True,
        **impala: Any,
    ):
        """
        Args:
            vocab: the environment's word list (linked from the data).
            num_actions: size of the action space (linked from the data).
            d_word, d_text, channels, d_rep, dedupe_text: txt2pi sizes (see lit_rlseq.nn.txt2pi.Txt2PiConfig).
            **impala: learner settings (see lit_rlseq.loops.impala.ImpalaModule).
        """
        super().__init__(**impala)
        self.save_hyperparameters()
        self.vocab = list(vocab or [])
        config = txt2pi_config(
            vocab, num_actions, type(self).__name__,
            d_word=d_word, d_text=d_text, channels=tuple(channels), d_rep=d_rep, dedupe_text=dedupe_text,
        )
        self.policy = Txt2PiPolicy(config)
