"""LDD: learner frames/s of the IMPALA baselines (configs/ldd_rtfm_baseline.yaml, configs/ldd_nethack_baseline.yaml)
and of LDD on NetHack (configs/ldd_nethack.yaml: the baseline's learner plus the frozen teacher's forward pass and
the distillation loss) vs the collector alone with the same policy (the limit); see lit_rlseq.bench.loops for the
method."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import yaml

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.bench.loops import CONFIGS, learner_vs_collector


@benchmark("ldd.rtfm_baseline")
def rtfm_baseline(scale: float = 1.0) -> list[BenchResult]:
    return learner_vs_collector("ldd.rtfm_baseline", CONFIGS / "ldd_rtfm_baseline.yaml", max(2, int(150 * scale)))


@benchmark("ldd.nethack_baseline")
def nethack_baseline(scale: float = 1.0) -> list[BenchResult]:
    # Below a tenth of the reported scale (the tests' rot check) a smaller batch: NetHack envs are slow to make.
    tiny = {"num_envs": 4, "unroll_length": 8} if scale < 0.1 else {}
    config = CONFIGS / "ldd_nethack_baseline.yaml"
    return learner_vs_collector("ldd.nethack_baseline", config, max(2, int(40 * scale)), data_overrides=tiny)


@benchmark("ldd.nethack")
def nethack_ldd(scale: float = 1.0) -> list[BenchResult]:
    # The dynamics checkpoint is an untrained one of configs/ldd_nethack_dynamics.yaml's sizes: the speed of the
    # learner does not depend on the weights, and a benchmark must not need a trained model.
    tiny = {"num_envs": 4, "unroll_length": 8} if scale < 0.1 else {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = untrained_nethack_dynamics(Path(tmp) / "dynamics.ckpt")
        return learner_vs_collector("ldd.nethack", CONFIGS / "ldd_nethack.yaml", max(2, int(40 * scale)),
                                    model_overrides={"dynamics_checkpoint": str(checkpoint)}, data_overrides=tiny)


def untrained_nethack_dynamics(path: Path) -> Path:
    """Writes a checkpoint of a fresh NetHackDynamicsModule (configs/ldd_nethack_dynamics.yaml's sizes) as
    ``lightning fit`` would (what LDDNetHackImpala reads: hyperparameters, weights, its kind)."""
    from lit_rlseq.envs.nethack import NetHackVectorEnv
    from lit_rlseq.ldd.nethack_dynamics import NetHackDynamicsModule

    sizes = yaml.safe_load((CONFIGS / "ldd_nethack_dynamics.yaml").read_text())["model"]["init_args"]
    probe = NetHackVectorEnv(num_envs=1)
    module = NetHackDynamicsModule(num_actions=int(probe.single_action_space.n), **sizes)
    probe.close()
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path
