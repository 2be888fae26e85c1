"""IMPALA with the NetHack policy (``lit_rlseq.nn.nethack``): LDD's NetHack baseline (``NetHackImpala``) and
LDD's RL stage on NetHack (``LDDNetHackImpala``).

Defaults are the reference's NetHack settings: V-trace, Adam lr 1e-4, discount 0.999, entropy cost 0.001,
baseline cost 0.25, gradient-norm clip 4 (its batch of 128 unrolls x 32 steps is the data's setting, see
``configs/scale/ldd_nethack_baseline_paper.yaml``). Our choices where the reference facts are silent: rewards
(in-game score differences) clipped to [-1, 1] as in our other IMPALA runs, and losses summed over time and
averaged over the batch. The number of actions comes from the data (the CLI links it).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict
from typing import Any

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.ldd.distill import EncoderDistillation
from lit_rlseq.ldd.nethack_dynamics import load_nethack_dynamics_encoder
from lit_rlseq.loops.impala import ImpalaModule
from lit_rlseq.nn.nethack import NetHackEncoder, NetHackPolicy, NetHackPolicyConfig

ENCODER_SIZES = ("d_char", "d_line", "map_channels", "d_map", "crop", "crop_channels", "d_crop", "d_rep")


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
        d_rep: int = 512,
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
                d_rep=d_rep,
                d_core=d_core,
            )
        )


class LDDNetHackImpala(NetHackImpala, EncoderDistillation):
    """LDD on NetHack: the NetHack policy starts from the dynamics model's encoder (character and colour
    embeddings, line encoders, map and crop CNNs, fc) and is distilled toward a frozen copy of it (see
    lit_rlseq.ldd.distill); the LSTM core and the heads are fresh. The encoder sizes come from the dynamics
    checkpoint; the learner settings default to NetHackImpala's (the reference's)."""

    def __init__(
        self,
        dynamics_checkpoint: str,
        num_actions: int | None = None,
        d_core: int = 512,
        distill_weight: float = 1.0,
        distill_first_step_only: bool = False,
        init_from_dynamics: bool = True,
        handover_rep_rms: float | None = 0.2,
        **impala: Any,
    ):
        """
        Args:
            dynamics_checkpoint: a NetHackDynamicsModule checkpoint
                (``lightning fit --config configs/ldd_nethack_dynamics.yaml``).
            num_actions: linked from the data; must be the dynamics model's.
            d_core: the LSTM's size (not part of the dynamics model).
            distill_weight: weight of the distillation loss (0: initialisation only).
            distill_first_step_only: reproduce the original's quirk (distil the first time step only).
            init_from_dynamics: copy the dynamics encoder into the policy (False: tabula rasa + distillation).
            handover_rep_rms: the representation's root-mean-square that student and teacher are scaled to on
                the first training batch; None keeps the dynamics model's scale.
            **impala: learner settings (see NetHackImpala and lit_rlseq.loops.impala.ImpalaModule).
        """
        config, encoder_state = load_nethack_dynamics_encoder(dynamics_checkpoint)
        if num_actions is not None and num_actions != config.num_actions:
            raise DataError(
                f"the NetHack dynamics checkpoint {dynamics_checkpoint} models {config.num_actions} actions, the "
                f"data's env has {num_actions}: train the dynamics model on demonstrations of this env"
            )
        sizes = {key: getattr(config, key) for key in ENCODER_SIZES}
        defaults = inspect.signature(NetHackImpala.__init__).parameters
        for key in ENCODER_SIZES:  # the CLI may pass NetHackImpala's defaults; anything else would be ignored
            given = impala.pop(key, sizes[key])
            if not (_same(given, sizes[key]) or _same(given, defaults[key].default)):
                raise UserError(
                    f"model.init_args.{key}={given!r}: LDDNetHackImpala takes the encoder sizes from the dynamics "
                    f"checkpoint ({key}={sizes[key]!r}); drop the setting"
                )
        super().__init__(num_actions=config.num_actions, d_core=d_core, **sizes, **impala)
        self.save_hyperparameters()
        self.init_distillation(encoder_state, NetHackEncoder(NetHackPolicyConfig(**asdict(config))),
                               init_from_dynamics, distill_weight, distill_first_step_only, handover_rep_rms)


def _same(a: Any, b: Any) -> bool:
    return tuple(a) == tuple(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b
