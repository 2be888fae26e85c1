"""FWP agents on the IMPALA learner (V-trace; torchbeast's Atari settings are the defaults).

    lightning fit --config configs/fwp_atari.yaml --model.init_args.core=rdn --data.init_args.env=atari:Gopher

The number of actions comes from the env (the CLI links it). Defaults are the reference's README command line:
RMSprop lr 6e-4 (eps 0.01, alpha 0.99), entropy cost 0.01, baseline cost 0.5, discount 0.99, gradient-norm clip
40, rewards clipped to [-1, 1], losses summed over T x B, the learning rate decaying linearly to 0 over 200M
agent steps.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from lit_rlseq.errors import UserError
from lit_rlseq.fwp.agent import CORES, AtariAgent, AtariAgentConfig
from lit_rlseq.loops.impala import ImpalaModule
from lit_rlseq.nn.fwp import FWPCoreConfig
from lit_rlseq.nn.impala_cnn import ImpalaCNNConfig


class FWPAtari(ImpalaModule):
    def __init__(
        self,
        num_actions: int | None = None,
        core: str = "rdn",
        core_grad: Literal["full", "truncated"] = "full",
        impl: Literal["fast", "naive", "cuda"] = "fast",
        num_layers: int = 2,
        num_heads: int = 4,
        d_head: int = 32,
        d_model: int = 128,
        d_ff: int = 512,
        lstm_hidden: int = 256,
        torso_channels: tuple[int, ...] = (16, 32, 32),
        torso_features: int = 256,
        frame_size: int = 84,
        lr: float = 6e-4,
        entropy_cost: float = 0.01,
        reduction: Literal["time_sum_batch_mean", "sum"] = "sum",
        lr_decay_frames: int | None = 200_000_000,
        **impala: Any,
    ):
        """
        Args:
            num_actions: the game's action count (linked from the data; never typed by hand).
            core: feedforward | lstm | lt | delta | rdn | delta_rnn.
            core_grad: "full" backpropagates through the fast-weight state across the unroll; "truncated" is the
                original's behaviour (no gradient through any state from one step to the next).
            impl: "fast" (chunked/fused; the CUDA kernels when the module is on a GPU), "naive" (one PyTorch
                step at a time, the reference), "cuda" (as fast, but an error where no CUDA GPU is visible).
            num_layers, num_heads, d_head, d_model, d_ff: the FWP stack (2 blocks, 4 x 32, 128, FF 512).
            lstm_hidden: the LSTM core's size; torso_channels, torso_features: the IMPALA torso.
            frame_size: the side of the (square, 4-frame) observations; the Atari adapter's is 84.
            **impala: other learner settings (see lit_rlseq.loops.impala.ImpalaModule).
        """
        super().__init__(lr=lr, entropy_cost=entropy_cost, reduction=reduction, lr_decay_frames=lr_decay_frames,
                         **impala)
        self.save_hyperparameters()
        if num_actions is None:
            raise UserError("FWPAtari needs num_actions from an Atari env: use data.init_args.env: atari:<Game> "
                            "(the CLI links it; do not set model.init_args.num_actions by hand)")
        if core not in CORES:
            raise UserError(f"model.init_args.core={core!r} is not one of {', '.join(CORES)}")
        if core_grad not in ("full", "truncated"):
            raise UserError(f"model.init_args.core_grad={core_grad!r} must be 'full' or 'truncated'")
        if impl not in ("fast", "naive", "cuda"):
            raise UserError(f"model.init_args.impl={impl!r} must be 'fast', 'naive' or 'cuda'")
        if impl == "cuda" and not torch.cuda.is_available():
            raise UserError("model.init_args.impl=cuda needs a CUDA GPU, but torch sees none "
                            "(torch.cuda.is_available() is False); use impl=fast, which runs on the CPU")
        self.core = core
        config = AtariAgentConfig(
            num_actions=num_actions,
            core=core,
            torso=ImpalaCNNConfig(in_channels=4, height=frame_size, width=frame_size, channels=tuple(torso_channels),
                                  out_features=torso_features),
            lstm_hidden=lstm_hidden,
            fwp=FWPCoreConfig(num_layers=num_layers, num_heads=num_heads, d_head=d_head, d_model=d_model,
                              d_ff=d_ff, grad=core_grad, impl="naive" if impl == "naive" else "fast"),
            reward_clip=self.reward_clip or 1.0,
        )
        self.policy = AtariAgent(config)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("hyper_parameters", {})
        for key in ("core", "num_actions"):
            if key in saved and saved[key] != self.hparams[key]:
                raise UserError(
                    f"the checkpoint was trained with model.init_args.{key}={saved[key]!r}, this model has "
                    f"{self.hparams[key]!r}: pass --model.init_args.{key}={saved[key]} (and the same game) or "
                    "another checkpoint"
                )
