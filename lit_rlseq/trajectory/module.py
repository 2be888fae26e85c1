"""TrajectoryTransformer: the LightningModule that trains the trajectory GPT on discretised transitions.

Loss: cross-entropy of every next token, weighted by the kind of token it predicts (observation 1, action 5,
reward 1, value 1), masked beyond ``max_path_length`` and averaged over all tokens, as in the reference.
Optimiser: AdamW (lr 6e-4, betas 0.9/0.95) with weight decay 0.1 on Linear and output-head weights only.
Schedule: the learning rate rises linearly over ``warmup_tokens`` target tokens (default: one epoch's worth,
``len(train windows) * block_size``) and then follows a cosine to 10% at ``final_tokens`` (default 20x warm-up),
staying there. Metrics: loss and token accuracy per kind, train and validation.

The checkpoint carries what planning needs: the discretiser's thresholds (a buffer) and the dataset's
identity and settings (``dataset_spec``: dataset name, env id, bins, window, discount, ...).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F

from lit_rlseq.errors import UserError
from lit_rlseq.trajectory.model import TrajectoryGPT, TrajectoryGPTConfig

KINDS = ("obs", "act", "rew", "val")


def token_kinds(observation_dim: int, action_dim: int) -> torch.Tensor:
    """Kind id (0 obs, 1 act, 2 rew, 3 val) of each dimension of a transition: ``[transition_dim]``."""
    return torch.tensor([0] * observation_dim + [1] * action_dim + [2, 3])


def lr_multiplier(tokens: float, warmup_tokens: float, final_tokens: float) -> float:
    """Linear warm-up to 1 over ``warmup_tokens``, then cosine decay, floored at 0.1."""
    if tokens < warmup_tokens:
        return tokens / max(1.0, warmup_tokens)
    progress = (tokens - warmup_tokens) / max(1.0, final_tokens - warmup_tokens)
    return max(0.1, 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


class TrajectoryTransformer(L.LightningModule):
    """Args (the data-derived ones are linked from ``TrajectoryDataModule`` by the CLI):
        obs_dim, action_dim: sizes of the dataset's observations and actions.
        dataset_spec: the dataset's name, env, n_bins, window, discount, ... (``TrajectoryDataModule.dataset_spec``).
        n_layer, n_head, n_embd, dropout: GPT size (reference: 4, 4, 128, 0.1).
        action_weight, observation_weight, reward_weight, value_weight: loss weights (reference: 5, 1, 1, 1).
        lr, betas, weight_decay: AdamW (reference: 6e-4, (0.9, 0.95), 0.1).
        warmup_tokens, final_tokens: schedule (None: one epoch of tokens, 20x that).
    """

    def __init__(
        self,
        obs_dim: int | None = None,
        action_dim: int | None = None,
        dataset_spec: dict[str, Any] | None = None,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.1,
        action_weight: float = 5.0,
        observation_weight: float = 1.0,
        reward_weight: float = 1.0,
        value_weight: float = 1.0,
        lr: float = 6e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.1,
        warmup_tokens: int | None = None,
        final_tokens: int | None = None,
    ):
        super().__init__()
        if obs_dim is None or action_dim is None or dataset_spec is None:
            raise UserError(
                "TrajectoryTransformer needs obs_dim, action_dim and dataset_spec; use it with "
                "--data lit_rlseq.trajectory.TrajectoryDataModule, which provides them"
            )
        self.save_hyperparameters()
        self.dataset_spec = dict(dataset_spec)
        self.config = TrajectoryGPTConfig(
            observation_dim=obs_dim,
            action_dim=action_dim,
            n_bins=int(dataset_spec["n_bins"]),
            window=int(dataset_spec["window"]),
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            dropout=dropout,
        )
        self.model = TrajectoryGPT(self.config)
        d = self.config.transition_dim
        self.register_buffer("thresholds", torch.full((self.config.n_bins + 1, d), float("nan"), dtype=torch.float64))
        self.register_buffer("tokens_seen", torch.zeros((), dtype=torch.float64))
        kinds = token_kinds(obs_dim, action_dim)
        weights = torch.tensor([observation_weight, action_weight, reward_weight, value_weight])[kinds]
        # targets y = tokens[1:]: the target at input position p is dimension (p + 1) % d
        positions = torch.arange(self.config.block_size) + 1
        self.register_buffer("target_kind", kinds[positions % d], persistent=False)
        self.register_buffer("target_weight", weights[positions % d], persistent=False)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        thresholds = getattr(datamodule, "thresholds", None)
        if stage == "fit" and thresholds is not None:
            self.thresholds.copy_(torch.as_tensor(thresholds, dtype=torch.float64))

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        x, y, mask = batch["x"], batch["y"], batch["mask"]
        logits, _ = self.model(x)
        T = x.shape[1]
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view_as(y)
        loss = (losses * self.target_weight[:T] * mask).mean()
        self.log(f"{split}/loss", loss, prog_bar=True, on_step=split == "train", on_epoch=True)
        correct = (logits.argmax(-1) == y) & mask
        for k, name in enumerate(KINDS):
            of_kind = (self.target_kind[:T] == k) & mask
            if of_kind.any():
                self.log(f"{split}/acc_{name}", correct[of_kind].float().mean(), on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.tokens_seen += batch["y"].numel()
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return torch.optim.AdamW(self.model.gpt.optim_groups(hp.weight_decay), lr=hp.lr, betas=tuple(hp.betas))

    def schedule(self) -> tuple[float, float]:
        """``(warmup_tokens, final_tokens)``, the defaults derived from the training windows."""
        warmup = self.hparams.warmup_tokens
        if warmup is None:
            train = getattr(getattr(self.trainer, "datamodule", None), "train_dataset", None)
            if train is None:
                raise UserError("TrajectoryTransformer: set warmup_tokens, or train with a TrajectoryDataModule")
            warmup = len(train) * self.config.block_size
        final = self.hparams.final_tokens if self.hparams.final_tokens is not None else 20 * warmup
        return float(warmup), float(final)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Like the reference: the rate of an update counts the tokens of the batch it comes from.
        lr = self.hparams.lr * lr_multiplier(float(self.tokens_seen), *self.schedule())
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.log("train/lr", lr, on_step=True, on_epoch=False)
