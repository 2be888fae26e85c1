"""Procgen generative simulator: collector vs raw procgen stepping, and simulator training throughput.

* ``procgen.collector``: frames/s of the collector's unrolls on coinrun with the recurrent IMPALA agent (what
  the PPO learner consumes) ÷ raw procgen stepping with random actions and the same number of envs, in one
  run. Goal >= 0.5. The agent's CNN runs on the CPU here.
* ``procgen.ppo``: the agent's PPO learner (``configs/procgen_agent.yaml``) ÷ the collector alone with the same
  agent and envs (lit_rlseq.bench.loops.learner_vs_collector), synchronous and with one actor worker. Goal >= 0.5.
* ``procgen.simulator``: training sequences/s of the simulator (3 + 28 steps) at the sizes of
  ``configs/procgen_sim.yaml``: forward, losses, backward and Adam step on batches of the recorded shapes
  (random pixels and states: the cost does not depend on the content).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import yaml

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.bench.loops import learner_vs_collector
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.loops.collector import Collector
from lit_rlseq.nn.recurrent_impala import RecurrentImpala, RecurrentImpalaConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENV = "procgen:coinrun"
ENV_KWARGS = {"distribution_mode": "hard", "num_levels": 0}


def raw_steps_per_s(num_envs: int, steps: int) -> float:
    env = make_vector_env(ENV, num_envs=num_envs, seed=0, **ENV_KWARGS)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, 15, num_envs))
    seconds = time.perf_counter() - start
    env.close()
    return num_envs * steps / seconds


def collector_frames_per_s(num_envs: int, steps: int, unroll_length: int = 32) -> float:
    """The collector's unrolls (what the PPO learner consumes) with the recurrent IMPALA agent."""
    env = make_vector_env(ENV, num_envs=num_envs, seed=0, **ENV_KWARGS)
    collector = Collector(env, seed=0)
    collector.reset(0)
    agent = RecurrentImpala(RecurrentImpalaConfig())
    unrolls = max(1, steps // unroll_length)
    start = time.perf_counter()
    for _ in range(unrolls):
        collector.unroll(agent, unroll_length)
    seconds = time.perf_counter() - start
    env.close()
    return num_envs * unrolls * unroll_length / seconds


@benchmark("procgen.collector")
def collector_vs_raw(scale: float = 1.0) -> BenchResult:
    num_envs, steps = 16, max(32, int(256 * scale))
    raw = raw_steps_per_s(num_envs, steps * 5)
    collected = collector_frames_per_s(num_envs, steps)
    return BenchResult(
        name="procgen.collector",
        figures={"collector_frames_per_s": collected, "raw_procgen_steps_per_s": raw,
                 "threads": torch.get_num_threads()},
        ratio=collected / raw,
        goal=0.5,
        note=f"coinrun hard, {num_envs} envs; collector = agent (IMPALA CNN + GRU, CPU) + env, 32-step unrolls",
    )


@benchmark("procgen.ppo")
def ppo_vs_collector(scale: float = 1.0) -> list[BenchResult]:
    tiny = scale < 0.1  # the tests' runs: a small agent, two short columns
    model = {"channels": [4, 8, 8], "hidden": 16, "num_minibatches": 2} if tiny else {}
    data = {"num_envs": 2, "unroll_length": 8} if tiny else {}
    return learner_vs_collector("procgen.ppo", CONFIGS / "procgen_agent.yaml", max(2, int(8 * scale)), model, data)


@benchmark("procgen.simulator")
def simulator_training(scale: float = 1.0) -> BenchResult:
    from lit_rlseq.procgen_sim.model import Simulator, SimulatorConfig
    from lit_rlseq.procgen_sim.module import simulator_losses

    config = yaml.safe_load((CONFIGS / "procgen_sim.yaml").read_text())
    sizes = {k: v for k, v in config["model"]["init_args"].items() if k in SimulatorConfig.__dataclass_fields__}
    sim_config = SimulatorConfig(**sizes)
    batch_size = config["data"]["init_args"]["batch_size"]
    if scale < 1:  # the tests' tiny runs
        batch_size = max(2, int(batch_size * scale))
    simulator, agent = Simulator(sim_config), RecurrentImpala(RecurrentImpalaConfig()).requires_grad_(False)
    optimizer = torch.optim.Adam(simulator.parameters(), lr=1e-4)
    w, g = sim_config.frames, torch.Generator().manual_seed(0)
    batch = {
        "frames": torch.rand(batch_size, w, 3, 64, 64, generator=g), "action": torch.randint(0, 15, (batch_size, w)),
        "reward": torch.zeros(batch_size, w), "done": torch.zeros(batch_size, w), "hx": torch.randn(batch_size, w, 64),
        "log_probs": torch.log_softmax(torch.randn(batch_size, w, 15), -1), "mask": torch.ones(batch_size, w, dtype=bool),
    }
    k = sim_config.num_init - 1

    def step() -> None:
        rollout = simulator(batch["frames"], batch["hx"][:, k], batch["action"][:, k : k + sim_config.num_sim - 1], agent)
        loss = sum(simulator_losses(rollout, batch, sim_config.num_init).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    steps = max(1, int(10 * scale))
    start = time.perf_counter()
    for _ in range(steps):
        step()
    rate = steps * batch_size / (time.perf_counter() - start)
    params = sum(p.numel() for p in simulator.parameters())
    return BenchResult(
        name="procgen.simulator",
        figures={"train_sequences_per_s": rate, "batch_size": batch_size, "parameters": params,
                 "threads": torch.get_num_threads()},
        note=f"configs/procgen_sim.yaml sizes, {sim_config.num_init} + {sim_config.num_sim} steps per sequence, CPU",
    )
