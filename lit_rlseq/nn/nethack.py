"""The NetHack policy of LDD's NetHack baseline: encoders of the terminal's top line, its bottom two (status)
lines, the map and a crop around the hero, joined into a ``d_rep`` representation, an LSTM core, policy and
value heads. ``NetHackEncoder`` is everything before the core: LDD's NetHack dynamics model reuses it
(``lit_rlseq.nn.nethack_dynamics``), so ``policy.encoder.load_state_dict(dynamics.encoder.state_dict())``
initialises every shared weight.

Characters are *embedded*, not rendered: each of the 24x80 cells becomes the sum of a learned vector for its
character (256) and one for its colour (16). The reference renders the terminal as an image of glyph bitmaps
and convolves it; an embedding gives every (character, colour) its own learned input, which is what a first
convolution over a rendered glyph amounts to, without shipping a font or drawing 24x80 glyphs per step on a
CPU. The map (rows 1..21) and a ``crop`` x ``crop`` window centred on the cursor (the hero while the map has
focus) go through the shared IMPALA torso (``lit_rlseq.nn.impala_cnn``); the top line and the bottom lines go
through two-layer MLPs; the four outputs are joined by ``relu(Linear(.))`` into the representation (``d_rep``)
that the core reads and LDD distils. Reference sizes: LSTM 512 (the other widths are ours where the reference
is silent).

Observations (time-major ``[T, B, ...]``, see ``lit_rlseq.envs.nethack``): ``tty_chars`` uint8 [24, 80],
``tty_colors`` int8 [24, 80], ``tty_cursor`` uint8 [2]. Every action is always valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from lit_rlseq.errors import UserError
from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, State
from lit_rlseq.nn.impala_cnn import ImpalaCNN, ImpalaCNNConfig

ROWS, COLUMNS = 24, 80
MAP_ROWS = slice(1, 22)  # between the message line and the two status lines
SPACE = ord(" ")


@dataclass
class NetHackPolicyConfig:
    num_actions: int = 121  # NetHackChallenge-v0's full keyboard
    d_char: int = 32  # character + colour embedding
    d_line: int = 128  # top line and bottom lines encoders
    map_channels: tuple[int, ...] = (16, 32, 32)
    d_map: int = 256
    crop: int = 9
    crop_channels: tuple[int, ...] = (16, 32)
    d_crop: int = 128
    d_rep: int = 512  # the joined representation (the core's input; what LDD distils)
    d_core: int = 512  # LSTM (the reference's)

    def __post_init__(self) -> None:
        self.map_channels, self.crop_channels = tuple(self.map_channels), tuple(self.crop_channels)
        sizes = ("num_actions", "d_char", "d_line", "d_map", "crop", "d_crop", "d_rep", "d_core")
        bad = [f"{k}={getattr(self, k)}" for k in sizes if getattr(self, k) < 1]
        if bad or self.crop % 2 == 0:
            got = ", ".join(bad) or f"crop={self.crop}"
            raise UserError(f"NetHackPolicyConfig: sizes must be positive and crop odd, got {got}")


def crop_around(grid: torch.Tensor, cursor: torch.Tensor, size: int, fill: int) -> torch.Tensor:
    """``grid`` [N, H, W] -> the [N, size, size] windows centred on ``cursor`` [N, 2] (row, col), ``fill``
    outside the grid."""
    half = size // 2
    padded = torch.nn.functional.pad(grid, (half, half, half, half), value=fill)
    offsets = torch.arange(size, device=grid.device)
    rows = (cursor[:, 0:1].long() + offsets)[:, :, None]  # padded coordinates of the window's cells
    cols = (cursor[:, 1:2].long() + offsets)[:, None, :]
    n = torch.arange(grid.shape[0], device=grid.device)[:, None, None]
    return padded[n, rows, cols]


class LineEncoder(nn.Module):
    def __init__(self, lines: int, d_char: int, d_out: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(lines * COLUMNS * d_char, d_out), nn.ReLU(), nn.Linear(d_out, d_out), nn.ReLU()
        )

    def forward(self, cells: torch.Tensor) -> torch.Tensor:  # [N, lines, 80, d] -> [N, d_out]
        return self.mlp(cells.flatten(1))


class Encoded(NamedTuple):
    cells: torch.Tensor  # [N, d_char, 24, 80] the embedded screen (character + colour per cell)
    rep: torch.Tensor  # [N, d_rep] the representation


class NetHackEncoder(nn.Module):
    """Observations ``[N, ...]`` -> the embedded screen and the ``d_rep`` representation (the policy's core
    input). Reads ``tty_chars``, ``tty_colors`` and ``tty_cursor``; ``num_actions`` and ``d_core`` of the
    config are not used here."""

    def __init__(self, config: NetHackPolicyConfig):
        super().__init__()
        self.config = c = config
        self.char_embedding = nn.Embedding(256, c.d_char)
        self.colour_embedding = nn.Embedding(16, c.d_char)
        self.top = LineEncoder(1, c.d_char, c.d_line)
        self.bottom = LineEncoder(2, c.d_char, c.d_line)
        self.map = ImpalaCNN(ImpalaCNNConfig(c.d_char, 21, COLUMNS, c.map_channels, c.d_map))
        self.crop = ImpalaCNN(ImpalaCNNConfig(c.d_char, c.crop, c.crop, c.crop_channels, c.d_crop))
        self.fc = nn.Linear(2 * c.d_line + c.d_map + c.d_crop, c.d_rep)

    def forward(self, obs: dict[str, torch.Tensor]) -> Encoded:
        chars = obs["tty_chars"].long()
        colours = obs["tty_colors"].long().clamp(0, 15)  # NLE's colours are 0..15
        cells = self.char_embedding(chars) + self.colour_embedding(colours)  # [N, 24, 80, d]
        window = crop_around(chars, obs["tty_cursor"], self.config.crop, SPACE)
        window_colours = crop_around(colours, obs["tty_cursor"], self.config.crop, 0)
        crop = self.char_embedding(window) + self.colour_embedding(window_colours)  # [N, crop, crop, d]
        joined = torch.cat(
            [
                self.top(cells[:, :1]),
                self.bottom(cells[:, -2:]),
                self.map(cells[:, MAP_ROWS].permute(0, 3, 1, 2)),
                self.crop(crop.permute(0, 3, 1, 2)),
            ],
            dim=-1,
        )
        return Encoded(cells.permute(0, 3, 1, 2), torch.relu(self.fc(joined)))


class NetHackPolicy(ActorCritic):
    def __init__(self, config: NetHackPolicyConfig):
        super().__init__()
        self.config = config
        self.num_actions = config.num_actions
        self.encoder = NetHackEncoder(config)
        self.core = nn.LSTM(config.d_rep, config.d_core)
        self.policy_head = nn.Linear(config.d_core, config.num_actions)
        self.value_head = nn.Linear(config.d_core, 1)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """The LSTM's (h, c), each [B, d_core] (batch first, as unrolls store states)."""
        zeros = torch.zeros(batch_size, self.config.d_core, device=device)
        return zeros, zeros.clone()

    def forward(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()) -> PolicyOutput:
        return self.forward_with_rep(obs, first, state)[0]

    def forward_with_rep(self, obs: dict[str, torch.Tensor], first: torch.Tensor, state: State = ()
                         ) -> tuple[PolicyOutput, Encoded]:
        """The policy's output and the encoder's output it came from, both [T, B, ...]."""
        steps, batch = first.shape
        encoded = self.encoder({k: obs[k].flatten(0, 1) for k in ("tty_chars", "tty_colors", "tty_cursor")})
        x = encoded.rep.view(steps, batch, -1)
        h, c = (s[None] for s in (state if state else self.initial_state(batch, first.device)))
        outputs = []
        for t in range(steps):  # the state restarts where an episode starts
            keep = (~first[t]).to(x.dtype)[None, :, None]
            out, (h, c) = self.core(x[t : t + 1], (h * keep, c * keep))
            outputs.append(out)
        core = torch.cat(outputs)
        output = PolicyOutput(self.policy_head(core), self.value_head(core).squeeze(-1), (h[0], c[0]))
        return output, Encoded(*(part.unflatten(0, (steps, batch)) for part in encoded))
