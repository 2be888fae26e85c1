"""The TTM cooking pipeline: teacher play -> write_finetune -> fine-tune -> student play -> results.

    bin/ttm-cooking                                   level 1, walkthrough teacher, 20 train / 20 test games
    bin/ttm-cooking --level 2 --out runs/ttm_l2
    bin/ttm-cooking --filters none closest likelihood  the student with and without valid-action filtering
    bin/ttm-cooking --smoke                           a few games, a few steps (checks an installation)
    bin/ttm-cooking --dry-run                         print the commands only
    bin/ttm-cooking -- --trainer.max_epochs=40        extra arguments for the fine-tune stage

Every stage is a ``lightning`` command, printed before it runs, so each can be re-run by hand. Play stages
resume (they top the store up to ``--rollouts``); the fine-tune stage is skipped when its run directory holds
``complete``. At the end the table (mean score, mean score / max score with standard errors, won rate, and the
reference's diversity measures per partition and filter) is printed and written with a bar chart to
``<out>/results.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lit_rlseq.rollouts import RolloutStore
from lit_rlseq.stages import CONFIGS, Stage, run_stage


def plan(out: Path, level: int, rollouts: int, student_rollouts: int, max_actions: int, filters: list[str],
         fit_extra: list[str], smoke: bool = False) -> list[tuple[str, list[str], Path | None]]:
    """(name, command, directory marked `complete` when done or None) for every stage."""
    lightning = [sys.executable, "-m", "lit_rlseq"]
    env = f"cooking_level_{level}"
    store, jsonl, lm = out / "rollouts", out / "teacher.jsonl", out / "lm"
    def games(n: int) -> list[str]:
        return [f"--data.init_args.env={env}", f"--data.init_args.store={store}", f"--data.init_args.max_rollouts={n}",
                f"--data.init_args.games={n}", f"--data.init_args.max_actions={max_actions}"]

    stages = [("teacher play", [*lightning, "play", "--config", str(CONFIGS / "ttm_cooking_teacher.yaml"),
                                *games(rollouts)], None),
              ("write_finetune", [*lightning, "write_finetune", "--config",
                                  str(CONFIGS / "ttm_cooking_write_finetune.yaml"), f"--store={store}",
                                  f"--finetune_path={jsonl}", f"--envs=[{env}]"], None)]
    fit = [*lightning, "fit", "--config", str(CONFIGS / "ttm_cooking_finetune.yaml"), f"--data.init_args.path={jsonl}",
           f"--trainer.logger.init_args.save_dir={out}", "--trainer.logger.init_args.name=.",
           "--trainer.logger.init_args.version=lm"]
    if smoke:
        fit += ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    stages.append(("fine-tune", fit + fit_extra, lm))
    for filter in filters:
        for part in ("train", "test"):
            stages.append((f"student_{part} play (filter {filter})", [
                *lightning, "play", "--config", str(CONFIGS / f"ttm_cooking_student_{part}.yaml"), *games(student_rollouts),
                f"--model.init_args.init_from={lm / 'checkpoints' / 'last.ckpt'}", f"--model.init_args.filter={filter}",
                f"--model.init_args.name=lm_student_{filter}",
            ], None))
    return stages


# -- results --------------------------------------------------------------------------------------------------
def diversity(actions: list[str], observations: list[str]) -> dict[str, float]:
    """The reference's measures over a set of rollouts: unique-action, unique-observation and blank-action ratios."""
    n_a, n_o = max(len(actions), 1), max(len(observations), 1)
    return {
        "unique_action_ratio": len(set(actions)) / n_a,
        "unique_observation_ratio": len(set(observations)) / n_o,
        "blank_action_ratio": sum(not a.strip() for a in actions) / n_a,
    }


def mean_se(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


def summarise(store_path: Path, env: str) -> list[dict]:
    """One row per (partition, agent): scores, normalised scores, won rate, diversity."""
    store = RolloutStore(store_path)
    rows = []
    groups = sorted({(r.tags.partition, r.tags.agent) for r in store.episodes(env=env)},
                    key=lambda g: (["teacher", "student_train", "student_test"].index(g[0]), g[1]))
    for partition, agent in groups:
        refs = store.episodes(env=env, partition=partition, agent=agent)
        loaded = store.load_fields(refs, ["action", "obs"])
        scores = [float(r.tags.metadata["score"]) for r in refs]
        normalised = [s / r.tags.metadata["max_score"] for s, r in zip(scores, refs)]
        score, score_se = mean_se(scores)
        norm, norm_se = mean_se(normalised)
        rows.append({
            "partition": partition, "agent": agent, "rollouts": len(refs),
            "max_score": float(np.mean([r.tags.metadata["max_score"] for r in refs])),
            "score": score, "score_se": score_se, "normalised": norm, "normalised_se": norm_se,
            "won": float(np.mean([bool(r.tags.metadata.get("won")) for r in refs])),
            "steps": float(np.mean([r.length for r in refs])),
            **diversity([str(a) for a in loaded.fields["action"]], [str(o) for o in loaded.fields["obs"]]),
        })
    return rows


def table(rows: list[dict], title: str) -> str:
    lines = [title, "", "| partition | agent | rollouts | score (mean ± s.e.) | normalised (mean ± s.e.) | won | steps "
             "| unique actions | unique obs | blank actions |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['partition']} | {r['agent']} | {r['rollouts']} | {r['score']:.2f} ± {r['score_se']:.2f} / "
            f"{r['max_score']:g} | {r['normalised']:.3f} ± {r['normalised_se']:.3f} | {r['won']:.2f} | {r['steps']:.1f} "
            f"| {r['unique_action_ratio']:.3f} | {r['unique_observation_ratio']:.3f} | {r['blank_action_ratio']:.3f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['partition']}\n{r['agent']}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.8 * len(rows)), 4))
    axes[0].bar(x, [r["normalised"] for r in rows], yerr=[np.nan_to_num(r["normalised_se"]) for r in rows],
                color=["tab:green" if r["partition"] == "teacher" else "tab:blue" if r["partition"] == "student_train"
                       else "tab:orange" for r in rows], capsize=4)
    axes[0].set_ylabel("mean score / max score (± s.e.)")
    axes[0].set_ylim(0, 1.05)
    width = 0.27
    for k, key in enumerate(("unique_action_ratio", "unique_observation_ratio", "blank_action_ratio")):
        axes[1].bar(x + (k - 1) * width, [r[key] for r in rows], width, label=key.replace("_", " "))
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(fontsize=8)
    axes[1].set_title("diversity")
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(out: Path, level: int) -> str:
    env = f"cooking_level_{level}"
    rows = summarise(out / "rollouts", env)
    title = f"TTM on TextWorld {env} (walkthrough teacher; students = the LM fine-tuned on its rollouts)"
    text = table(rows, title)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, out / "results.png", title)
    return text + f"\n\nplot: {out / 'results.png'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/ttm-cooking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ttm_cooking"), help="where every stage writes")
    parser.add_argument("--level", type=int, default=1, choices=[1, 2, 3, 4])
    parser.add_argument("--rollouts", type=int, default=20, help="teacher games (= rollouts) of the train split")
    parser.add_argument("--student-rollouts", type=int, default=20,
                        help="games per student partition (student_train: the first of the teacher's games)")
    parser.add_argument("--max-actions", type=int, default=30)
    parser.add_argument("--filters", nargs="+", default=["none", "closest"], choices=["none", "closest", "likelihood"])
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="2 games, 4 actions, 1 short epoch")
    parser.add_argument("fit_extra", nargs="*", help="after --: extra arguments for the fine-tune stage")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rollouts, args.student_rollouts, args.max_actions = 2, 2, 4
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name, command, directory in plan(out, args.level, args.rollouts, args.student_rollouts, args.max_actions,
                                         args.filters, args.fit_extra, args.smoke):
        run_stage(Stage(name, command, directory), args.dry_run)  # an interrupted fine-tune resumes
    if not args.dry_run:
        print("\n" + report(out, args.level))
    return 0


if __name__ == "__main__":
    sys.exit(main())
