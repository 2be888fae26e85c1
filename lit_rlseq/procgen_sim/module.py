"""The simulator's LightningModule: the frozen agent, the reference's losses and loss scales, Adam.

Losses (mean squared errors, each scaled as in the reference): observations x1000, agent hidden states x1,
reward x0.01, done x0.1 (on the sigmoid output), action log-probabilities x1e-5, and the standard Gaussian
KL of [z_c, z_g] x1. Steps after the episode's end are masked: the recorded episodes of our store end at their
``done`` (the original's continuous recordings ran on into the next episode, where it masked only the hidden
state and log-probability terms). Reward and done are those of the transition into each simulated frame, so
they count on the episode's last transition too. Training uses teacher forcing (true initial agent state and
true actions); the predicted initial state is still regressed to the true one.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.nn.recurrent_impala import RecurrentImpala, RecurrentImpalaConfig
from lit_rlseq.procgen_sim.model import Rollout, Simulator, SimulatorConfig, gaussian_kl

AGENT_COMMAND = "lightning fit --config configs/procgen_agent.yaml"


def load_agent(path: str | Path, config: RecurrentImpalaConfig) -> RecurrentImpala:
    """The ``policy`` of an agent checkpoint (a Lightning checkpoint of the PPO run), frozen, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError("agent checkpoint", str(path), produce_with=AGENT_COMMAND)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataError(f"{path} is not a Lightning checkpoint (no 'state_dict'); give the agent run's .ckpt file")
    weights = {k.removeprefix("policy."): v for k, v in checkpoint["state_dict"].items() if k.startswith("policy.")}
    if not weights:
        raise DataError(f"{path} holds no 'policy.*' weights: is it the checkpoint of a procgen agent run?")
    agent = RecurrentImpala(config)
    expected = agent.state_dict()
    wrong = [
        f"{k}: checkpoint {tuple(weights[k].shape) if k in weights else 'missing'}, simulator {tuple(v.shape)}"
        for k, v in expected.items() if k not in weights or weights[k].shape != v.shape
    ]
    extra = sorted(set(weights) - set(expected))
    if wrong or extra:
        raise DataError(
            f"the agent in {path} does not match the simulator's agent sizes {config}:\n  "
            + "\n  ".join(wrong[:6] + [f"unexpected {k}" for k in extra[:6]])
            + "\n  set model.init_args.agent_* to the agent run's sizes"
        )
    agent.load_state_dict(weights)
    agent.requires_grad_(False)
    return agent.eval()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B, S] over the True entries of ``mask`` [B, S] (0 when there are none)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def simulator_losses(rollout: Rollout, batch: dict[str, torch.Tensor], num_init: int) -> dict[str, torch.Tensor]:
    """Unscaled losses of a rollout simulated from ``batch`` (see lit_rlseq.procgen_sim.data)."""
    k, steps = num_init - 1, rollout.obs.shape[1]
    here = slice(k, k + steps)  # the simulated frames and the steps taken from them
    before = slice(k - 1, k - 1 + steps)  # the transitions into them (reward, done)
    mask, mask_before = batch["mask"][:, here], batch["mask"][:, before]
    log_probs = torch.log_softmax(rollout.logits, -1)
    losses = {
        "obs": masked_mean((rollout.obs - batch["frames"][:, here]).pow(2).mean((2, 3, 4)), mask),
        "hx": masked_mean((rollout.hx - batch["hx"][:, here]).pow(2).mean(-1), mask),
        "reward": masked_mean((rollout.reward - batch["reward"][:, before]).pow(2), mask_before),
        "done": masked_mean((rollout.done - batch["done"][:, before]).pow(2), mask_before),
        "act_log_probs": masked_mean((log_probs - batch["log_probs"][:, here]).pow(2).mean(-1), mask),
    }
    if rollout.latents is not None:
        losses["kl"] = gaussian_kl(rollout.latents.mu, rollout.latents.logvar).mean()
    return losses


class SimulatorModule(L.LightningModule):
    def __init__(
        self,
        agent_checkpoint: str,
        num_actions: int = 15,
        agent_hidden: int = 64,
        agent_channels: tuple[int, ...] = (16, 32, 32),
        agent_reset_state: str = "trainable",
        latent: int = 64,
        encoder_channels: tuple[int, ...] = (32, 64, 128, 256),
        encoder_lstm: int = 512,
        mlp_hidden: int = 512,
        env_hidden: int = 1024,
        decoder_channels: int = 128,
        decoder_blocks: int = 3,
        num_init: int = 3,
        num_sim: int = 28,
        global_stride: int = 4,
        loss_scale_obs: float = 1000.0,
        loss_scale_hx: float = 1.0,
        loss_scale_reward: float = 0.01,
        loss_scale_done: float = 0.1,
        loss_scale_act_log_probs: float = 1e-5,
        loss_scale_kl: float = 1.0,
        lr: float = 1e-4,
        grad_clip: float = 0.001,
    ):
        """
        Args:
            agent_checkpoint: the trained agent's checkpoint (``lightning fit --config configs/procgen_agent.yaml``).
            num_actions, agent_hidden, agent_channels, agent_reset_state: the agent's sizes (must match it).
            latent ... global_stride: the simulator's sizes (see lit_rlseq.procgen_sim.model.SimulatorConfig).
            loss_scale_*: the reference's loss scales.
            lr: Adam's learning rate; grad_clip: gradient-norm clip (the reference's 0.001).
        """
        super().__init__()
        self.save_hyperparameters()
        if num_init < 2:
            raise UserError(f"model.init_args.num_init must be >= 2 (the reward into the first simulated frame), got {num_init}")
        self.agent_config = RecurrentImpalaConfig(num_actions=num_actions, hidden=agent_hidden,
                                                  channels=tuple(agent_channels), reset_state=agent_reset_state)
        self.agent = load_agent(agent_checkpoint, self.agent_config)
        self.config = SimulatorConfig(
            num_actions=num_actions, agent_hidden=agent_hidden, latent=latent, encoder_channels=tuple(encoder_channels),
            encoder_lstm=encoder_lstm, mlp_hidden=mlp_hidden, env_hidden=env_hidden, decoder_channels=decoder_channels,
            decoder_blocks=decoder_blocks, num_init=num_init, num_sim=num_sim, global_stride=global_stride,
        )
        self.simulator = Simulator(self.config)
        self.scales = {"obs": loss_scale_obs, "hx": loss_scale_hx, "reward": loss_scale_reward,
                       "done": loss_scale_done, "act_log_probs": loss_scale_act_log_probs, "kl": loss_scale_kl}
        self.lr, self.grad_clip = lr, grad_clip

    def train(self, mode: bool = True) -> SimulatorModule:
        super().train(mode)
        self.agent.eval()  # frozen: always in inference mode
        return self

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        hidden = getattr(dm, "agent_hidden", self.config.agent_hidden)
        if hidden != self.config.agent_hidden:
            raise DataError(
                f"the store {dm.path} holds hidden states of {hidden} dimensions but the agent has "
                f"{self.config.agent_hidden}: record the episodes with this agent (configs/procgen_collect.yaml)"
            )
        window = dm.window if dm is not None else self.config.frames
        if window != self.config.frames:
            raise UserError(
                f"the data's windows have {window} steps but the model simulates num_init + num_sim - 1 = "
                f"{self.config.frames}; give data and model the same num_init and num_sim"
            )

    def simulate_batch(self, batch: dict[str, torch.Tensor], teacher_forcing: bool = True,
                       sample: bool = True) -> Rollout:
        k, steps = self.config.num_init - 1, self.config.num_sim
        actions = batch["action"][:, k : k + steps - 1] if teacher_forcing else None
        return self.simulator(batch["frames"], batch["hx"][:, k], actions, self.agent, sample=sample)

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        rollout = self.simulate_batch(batch, teacher_forcing=True, sample=stage == "train")
        losses = simulator_losses(rollout, batch, self.config.num_init)
        total = sum(self.scales[name] * value for name, value in losses.items())
        size = len(batch["frames"])
        self.log(f"{stage}/loss", total, prog_bar=True, batch_size=size)
        for name, value in losses.items():
            self.log(f"{stage}/{name}", value, batch_size=size)
        if stage == "val":
            k, steps = self.config.num_init - 1, self.config.num_sim
            mask = batch["mask"][:, k : k + steps]
            same = (rollout.logits.argmax(-1) == batch["action"][:, k : k + steps]).float()
            self.log("val/action_agreement_teacher_forced", (same * mask).sum() / mask.sum().clamp(min=1),
                     batch_size=size)
        return total

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.simulator.parameters(), lr=self.lr)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        torch.nn.utils.clip_grad_norm_(self.simulator.parameters(), self.grad_clip)
