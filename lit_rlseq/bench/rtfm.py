"""RTFM env throughput: steps/s with random valid actions, observation featurisation included."""

from __future__ import annotations

import time

import numpy as np

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.envs.rtfm import RTFMVectorEnv

GOAL_STEPS_PER_S = 20_000  # batch of 64 envs on a 2-core CPU (issue 3)
VARIANT = "groups_nl"  # the slowest variant: moving monsters, paraphrased text rebuilt at every reset


def env_steps_per_s(num_envs: int, batch_steps: int, variant: str = VARIANT, seed: int = 0) -> float:
    env = RTFMVectorEnv(variant, num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    start = time.perf_counter()
    for _ in range(batch_steps):
        keys = np.where(obs["valid"], rng.random(obs["valid"].shape), -1.0)
        obs, *_ = env.step(keys.argmax(1))
    return num_envs * batch_steps / (time.perf_counter() - start)


@benchmark("rtfm.env_steps")
def rtfm_env_steps(scale: float = 1.0) -> BenchResult:
    batch_steps = max(1, int(3000 * scale))
    single = env_steps_per_s(1, batch_steps * 8)
    batch = env_steps_per_s(64, batch_steps)
    return BenchResult(
        name="rtfm.env_steps",
        figures={
            "steps_per_s_1env": single,
            "steps_per_s_64envs": batch,
            "goal_steps_per_s_64envs": GOAL_STEPS_PER_S,
        },
        ratio=batch / GOAL_STEPS_PER_S,
        goal=1.0,
        note=f"{VARIANT}, random valid actions, observations included; ratio = 64-env steps/s / {GOAL_STEPS_PER_S}",
    )
