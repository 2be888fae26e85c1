"""Messenger throughput: the batched env, and EMMA's compute per PPO update (sparse vs dense trunk).

* ``messenger.env_steps``: steps/s of 64 envs stepped together with uniform random actions (observations
  included), per stage, against the original env's single-env rate measured on the 2-core machine
  (shared/reference/messenger.md: S1 180k, S2 3.9k, S3 2.9k steps/s). Ratio: S2 batched / original S2.
* ``messenger.emma``: EMMA at the reference's sizes on an S2 batch of 64 envs x 64 steps (the reference's
  update: 64 steps, 4 epochs, one batch): acting (64 envs, one step at a time) and learner forward+backward,
  sparse (our path) and dense (the plain definition). "ppo_update_equivalent_steps_per_s" = frames / (acting
  + 4 x forward-backward), the model's share of a PPO update; the original loop ran 30-55 steps/s here.
  Ratio: that figure / 55 (the original's best), goal 20.
* ``messenger.ppo_learner_s1`` / ``_s2``: the PPO learner training EMMA (configs/ldd_messenger_baseline*.yaml)
  against the collector alone (lit_rlseq.bench.loops.learner_vs_collector: ratio goal 0.5), and its frames/s
  against the original loop's 55 steps/s (goal 20), synchronous and with one actor worker.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.bench.loops import CONFIGS, learner_vs_collector
from lit_rlseq.envs.messenger import MessengerVectorEnv
from lit_rlseq.nn.emma import Emma, EmmaConfig

ORIGINAL_ENV_STEPS_PER_S = {"s1": 180_000, "s2": 3_900, "s3": 2_900}
ORIGINAL_LEARNER_STEPS_PER_S = 55  # the original EMMA loop's best on this machine (30-55)
GOAL_SPEEDUP = 20
PPO_EPOCHS = 4


def env_steps_per_s(stage: str, num_envs: int, batch_steps: int, seed: int = 0) -> float:
    env = MessengerVectorEnv(stage, num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    env.reset()
    actions = rng.integers(0, 5, size=(batch_steps, num_envs))
    start = time.perf_counter()
    for t in range(batch_steps):
        env.step(actions[t])
    return num_envs * batch_steps / (time.perf_counter() - start)


@benchmark("messenger.env_steps")
def messenger_env_steps(scale: float = 1.0) -> BenchResult:
    batch_steps = max(2, int(1000 * scale))
    figures = {}
    for stage in ("s1", "s2", "s3"):
        figures[f"{stage}_steps_per_s_64envs"] = env_steps_per_s(stage, 64, batch_steps)
        figures[f"{stage}_original_steps_per_s_1env"] = ORIGINAL_ENV_STEPS_PER_S[stage]
    figures["s2_steps_per_s_1env"] = env_steps_per_s("s2", 1, batch_steps * 4)
    return BenchResult(
        name="messenger.env_steps",
        figures=figures,
        ratio=figures["s2_steps_per_s_64envs"] / ORIGINAL_ENV_STEPS_PER_S["s2"],
        note="uniform random actions, observations included; ratio = S2 64-env steps/s / original S2 steps/s",
        extra={"load_average_1min": os.getloadavg()[0]},
    )


def s2_batch(num_envs: int, steps: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor, MessengerVectorEnv]:
    env = MessengerVectorEnv("s2", num_envs=num_envs, seed=seed)
    obs, _ = env.reset()
    rng = np.random.default_rng(seed)
    seq, firsts, first = [], [], np.ones(num_envs, dtype=bool)
    for _ in range(steps + 1):
        seq.append(obs)
        firsts.append(first)
        obs, _, terminated, truncated, _ = env.step(rng.integers(0, 5, num_envs))
        first = terminated | truncated
    return {k: torch.from_numpy(np.stack([s[k] for s in seq])) for k in seq[0]}, torch.from_numpy(np.stack(firsts)), env


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@benchmark("messenger.emma")
def messenger_emma(scale: float = 1.0) -> BenchResult:
    num_envs = max(2, round(64 * scale))
    steps = max(2, round(64 * scale))
    repeats = max(1, round(3 * scale))
    obs, first, env = s2_batch(num_envs, steps)
    torch.manual_seed(0)
    model = Emma(EmmaConfig(vocab_size=len(env.vocab)))
    state = model.initial_state(num_envs)
    figures: dict[str, float] = {}
    for sparse in (True, False):
        model.config.sparse = sparse
        tag = "sparse" if sparse else "dense"

        def learn() -> None:
            out = model(obs, first, state)
            (out.logits.logsumexp(-1).sum() + out.value.sum()).backward()
            model.zero_grad(set_to_none=True)

        def act() -> None:
            step_state = state
            with torch.no_grad():
                for t in range(steps):
                    step_state = model({k: v[t : t + 1] for k, v in obs.items()}, first[t : t + 1], step_state).state

        learn_s = _best(learn, repeats)
        act_s = _best(act, 1)
        frames = num_envs * steps
        figures[f"{tag}_learner_fwd_bwd_steps_per_s"] = frames / learn_s
        figures[f"{tag}_acting_steps_per_s"] = frames / act_s
        figures[f"{tag}_ppo_update_equivalent_steps_per_s"] = frames / (act_s + PPO_EPOCHS * learn_s)
    model.config.sparse = True
    equivalent = figures["sparse_ppo_update_equivalent_steps_per_s"]
    figures["original_steps_per_s"] = ORIGINAL_LEARNER_STEPS_PER_S
    return BenchResult(
        name="messenger.emma",
        figures=figures,
        ratio=equivalent / ORIGINAL_LEARNER_STEPS_PER_S,
        goal=GOAL_SPEEDUP,
        note=f"EMMA reference sizes, S2, {num_envs} envs x {steps} steps; ratio = model time per PPO update "
             f"(acting + {PPO_EPOCHS} fwd+bwd epochs) in steps/s / the original loop's {ORIGINAL_LEARNER_STEPS_PER_S}",
        extra={"threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]},
    )


def ppo_learner(stage: str, scale: float) -> list[BenchResult]:
    config = CONFIGS / ("ldd_messenger_baseline.yaml" if stage == "s1" else "ldd_messenger_baseline_s2.yaml")
    name = f"messenger.ppo_learner_{stage}"
    results = learner_vs_collector(name, config, max(2, int(60 * scale)))
    against_original = []
    for result in results:
        frames = result.figures["learner_frames_per_s"]
        against_original.append(BenchResult(
            name=f"{result.name}.vs_original", figures={"learner_frames_per_s": frames,
                                                        "original_steps_per_s": ORIGINAL_LEARNER_STEPS_PER_S},
            ratio=frames / ORIGINAL_LEARNER_STEPS_PER_S, goal=GOAL_SPEEDUP,
            note=f"{result.note}; ratio = learner frames/s / the original EMMA loop's {ORIGINAL_LEARNER_STEPS_PER_S}",
            extra={"load_average_1min": os.getloadavg()[0]}))
    return results + against_original


@benchmark("messenger.ppo_learner_s1")
def messenger_ppo_learner_s1(scale: float = 1.0) -> list[BenchResult]:
    return ppo_learner("s1", scale)


@benchmark("messenger.ppo_learner_s2")
def messenger_ppo_learner_s2(scale: float = 1.0) -> list[BenchResult]:
    """S2 starts from an S1 checkpoint in the pipeline; the benchmark times a fresh network (same cost)."""
    return ppo_learner("s2", scale)
