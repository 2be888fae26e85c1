"""The Atari agent of the FWP paper: IMPALA deep torso, clipped reward, a recurrent core, policy and value heads.

    pixels uint8 [T, B, 4, 84, 84] -> ImpalaCNN (16-32-32, Linear 3872 -> 256, ReLU)
    concat clip(last_reward, -1, 1)  -> 257
    core: feedforward | lstm (256) | lt | delta | rdn | delta_rnn (FWP stack, d_model 128)
    heads: Linear(core -> num_actions) logits, Linear(core -> 1) value

The last action is not an input (as in the reference). Sampling happens in the collector (argmax in evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, State
from lit_rlseq.nn.fwp import RULE_NAMES, FeedforwardCore, FWPCore, FWPCoreConfig, LSTMCore
from lit_rlseq.nn.impala_cnn import ImpalaCNN, ImpalaCNNConfig

CORES = ("feedforward", "lstm", *RULE_NAMES)


@dataclass
class AtariAgentConfig:
    num_actions: int
    core: str = "rdn"
    torso: ImpalaCNNConfig = field(default_factory=lambda: ImpalaCNNConfig(in_channels=4, height=84, width=84,
                                                                          out_features=256))
    lstm_hidden: int = 256
    fwp: FWPCoreConfig = field(default_factory=FWPCoreConfig)  # its rule and d_in are set from core / torso
    reward_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.core not in CORES:
            raise ValueError(f"AtariAgentConfig.core={self.core!r} is not one of {CORES}")


class AtariAgent(ActorCritic):
    def __init__(self, config: AtariAgentConfig):
        super().__init__()
        self.config = config
        self.num_actions = config.num_actions
        self.torso = ImpalaCNN(config.torso)
        d_in = config.torso.output_size + 1
        if config.core == "feedforward":
            self.core = FeedforwardCore(d_in)
        elif config.core == "lstm":
            self.core = LSTMCore(d_in, config.lstm_hidden)
        else:
            fwp = FWPCoreConfig(**{**vars(config.fwp), "rule": config.core, "d_in": d_in})
            self.core = FWPCore(fwp)
        self.policy_head = nn.Linear(self.core.output_size, config.num_actions)
        self.value_head = nn.Linear(self.core.output_size, 1)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        return self.core.initial_state(batch_size, device)

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        pixels = obs["pixels"]
        features = self.torso(pixels)
        reward = obs["last_reward"].to(features.dtype).clamp(-self.config.reward_clip, self.config.reward_clip)
        x = torch.cat([features, reward[..., None]], -1)
        y, state = self.core(x, first, tuple(state))
        return PolicyOutput(self.policy_head(y), self.value_head(y)[..., 0], state)
