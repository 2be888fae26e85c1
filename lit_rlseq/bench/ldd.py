"""LDD: learner frames/s of the IMPALA baselines (configs/ldd_rtfm_baseline.yaml, configs/ldd_nethack_baseline.yaml)
vs the collector alone with the same policy (the limit); see lit_rlseq.bench.loops for the method."""

from __future__ import annotations

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
