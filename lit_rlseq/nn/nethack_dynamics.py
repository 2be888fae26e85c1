"""LDD's NetHack dynamics model: from the current terminal screen and an action, the next 24x80 character screen,
as a 256-way classification of every cell (the reference's setting: cross-entropy per character).

    encoder  = NetHackEncoder (the policy's: embedded screen [N, d_char, 24, 80] and representation [N, d_rep])
    h        = Conv1x1(embedded screen) + a learned position embedding            [N, C, 24, 80]
    γ, β     = Linear([rep, action embedding])                                    [N, C] each
    h        = relu((1 + γ) h + β), then ``blocks`` residual 3x3 blocks (the IMPALA CNN's) at full resolution
    logits   = Conv1x1(relu(h)) + c · one_hot(current character)                  [N, 256, 24, 80]

Choices where the reference is silent (its decoder is not described in our facts): the screen is decoded at
full resolution from the encoder's own per-cell embedding, so copying a cell (most cells do not change) is
easy to learn, and the action and the encoder's representation (which holds the map, the crop around the hero
and the status lines) modulate every cell through FiLM; the position embedding tells the message line, the
map and the status lines apart. The encoder is the policy's, so LDD's policy starts from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lit_rlseq.errors import UserError
from lit_rlseq.nn.copy_logit import add_copy_logit
from lit_rlseq.nn.impala_cnn import ResidualBlock
from lit_rlseq.nn.nethack import COLUMNS, ROWS, NetHackEncoder, NetHackPolicyConfig

CHARACTERS = 256  # classes per cell


@dataclass
class NetHackDynamicsConfig:
    encoder: NetHackPolicyConfig = field(default_factory=NetHackPolicyConfig)  # its num_actions: the actions
    d_action: int = 32
    channels: int = 64  # decoder width
    blocks: int = 3  # residual blocks (2 convolutions each) at full resolution
    copy_init: float = 5.0  # the copy logit's starting value (exp(5) = 148 x a fresh logit's weight)

    def __post_init__(self) -> None:
        if self.d_action < 1 or self.channels < 1 or self.blocks < 0:
            raise UserError(
                f"NetHackDynamicsConfig: d_action and channels must be positive and blocks >= 0, got "
                f"d_action={self.d_action}, channels={self.channels}, blocks={self.blocks}"
            )


class NetHackDynamics(nn.Module):
    def __init__(self, config: NetHackDynamicsConfig):
        super().__init__()
        self.config = config
        e = config.encoder
        self.encoder = NetHackEncoder(e)
        self.action_embedding = nn.Embedding(e.num_actions, config.d_action)
        self.cell_in = nn.Conv2d(e.d_char, config.channels, 1)
        self.position = nn.Parameter(torch.zeros(config.channels, ROWS, COLUMNS))
        self.film = nn.Linear(e.d_rep + config.d_action, 2 * config.channels)
        self.blocks = nn.Sequential(*(ResidualBlock(config.channels) for _ in range(config.blocks)))
        self.out = nn.Conv2d(config.channels, CHARACTERS, 1)
        self.copy_logit = nn.Parameter(torch.tensor(float(config.copy_init)))

    def forward(self, obs: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """obs [N, ...] (``tty_chars``, ``tty_colors``, ``tty_cursor``), action [N] -> logits [N, 256, 24, 80]."""
        if action.dim() != 1 or (action < 0).any() or (action >= self.config.encoder.num_actions).any():
            raise ValueError(
                f"actions must be [N] in 0..{self.config.encoder.num_actions - 1}, got shape {tuple(action.shape)}"
            )
        encoded = self.encoder(obs)
        h = self.cell_in(encoded.cells) + self.position
        gamma, beta = self.film(torch.cat([encoded.rep, self.action_embedding(action)], -1)).chunk(2, dim=-1)
        h = torch.relu((1 + gamma[:, :, None, None]) * h + beta[:, :, None, None])
        logits = self.out(torch.relu(self.blocks(h)))
        return add_copy_logit(logits, obs["tty_chars"], self.copy_logit, dim=1)
