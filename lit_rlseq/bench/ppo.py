"""The PPO learner against its limit: learner frames/s (collection plus ppo_epochs x num_minibatches updates per
batch) vs the collector alone with the same policy and envs, on the toy env (configs/toy_ppo.yaml) and on
MuJoCo Hopper (configs/ppo_hopper.yaml); see lit_rlseq.bench.loops for the method."""

from __future__ import annotations

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.bench.loops import CONFIGS, learner_vs_collector


# Below a tenth of the reported scale (the tests' tiny runs) the batches are shorter too.
@benchmark("ppo.toy")
def toy(scale: float = 1.0) -> list[BenchResult]:
    shorter = {} if scale >= 0.1 else {"unroll_length": 16}  # 256 frames, still 4 minibatches
    return learner_vs_collector("ppo.toy", CONFIGS / "toy_ppo.yaml", max(2, int(30 * scale)), data_overrides=shorter)


@benchmark("ppo.hopper")
def hopper(scale: float = 1.0) -> list[BenchResult]:
    shorter = {} if scale >= 0.1 else {"unroll_length": 256}  # still 32 minibatches
    return learner_vs_collector("ppo.hopper", CONFIGS / "ppo_hopper.yaml", max(2, int(10 * scale)), data_overrides=shorter)
