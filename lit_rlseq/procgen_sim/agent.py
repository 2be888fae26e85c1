"""The Procgen agent: recurrent PPO (lit_rlseq.loops.ppo) with the recurrent IMPALA network.

Learner defaults are the reference's ``hard-rec`` settings: Adam lr 5e-4, 3 epochs of 8 minibatches (whole
sequences: the network is recurrent), gamma 0.999, GAE lambda 0.95, clip 0.2, value coefficient 0.5,
entropy 0.01, gradient-norm clip 0.5, normalised advantages, a constant learning rate. Reward normalisation
is the data's (``OnlineDataModule(normalize_reward=true)``, ``reward_norm_gamma`` = gamma), as in the
reference's VecNormalize. The reference collects 256 envs x 256 steps per update; ``configs/procgen_agent.yaml``
uses a CPU-sized batch, ``configs/scale/procgen_agent_paper.yaml`` the reference's.
"""

from __future__ import annotations

from typing import Any, Literal

from lit_rlseq.errors import UserError
from lit_rlseq.loops.ppo import PPOModule
from lit_rlseq.nn.recurrent_impala import RecurrentImpala, RecurrentImpalaConfig

class ProcgenAgent(PPOModule):
    def __init__(
        self,
        num_actions: int | None = 15,
        channels: tuple[int, ...] = (16, 32, 32),
        hidden: int = 64,
        reset_state: str = "trainable",
        initial_state_std: float = 0.1,
        lr: float = 5e-4,
        adam_eps: float = 1e-5,
        lr_schedule: Literal["linear", "constant"] = "constant",
        discount: float = 0.999,
        gae_lambda: float = 0.95,
        ppo_epochs: int = 3,
        num_minibatches: int = 8,
        clip_eps: float = 0.2,
        value_clip_eps: float | None = 0.2,
        value_cost: float = 0.5,
        entropy_cost: float = 0.01,
        grad_norm_clip: float = 0.5,
        normalize_advantages: bool = True,
        **ppo: Any,
    ):
        """
        Args:
            num_actions: linked from the data (15 in every procgen game).
            channels, hidden, reset_state, initial_state_std: see lit_rlseq.nn.recurrent_impala.RecurrentImpalaConfig.
            lr ... normalize_advantages: the ``hard-rec`` learner settings (see lit_rlseq.loops.ppo.PPOModule).
            **ppo: other learner settings of PPOModule.
        """
        super().__init__(lr=lr, adam_eps=adam_eps, lr_schedule=lr_schedule, discount=discount, gae_lambda=gae_lambda,
                         ppo_epochs=ppo_epochs, num_minibatches=num_minibatches, clip_eps=clip_eps,
                         value_clip_eps=value_clip_eps, value_cost=value_cost, entropy_cost=entropy_cost,
                         grad_norm_clip=grad_norm_clip, normalize_advantages=normalize_advantages, **ppo)
        self.save_hyperparameters()
        if num_actions is None:
            raise UserError(f"{type(self).__name__} needs a discrete action space; use data with a procgen env "
                            "(e.g. data.init_args.env: procgen:coinrun)")
        self.policy = RecurrentImpala(RecurrentImpalaConfig(
            num_actions=num_actions, channels=tuple(channels), hidden=hidden, reset_state=reset_state,
            initial_state_std=initial_state_std,
        ))
