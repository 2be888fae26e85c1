"""The LDD-on-RTFM pipeline: IMPALA baseline -> expert demonstrations -> dynamics model -> LDD, then the
baseline-vs-LDD comparison at equal frame budgets.

    bin/ldd-rtfm                       small scale, seed 0 (about 15 minutes on 2 CPU cores)
    bin/ldd-rtfm --seeds 0 1 2         baseline and LDD for three seeds (demonstrations and dynamics once)
    bin/ldd-rtfm --scale paper         the paper's scale (for GPU machines)
    bin/ldd-rtfm --dry-run             print the commands only
    bin/ldd-rtfm --smoke               every stage for a few steps (checks an installation in about a minute)
    bin/ldd-rtfm -- --trainer.accelerator=gpu --trainer.devices=4    extra arguments for the RL stages

Every stage is a `lightning` command, printed before it runs, so each can be re-run by hand. A finished stage
is skipped: an RL or dynamics run leaves ``complete`` in its directory; the collection tops the store up to
its episode count. An interrupted RL or dynamics run resumes from its ``last.ckpt``. At the end, the table
of win rates (greedy evaluation on the training assignments and on the held-out dev assignments, and the
uniform random policy's level, measured once into ``<out>/random_level.json``) is printed and written with a
learning-curve plot (the random level as a dashed line) to ``<out>/comparison.{md,png}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_rlseq.loops.curves import FRAMES, read_curve
from lit_rlseq.loops.random_level import random_policy_level
from lit_rlseq.stages import Stage, config_args, run_stage

METRICS = {"train": "eval/train/success", "dev": "eval/dev/success"}
# The evaluation envs of METRICS, for the random policy's level (a reference line in the comparison plot).
RANDOM_LEVEL_ENVS = {"train": "rtfm:groups_simple_stationary", "dev": "rtfm:groups_simple_stationary_dev"}
RANDOM_LEVEL_EPISODES = 2000


# --smoke: tiny budgets for every stage, to check that the whole pipeline runs.
SMOKE = {
    "rl": ["--trainer.max_epochs=2", "--data.init_args.steps_per_epoch=3", "--data.init_args.eval_episodes=8"],
    "collect": ["--data.init_args.episodes=60"],
    "dynamics": ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3"],
}


def plan(out: Path, seeds: list[int], scale: str, rl_extra: list[str], smoke: bool = False,
         system: str = "ldd_rtfm", smoke_args: dict[str, list[str]] | None = None,
         demos_from_baseline: bool = False) -> list[Stage]:
    """The stages of LDD on ``system``: its configs are ``configs/<system>_baseline.yaml``, ``_collect``,
    ``_dynamics`` and ``<system>.yaml``. ``smoke_args``: the --smoke overrides per stage kind (default SMOKE);
    ``demos_from_baseline``: record the demonstrations with the first seed's baseline checkpoint."""
    lightning = [sys.executable, "-m", "lit_rlseq"]
    extra = {k: (v if smoke else []) for k, v in (SMOKE if smoke_args is None else smoke_args).items()}
    rl_extra = extra["rl"] + rl_extra
    runs_root, run_name = out.parent, out.name  # loggers write to <save_dir>/<name>
    demos = out / "demos"
    dynamics = out / "dynamics"

    def rl_stage(method: str, title: str, config: str, seed: int, *args: str) -> Stage:
        return Stage(f"{title} seed {seed}", [
            *lightning, "fit", *config_args(config, scale), f"--seed_everything={seed}",
            f"--data.init_args.seed={seed}", f"--trainer.logger.init_args.save_dir={runs_root}",
            f"--trainer.logger.init_args.name={run_name}/{method}/seed{seed}", *args, *rl_extra,
        ], out / method / f"seed{seed}", key=f"{method} {seed}")

    stages = [rl_stage("baseline", "baseline", f"{system}_baseline", seed) for seed in seeds]
    teacher = [f"--ckpt_path={out / 'baseline' / f'seed{seeds[0]}' / 'checkpoints' / 'last.ckpt'}"] \
        if demos_from_baseline else []
    stages.append(Stage("demonstrations", [
        *lightning, "collect", *config_args(f"{system}_collect", scale), *teacher, f"--data.init_args.store={demos}",
        *extra["collect"],
    ], None))
    stages.append(Stage("dynamics model", [
        *lightning, "fit", *config_args(f"{system}_dynamics", scale), f"--data.init_args.path={demos}",
        f"--trainer.logger.init_args.save_dir={runs_root}", f"--trainer.logger.init_args.name={run_name}/dynamics",
        *extra["dynamics"],
    ], dynamics))
    checkpoint = f"--model.init_args.dynamics_checkpoint={dynamics / 'checkpoints' / 'best.ckpt'}"
    stages += [rl_stage("ldd", "LDD", system, seed, checkpoint) for seed in seeds]
    return stages


# -- the comparison ----------------------------------------------------------------------------------------
def curves(out: Path, method: str, seeds: list[int], metric: str = METRICS["dev"]) -> dict[int, list[dict[str, float]]]:
    """Each seed's evaluation rows (those with ``metric``) of ``<out>/<method>/seed<seed>/learning_curve.csv``."""
    found = {}
    for seed in seeds:
        rows = read_curve(out / method / f"seed{seed}" / "learning_curve.csv")
        rows = [r for r in rows if not math.isnan(r.get(metric, math.nan))]
        if rows:
            found[seed] = rows
    return found


def at_frames(rows: list[dict[str, float]], frames: float, metric: str) -> float:
    """The last evaluation at or before ``frames`` (NaN if none)."""
    before = [r for r in rows if r[FRAMES] <= frames]
    return before[-1][metric] if before else math.nan


def curve_mean(rows: list[dict[str, float]], frames: float, metric: str) -> float:
    """The mean of the evaluations at or before ``frames`` (NaN if none): the area under the learning curve
    per evaluation, which rewards learning early as well as ending high."""
    values = [r[metric] for r in rows if r[FRAMES] <= frames and not math.isnan(r.get(metric, math.nan))]
    return float(np.mean(values)) if values else math.nan


def mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def random_levels(out: Path, envs: dict[str, str | tuple[str, dict]], episodes: int = RANDOM_LEVEL_EPISODES,
                  name: str = "random_level", keys: dict[str, str] | None = None) -> dict[str, float]:
    """The uniform random policy's level in each evaluation env (an env id, or an id and its env kwargs):
    per split, its success rate, or the number named in ``keys[split]`` (any key of ``random_policy_level``'s
    result, e.g. "return" or NetHack's "depth"); measured once and kept in ``<out>/<name>.json``."""
    path = out / f"{name}.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    envs = {split: (env, {}) if isinstance(env, str) else (env[0], dict(env[1])) for split, env in envs.items()}
    wanted = {split: f"{env_id} {kwargs} ({episodes} episodes)" for split, (env_id, kwargs) in envs.items()}
    if cached.get("measured") != wanted or "levels" not in cached:
        by_env: dict[str, dict[str, float]] = {}  # splits that read the same env share one measurement
        for split, (env_id, kwargs) in envs.items():
            if wanted[split] not in by_env:
                by_env[wanted[split]] = random_policy_level(env_id, episodes, env_kwargs=kwargs,
                                                            num_envs=min(100, episodes))
        levels = {split: by_env[wanted[split]] for split in envs}
        cached = {"measured": wanted, "success": {split: level["success"] for split, level in levels.items()},
                  "levels": levels}
        path.write_text(json.dumps(cached, indent=1) + "\n")
    keys = keys or {}
    return {split: cached["levels"][split][keys.get(split, "success")] for split in envs}


@dataclass(frozen=True)
class Comparison:
    """What a comparison reads and how it is labelled (the defaults: RTFM S1)."""

    methods: tuple[str, str] = ("baseline", "ldd")  # run directories under <out>
    labels: tuple[str, str] = ("IMPALA baseline", "LDD")
    metrics: tuple[tuple[str, str], ...] = tuple(METRICS.items())  # (split, metric); the last one selects rows
    random_envs: tuple[tuple[str, str | tuple[str, dict]], ...] = tuple(RANDOM_LEVEL_ENVS.items())
    heading: str = "LDD vs IMPALA baseline on RTFM groups_simple_stationary"
    split_note: str = "'dev' = held-out assignments"
    split_title: str = "{split} assignments"
    title: str = "RTFM S1: LDD vs IMPALA baseline"
    name: str = "comparison"  # <out>/<name>.{md,png}
    measure: str = "greedy win rate"  # what the metrics are (heading, y axis)
    column: str = "win rate {split}"  # table column of each metric
    random_keys: tuple[tuple[str, str], ...] = ()  # split -> the random level's number (default "success")
    random_episodes: int = RANDOM_LEVEL_EPISODES
    sharey: bool = True  # one y axis for every panel (False: metrics of different units)


def compare(out: Path, seeds: list[int], wall: dict[str, float], spec: Comparison = Comparison()) -> str:
    metrics = dict(spec.metrics)
    last_metric = spec.metrics[-1][1]
    baseline, ldd = (curves(out, method, seeds, last_metric) for method in spec.methods)
    if not baseline or not ldd:
        return "no learning curves to compare yet"
    # Equal frame budgets: the largest frame count that every run of both methods reached.
    budget = min(rows[-1][FRAMES] for rows in [*baseline.values(), *ldd.values()])
    checkpoints = sorted({r[FRAMES] for rows in baseline.values() for r in rows if r[FRAMES] <= budget})
    halfway = checkpoints[len(checkpoints) // 2 - 1] if len(checkpoints) > 1 else budget
    lines = [
        f"{spec.heading}, {spec.measure} (mean ± std over seeds {sorted(baseline)} / {sorted(ldd)}), "
        f"{spec.split_note}",
        "",
        "| method | frames | " + " | ".join(spec.column.format(split=split) for split in metrics)
        + " | wall time (s, per seed) |",
        "|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for label, runs, key in ((spec.labels[0], baseline, spec.methods[0]), (spec.labels[1], ldd, spec.methods[1])):
        seconds = [wall.get(f"{key} {s}", math.nan) for s in runs]
        for frames in sorted({halfway, budget}):  # one row when every run was evaluated once
            rates = [mean_std([at_frames(rows, frames, metric) for rows in runs.values()]) for metric in metrics.values()]
            time_text = mean_std(seconds) if frames == budget else ""
            lines.append(f"| {label} | {frames:,.0f} | {' | '.join(rates)} | {time_text} |")
    # Learning speed: each run's mean over its evaluations up to the budget (the area under its curve).
    for label, runs in ((spec.labels[0], baseline), (spec.labels[1], ldd)):
        means = [mean_std([curve_mean(rows, budget, metric) for rows in runs.values()]) for metric in metrics.values()]
        lines.append(f"| {label} | mean of evaluations ≤ {budget:,.0f} | {' | '.join(means)} | |")
    level = random_levels(out, dict(spec.random_envs), spec.random_episodes, keys=dict(spec.random_keys),
                          name=f"random_level_{spec.name}" if spec.name != "comparison" else "random_level")
    lines.append("| random policy | | " + " | ".join(f"{level[split]:.3f}" for split in metrics) + " | |")
    plot_comparison(out, baseline, ldd, budget, level, spec)
    lines += ["", f"learning curves: {out / (spec.name + '.png')}"]
    return "\n".join(lines)


def plot_comparison(out: Path, baseline: dict, ldd: dict, budget: float,
                    random_level: dict[str, float] | None = None, spec: Comparison = Comparison()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(spec.metrics), figsize=(5.5 * len(spec.metrics), 4), sharey=spec.sharey,
                             squeeze=False)
    axes = axes[0]
    for ax, (split, metric) in zip(axes, spec.metrics):
        for label, runs, colour in ((spec.labels[0], baseline, "tab:blue"), (spec.labels[1], ldd, "tab:orange")):
            frames = sorted({r[FRAMES] for rows in runs.values() for r in rows if r[FRAMES] <= budget})
            values = np.array([[at_frames(rows, f, metric) for f in frames] for rows in runs.values()])
            mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
            ax.plot(frames, mean, label=f"{label} ({len(runs)} seeds)", color=colour)
            ax.fill_between(frames, mean - std, mean + std, color=colour, alpha=0.2)
        if random_level is not None and split in random_level:
            ax.axhline(random_level[split], color="grey", linestyle="--", label="random policy")
        ax.set_title(spec.split_title.format(split=split))
        ax.set_xlabel("frames")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(spec.measure)
    axes[0].legend()
    fig.suptitle(spec.title)
    fig.tight_layout()
    fig.savefig(out / f"{spec.name}.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None, prog: str = "bin/ldd-rtfm", description: str | None = __doc__,
         default_out: Path = Path("runs/ldd_rtfm"), make_plan: Callable[..., list[Stage]] = plan,
         make_comparison: Callable[[bool], Comparison] = lambda smoke: Comparison()) -> int:
    """The command line of an LDD pipeline (``make_plan``: its stages, ``make_comparison(smoke)``: its table)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=default_out, help="where every stage writes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the RL stages")
    parser.add_argument("--scale", choices=["small", "paper"], default="small")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets everywhere (an installation check)")
    parser.add_argument("rl_extra", nargs="*", help="after --: extra arguments for the baseline and LDD stages")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    wall: dict[str, float] = {}
    for stage in make_plan(out, args.seeds, args.scale, args.rl_extra, smoke=args.smoke):
        wall[stage.key or stage.name] = run_stage(stage, args.dry_run)
    if args.dry_run:
        return 0
    report = compare(out, args.seeds, wall, make_comparison(args.smoke))
    (out / "comparison.md").write_text(report + "\n")
    print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
