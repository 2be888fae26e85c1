"""IMPALA with the NetHack policy (``lit_rlseq.nn.nethack``): LDD's NetHack baseline.

Defaults are the reference's NetHack settings: V-trace, Adam lr 1e-4, discount 0.999, entropy cost 0.001,
baseline cost 0.25, gradient-norm clip 4 (its batch of 128 unrolls x 32 steps is the data's setting, see
``configs/scale/ldd_nethack_baseline_paper.yaml``). Our choices where the reference facts are silent: rewards
(in-game score differences) clipped to [-1, 1] as in our other IMPALA runs, and losses summed over time and
averaged over the batch. The number of actions comes from the data (the CLI links it).
"""

from __future__ import annotations

from typing import Any

from lit_rlseq.errors import UserError
from lit_rlseq.loops.impala import ImpalaModule
from lit_rlseq.nn.nethack import NetHackPolicy, NetHackPolicyConfig


class NetHackImpala(ImpalaModule):
    def __init__(
        self,
        num_actions: int | None = None,
        d_char: int = 32,
        d_line: int = 128,
        map_channels: tuple[int, ...] = (16, 32, 32),
        d_map: int = 256,
        crop: int = 9,
        crop_channels: tuple[int, ...] = (16, 32),
        d_crop: int = 128,
        d_core: int = 512,
        lr: float = 1e-4,
        optimizer: str = "adam",
        discount: float = 0.999,
        entropy_cost: float = 0.001,
        baseline_cost: float = 0.25,
        grad_norm_clip: float = 4.0,
        **impala: Any,
    ):
        """
        Args:
            num_actions: size of the action space (linked from the data).
            d_char ... d_core: policy sizes (see lit_rlseq.nn.nethack.NetHackPolicyConfig).
            lr, optimizer, discount, entropy_cost, baseline_cost, grad_norm_clip, **impala: learner settings
                (see lit_rlseq.loops.impala.ImpalaModule), defaulting to the reference's NetHack ones.
        """
        super().__init__(
            lr=lr,
            optimizer=optimizer,
            discount=discount,
            entropy_cost=entropy_cost,
            baseline_cost=baseline_cost,
            grad_norm_clip=grad_norm_clip,
            **impala,
        )
        self.save_hyperparameters()
        if num_actions is None:
            raise UserError(
                "NetHackImpala needs the number of actions; use data with a NetHack env "
                "(data.init_args.env: nethack), which provides it"
            )
        self.policy = NetHackPolicy(
            NetHackPolicyConfig(
                num_actions=num_actions,
                d_char=d_char,
                d_line=d_line,
                map_channels=tuple(map_channels),
                d_map=d_map,
                crop=crop,
                crop_channels=tuple(crop_channels),
                d_crop=d_crop,
                d_core=d_core,
            )
        )
