"""The LDD-on-Messenger pipeline: EMMA baseline (PPO) -> expert demonstrations -> dynamics model -> LDD, then
the baseline-vs-LDD comparison at equal frame budgets on unseen games.

    bin/ldd-messenger                       S1, seed 0, small scale
    bin/ldd-messenger --seeds 0 1 2         baseline and LDD for three seeds (demonstrations and dynamics once)
    bin/ldd-messenger --stages s1 s2        also S2, each method starting from its own S1 run (the curriculum)
    bin/ldd-messenger --stages s1 s2 s3 --scale paper   the whole curriculum (S3 from S2) at the reference's scale
    bin/ldd-messenger --scale paper         the reference's scale (for GPU machines)
    bin/ldd-messenger --dry-run | --smoke   print the commands | every stage for a few steps

Every stage is a `lightning` command, printed before it runs; finished stages are skipped and interrupted ones
resume (see lit_rlseq.ldd.pipeline). At the end, per curriculum stage, the table of greedy win rates on the
validation and test games (and the random policy's level) is printed and written with a learning-curve plot
to ``<out>/comparison_<stage>.{md,png}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from lit_rlseq.ldd.pipeline import SMOKE, Comparison, compare
from lit_rlseq.stages import CONFIGS, Stage, config_args, run_stage

STAGES = ("s1", "s2", "s3")


def baseline_config(stage: str) -> str:
    return "ldd_messenger_baseline" if stage == "s1" else f"ldd_messenger_baseline_{stage}"


def eval_max_steps(stage: str) -> int:
    """The step limit of the stage's evaluation games (its baseline config's), for the random policy's level."""
    path = CONFIGS / f"{baseline_config(stage)}.yaml"
    return int(yaml.safe_load(path.read_text())["data"]["init_args"]["eval_env_kwargs"]["max_steps"])


def comparison(stage: str) -> Comparison:
    limit = eval_max_steps(stage)
    return Comparison(
        methods=(f"baseline_{stage}", f"ldd_{stage}"),
        labels=("EMMA baseline", "LDD"),
        metrics=(("val", "eval/val/success"), ("test", "eval/test/success")),
        random_envs=(("val", (f"messenger:{stage}_val", {"max_steps": limit})),
                     ("test", (f"messenger:{stage}_test", {"max_steps": limit}))),
        heading=f"LDD vs EMMA baseline (PPO) on Messenger {stage.upper()}",
        split_note="val / test = games never seen in training",
        split_title="{split} games",
        title=f"Messenger {stage.upper()}: LDD vs EMMA baseline",
        name=f"comparison_{stage}",
    )


def plan(out: Path, seeds: list[int], stages: list[str], scale: str, rl_extra: list[str],
         smoke: bool = False) -> list[Stage]:
    lightning = [sys.executable, "-m", "lit_rlseq"]
    extra = {k: (v if smoke else []) for k, v in SMOKE.items()}
    rl_extra = extra["rl"] + rl_extra
    runs_root, run_name = out.parent, out.name
    dynamics = out / "dynamics"

    def rl_stage(method: str, title: str, config: str, stage: str, seed: int, *args: str) -> Stage:
        directory = f"{method}_{stage}"
        init = []
        if stage != "s1":  # the curriculum: start from this method's run on the previous stage
            previous = STAGES[STAGES.index(stage) - 1]
            init = [f"--model.init_args.init_checkpoint={out / f'{method}_{previous}' / f'seed{seed}' / 'checkpoints' / 'last.ckpt'}"]
        name = config if stage == "s1" else f"{config}_{stage}"
        return Stage(f"{title} {stage.upper()} seed {seed}", [
            *lightning, "fit", *config_args(name, scale), f"--seed_everything={seed}", f"--data.init_args.seed={seed}",
            f"--trainer.logger.init_args.save_dir={runs_root}",
            f"--trainer.logger.init_args.name={run_name}/{directory}/seed{seed}", *init, *args, *rl_extra,
        ], out / directory / f"seed{seed}", key=f"{directory} {seed}")

    result = [rl_stage("baseline", "EMMA baseline", "ldd_messenger_baseline", stage, seed)
              for stage in stages for seed in seeds]
    result.append(Stage("demonstrations", [
        *lightning, "collect", *config_args("ldd_messenger_collect", scale),
        f"--data.init_args.store={out / 'demos'}", *extra["collect"],
    ], None))
    result.append(Stage("dynamics model", [
        *lightning, "fit", *config_args("ldd_messenger_dynamics", scale), f"--data.init_args.path={out / 'demos'}",
        f"--trainer.logger.init_args.save_dir={runs_root}", f"--trainer.logger.init_args.name={run_name}/dynamics",
        *extra["dynamics"],
    ], dynamics))
    checkpoint = f"--model.init_args.dynamics_checkpoint={dynamics / 'checkpoints' / 'best.ckpt'}"
    result += [rl_stage("ldd", "LDD", "ldd_messenger", stage, seed, checkpoint) for stage in stages for seed in seeds]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/ldd-messenger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ldd_messenger"), help="where every stage writes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the RL stages")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=["s1"], help="curriculum stages to run")
    parser.add_argument("--scale", choices=["small", "paper"], default="small")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets everywhere (an installation check)")
    parser.add_argument("rl_extra", nargs="*", help="after --: extra arguments for the baseline and LDD stages")
    args = parser.parse_args(argv)
    stages = [s for s in STAGES if s in args.stages]  # in curriculum order
    if stages != list(STAGES[: len(stages)]):
        parser.error(f"--stages {' '.join(args.stages)}: every stage starts from the one before it, so give a "
                     f"prefix of the curriculum ({', '.join(' '.join(STAGES[:k]) for k in range(1, len(STAGES) + 1))}); "
                     "finished stages are skipped")
    out = args.out.resolve()
    wall: dict[str, float] = {}
    for stage in plan(out, args.seeds, stages, args.scale, args.rl_extra, smoke=args.smoke):
        wall[stage.key or stage.name] = run_stage(stage, args.dry_run)
    if args.dry_run:
        return 0
    for stage in stages:
        report = compare(out, args.seeds, wall, comparison(stage))
        (out / f"comparison_{stage}.md").write_text(report + "\n")
        print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
