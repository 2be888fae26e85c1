"""LDD's RL stage: IMPALA whose policy starts from the dynamics model's encoder and is distilled toward a
frozen copy of it. ``EncoderDistillation`` is the recipe for any policy with an ``encoder`` (whose output has a
``rep`` that ends in ``relu(encoder.fc(.))``) and a ``forward_with_rep``; ``LDDImpala`` applies it to the txt2pi
policy on text grids, ``lit_rlseq.ldd.nethack.LDDNetHackImpala`` to the NetHack policy.

* Initialisation: every weight the policy shares with the dynamics encoder (txt2pi: word embedding, BiLSTMs,
  attention, FiLM layers, fc) is copied from the dynamics checkpoint; the policy and value heads (and a
  recurrent core) are fresh. Nothing in the student is frozen.
* Teacher: a second copy of the dynamics encoder, frozen (no gradients, not in the optimizer).
* Distillation: the squared error between the student's and the teacher's representations (``d_rep``),
  averaged over the representation's dimensions, on the observations of the learner batch, reduced over
  time and batch like the IMPALA terms (summed over time, averaged over the batch by default), times
  ``distill_weight`` (1.0 in the paper). The original added only the first time step's term (a bug, per the
  reference); ``distill_first_step_only=True`` reproduces it.

* Hand-over scale: a trained dynamics encoder's representation is far larger than a fresh one's (norm ~130
  against ~2 at the small RTFM scale), which makes the fresh policy head start nearly deterministic and the
  first updates tear the student away from its teacher. On the first training batch the final fc layer of
  student and teacher is scaled so that the representation's root-mean-square on that batch equals
  ``handover_rep_rms`` (the representation is ReLU(fc(.)), so this rescales it exactly and keeps its
  direction); the factor is averaged over DDP ranks and stored in the checkpoint, so a resumed run does not
  rescale again. ``handover_rep_rms=None`` keeps the dynamics model's scale.
The network sizes come from the dynamics checkpoint, so they always match it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lit_rlseq.errors import UserError
from lit_rlseq.ldd.dynamics import load_dynamics_encoder
from lit_rlseq.ldd.impala import txt2pi_config
from lit_rlseq.loops.impala import ImpalaModule, reduce_loss
from lit_rlseq.loops.unroll import Unroll
from lit_rlseq.nn.actor_critic import PolicyOutput
from lit_rlseq.nn.txt2pi import Txt2PiEncoder, Txt2PiPolicy


class HandOverScale:
    """Rescales what a dynamics model hands over to an LDD RL module, once, on the first training batch: the
    last linear (or conv) layer before a positively homogeneous activation (ReLU, LeakyReLU) in student and
    teacher is multiplied by one factor, so the teacher's output on that batch has root-mean-square
    ``handover_target``. The factor is averaged over DDP ranks and kept in the ``handover_scale`` buffer, so a
    resumed run (whose weights were scaled already) does not scale again. A LightningModule mixin."""

    def init_handover(self, target: float | None, setting: str) -> None:
        """``target``: the root-mean-square to scale to (None: keep the dynamics model's scale); ``setting``: the
        model argument that holds it, for the error message."""
        if target is not None and target <= 0:
            raise UserError(f"model.init_args.{setting} must be positive or null, got {target}")
        self.handover_target = target
        self.register_buffer("handover_scale", torch.zeros(()))  # the factor applied; 0 until the hand-over
        self._handed_over = False

    def hand_over_once(self, teacher_output: Callable[[], torch.Tensor], layers: Sequence[torch.nn.Module]) -> None:
        """Scales ``layers`` unless it was done (in this run or in the checkpoint it resumed from) or is off."""
        if self.handover_target is None or self._handed_over:
            return
        # Read the buffer once (it may come from a checkpoint), not on every batch: .item() syncs a GPU.
        self._handed_over = self.handover_scale.item() != 0
        if not self._handed_over:
            self.hand_over(teacher_output(), layers)
            self._handed_over = True

    @torch.no_grad()
    def hand_over(self, teacher_output: torch.Tensor, layers: Sequence[torch.nn.Module]) -> float:
        """Multiplies the weight and bias of ``layers`` by target / rms(teacher_output); returns the factor."""
        factor = self.handover_target / teacher_output.pow(2).mean().sqrt().clamp(min=1e-8)
        if self._trainer is not None:
            factor = self.trainer.strategy.reduce(factor, reduce_op="mean")
        for layer in layers:
            layer.weight.mul_(factor)
            layer.bias.mul_(factor)
        self.handover_scale.fill_(float(factor))
        return float(factor)


class EncoderDistillation(HandOverScale, ImpalaModule):
    """The LDD recipe on an ImpalaModule; subclasses build ``self.policy`` and call ``init_distillation``."""

    teacher: torch.nn.Module

    def init_distillation(
        self,
        encoder_state: dict[str, torch.Tensor],
        teacher: torch.nn.Module,
        init_from_dynamics: bool,
        distill_weight: float,
        distill_first_step_only: bool,
        handover_rep_rms: float | None,
    ) -> None:
        """Loads ``encoder_state`` into the policy's encoder (with ``init_from_dynamics``) and into ``teacher``
        (a fresh encoder of the same architecture), which is frozen (no gradients, not in the optimizer)."""
        if init_from_dynamics:
            self.policy.encoder.load_state_dict(encoder_state)
        self.teacher = teacher
        self.teacher.load_state_dict(encoder_state)
        self.teacher.requires_grad_(False)
        self.distill_weight = distill_weight
        self.distill_first_step_only = distill_first_step_only
        self.init_handover(handover_rep_rms, "handover_rep_rms")

    def on_train_batch_start(self, unroll: Unroll, batch_idx: int) -> None:
        self.hand_over_once(lambda: self.teacher({k: v.flatten(0, 1) for k, v in unroll.obs.items()}).rep,
                            [self.policy.encoder.fc, self.teacher.fc])  # rep = ReLU(fc(.))

    def learner_forward(self, unroll: Unroll) -> tuple[PolicyOutput, dict[str, Any]]:
        out, encoded = self.policy.forward_with_rep(unroll.obs, unroll.first, unroll.initial_state)
        return out, {"rep": encoded.rep}

    def auxiliary_losses(self, unroll: Unroll, out: PolicyOutput, extra: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.distill_weight == 0:
            return {}
        student = extra["rep"][:-1]  # [T, B, d_rep]: the observations the actions were taken at
        steps, batch = student.shape[:2]
        with torch.no_grad():
            obs = {k: v[:-1].flatten(0, 1) for k, v in unroll.obs.items()}
            teacher = self.teacher(obs).rep.unflatten(0, (steps, batch))
        per_step = (student - teacher).pow(2).mean(-1)  # [T, B]
        if self.distill_first_step_only:
            per_step = per_step[:1]
        return {"distill": self.distill_weight * reduce_loss(per_step, self.reduction)}


class LDDImpala(EncoderDistillation):
    def __init__(
        self,
        dynamics_checkpoint: str,
        vocab: list[str] | None = None,
        num_actions: int | None = None,
        distill_weight: float = 1.0,
        distill_first_step_only: bool = False,
        init_from_dynamics: bool = True,
        handover_rep_rms: float | None = 0.2,
        **impala: Any,
    ):
        """
        Args:
            dynamics_checkpoint: a DynamicsModule checkpoint (``lightning fit --config configs/ldd_rtfm_dynamics.yaml``).
            vocab, num_actions: linked from the data; the vocabulary must be the one the dynamics model read.
            distill_weight: weight of the distillation loss (0 disables distillation: initialisation only).
            distill_first_step_only: reproduce the original's quirk (distil the first time step only).
            init_from_dynamics: copy the dynamics encoder into the policy (False: tabula rasa + distillation).
            handover_rep_rms: the representation's root-mean-square that student and teacher are scaled to on
                the first training batch (about a fresh encoder's); None keeps the dynamics model's scale.
            **impala: learner settings (see lit_rlseq.loops.impala.ImpalaModule).
        """
        super().__init__(**impala)
        self.save_hyperparameters()
        # Refuses a checkpoint trained on another vocabulary: its word embeddings would mean other words.
        dynamics_config, encoder_state = load_dynamics_encoder(dynamics_checkpoint, vocab=vocab)
        sizes = {k: getattr(dynamics_config, k) for k in ("d_word", "d_text", "channels", "d_rep", "dedupe_text")}
        config = txt2pi_config(vocab, num_actions, type(self).__name__, **sizes)
        self.policy = Txt2PiPolicy(config)
        self.init_distillation(encoder_state, Txt2PiEncoder(config), init_from_dynamics, distill_weight,
                               distill_first_step_only, handover_rep_rms)
