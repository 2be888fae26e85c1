"""The IMPALA "deep" convolutional torso (Espeholt et al., 2018), shared by every pixel-based agent here.

Each stage is a 3x3 convolution, a 3x3 max-pool with stride 2 (padding 1, so sizes round up), and two residual
blocks ``x + conv(relu(conv(relu(x))))``. After the last stage: ReLU, flatten, Linear, ReLU.

    Procgen agent (Sharkey et al. 2021):  ImpalaCNNConfig(in_channels=3, height=64, width=64, out_features=64)
                                          3x64x64 -> 16x32x32 -> 32x16x16 -> 32x8x8 (2048) -> 64
    Atari FWP agents (Irie et al. 2021):  ImpalaCNNConfig(in_channels=4, height=84, width=84, out_features=256)
                                          4x84x84 -> 16x42x42 -> 32x21x21 -> 32x11x11 (3872) -> 256

Inputs are ``[..., C, H, W]``; uint8 pixels are scaled to [0, 1], float inputs are used as given (both in the
network's dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lit_rlseq.errors import UserError


@dataclass
class ImpalaCNNConfig:
    in_channels: int = 3
    height: int = 64
    width: int = 64
    channels: tuple[int, ...] = (16, 32, 32)  # one stage per entry
    out_features: int = 256  # size of the final Linear (0: no Linear, the flattened map is the output)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if not self.channels or min(self.channels) < 1:
            raise UserError(f"ImpalaCNNConfig.channels={self.channels} needs at least one positive stage width")
        for key in ("in_channels", "height", "width"):
            if getattr(self, key) < 1:
                raise UserError(f"ImpalaCNNConfig.{key}={getattr(self, key)} must be a positive integer")
        if self.out_features < 0:
            raise UserError(f"ImpalaCNNConfig.out_features={self.out_features} must be >= 0")

    @property
    def map_shape(self) -> tuple[int, int, int]:
        """Shape of the last stage's output map, (C, H, W)."""
        h, w = self.height, self.width
        for _ in self.channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        return self.channels[-1], h, w

    @property
    def flat_features(self) -> int:
        c, h, w = self.map_shape
        return c * h * w

    @property
    def output_size(self) -> int:
        return self.out_features or self.flat_features


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ConvStage(nn.Module):
    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0 = ResidualBlock(channels)
        self.res1 = ResidualBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(nn.Module):
    def __init__(self, config: ImpalaCNNConfig):
        super().__init__()
        self.config = config
        widths = (config.in_channels, *config.channels)
        self.stages = nn.Sequential(*(ConvStage(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.fc = nn.Linear(config.flat_features, config.out_features) if config.out_features else None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[..., C, H, W]`` -> ``[..., output_size]``."""
        expected = (self.config.in_channels, self.config.height, self.config.width)
        if pixels.dim() < 3 or tuple(pixels.shape[-3:]) != expected:
            raise ValueError(f"ImpalaCNN expects images [..., C, H, W] = [..., {expected}], got {tuple(pixels.shape)}")
        lead = pixels.shape[:-3]
        x = pixels.reshape(-1, *expected)
        dtype = self.stages[0].conv.weight.dtype  # float32 unless the network was cast (e.g. .double())
        x = x.to(dtype) / 255.0 if x.dtype == torch.uint8 else x.to(dtype)
        if x.device.type == "cpu":
            # The same numbers in channels-last layout: PyTorch's CPU convolutions run ~2x and its max-pooling ~10x
            # faster on it (measured with one thread: Atari torso forward at batch 8, 27 -> 11 ms).
            x = x.contiguous(memory_format=torch.channels_last)
        x = torch.relu(self.stages(x)).flatten(1)
        if self.fc is not None:
            x = torch.relu(self.fc(x))
        return x.reshape(*lead, x.shape[-1])
