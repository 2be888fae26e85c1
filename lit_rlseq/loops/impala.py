"""The IMPALA learner (Espeholt et al., 2018): V-trace actor-critic with manual optimization.

Per learner step, on one batch of unrolls (see lit_rlseq.loops.unroll):

    loss = pg + baseline_cost * 0.5 * (v_s - V)^2 - entropy_cost * H(pi)   (+ any auxiliary losses)

each term summed over time and averaged over the batch (``reduction="time_sum_batch_mean"``, the RTFM/SILG
setting) or summed over both (``"sum"``, torchbeast's Atari setting). RMSprop (or ``optimizer="adam"``, LDD's
NetHack setting) with a learning rate that decays linearly to 0 over ``lr_decay_frames`` frames (default: over
the whole run the Trainer plans), gradient-norm clipping, rewards clipped to [-reward_clip, reward_clip].
``lr_schedule="constant"`` keeps the rate fixed.

Subclasses build the network (``self.policy``) and may add auxiliary losses by overriding ``learner_forward``
and ``auxiliary_losses``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from lit_rlseq.errors import UserError
from lit_rlseq.loops.module import OnlineRLModule, linear_decay  # noqa: F401  (linear_decay: re-exported)
from lit_rlseq.loops.unroll import Unroll
from lit_rlseq.nn.actor_critic import PolicyOutput
from lit_rlseq.rl import action_log_probs, baseline_loss, entropy, policy_gradient_loss, vtrace

Reduction = Literal["time_sum_batch_mean", "sum"]


def reduce_loss(term: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Reduces a per-step [T, B] loss term."""
    if reduction == "time_sum_batch_mean":
        return term.sum(0).mean()
    if reduction == "sum":
        return term.sum()
    raise ValueError(f"unknown reduction {reduction!r}")


class ImpalaModule(OnlineRLModule):
    def __init__(
        self,
        lr: float = 5e-4,
        rmsprop_alpha: float = 0.99,
        rmsprop_eps: float = 0.01,
        rmsprop_momentum: float = 0.0,
        lr_schedule: Literal["linear", "constant"] = "linear",
        lr_decay_frames: int | None = None,
        discount: float = 0.99,
        baseline_cost: float = 0.5,
        entropy_cost: float = 0.05,
        grad_norm_clip: float = 40.0,
        reward_clip: float | None = 1.0,
        rho_bar: float = 1.0,
        c_bar: float = 1.0,
        vtrace_lambda: float = 1.0,
        reduction: Reduction = "time_sum_batch_mean",
        optimizer: Literal["rmsprop", "adam"] = "rmsprop",
        adam_eps: float = 1e-8,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.lr = lr
        self.rmsprop_alpha = rmsprop_alpha
        self.rmsprop_eps = rmsprop_eps
        self.rmsprop_momentum = rmsprop_momentum
        self.lr_schedule = lr_schedule
        self.lr_decay_frames = lr_decay_frames
        self.discount = discount
        self.baseline_cost = baseline_cost
        self.entropy_cost = entropy_cost
        self.grad_norm_clip = grad_norm_clip
        self.reward_clip = reward_clip
        self.rho_bar = rho_bar
        self.c_bar = c_bar
        self.vtrace_lambda = vtrace_lambda
        self.reduction = reduction
        self.optimizer_name = optimizer
        self.adam_eps = adam_eps

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self):
        if self.optimizer_name == "rmsprop":
            optimizer = torch.optim.RMSprop(
                self.trainable_parameters(),
                lr=self.lr,
                alpha=self.rmsprop_alpha,
                eps=self.rmsprop_eps,
                momentum=self.rmsprop_momentum,
            )
        elif self.optimizer_name == "adam":
            optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.lr, eps=self.adam_eps)
        else:
            raise UserError(f"model.init_args.optimizer must be 'rmsprop' or 'adam', got {self.optimizer_name!r}")
        schedule = self.frame_schedule(optimizer, self.lr_schedule, self.lr_decay_frames)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- the loss ------------------------------------------------------------------------------------
    def learner_forward(self, unroll: Unroll) -> tuple[PolicyOutput, dict[str, Any]]:
        """The policy over all T+1 observations; subclasses may return extra outputs for auxiliary losses."""
        return self.policy(unroll.obs, unroll.first, unroll.initial_state), {}

    def auxiliary_losses(self, unroll: Unroll, out: PolicyOutput, extra: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Extra scalar losses added to the IMPALA loss (e.g. distillation); none by default."""
        return {}

    def impala_losses(self, unroll: Unroll, out: PolicyOutput) -> dict[str, torch.Tensor]:
        logits, values, bootstrap = out.logits[:-1], out.value[:-1], out.value[-1]
        rewards = unroll.reward
        if self.reward_clip is not None:
            rewards = rewards.clamp(-self.reward_clip, self.reward_clip)
        discounts = self.discount * (~unroll.done).to(rewards.dtype)
        targets = vtrace(
            behaviour_log_probs=action_log_probs(unroll.behaviour_logits, unroll.action),
            target_log_probs=action_log_probs(logits.detach(), unroll.action),
            rewards=rewards,
            discounts=discounts,
            values=values.detach(),
            bootstrap_value=bootstrap.detach(),
            rho_bar=self.rho_bar,
            c_bar=self.c_bar,
            lam=self.vtrace_lambda,
        )
        return {
            "pg": reduce_loss(policy_gradient_loss(logits, unroll.action, targets.pg_advantages), self.reduction),
            "baseline": reduce_loss(baseline_loss(targets.vs, values), self.reduction),
            "entropy": reduce_loss(entropy(logits), self.reduction),
        }

    def training_step(self, unroll: Unroll, batch_idx: int) -> torch.Tensor:
        out, extra = self.learner_forward(unroll)
        losses = self.impala_losses(unroll, out)
        aux = self.auxiliary_losses(unroll, out, extra)
        total = losses["pg"] + self.baseline_cost * losses["baseline"] - self.entropy_cost * losses["entropy"]
        total = total + sum(aux.values())

        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        grad_norm = torch.linalg.vector_norm(
            torch.stack([p.grad.detach().norm() for p in self.trainable_parameters() if p.grad is not None])
        )
        self.clip_gradients(optimizer, gradient_clip_val=self.grad_norm_clip, gradient_clip_algorithm="norm")
        optimizer.step()
        self.count_frames(unroll.frames)
        self.lr_schedulers().step()  # reads the frame counter, so after counting this batch
        publish = getattr(self.trainer.datamodule, "publish", None)
        if publish is not None:
            publish(self.policy)

        batch = unroll.batch_size
        self.log("loss/total", total.detach(), batch_size=batch)
        for name, value in {**losses, **aux}.items():
            self.log(f"loss/{name}", value.detach(), batch_size=batch)
        self.log("opt/grad_norm", grad_norm, batch_size=batch)
        self.log("opt/lr", optimizer.param_groups[0]["lr"], batch_size=batch)
        if unroll.policy_version >= 0:  # asynchronous actors: how many updates behind the learner they acted
            self.log("perf/policy_lag", float(self.global_step - 1 - unroll.policy_version), batch_size=batch)
        self.log_training_progress(unroll.episodes)
        return total.detach()
