"""The PPO learner (Schulman et al., 2017): GAE, the clipped objective, minibatch epochs; any policy network.

Per collected batch (one unroll of B columns x T steps, see lit_rlseq.loops.unroll):

1. One forward pass without gradients over all T+1 observations gives the values V(x_0..x_T); GAE(gamma,
   lambda) turns them and the rewards into advantages and returns. The behaviour log-probabilities come from
   the recorded distribution parameters (``behaviour_logits``) and actions, so they are exactly those of the
   policy that acted.
2. ``ppo_epochs`` passes over the batch, each split at random into ``num_minibatches`` minibatches; one Adam
   step per minibatch on

       loss = ppo_clip_loss + value_cost * ppo_value_loss - entropy_cost * entropy   (+ auxiliary losses)

   each term averaged over the minibatch, advantages normalised per minibatch, gradients clipped by norm.
3. The frame counter, the learning rate (constant or linear to 0 over frames), the observation normalisers
   inside the policy (``lit_rlseq.nn.normalize.ObservationNormalizer``, updated from this batch's observations
   after the update, with statistics summed over DDP ranks) and, with asynchronous actors, the published
   weights are updated.

Minibatches: a feedforward policy (empty recurrent state) is split into single transitions (T x B of them), as
CleanRL does; a recurrent one into whole columns, each re-run over its full time sequence from the unroll's
initial state, resetting at ``first`` (``minibatch_split`` forces either). Every DDP rank does the same number
of optimizer steps (``ppo_epochs x num_minibatches`` per batch; early stopping on ``target_kl`` is decided on
the KL averaged over ranks).

Code defaults are CleanRL's MuJoCo settings (``ppo_continuous_action.py``). Reward normalisation is the
data's (``OnlineDataModule(normalize_reward=True)``): it needs each env's reward stream in order, which only
the collector sees. A time limit ends an episode without bootstrapping (as in CleanRL and IMPALA here).

Subclasses build the network (``self.policy``) and may add auxiliary losses per minibatch by overriding
``learner_forward`` and ``auxiliary_losses`` (e.g. a distillation term).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from lit_rlseq.errors import UserError
from lit_rlseq.loops.module import OnlineRLModule
from lit_rlseq.loops.unroll import Unroll
from lit_rlseq.nn.actor_critic import PolicyOutput, State
from lit_rlseq.nn.mlp_actor_critic import MLPActorCritic, MLPActorCriticConfig
from lit_rlseq.nn.normalize import ObservationNormalizer
from lit_rlseq.rl import (
    approx_kl,
    clip_fraction,
    explained_variance,
    gae,
    normalize_advantages,
    ppo_clip_loss,
    ppo_value_loss,
)

Split = Literal["auto", "transitions", "columns"]


@dataclass
class Minibatch:
    """A minibatch of M sequences of T steps (T = 1 for single transitions); per-step tensors are [T, M, ...]."""

    obs: dict[str, Tensor]
    first: Tensor  # bool [T, M]
    initial_state: State  # each [M, ...]
    action: Tensor  # [T, M] or [T, M, D]
    behaviour_logits: Tensor  # [T, M, P]
    old_log_prob: Tensor  # [T, M]
    old_value: Tensor  # [T, M]
    advantages: Tensor  # [T, M]
    returns: Tensor  # [T, M]


def minibatch_indices(n: int, num_minibatches: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> list[Tensor]:
    """A random split of ``range(n)`` into ``num_minibatches`` parts whose sizes differ by at most one."""
    if not 1 <= num_minibatches <= n:
        raise ValueError(f"cannot split {n} samples into {num_minibatches} minibatches")
    return list(torch.randperm(n, generator=generator).to(device).tensor_split(num_minibatches))


class PPOModule(OnlineRLModule):
    def __init__(
        self,
        lr: float = 3e-4,
        adam_eps: float = 1e-5,
        lr_schedule: Literal["linear", "constant"] = "linear",
        lr_decay_frames: int | None = None,
        discount: float = 0.99,
        gae_lambda: float = 0.95,
        ppo_epochs: int = 10,
        num_minibatches: int = 32,
        clip_eps: float = 0.2,
        value_clip_eps: float | None = 0.2,
        value_cost: float = 0.5,
        entropy_cost: float = 0.0,
        grad_norm_clip: float = 0.5,
        normalize_advantages: bool = True,
        target_kl: float | None = None,
        minibatch_split: Split = "auto",
    ):
        """
        Args:
            lr, adam_eps: Adam's learning rate and epsilon.
            lr_schedule: "linear" (to 0 at ``lr_decay_frames``, default the frames the run plans) or "constant".
            discount, gae_lambda: GAE's gamma and lambda.
            ppo_epochs, num_minibatches: passes over each batch, and minibatches (optimizer steps) per pass.
            clip_eps: the ratio clip of the surrogate objective.
            value_clip_eps: clip of the value change around the old value (PPO2); None for a plain squared error.
            value_cost, entropy_cost: weights of the value loss and the entropy bonus.
            grad_norm_clip: maximum global gradient norm.
            normalize_advantages: normalise advantages per minibatch.
            target_kl: stop the update's remaining epochs once the mean approximate KL exceeds it (None: never).
            minibatch_split: "transitions", "columns" (whole sequences) or "auto" (columns for recurrent nets).
        """
        super().__init__()
        self.automatic_optimization = False
        if ppo_epochs < 1 or num_minibatches < 1:
            raise UserError(f"model.init_args.ppo_epochs ({ppo_epochs}) and num_minibatches ({num_minibatches}) must be >= 1")
        if minibatch_split not in ("auto", "transitions", "columns"):
            raise UserError(f"model.init_args.minibatch_split must be auto, transitions or columns, got {minibatch_split!r}")
        self.lr = lr
        self.adam_eps = adam_eps
        self.lr_schedule = lr_schedule
        self.lr_decay_frames = lr_decay_frames
        self.discount = discount
        self.gae_lambda = gae_lambda
        self.ppo_epochs = ppo_epochs
        self.num_minibatches = num_minibatches
        self.clip_eps = clip_eps
        self.value_clip_eps = value_clip_eps
        self.value_cost = value_cost
        self.entropy_cost = entropy_cost
        self.grad_norm_clip = grad_norm_clip
        self.normalize_advantages = normalize_advantages
        self.target_kl = target_kl
        self.minibatch_split = minibatch_split
        self._updates = 0  # weight publications in this process (for the async policy lag)

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.lr, eps=self.adam_eps)
        schedule = self.frame_schedule(optimizer, self.lr_schedule, self.lr_decay_frames)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- hooks for subclasses ------------------------------------------------------------------------
    def learner_forward(self, batch: Minibatch) -> tuple[PolicyOutput, dict[str, Any]]:
        """The policy over a minibatch's sequences; subclasses may return extra outputs for auxiliary losses."""
        return self.policy(batch.obs, batch.first, batch.initial_state), {}

    def auxiliary_losses(self, batch: Minibatch, out: PolicyOutput, extra: dict[str, Any]) -> dict[str, Tensor]:
        """Extra scalar losses added to the PPO loss of every minibatch; none by default."""
        return {}

    # -- the batch -----------------------------------------------------------------------------------
    def advantages(self, unroll: Unroll) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Old log-probabilities, old values, GAE advantages and returns, each [T, B] (no gradients)."""
        with torch.no_grad():
            out = self.policy(unroll.obs, unroll.first, unroll.initial_state)
            values, bootstrap = out.value[:-1].float(), out.value[-1].float()
            old_log_prob = self.policy.action_dist.log_prob(unroll.behaviour_logits, unroll.action)
            discounts = self.discount * (~unroll.done).to(values.dtype)
            advantages, returns = gae(unroll.reward.float(), values, bootstrap, discounts, self.gae_lambda)
        return old_log_prob, values, advantages, returns

    def split(self, unroll: Unroll) -> Literal["transitions", "columns"]:
        if self.minibatch_split != "auto":
            split = self.minibatch_split
        else:
            split = "columns" if len(unroll.initial_state) else "transitions"
        if split == "transitions" and len(unroll.initial_state):
            raise UserError(
                "model.init_args.minibatch_split=transitions cuts recurrent sequences apart; this policy is recurrent "
                "(it has a recurrent state): use columns or auto"
            )
        n = unroll.batch_size if split == "columns" else unroll.frames
        if n < self.num_minibatches:
            what = "columns (data.init_args.batch_size)" if split == "columns" else "transitions"
            raise UserError(
                f"model.init_args.num_minibatches ({self.num_minibatches}) is larger than the batch's {n} {what}; "
                "lower num_minibatches or collect more per batch"
            )
        return split

    @staticmethod
    def minibatch(unroll: Unroll, split: str, index: Tensor, old_log_prob: Tensor, old_value: Tensor,
                  advantages: Tensor, returns: Tensor) -> Minibatch:
        T = unroll.num_steps
        if split == "columns":
            def pick(x: Tensor) -> Tensor:
                return x[:T].index_select(1, index)

            initial_state = tuple(s.index_select(0, index) for s in unroll.initial_state)
        else:
            def pick(x: Tensor) -> Tensor:
                return x[:T].flatten(0, 1).index_select(0, index).unsqueeze(0)

            initial_state = ()
        return Minibatch(
            obs={k: pick(v) for k, v in unroll.obs.items()},
            first=pick(unroll.first),
            initial_state=initial_state,
            action=pick(unroll.action),
            behaviour_logits=pick(unroll.behaviour_logits),
            old_log_prob=pick(old_log_prob),
            old_value=pick(old_value),
            advantages=pick(advantages),
            returns=pick(returns),
        )

    def ppo_losses(self, batch: Minibatch, out: PolicyOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The minibatch's loss terms (scalars) and diagnostics (approx KL, clip fraction; no gradients)."""
        dist = self.policy.action_dist
        new_log_prob = dist.log_prob(out.logits.float(), batch.action)
        advantages = normalize_advantages(batch.advantages) if self.normalize_advantages else batch.advantages
        losses = {
            "pg": ppo_clip_loss(new_log_prob, batch.old_log_prob, advantages, self.clip_eps).mean(),
            "value": ppo_value_loss(out.value.float(), batch.old_value, batch.returns, self.value_clip_eps).mean(),
            "entropy": dist.entropy(out.logits.float()).mean(),
        }
        with torch.no_grad():
            diagnostics = {
                "approx_kl": approx_kl(new_log_prob, batch.old_log_prob).mean(),
                "clip_fraction": clip_fraction(new_log_prob, batch.old_log_prob, self.clip_eps),
            }
        return losses, diagnostics

    # -- the step ------------------------------------------------------------------------------------
    def training_step(self, unroll: Unroll, batch_idx: int) -> Tensor:
        optimizer = self.optimizers()
        split = self.split(unroll)
        old_log_prob, old_value, advantages, returns = self.advantages(unroll)
        n = unroll.batch_size if split == "columns" else unroll.frames
        sums: dict[str, Tensor] = {}
        aux_names: list[str] = []
        steps = 0
        for _ in range(self.ppo_epochs):
            epoch_kl = []
            for index in minibatch_indices(n, self.num_minibatches, device=self.device):
                batch = self.minibatch(unroll, split, index, old_log_prob, old_value, advantages, returns)
                out, extra = self.learner_forward(batch)
                losses, diagnostics = self.ppo_losses(batch, out)
                aux = self.auxiliary_losses(batch, out, extra)
                aux_names += [name for name in aux if name not in aux_names]
                total = losses["pg"] + self.value_cost * losses["value"] - self.entropy_cost * losses["entropy"]
                total = total + sum(aux.values())

                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(total)
                grads = [p.grad.detach().norm() for p in self.trainable_parameters() if p.grad is not None]
                grad_norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros((), device=self.device)
                self.clip_gradients(optimizer, gradient_clip_val=self.grad_norm_clip, gradient_clip_algorithm="norm")
                optimizer.step()
                steps += 1
                epoch_kl.append(diagnostics["approx_kl"])
                for name, value in {"total": total, **losses, **aux, **diagnostics, "grad_norm": grad_norm}.items():
                    sums[name] = sums.get(name, 0.0) + value.detach()
            if self.target_kl is not None:
                kl = self.trainer.strategy.reduce(torch.stack(epoch_kl).mean(), reduce_op="mean")
                if float(kl) > self.target_kl:
                    break

        self.count_frames(unroll.frames)
        self.lr_schedulers().step()  # reads the frame counter, so after counting this batch
        self.update_normalizers(unroll)
        publish = getattr(self.trainer.datamodule, "publish", None)
        if publish is not None:
            publish(self.policy)
        self._updates += 1

        batch_size = unroll.batch_size
        means = {name: value / steps for name, value in sums.items()}
        for name in ("total", "pg", "value", "entropy", *aux_names):
            self.log(f"loss/{name}", means[name], batch_size=batch_size)
        self.log("ppo/approx_kl", means["approx_kl"], batch_size=batch_size)
        self.log("ppo/clip_fraction", means["clip_fraction"], batch_size=batch_size)
        self.log("ppo/explained_variance", explained_variance(old_value, returns), batch_size=batch_size)
        self.log("ppo/epochs", steps / self.num_minibatches, batch_size=batch_size)
        self.log("opt/grad_norm", means["grad_norm"], batch_size=batch_size)
        self.log("opt/lr", optimizer.param_groups[0]["lr"], batch_size=batch_size)
        if unroll.policy_version >= 0:  # asynchronous actors: how many updates behind the learner they acted
            self.log("perf/policy_lag", float(self._updates - 1 - unroll.policy_version), batch_size=batch_size)
        self.log_training_progress(unroll.episodes)
        return means["total"]

    def update_normalizers(self, unroll: Unroll) -> None:
        """Adds this batch's observations (the T acted on) to every observation normaliser in the policy."""
        normalizers = [m for m in self.policy.modules() if isinstance(m, ObservationNormalizer)]
        if not normalizers:
            return
        obs = {k: v[: unroll.num_steps] for k, v in unroll.obs.items()}
        for normalizer in normalizers:
            normalizer.update(obs, reduce=lambda t: self.trainer.strategy.reduce(t, reduce_op="sum"))


class MLPPPO(PPOModule):
    """PPO with the MLP actor-critic (lit_rlseq.nn.mlp_actor_critic) on flat vector observations ``obs["obs"]``:
    continuous actions (MuJoCo) or discrete ones. Sizes come from the data (linked by the CLI)."""

    def __init__(
        self,
        obs_dim: int | None = None,
        action_dim: int | None = None,
        num_actions: int | None = None,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        shared_trunk: bool = False,
        state_dependent_std: bool = False,
        init_log_std: float = 0.0,
        normalize_obs: bool = True,
        **ppo: Any,
    ):
        """
        Args:
            obs_dim, action_dim, num_actions: linked from the data (action_dim for Box actions, num_actions for
                Discrete ones).
            hidden, activation, shared_trunk, state_dependent_std, init_log_std, normalize_obs: see
                lit_rlseq.nn.mlp_actor_critic.MLPActorCriticConfig.
            **ppo: learner settings (see PPOModule).
        """
        super().__init__(**ppo)
        self.save_hyperparameters()
        if obs_dim is None or (action_dim is None and num_actions is None):
            raise UserError(
                f"{type(self).__name__} needs a flat observation obs['obs'] and a Box or Discrete action space; "
                "use data with such an env (e.g. data.init_args.env: mujoco:Hopper-v5 or toy:reach)"
            )
        self.policy = MLPActorCritic(MLPActorCriticConfig(
            obs_dim=obs_dim,
            action_dim=action_dim,
            num_actions=None if action_dim is not None else num_actions,
            hidden=tuple(hidden),
            activation=activation,
            shared_trunk=shared_trunk,
            state_dependent_std=state_dependent_std,
            init_log_std=init_log_std,
            normalize_obs=normalize_obs,
        ))
