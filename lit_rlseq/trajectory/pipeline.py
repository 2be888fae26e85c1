"""The Trajectory Transformer pipeline on MuJoCo: behaviour policy -> datasets -> TT -> BC -> evaluation -> comparison.

    bin/tt-mujoco                                   Hopper, datasets medium-replay and medium, small scale
    bin/tt-mujoco --datasets medium-replay          one dataset
    bin/tt-mujoco --scale paper                     the reference's model and planner sizes (GPU machines)
    bin/tt-mujoco --dry-run                         print the commands only
    bin/tt-mujoco --smoke                           every stage with tiny budgets (an installation check)

Stages (each a command, printed before it runs, so it can be re-run by hand):

1. behaviour policy: ``lightning fit --config configs/ppo_hopper.yaml`` (a checkpoint per epoch);
2. datasets: ``python -m lit_rlseq.trajectory.datasets`` records random / medium / medium-replay / expert
   episodes from those checkpoints (medium-expert = medium + expert);
3. per dataset: the TT (``configs/tt_hopper.yaml``) and the BC baseline (``configs/tt_hopper_bc.yaml``) are
   trained, then evaluated (``lightning evaluate`` with ``configs/tt_hopper{,_bc}_evaluate.yaml``);
4. ``<out>/comparison.md`` and ``comparison.png``: D4RL-normalised scores of the dataset's episodes, BC and TT.

A finished stage is skipped: a training run leaves ``complete`` in its directory (an interrupted one resumes
from ``last.ckpt``), an evaluation its results JSON; the dataset stage tops the store up to its counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lit_rlseq.stages import Stage, run_stage
from lit_rlseq.stages import config_args as stages_config_args



def config_args(name: str, scale: str) -> list[str]:
    """The BC configs have no paper overlay: they keep their sizes at every scale."""
    return stages_config_args(name, scale, overlay_required=False)


SMOKE = {
    "ppo": ["--trainer.max_epochs=2", "--data.init_args.steps_per_epoch=1", "--data.init_args.unroll_length=64",
            "--data.init_args.eval_episodes=2", "--data.init_args.eval_num_envs=2"],
    "datasets": ["--episodes", "4", "--replay-episodes", "2", "--num-envs", "2"],
    "tt": ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=2",
           "--model.init_args.n_layer=1", "--model.init_args.n_embd=16", "--model.init_args.n_head=1"],
    "bc": ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3"],
    "eval_tt": ["--data.init_args.episodes=2", "--data.init_args.num_envs=2", "--data.init_args.max_steps=5",
                "--model.init_args.horizon=2", "--model.init_args.beam_width=2"],
    "eval_bc": ["--data.init_args.episodes=2", "--data.init_args.num_envs=2", "--data.init_args.max_steps=5"],
}


def plan(out: Path, env: str, task: str, datasets: list[str], scale: str, episodes: int, smoke: bool) -> list[Stage]:
    lightning = [sys.executable, "-m", "lit_rlseq"]
    extra = {k: (v if smoke else []) for k, v in SMOKE.items()}
    runs_root, run_name = out.parent, out.name
    store, eval_store = out / "datasets", out / "eval"

    def logger(name: str) -> list[str]:
        return [f"--trainer.logger.init_args.save_dir={runs_root}", f"--trainer.logger.init_args.name={run_name}/{name}"]

    from lit_rlseq.trajectory.datasets import SELECT

    stages = [
        Stage("behaviour policy (PPO)", [*lightning, "fit", *config_args("ppo_hopper", scale),
                                         f"--data.init_args.env={env}", f"--data.init_args.eval_envs={{test: {env}}}",
                                         *logger("ppo"), *extra["ppo"]], directory=out / "ppo"),
        Stage("datasets", [sys.executable, "-m", "lit_rlseq.trajectory.datasets", "--ppo-run", str(out / "ppo"),
                           "--store", str(store), "--env", env, *extra["datasets"]]),
    ]
    for dataset in datasets:
        name = f"{task}-{dataset}"
        select = json.dumps(SELECT[dataset])
        data = [f"--data.init_args.path={store}", f"--data.init_args.dataset={name}", f"--data.init_args.env={env}",
                f"--data.init_args.select={select}"]
        for kind, config in (("tt", "tt_hopper"), ("bc", "tt_hopper_bc")):
            stages.append(Stage(f"{kind.upper()} on {name}", [*lightning, "fit", *config_args(config, scale), *data,
                                                             *logger(f"{kind}_{name}"), *extra[kind]],
                                directory=out / f"{kind}_{name}"))
        for kind, config in (("tt", "tt_hopper_evaluate"), ("bc", "tt_hopper_bc_evaluate")):
            result = out / "results" / f"{kind}_{name}.json"
            stages.append(Stage(f"evaluate {kind.upper()} on {name}", [
                *lightning, "evaluate", *config_args(config, scale),
                f"--model.init_args.checkpoint={out / f'{kind}_{name}' / 'checkpoints' / 'last.ckpt'}",
                f"--model.init_args.dataset={name}", f"--model.init_args.results={result}",
                f"--data.init_args.store={eval_store}", f"--data.init_args.episodes={episodes}",
                f"--data.init_args.run_id=eval_{kind}_{name}", *logger(f"evaluate_{kind}_{name}"), *extra[f"eval_{kind}"],
            ], result=result))
    return stages


def compare(out: Path, task: str, datasets: list[str]) -> str:
    """The comparison table (markdown) and bar chart of D4RL-normalised scores."""
    from lit_rlseq.trajectory.datasets import summary_path as dataset_summary

    summary_path = dataset_summary(out / "datasets")
    summary = json.loads(summary_path.read_text())["datasets"] if summary_path.exists() else {}
    rows = []
    for dataset in datasets:
        name = f"{task}-{dataset}"
        entry = {"dataset": name, "data": summary.get(dataset)}
        for kind in ("bc", "tt"):
            path = out / "results" / f"{kind}_{name}.json"
            entry[kind] = json.loads(path.read_text()) if path.exists() else None
        rows.append(entry)

    def cell(result: dict | None, key: str = "score") -> str:
        if not result:
            return "n/a"
        return f"{result[key]:.1f} ± {result[key + '_se']:.1f}"

    lines = [
        f"Trajectory Transformer vs behaviour cloning on our {task} datasets: D4RL-normalised score (mean ± s.e. "
        "over evaluation episodes; for the dataset, over its episodes) and raw return",
        "",
        "| dataset | dataset episodes | BC | TT | dataset return | BC return | TT return | dataset size (episodes / "
        "transitions) | evaluation episodes (BC / TT) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = " / ".join(str(r[k]["episodes"]) if r[k] else "-" for k in ("bc", "tt"))
        size = f"{r['data']['episodes']} / {r['data']['transitions']}" if r["data"] else "n/a"
        lines.append(f"| {r['dataset']} | {cell(r['data'])} | {cell(r['bc'])} | {cell(r['tt'])} | "
                     f"{cell(r['data'], 'return')} | {cell(r['bc'], 'return')} | {cell(r['tt'], 'return')} | {size} "
                     f"| {n} |")
    plot(out / "comparison.png", rows, task)
    lines += ["", f"bar chart: {out / 'comparison.png'}"]
    return "\n".join(lines)


def plot(path: Path, rows: list[dict], task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [("data", "dataset episodes", "tab:gray"), ("bc", "BC", "tab:blue"), ("tt", "TT", "tab:orange")]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(2.5 + 2.2 * len(rows), 4))
    for k, (key, label, colour) in enumerate(labels):
        means = [r[key]["score"] if r[key] else np.nan for r in rows]
        errors = [r[key]["score_se"] if r[key] else np.nan for r in rows]
        ax.bar(x + (k - 1) * 0.27, means, 0.27, yerr=errors, label=label, color=colour, capsize=3)
    ax.set_xticks(x, [r["dataset"] for r in rows])
    ax.set_ylabel("D4RL-normalised score")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title(f"{task}: dataset vs BC vs Trajectory Transformer")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/tt-mujoco", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/tt_mujoco"), help="where every stage writes")
    parser.add_argument("--env", default="mujoco:Hopper-v5")
    parser.add_argument("--datasets", nargs="+", default=["medium-replay", "medium"],
                        choices=["random", "medium", "medium-replay", "expert", "medium-expert"])
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per agent and dataset")
    parser.add_argument("--scale", choices=["small", "paper"], default="small")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets everywhere (an installation check)")
    args = parser.parse_args(argv)
    from lit_rlseq.trajectory.evaluate import task_name

    out, task = args.out.resolve(), task_name(args.env)
    (out / "results").mkdir(parents=True, exist_ok=True)
    for stage in plan(out, args.env, task, args.datasets, args.scale, args.episodes, args.smoke):
        run_stage(stage, args.dry_run)
    if args.dry_run:
        return 0
    report = compare(out, task, args.datasets)
    (out / "comparison.md").write_text(report + "\n")
    print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
