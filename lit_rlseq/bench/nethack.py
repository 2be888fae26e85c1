"""NetHack env throughput (NLE's NetHackChallenge-v0): steps/s of a batch of envs vs one env, random actions,
observations (tty characters and colours, cursor, blstats, message) batched and copied as the adapter does."""

from __future__ import annotations

import time

import numpy as np

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.envs.nethack import NetHackVectorEnv

BATCH = 16


def env_steps_per_s(num_envs: int, batch_steps: int, seed: int = 0) -> float:
    env = NetHackVectorEnv(num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    env.reset()
    start = time.perf_counter()
    for _ in range(batch_steps):
        env.step(rng.integers(env.single_action_space.n, size=num_envs))
    elapsed = time.perf_counter() - start
    env.close()
    return num_envs * batch_steps / elapsed


@benchmark("nethack.env_steps")
def nethack_env_steps(scale: float = 1.0) -> BenchResult:
    batch_steps = max(2, int(500 * scale))
    single = env_steps_per_s(1, batch_steps * BATCH)
    batch = env_steps_per_s(BATCH, batch_steps)
    return BenchResult(
        name="nethack.env_steps",
        figures={"steps_per_s_1env": single, f"steps_per_s_{BATCH}envs": batch},
        ratio=batch / single,
        goal=1.0,
        note=f"NetHackChallenge-v0, random actions; ratio = {BATCH}-env batch / one env (stepped in one process)",
    )
