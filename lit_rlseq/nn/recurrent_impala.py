"""The recurrent IMPALA agent of the Procgen generative-simulator study (Sharkey et al., 2021).

    rgb uint8 [3, 64, 64] -> IMPALA CNN (16-32-32) -> ReLU -> Linear 64 -> ReLU -> GRU 64 -> policy Linear(64 -> A)
                                                                                           -> value  Linear(64 -> 1)

The GRU has a **trainable initial hidden state** h0 (init N(0, 0.1^2)). At an episode start (``first``) the
state fed into the GRU is replaced: ``h_in = keep * h + (1 - keep) * h0`` with ``keep = 1 - first``. The
simulator of lit_rlseq.procgen_sim calls ``step`` with a *soft* ``keep`` (1 - its predicted done), as the
original did.

The original's quirk: it wrote h0 into the state after ``done`` but then multiplied the state by (1 - done)
inside the GRU step, so every episode in fact started from zeros and h0 never trained. ``reset_state``
chooses: ``"trainable"`` (default here: the design the paper describes, h0 is used and learns) or ``"zeros"``
(the original's effective behaviour: ``h_in = keep * h``).

``forward`` follows lit_rlseq.nn.actor_critic (time-major, state before obs 0, resets at ``first``) and also
returns the state fed into every step as ``PolicyOutput.extras["hx"]`` ``[T, B, H]``, which the collector
records (the simulator learns to reproduce it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from lit_rlseq.errors import UserError
from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, State
from lit_rlseq.nn.impala_cnn import ImpalaCNN, ImpalaCNNConfig


@dataclass
class RecurrentImpalaConfig:
    num_actions: int = 15
    in_channels: int = 3
    height: int = 64
    width: int = 64
    channels: tuple[int, ...] = (16, 32, 32)
    hidden: int = 64  # the Linear after the CNN and the GRU
    initial_state_std: float = 0.1
    reset_state: Literal["trainable", "zeros"] = "trainable"
    obs_key: str = "rgb"

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if self.reset_state not in ("trainable", "zeros"):
            raise UserError(f"RecurrentImpalaConfig.reset_state must be 'trainable' or 'zeros', got {self.reset_state!r}")
        if self.num_actions < 1 or self.hidden < 1:
            raise UserError(f"RecurrentImpalaConfig needs num_actions >= 1 and hidden >= 1, got {self}")


class RecurrentImpala(ActorCritic):
    def __init__(self, config: RecurrentImpalaConfig):
        super().__init__()
        self.config = config
        self.num_actions = config.num_actions
        self.cnn = ImpalaCNN(ImpalaCNNConfig(config.in_channels, config.height, config.width, config.channels,
                                             out_features=config.hidden))
        self.gru = nn.GRUCell(config.hidden, config.hidden)
        self.h0 = nn.Parameter(torch.randn(config.hidden) * config.initial_state_std)
        self.policy_head = nn.Linear(config.hidden, config.num_actions)
        self.value_head = nn.Linear(config.hidden, 1)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.zeros_(self.policy_head.bias)
        nn.init.orthogonal_(self.value_head.weight, gain=1.0)
        nn.init.zeros_(self.value_head.bias)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        return (self.h0.detach().to(device).expand(batch_size, -1).clone(),)

    def reset(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The state fed into the GRU: ``keep`` [B] is 1 to continue, 0 at an episode start (or in between)."""
        keep = keep.to(h.dtype).unsqueeze(-1)
        if self.config.reset_state == "zeros":
            return keep * h
        return keep * h + (1 - keep) * self.h0

    def step(self, pixels: torch.Tensor, h: torch.Tensor, keep: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for a batch: pixels [B, 3, H, W] (uint8, or float in [0, 1]), state h [B, H], keep [B].

        Returns (logits [B, A], value [B], the state fed in [B, H], the next state [B, H]).
        """
        h_in = self.reset(h, keep)
        h_next = self.gru(self.cnn(pixels), h_in)
        return self.policy_head(h_next), self.value_head(h_next).squeeze(-1), h_in, h_next

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        pixels = obs[self.config.obs_key]
        steps, batch = first.shape
        features = self.cnn(pixels)  # [T, B, H]: the CNN runs on all steps at once
        h = state[0] if state else self.initial_state(batch, pixels.device)[0]
        keep = (~first.bool()).to(features.dtype)
        outputs, fed = [], []
        for t in range(steps):
            h_in = self.reset(h, keep[t])
            h = self.gru(features[t], h_in)
            fed.append(h_in)
            outputs.append(h)
        hidden = torch.stack(outputs)
        return PolicyOutput(self.policy_head(hidden), self.value_head(hidden).squeeze(-1), (h,),
                            extras={"hx": torch.stack(fed)})
