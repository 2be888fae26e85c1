"""Learner throughput against its limit: frames/s of IMPALA or PPO training vs the same envs stepped by the same
policy with no learning (the collector alone), synchronous and asynchronous, in one run.

The learner's frames/s counts the frames it trained on between the end of a warm-up batch and the end of the
run (Lightning's start-up and the first unroll excluded). The limit steps the same envs with the same network
(``Collector.unroll``, inference only). Raw env steps/s with random (valid) actions are reported too.
"""

from __future__ import annotations

import importlib
import inspect
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.loops.online import OnlineDataModule

WARMUP_STEPS = 2
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class _Clock(L.Callback):
    def __init__(self):
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = (time.perf_counter(), int(pl_module.frames))
        if batch_idx + 1 == WARMUP_STEPS:
            self.start = now
        self.end = now

    def frames_per_s(self) -> float:
        return (self.end[1] - self.start[1]) / (self.end[0] - self.start[0])


def env_only_steps_per_s(env_id: str, num_envs: int, steps: int, env_kwargs: dict) -> float:
    env = make_vector_env(env_id, num_envs=num_envs, seed=0, **env_kwargs)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        valid = obs.get("valid", np.ones((num_envs, env.single_action_space.n), dtype=bool)) if hasattr(
            env.single_action_space, "n") else None
        if valid is not None:  # a random valid action (every action valid where the env reports none)
            keys = np.where(valid, rng.random(valid.shape), -1.0)
            obs, *_ = env.step(keys.argmax(1))
        else:
            obs, *_ = env.step(env.action_space.sample())
    return num_envs * steps / (time.perf_counter() - start)


def learner_vs_collector(name: str, config: Path, steps: int, model_overrides: dict[str, Any] | None = None,
                         data_overrides: dict[str, Any] | None = None) -> list[BenchResult]:
    """Measures the run that ``config`` (a YAML in configs/) describes: its model and data, synchronous and
    with one actor worker, against the collector alone. ``model_overrides`` and ``data_overrides`` replace model
    and data arguments (e.g. a smaller network or batch for the tiny scale the tests run)."""
    model_class, model_args, data_args = _read_config(config)
    model_args, data_args = {**model_args, **(model_overrides or {})}, {**data_args, **(data_overrides or {})}
    eval_free = {**data_args, "eval_envs": {}}

    def make_data(workers: int, steps_per_epoch: int) -> OnlineDataModule:
        return OnlineDataModule(**{**eval_free, "num_workers": workers, "steps_per_epoch": steps_per_epoch})

    accepted = inspect.signature(model_class.__init__).parameters
    linked = [name for name in ("vocab", "num_actions", "action_dim", "obs_dim") if name in accepted]

    def make_module(dm: OnlineDataModule) -> L.LightningModule:
        return model_class(**{name: getattr(dm, name) for name in linked}, **model_args)

    dm = make_data(0, steps)
    module = make_module(dm)
    collector = dm.make_collector(rank=0, worker=0)
    collector.unroll(module.policy, dm.unroll_length)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        collector.unroll(module.policy, dm.unroll_length)
    limit = steps * dm.unroll_length * dm.num_envs / (time.perf_counter() - start)
    env_only = env_only_steps_per_s(dm.env_id, dm.num_envs, steps * dm.unroll_length, dm.env_kwargs)

    results = []
    for mode, workers in (("sync", 0), ("async", 1)):
        dm = make_data(workers, steps + WARMUP_STEPS)
        module = make_module(dm)
        clock = _Clock()
        trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                            callbacks=[clock])
        trainer.fit(module, datamodule=dm)
        learner = clock.frames_per_s()
        results.append(BenchResult(
            name=f"{name}.{mode}",
            figures={"learner_frames_per_s": learner, "collector_frames_per_s": limit,
                     "env_only_steps_per_s": env_only, "learner_threads": torch.get_num_threads()},
            ratio=learner / limit,
            goal=0.5,
            note=f"{config.name}: {dm.num_envs} envs x {dm.unroll_length} steps; "
                 f"{'1 actor worker' if workers else 'collection in the learner process'}",
        ))
    return results


def _read_config(path: Path) -> tuple[type, dict, dict]:
    config = yaml.safe_load(path.read_text())
    module_name, class_name = config["model"]["class_path"].rsplit(".", 1)
    model_class = getattr(importlib.import_module(module_name), class_name)
    return model_class, dict(config["model"].get("init_args", {})), dict(config["data"]["init_args"])


@benchmark("loops.toy_impala")
def toy_impala(scale: float = 1.0) -> list[BenchResult]:
    return learner_vs_collector("loops.toy_impala", CONFIGS / "toy_impala.yaml", max(2, int(150 * scale)))
