"""Test helpers that run inside `lightning fit` subprocesses (DDP and resume tests)."""

import json
from pathlib import Path

import lightning as L

from lit_rlseq.loops.online import OnlineDataModule


class UnevenEvaluation(OnlineDataModule):
    """Rank r evaluates eval_episodes + r episodes, so ranks finish different numbers of episodes."""

    def val_dataloader(self):
        self.eval_episodes = self.hparams.eval_episodes + self.trainer.global_rank
        self.eval_num_envs = min(self.hparams.eval_num_envs, self.eval_episodes)
        return super().val_dataloader()


class RecordPerRank(L.Callback):
    """Writes what each rank saw to <out>/rank<r>.json: first-batch checksum, eval episodes, final metrics."""

    def __init__(self, out: str):
        self.out = Path(out)
        self.record = {"first_obs_sum": None, "eval_returns": [], "train_returns": [], "train_batches": 0}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.record["first_obs_sum"] is None:
            self.record["first_obs_sum"] = int(batch.obs["name"].sum())
        self.record["train_returns"] += batch.episodes.episode_return.tolist()
        self.record["train_batches"] += 1

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.record["eval_returns"] = outputs.episode_return.tolist()  # the last evaluation's episodes

    def on_fit_end(self, trainer, pl_module):
        self.record["metrics"] = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.record["frames"] = int(pl_module.frames)
        self.record["world_size"] = trainer.world_size
        optimizer = trainer.optimizers[0]
        self.record["lr"] = optimizer.param_groups[0]["lr"]
        self.record["optimizer_steps"] = int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"])
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record))


class SlowDown(L.Callback):
    """Sleeps after every step so a test can kill the run mid-way."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import time

        time.sleep(self.seconds)


class RecordPolicyStatistics(L.Callback):
    """Writes <out>/stats<r>.json: the policy's observation-normaliser statistics and a weight checksum at the end."""

    def __init__(self, out: str):
        self.out = Path(out)

    def on_fit_end(self, trainer, pl_module):
        stats = pl_module.policy.normalizer.stats["obs"]
        record = {"count": float(stats.count), "mean": stats.mean.tolist(), "var": stats.var.tolist(),
                  "weights": float(sum(p.double().sum() for p in pl_module.policy.parameters())),
                  "optimizer_steps": int(trainer.optimizers[0].state[trainer.optimizers[0].param_groups[0]["params"][0]]["step"]),
                  "frames": int(pl_module.frames)}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"stats{trainer.global_rank}.json").write_text(json.dumps(record))
