"""Trajectory Transformer: planner latency (KV cache vs the uncached reference), batched planning, training speed.

All on a randomly initialised model of the paper's size for Hopper (4 layers, 4 heads, 128 wide, 100 bins,
observation 11, action 3: 16 tokens per transition, block 159). Planning starts from a steady-state prefix
(5 context transitions + the current observation) and runs the reference's Hopper settings scaled by
``scale`` (1.0: horizon 15, beam 128, expand 2, context 5, cdf 0.6 on actions).

* ``trajectory.planner_latency``: seconds per environment step, cached ÷ uncached, same model, settings and
  random draws (so the same plan); goal <= 0.1.
* ``trajectory.planning_throughput``: planned environment steps per second with 1 env vs 16 envs in one batch
  (horizon 5, beam 32 at scale 1, the reference's HalfCheetah settings); ratio = 16-env rate / 1-env rate.
* ``trajectory.training``: training tokens per second (forward, backward, AdamW step) at batch 256 x 159.
"""

from __future__ import annotations

import time

import torch

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.trajectory.model import TrajectoryGPT, TrajectoryGPTConfig
from lit_rlseq.trajectory.planner import PlannerSettings, beam_plan, beam_plan_reference

GOAL_LATENCY_RATIO = 0.1


def paper_model() -> tuple[TrajectoryGPT, torch.Tensor]:
    torch.manual_seed(0)
    model = TrajectoryGPT(TrajectoryGPTConfig(observation_dim=11, action_dim=3)).eval()
    thresholds = torch.sort(torch.randn(101, 16), dim=0).values
    return model, thresholds


def steady_prefix(n_envs: int) -> torch.Tensor:
    return torch.randint(0, 100, (n_envs, 5 * 16 + 11), generator=torch.Generator().manual_seed(0))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@benchmark("trajectory.planner_latency")
def planner_latency(scale: float = 1.0) -> BenchResult:
    model, thresholds = paper_model()
    settings = PlannerSettings(horizon=max(1, round(15 * scale)), beam_width=max(2, round(128 * scale)))
    prefix = steady_prefix(1)
    plans = {}

    def run(plan):
        plans[plan] = plan(model, prefix, thresholds, settings, torch.Generator().manual_seed(0))

    cached = timed(lambda: run(beam_plan))
    uncached = timed(lambda: run(beam_plan_reference))
    same = bool(torch.equal(plans[beam_plan], plans[beam_plan_reference]))
    return BenchResult(
        "trajectory.planner_latency",
        {"cached_s_per_step": cached, "uncached_s_per_step": uncached},
        ratio=cached / uncached,
        goal=GOAL_LATENCY_RATIO,
        lower_is_better=True,
        note=f"horizon {settings.horizon}, beam {settings.beam_width}, {torch.get_num_threads()} threads; identical plan: {same}",
    )


@benchmark("trajectory.planning_throughput")
def planning_throughput(scale: float = 1.0) -> BenchResult:
    model, thresholds = paper_model()
    settings = PlannerSettings(horizon=max(1, round(5 * scale)), beam_width=max(2, round(32 * scale)))
    rates = {}
    for n_envs in (1, 16):
        prefix = steady_prefix(n_envs)
        seconds = timed(lambda: beam_plan(model, prefix, thresholds, settings, torch.Generator().manual_seed(0)))
        rates[n_envs] = n_envs / seconds
    return BenchResult(
        "trajectory.planning_throughput",
        {"env_steps_per_s_1env": rates[1], "env_steps_per_s_16envs": rates[16]},
        ratio=rates[16] / rates[1],
        note=f"cached planner, horizon {settings.horizon}, beam {settings.beam_width}, {torch.get_num_threads()} threads",
    )


@benchmark("trajectory.training")
def training(scale: float = 1.0) -> BenchResult:
    model, _ = paper_model()
    model.train()
    batch = max(2, round(256 * scale))
    block = model.config.block_size
    optimizer = torch.optim.AdamW(model.gpt.optim_groups(0.1), lr=6e-4, betas=(0.9, 0.95))
    tokens = torch.randint(0, 100, (batch, block + 1))

    def step():
        logits, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    steps = 3
    seconds = timed(lambda: [step() for _ in range(steps)])
    return BenchResult(
        "trajectory.training",
        {"tokens_per_s": steps * batch * block / seconds},
        note=f"batch {batch} x {block} tokens, paper-size model, {torch.get_num_threads()} threads",
    )
