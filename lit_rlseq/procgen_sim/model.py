"""The 2021 VAE environment simulator of Sharkey et al. with the frozen agent in the loop.

A training sequence is ``num_init + num_sim - 1`` frames (3 + 28 - 1 = 30): the last initialising frame is the
first simulated one. With k = 0 .. num_sim-1 the simulated steps and t = num_init - 1 + k their frame index:

    encoders   z_c ~ q(. | frames 0..num_init-1, true agent state h_t at t = num_init-1)   (context)
               z_g ~ q(. | every ``global_stride``-th frame, jittered while training)        (global)
    decoder    agent state h = MLP(z_c) (teacher forcing: the true one); env LSTM state = MLP([z_c, z_g])
               for k: from the env state decode frame t, the reward r_{t-1} and done_{t-1} that came with it
                      agent(frame, reset(h, keep = 1 - done)) -> logits, value, next h
                      action = straight-through one-hot of argmax(logits) (teacher forcing: the true a_t)
                      env state = LayerNormLSTM([action, z_g], env state)

Reward and done are those of the transition *into* the decoded frame (the env state after an action knows
whether it paid or ended the episode); the agent's state is reset softly by the predicted done, as in the
original. Sizes default to the paper's (``configs/scale/procgen_sim_paper.yaml``); the CPU configs shrink them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lit_rlseq.errors import UserError
from lit_rlseq.nn.impala_cnn import ResidualBlock
from lit_rlseq.nn.recurrent_impala import RecurrentImpala


@dataclass
class SimulatorConfig:
    num_actions: int = 15
    agent_hidden: int = 64
    latent: int = 64  # size of z_c and of z_g
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)  # 4x4 stride-2 convolutions: 64 -> 4 pixels
    encoder_lstm: int = 512
    mlp_hidden: int = 512
    env_hidden: int = 1024  # the LayerNorm-LSTM environment core
    decoder_channels: int = 128  # FC -> decoder_channels x 8 x 8 -> 3 upsampling residual blocks -> 64 x 64
    decoder_blocks: int = 3
    num_init: int = 3
    num_sim: int = 28
    global_stride: int = 4
    image_size: int = 64
    channels: int = 3

    def __post_init__(self) -> None:
        self.encoder_channels = tuple(self.encoder_channels)
        if self.num_init < 1 or self.num_sim < 1:
            raise UserError(f"SimulatorConfig needs num_init >= 1 and num_sim >= 1, got {self.num_init}, {self.num_sim}")
        if self.image_size % 2 ** len(self.encoder_channels) or self.image_size % 2 ** self.decoder_blocks:
            raise UserError(
                f"SimulatorConfig: image_size {self.image_size} must be divisible by 2^{len(self.encoder_channels)} "
                f"(encoder) and 2^{self.decoder_blocks} (decoder)"
            )

    @property
    def frames(self) -> int:
        return self.num_init + self.num_sim - 1

    @property
    def global_frames(self) -> int:
        return len(range(0, self.frames - self.global_stride + 1, self.global_stride))


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last: the August-2021 fix of the original)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class LayerNormLSTMCell(nn.Module):
    """LSTM cell with LayerNorm on the input and recurrent pre-activations and on the cell state."""

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.ih = nn.Linear(input_size, 4 * hidden, bias=False)
        self.hh = nn.Linear(hidden, 4 * hidden, bias=False)
        self.ln_ih = nn.LayerNorm(4 * hidden)
        self.ln_hh = nn.LayerNorm(4 * hidden)
        self.ln_c = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (self.ln_ih(self.ih(x)) + self.ln_hh(self.hh(h))).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(self.ln_c(c)), c


class FrameEncoder(nn.Module):
    """Frames [B, N, 3, 64, 64] in [0, 1] -> conv stack -> LSTM -> its last output [B, lstm]."""

    def __init__(self, config: SimulatorConfig):
        super().__init__()
        layers: list[nn.Module] = []
        widths = (config.channels, *config.encoder_channels)
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        side = config.image_size // 2 ** len(config.encoder_channels)
        self.lstm = nn.LSTM(widths[-1] * side * side, config.encoder_lstm, batch_first=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, n = frames.shape[:2]
        features = self.conv(frames.flatten(0, 1)).reshape(b, n, -1)
        return self.lstm(features)[0][:, -1]


def upsample_residual(channels: int) -> nn.Sequential:
    """x2 nearest upsampling, then an IMPALA residual block ``x + conv(relu(conv(relu(x))))``."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), ResidualBlock(channels))


class ObservationDecoder(nn.Module):
    def __init__(self, config: SimulatorConfig):
        super().__init__()
        self.side = config.image_size // 2 ** config.decoder_blocks
        self.channels = config.decoder_channels
        self.fc = nn.Linear(config.env_hidden, config.decoder_channels * self.side * self.side)
        self.blocks = nn.Sequential(*(upsample_residual(config.decoder_channels) for _ in range(config.decoder_blocks)))
        self.out = nn.Conv2d(config.decoder_channels, config.channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(h).reshape(-1, self.channels, self.side, self.side)
        return torch.sigmoid(self.out(torch.relu(self.blocks(x))))


def straight_through(logits: torch.Tensor) -> torch.Tensor:
    """One-hot of the argmax in the forward pass; the softmax's gradient in the backward pass."""
    probs = torch.softmax(logits, -1)
    hard = F.one_hot(probs.argmax(-1), logits.shape[-1]).to(probs.dtype)
    return hard + probs - probs.detach()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


@dataclass
class Latents:
    mu: torch.Tensor  # [B, 2 * latent]: z_c then z_g
    logvar: torch.Tensor
    z: torch.Tensor


@dataclass
class Rollout:
    """A simulated rollout of ``num_sim`` steps, [B, num_sim, ...] each."""

    obs: torch.Tensor  # frames in [0, 1], [B, S, 3, 64, 64]
    reward: torch.Tensor  # r_{t-1}
    done: torch.Tensor  # P(done_{t-1}), after the sigmoid
    hx: torch.Tensor  # the agent state fed into each step (step 0: the predicted h0)
    logits: torch.Tensor  # the agent's logits [B, S, A]
    value: torch.Tensor
    action: torch.Tensor  # straight-through one-hot actions (teacher forcing: the true ones) [B, S, A]
    env_state: torch.Tensor  # the env LSTM's h at each step [B, S, env_hidden]
    latents: Latents | None = None


class Simulator(nn.Module):
    """The generative model; ``agent`` is frozen (not a submodule: its weights are not the simulator's)."""

    def __init__(self, config: SimulatorConfig):
        super().__init__()
        self.config = config
        c = config
        self.context_encoder = FrameEncoder(c)
        self.context_head = mlp([c.encoder_lstm + c.agent_hidden, c.mlp_hidden, 2 * c.latent])
        self.global_encoder = FrameEncoder(c)
        self.global_head = mlp([c.encoder_lstm, c.mlp_hidden, 2 * c.latent])
        self.agent_h0 = mlp([c.latent, c.mlp_hidden, c.agent_hidden])
        self.env_init = mlp([2 * c.latent, c.mlp_hidden, 2 * c.env_hidden])
        self.env_cell = LayerNormLSTMCell(c.num_actions + c.latent, c.env_hidden)
        self.obs_decoder = ObservationDecoder(c)
        self.reward_decoder = mlp([c.env_hidden, c.mlp_hidden, 1])
        self.done_decoder = mlp([c.env_hidden, c.mlp_hidden, 1])

    # -- encoding ----------------------------------------------------------------------------------------
    def global_indices(self, jitter: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        offset = int(torch.randint(0, self.config.global_stride, (), generator=generator)) if jitter else 0
        return torch.arange(self.config.global_frames) * self.config.global_stride + offset

    def encode(self, frames: torch.Tensor, h0: torch.Tensor, sample: bool = True, jitter: bool = True) -> Latents:
        """frames [B, frames, 3, 64, 64] in [0, 1]; h0 [B, agent_hidden] the true state fed in at frame num_init-1."""
        c = self.config
        context = self.context_head(torch.cat([self.context_encoder(frames[:, : c.num_init]), h0], -1))
        global_ = self.global_head(self.global_encoder(frames[:, self.global_indices(jitter and self.training)]))
        (mu_c, logvar_c), (mu_g, logvar_g) = context.chunk(2, -1), global_.chunk(2, -1)
        mu, logvar = torch.cat([mu_c, mu_g], -1), torch.cat([logvar_c, logvar_g], -1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return Latents(mu, logvar, z)

    def prior(self, batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
              ) -> torch.Tensor:
        return torch.randn(batch, 2 * self.config.latent, device=device, generator=generator)

    # -- decoding: the simulation ------------------------------------------------------------------------
    def simulate(
        self,
        z: torch.Tensor,
        agent: RecurrentImpala,
        true_h0: torch.Tensor | None = None,
        true_actions: torch.Tensor | None = None,
        steps: int | None = None,
        hook: Callable[[int, str, torch.Tensor], torch.Tensor] | None = None,
    ) -> Rollout:
        """Runs the decoder from latents z [B, 2 * latent] for ``steps`` (default num_sim) steps.

        Teacher forcing: ``true_h0`` [B, H] replaces the predicted initial agent state in the loop and
        ``true_actions`` (int64 [B, steps - 1]) replace the agent's actions when stepping the env core.
        ``hook(k, name, tensor) -> tensor`` sees (and may replace) the decoded frame (``"obs"``) and the agent
        state (``"hx"``) before the agent reads them at step k: for saliency (``retain_grad``) and interventions.
        """
        c = self.config
        steps = steps or c.num_sim
        z_c, z_g = z[:, : c.latent], z[:, c.latent :]
        pred_h0 = self.agent_h0(z_c)
        h_agent = true_h0 if true_h0 is not None else pred_h0
        env_h, env_c = self.env_init(z).chunk(2, -1)
        outs: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "reward", "done", "hx", "logits", "value",
                                                                "action", "env_state")}
        for k in range(steps):
            obs = self.obs_decoder(env_h)
            reward = self.reward_decoder(env_h).squeeze(-1)
            done = torch.sigmoid(self.done_decoder(env_h).squeeze(-1))
            keep = torch.ones_like(done) if k == 0 else 1.0 - done  # step 0's state is already the fed-in one
            if hook is not None:
                obs, h_agent = hook(k, "obs", obs), hook(k, "hx", h_agent)
            logits, value, h_in, h_agent = agent.step(obs, h_agent, keep)
            action = straight_through(logits)
            if true_actions is not None and k < steps - 1:
                env_action = F.one_hot(true_actions[:, k], c.num_actions).to(action.dtype)
            else:
                env_action = action
            for name, value_ in (("obs", obs), ("reward", reward), ("done", done), ("hx", h_in), ("logits", logits),
                                 ("value", value), ("action", env_action), ("env_state", env_h)):
                outs[name].append(value_)
            if k < steps - 1:
                env_h, env_c = self.env_cell(torch.cat([env_action, z_g], -1), (env_h, env_c))
        rollout = Rollout(**{k: torch.stack(v, 1) for k, v in outs.items()})
        rollout.hx = torch.cat([pred_h0[:, None], rollout.hx[:, 1:]], 1)  # step 0: the prediction, regressed
        return rollout

    def forward(self, frames: torch.Tensor, true_h0: torch.Tensor, true_actions: torch.Tensor | None,
                agent: RecurrentImpala, sample: bool = True) -> Rollout:
        """Encode a recorded sequence and simulate it (teacher forcing when ``true_actions`` is given)."""
        latents = self.encode(frames, true_h0, sample=sample)
        rollout = self.simulate(latents.z, agent, true_h0=true_h0 if true_actions is not None else None,
                                true_actions=true_actions)
        rollout.latents = latents
        return rollout
