"""EMMA with PPO on Messenger (the baseline) and LDD's RL stage on Messenger (distillation done right).

``EmmaPPO`` is the shared PPO learner (lit_rlseq.loops.ppo) with the EMMA network; its defaults are the
reference's Messenger settings: Adam 5e-5, one batch per update (num_minibatches 1), 4 epochs, clip 0.1,
value cost 0.5, entropy 0.01, gamma 0.8 (S1; 0.99 for EMMA's S2/S3 in the configs), constant learning rate.
Where the shared learner differs from the original's loop: returns are GAE(lambda = 1) returns, i.e. Monte
Carlo returns reset at episode ends, but bootstrapped from V at the unroll's cut (the original did not
bootstrap) and not normalised; advantages are normalised per minibatch (the original normalised the returns).

Curriculum: ``init_checkpoint`` starts the policy from another run's checkpoint (S2 from S1, S3 from S2, as
the reference does); ``freeze`` names parameters that stay fixed (the reference froze the text-key projection
and the entity embedding in S2 and S3: ``[manual_encoder.key, manual_encoder.key_score, entities]``).

``LDDEmmaPPO``: the policy starts from the dynamics model's EMMA (``load_emma_dynamics``: trunk and the
untrained heads, as the reference) and is distilled toward a frozen copy of it: ``distill_weight`` (0.01) x
the mean squared difference of the 5184 trunk features, added to every PPO minibatch loss. The student
features are computed by the policy being trained, on the minibatch, in every epoch, so the gradient reaches
it (the original computed them with the acting copy, whose weights the optimizer never sees: after the
initialisation its distillation did nothing).

Hand-over scale (``handover_feature_rms``, off by default as in the reference): the trained dynamics trunk's
features are far larger than a fresh EMMA's (root-mean-square 0.32 against 0.009 on S1 frames with the
small config's dynamics model), so the fresh heads' first layers learn with a correspondingly larger
effective step. With a value, the first training batch scales the conv layer of student and teacher so that
the teacher's features on that batch have that root-mean-square (the features are LeakyReLU(conv(.)),
positively homogeneous, so this rescales them exactly); the factor is stored in the checkpoint and a resumed
run does not rescale again (``lit_rlseq.ldd.distill.HandOverScale``, shared with RTFM's and NetHack's LDD).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.ldd.distill import HandOverScale
from lit_rlseq.ldd.messenger import load_emma_dynamics
from lit_rlseq.loops.ppo import Minibatch, PPOModule
from lit_rlseq.loops.unroll import Unroll
from lit_rlseq.nn.actor_critic import PolicyOutput
from lit_rlseq.nn.emma import Emma, EmmaConfig

def load_policy_weights(path: str, vocab: list[str]) -> dict[str, torch.Tensor]:
    """The ``policy.*`` weights of an EmmaPPO / LDDEmmaPPO checkpoint (for the curriculum)."""
    file = Path(path)
    if not file.is_file():
        raise MissingArtifactError("EMMA checkpoint (model.init_args.init_checkpoint)", path,
                                   produce_with="lightning fit --config configs/ldd_messenger_baseline.yaml")
    checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    state = {k.removeprefix("policy."): v for k, v in checkpoint.get("state_dict", {}).items()
             if k.startswith("policy.")} if isinstance(checkpoint, dict) else {}
    if not state or "vocab" not in hparams:
        raise DataError(f"{path} is not a checkpoint of an EMMA policy module (EmmaPPO or LDDEmmaPPO)")
    if list(hparams["vocab"]) != list(vocab):
        raise DataError(f"{path} was trained on another vocabulary ({len(hparams['vocab'])} words, this run: "
                        f"{len(vocab)}): its word embeddings would mean other words")
    return state


class EmmaPPO(PPOModule):
    def __init__(self, vocab: list[str] | None = None, num_actions: int | None = None, d_word: int = 768,
                 d_model: int = 256, conv_channels: int = 64, hidden: int = 128,
                 history_layout: str = "frames_as_channels", init_checkpoint: str | None = None,
                 freeze: list[str] | None = None, lr: float = 5e-5, adam_eps: float = 1e-8,
                 lr_schedule: str = "constant", lr_decay_frames: int | None = None, discount: float = 0.8,
                 gae_lambda: float = 1.0, ppo_epochs: int = 4, num_minibatches: int = 1, clip_eps: float = 0.1,
                 value_clip_eps: float | None = None, value_cost: float = 0.5, entropy_cost: float = 0.01,
                 grad_norm_clip: float = 1e9, normalize_advantages: bool = True, target_kl: float | None = None,
                 minibatch_split: str = "auto"):
        """
        Args:
            vocab, num_actions: linked from the data (a Messenger env).
            d_word, d_model, conv_channels, hidden, history_layout: EMMA's sizes (see lit_rlseq.nn.emma).
            init_checkpoint: start from this EmmaPPO / LDDEmmaPPO checkpoint's policy (the curriculum).
            freeze: parameter-name prefixes of the policy that are not trained.
            lr ... minibatch_split: PPO settings (see lit_rlseq.loops.ppo.PPOModule), by default the reference's:
                one batch per update, 4 epochs, no value clipping and no gradient clipping (grad_norm_clip 1e9).
        """
        super().__init__(lr=lr, adam_eps=adam_eps, lr_schedule=lr_schedule, lr_decay_frames=lr_decay_frames,
                         discount=discount, gae_lambda=gae_lambda, ppo_epochs=ppo_epochs,
                         num_minibatches=num_minibatches, clip_eps=clip_eps, value_clip_eps=value_clip_eps,
                         value_cost=value_cost, entropy_cost=entropy_cost, grad_norm_clip=grad_norm_clip,
                         normalize_advantages=normalize_advantages, target_kl=target_kl,
                         minibatch_split=minibatch_split)
        self.save_hyperparameters()
        self.policy = Emma(self.emma_config(vocab, num_actions, d_word=d_word, d_model=d_model,
                                            conv_channels=conv_channels, hidden=hidden, history_layout=history_layout))
        if init_checkpoint:
            self.policy.load_state_dict(load_policy_weights(init_checkpoint, list(vocab)))
        self.freeze(freeze or [])

    @staticmethod
    def emma_config(vocab: list[str] | None, num_actions: int | None, **sizes: Any) -> EmmaConfig:
        if not vocab or num_actions is None:
            raise UserError("EMMA needs the environment's vocabulary and number of actions; use data with a "
                            "Messenger env (e.g. data.init_args.env: messenger:s1), which provides them")
        return EmmaConfig(vocab_size=len(vocab), num_actions=num_actions, **sizes)

    def freeze(self, prefixes: list[str]) -> None:
        names = [n for n, _ in self.policy.named_parameters()]
        for prefix in prefixes:
            matched = [n for n in names if n == prefix or n.startswith(prefix + ".")]
            if not matched:
                raise UserError(f"model.init_args.freeze: {prefix!r} names no EMMA parameter; they are {names}")
            for name in matched:
                self.policy.get_parameter(name).requires_grad_(False)


class LDDEmmaPPO(HandOverScale, EmmaPPO):
    def __init__(self, dynamics_checkpoint: str, vocab: list[str] | None = None, num_actions: int | None = None,
                 distill_weight: float = 0.01, init_from_dynamics: bool = True, init_checkpoint: str | None = None,
                 freeze: list[str] | None = None, handover_feature_rms: float | None = None, **ppo: Any):
        """
        Args:
            dynamics_checkpoint: a MessengerDynamicsModule checkpoint (configs/ldd_messenger_dynamics.yaml); the
                network sizes come from it.
            vocab, num_actions: linked from the data; the vocabulary must be the dynamics model's.
            distill_weight: weight of the feature distillation (the reference: 0.01; 0 = initialisation only).
            init_from_dynamics: start the policy from the dynamics model's EMMA (False: fresh + distillation).
            init_checkpoint: start from an earlier LDD run's policy instead (S2 from S1's last weights).
            freeze: parameter-name prefixes of the policy that are not trained.
            handover_feature_rms: scale student and teacher on the first batch so that the teacher's features
                have this root-mean-square (None: keep the dynamics model's scale, as the reference; a fresh
                EMMA's is about 0.01).
            **ppo: PPO settings (see EmmaPPO; defaults: the reference's).
        """
        config, state = load_emma_dynamics(dynamics_checkpoint, vocab=vocab)
        sizes = dict(d_word=config.d_word, d_model=config.d_model, conv_channels=config.conv_channels,
                     hidden=config.hidden, history_layout=config.history_layout)
        # The network sizes come from the checkpoint; the CLI passes EmmaPPO's defaults for them, which is fine,
        # but a size set to something else than both would be ignored: refuse it.
        defaults = inspect.signature(EmmaPPO.__init__).parameters
        for key, value in sizes.items():
            given = ppo.pop(key, value)
            if given not in (value, defaults[key].default):
                raise UserError(f"model.init_args.{key}={given!r}: LDDEmmaPPO takes its network sizes from the "
                                f"dynamics checkpoint ({key}={value!r}); drop the setting")
        super().__init__(vocab=vocab, num_actions=num_actions, init_checkpoint=None, freeze=None, **sizes, **ppo)
        self.save_hyperparameters()
        if init_from_dynamics:
            self.policy.load_state_dict(state)
        if init_checkpoint:
            self.policy.load_state_dict(load_policy_weights(init_checkpoint, list(vocab)))
        self.teacher = Emma(self.policy.config)
        self.teacher.load_state_dict(state)
        self.teacher.requires_grad_(False)
        self.distill_weight = distill_weight
        self.freeze(freeze or [])
        self.init_handover(handover_feature_rms, "handover_feature_rms")

    def on_train_batch_start(self, unroll: Unroll, batch_idx: int) -> None:
        self.hand_over_once(lambda: self.teacher.forward_with_features(unroll.obs, unroll.first,
                                                                       unroll.initial_state).features,
                            [self.policy.conv, self.teacher.conv])  # features = LeakyReLU(conv(.))

    def learner_forward(self, batch: Minibatch) -> tuple[PolicyOutput, dict[str, Any]]:
        out = self.policy.forward_with_features(batch.obs, batch.first, batch.initial_state)
        return out.policy, {"features": out.features}

    def auxiliary_losses(self, batch: Minibatch, out: PolicyOutput, extra: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.distill_weight == 0:
            return {}
        with torch.no_grad():
            teacher = self.teacher.forward_with_features(batch.obs, batch.first, batch.initial_state).features
        return {"distill": self.distill_weight * (extra["features"] - teacher).pow(2).mean()}
