"""Fast-weight rules and the FWP Atari pipeline against their limits, each measured side by side in one run.

* ``fwp.rules``: per rule, forward + backward of the fast path ÷ the naive reference over a 50-step unroll with
  batch 32, 4 heads x 32 (the learner's shapes; episode starts inside the unroll), on this machine's CPU;
  goal <= 0.2 (the ratio is time, so smaller is better).
* ``fwp.collector``: agent steps/s of the collector (FWP agent acting) ÷ the same vector env stepped with random
  actions and no network; goal >= 0.5.
* ``fwp.learner``: IMPALA training frames/s ÷ the collector alone (same config, same agent); goal >= 0.5.

``fwp.rules`` and ``fwp.collector`` run in one thread of this process (the collector's envs step in-process), so
with ``--threads 1`` their ratios are taken from this thread's CPU time (``time.thread_time``), which other
processes on a shared machine do not inflate; wall-clock figures are reported beside. With more threads, torch's
worker threads would escape that clock and wall-clock time is used.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from lit_rlseq.bench import BenchResult, benchmark
from lit_rlseq.nn import fast_weights as fw

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fwp_atari.yaml"


def rule_inputs(rule: str, t: int, b: int, h: int, d: int, seed: int = 0):
    """Random inputs of the learner's shapes for one rule (as the layers feed them), resets in ~2% of steps."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    first = torch.rand(t, b, generator=g) < 0.02
    sm = lambda x: torch.softmax(x, -1)  # noqa: E731
    if rule == "lt":
        return [fw.elu_feature_map(r(t, b, h, d)), fw.elu_feature_map(r(t, b, h, d)), r(t, b, h, d)], \
            (r(b, h, d, d),), first
    if rule == "delta":
        return [fw.elu_feature_map(r(t, b, h, d)), fw.elu_feature_map(r(t, b, h, d)), r(t, b, h, d),
                torch.sigmoid(r(t, b, h))], (r(b, h, d, d),), first
    if rule == "rdn":
        return [r(t, b, h, d), r(t, b, h, d), r(t, b, h, d), r(t, b, h)] + \
            [r(h, d, d) / d**0.5 for _ in range(3)] + [r(h, d) / d**0.5], (r(b, h, d, d), r(b, h, d)), first
    return [sm(r(t, b, h, d)), sm(r(t, b, h, d)), r(t, b, h, d), torch.sigmoid(r(t, b, h)), sm(r(t, b, h, d)),
            r(t, b, h, d), torch.sigmoid(r(t, b, h))], (r(b, h, d, d), r(b, h, d, d), r(b, h, d)), first


def single_thread() -> bool:
    """True when this thread's CPU time measures all of torch's work (one intra-op thread)."""
    return torch.get_num_threads() == 1


def time_fwd_bwd(fn, args, state, first, repeats: int) -> tuple[float, float]:
    """Median (wall seconds, this thread's CPU seconds) of one forward + backward (loss = sum of outputs and
    final states)."""
    args = [a.requires_grad_(True) for a in args]
    state = tuple(s.requires_grad_(True) for s in state)
    walls, cpus = [], []
    for _ in range(repeats + 1):
        start, cpu = time.perf_counter(), time.thread_time()
        out, final = fn(*args, state[0] if len(state) == 1 else state, first)
        finals = (final,) if isinstance(final, torch.Tensor) else final
        loss = out.sum() + sum(f.sum() for f in finals)
        torch.autograd.grad(loss, [*args, *state], allow_unused=True)
        walls.append(time.perf_counter() - start)
        cpus.append(time.thread_time() - cpu)
    median = lambda xs: sorted(xs[1:])[len(xs[1:]) // 2]  # noqa: E731  (the first call warms up)
    return median(walls), median(cpus)


@benchmark("fwp.rules")
def rules(scale: float = 1.0) -> list[BenchResult]:
    t = max(4, int(50 * scale)) if scale < 1 else 50
    b = 32 if scale >= 1 else 4
    repeats = max(1, int(5 * scale)) if scale < 1 else 5
    results = []
    for rule, (naive, fast) in fw.RULES.items():
        for grad in ("full", "truncated"):
            args, state, first = rule_inputs(rule, t, b, 4, 32)
            naive_s, naive_cpu = time_fwd_bwd(lambda *a, **k: naive(*a, grad=grad, **k), [a.clone() for a in args],
                                              tuple(s.clone() for s in state), first, repeats)
            fast_s, fast_cpu = time_fwd_bwd(lambda *a, **k: fast(*a, grad=grad, **k), [a.clone() for a in args],
                                            tuple(s.clone() for s in state), first, repeats)
            cpu = single_thread()
            results.append(BenchResult(
                name=f"fwp.rules.{rule}.{grad}",
                figures={"naive_ms": naive_s * 1e3, "fast_ms": fast_s * 1e3, "naive_cpu_ms": naive_cpu * 1e3,
                         "fast_cpu_ms": fast_cpu * 1e3, "threads": torch.get_num_threads()},
                ratio=fast_cpu / naive_cpu if cpu else fast_s / naive_s,
                goal=0.2,
                lower_is_better=True,
                note=f"fwd+bwd, T={t} B={b} H=4 d=32, CPU; ratio = fast / naive {'CPU' if cpu else 'wall'} time "
                     "(lower is better)",
            ))
    return results


def _random_steps_per_s(env, steps: int, seed: int = 0, clock=time.perf_counter) -> float:
    import numpy as np

    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n = env.single_action_space.n
    start = clock()
    for _ in range(steps):
        env.step(rng.integers(0, n, env.num_envs))
    return env.num_envs * steps / (clock() - start)


@benchmark("fwp.atari_vector")
def atari_vector(scale: float = 1.0) -> list[BenchResult]:
    """Preprocessed Pong agent steps/s with random actions: gymnasium's SyncVectorEnv and AsyncVectorEnv over
    our AtariGame, and ale-py's own C++ AtariVectorEnv with the closest settings; ratios against Sync."""
    from ale_py.vector_env import AtariVectorEnv

    from lit_rlseq.envs.atari import make_vector_env

    steps, num_envs = max(5, int(400 * scale)), (8 if scale >= 1 else 2)
    figures = {}
    for name in ("sync", "async"):
        env = make_vector_env("Pong", num_envs=num_envs, vector=name)
        figures[f"{name}_steps_per_s"] = _random_steps_per_s(env, steps)
        env.close()
    env = AtariVectorEnv("pong", num_envs, episodic_life=True, reward_clipping=False, noop_max=30,
                         use_fire_reset=True, repeat_action_probability=0.0, max_num_frames_per_episode=0)
    figures["ale_vector_steps_per_s"] = _random_steps_per_s(env, steps)
    env.close()
    sync = figures["sync_steps_per_s"]
    return [BenchResult(name=f"fwp.atari_vector.{name}", figures={f"{name}_steps_per_s": figures[f"{name}_steps_per_s"],
                                                                  "sync_steps_per_s": sync},
                        ratio=figures[f"{name}_steps_per_s"] / sync,
                        note=f"Pong, {num_envs} envs, random actions, {steps} vector steps; ratio vs SyncVectorEnv")
            for name in ("async", "ale_vector")]


def _fwp_setup(core: str, num_envs: int, unroll: int, steps: int, workers: int):
    from lit_rlseq.bench.loops import _read_config
    from lit_rlseq.loops.online import OnlineDataModule

    model_class, model_args, data_args = _read_config(CONFIG)
    data_args = {**data_args, "eval_envs": {}, "num_envs": num_envs, "batch_size": num_envs, "unroll_length": unroll,
                 "steps_per_epoch": steps, "num_workers": workers}
    dm = OnlineDataModule(**data_args)
    module = model_class(num_actions=dm.num_actions, **{**model_args, "core": core})
    return dm, module


@benchmark("fwp.collector")
def collector(scale: float = 1.0) -> list[BenchResult]:
    """Collector agent steps/s (the FWP agent acting, batch of envs, one forward per step) ÷ the same preprocessed
    vector env stepped with random actions and no network."""
    num_envs, unroll = (8, 20) if scale >= 0.1 else (2, 4)  # tests run at 0.01
    steps = max(1, int(10 * scale))
    results = []
    cpu = single_thread()
    for core in ("lstm", "rdn"):
        dm, module = _fwp_setup(core, num_envs, unroll, steps, 0)
        col = dm.make_collector(rank=0, worker=0)
        col.unroll(module.policy, unroll)  # warm-up
        start, cpu_start = time.perf_counter(), time.thread_time()
        for _ in range(steps):
            col.unroll(module.policy, unroll)
        agent = steps * unroll * num_envs / (time.perf_counter() - start)
        agent_cpu = steps * unroll * num_envs / (time.thread_time() - cpu_start)
        raw = _random_steps_per_s(col.env, steps * unroll)
        raw_cpu = _random_steps_per_s(col.env, steps * unroll, clock=time.thread_time)
        results.append(BenchResult(
            name=f"fwp.collector.{core}",
            figures={"collector_steps_per_s": agent, "env_only_steps_per_s": raw,
                     "collector_steps_per_cpu_s": agent_cpu, "env_only_steps_per_cpu_s": raw_cpu},
            ratio=agent_cpu / raw_cpu if cpu else agent / raw, goal=0.5,
            note=f"{dm.env_id}, {num_envs} envs (SyncVectorEnv), {steps} unrolls of {unroll}; CPU, "
                 f"{torch.get_num_threads()} threads; ratio of {'CPU' if cpu else 'wall'} time"))
    return results


@benchmark("fwp.learner")
def learner(scale: float = 1.0) -> list[BenchResult]:
    """IMPALA training frames/s (collection included) ÷ the collector alone, configs/fwp_atari.yaml with its rdn
    core; synchronous (collection in the learner process) and with one actor process."""
    import lightning as L

    from lit_rlseq.bench.loops import WARMUP_STEPS, _Clock

    num_envs, unroll = (8, 20) if scale >= 0.1 else (2, 4)  # tests run at 0.01
    steps = max(2, int(20 * scale))
    dm, module = _fwp_setup("rdn", num_envs, unroll, steps, 0)
    col = dm.make_collector(rank=0, worker=0)
    col.unroll(module.policy, unroll)
    start = time.perf_counter()
    for _ in range(steps):
        col.unroll(module.policy, unroll)
    limit = steps * unroll * num_envs / (time.perf_counter() - start)
    results = []
    for mode, workers in (("sync", 0), ("async", 1)):
        dm, module = _fwp_setup("rdn", num_envs, unroll, steps + WARMUP_STEPS, workers)
        clock = _Clock()
        trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                            callbacks=[clock])
        trainer.fit(module, datamodule=dm)
        rate = clock.frames_per_s()
        results.append(BenchResult(
            name=f"fwp.learner.{mode}", figures={"learner_steps_per_s": rate, "collector_steps_per_s": limit},
            ratio=rate / limit, goal=0.5,
            note=f"{dm.env_id}, rdn core, {num_envs} envs x {unroll} steps per learner step; "
                 f"{'1 actor process' if workers else 'collection in the learner process'}"))
    return results
