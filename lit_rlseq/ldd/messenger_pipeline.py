"""The LDD-on-Messenger pipeline: EMMA baseline (PPO) -> expert demonstrations -> dynamics model -> LDD, then
the baseline-vs-LDD comparison at equal frame budgets on unseen games.

    bin/ldd-messenger                       S1, seed 0, small scale
    bin/ldd-messenger --seeds 0 1 2         baseline and LDD for three seeds (demonstrations and dynamics once)
    bin/ldd-messenger --stages s1 s2        also S2, each method starting from its own S1 run (the curriculum)
    bin/ldd-messenger --stages s1 s2 --s2-setting emma   S2 (and S3) at EMMA's setting instead of LDD's
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
from lit_rlseq.stages import Stage, config_args, run_stage

STAGES = ("s1", "s2", "s3")
# S2 and later: LDD's short setting (the configs: 10-step limit, gamma 0.8, multi-combination share 0.5) or
# EMMA's (64-step limit, gamma 0.99, share 0.75); S1 is the same for both. EMMA's runs go to <stage>_emma.
S2_SETTINGS = {
    "ldd": [],
    "emma": ["--data.init_args.env_kwargs={max_steps: 64, multi_p: 0.75}",
             "--data.init_args.eval_env_kwargs={max_steps: 64}", "--model.init_args.discount=0.99"],
}


def baseline_config(stage: str) -> str:
    return "ldd_messenger_baseline" if stage == "s1" else f"ldd_messenger_baseline_{stage}"


def stage_run_name(stage: str, s2_setting: str = "ldd") -> str:
    """``s1``, ``s2``, ``s2_emma``: a stage's runs as named under --out (EMMA's setting from S2 on)."""
    return stage + ("_emma" if stage != "s1" and s2_setting == "emma" else "")


def run_directory(method: str, stage: str, s2_setting: str = "ldd") -> str:
    """``baseline_s1``, ``ldd_s2``, ``ldd_s2_emma``: where a method's runs of a stage live under --out."""
    return f"{method}_{stage_run_name(stage, s2_setting)}"


def eval_max_steps(out: Path, directory: str, seeds: list[int], stage: str, scale: str = "small") -> int:
    """The step limit the runs in ``<out>/<directory>`` were evaluated at, for the random policy's level: read
    from the first seed's saved config (it holds every override), else from the stage's baseline config."""
    for seed in seeds:
        saved = out / directory / f"seed{seed}" / "config.yaml"
        if saved.exists():
            return int(yaml.safe_load(saved.read_text())["data"]["init_args"]["eval_env_kwargs"]["max_steps"])
    limit = None
    for config in config_args(baseline_config(stage), scale, overlay_required=False)[1::2]:
        data = (yaml.safe_load(Path(config).read_text()) or {}).get("data", {}).get("init_args", {})
        limit = data.get("eval_env_kwargs", {}).get("max_steps", limit)
    return int(limit)


def comparison(stage: str, limit: int, s2_setting: str = "ldd") -> Comparison:
    """The baseline-vs-LDD table and plot of one curriculum stage. S2 and S3 also compare the return, which
    shows progress before the first wins do (picking the message up is worth 0.5)."""
    setting = f", {'EMMA' if s2_setting == 'emma' else 'LDD'}'s setting" if stage != "s1" else ""
    envs = {"val": (f"messenger:{stage}_val", {"max_steps": limit}),
            "test": (f"messenger:{stage}_test", {"max_steps": limit})}
    common = dict(
        methods=(run_directory("baseline", stage, s2_setting), run_directory("ldd", stage, s2_setting)),
        labels=("EMMA baseline", "LDD"),
        heading=f"LDD vs EMMA baseline (PPO) on Messenger {stage.upper()} ({limit}-step limit{setting})",
        split_note="val / test = games never seen in training",
        title=f"Messenger {stage.upper()} ({limit}-step limit): LDD vs EMMA baseline",
        name=f"comparison_{stage_run_name(stage, s2_setting)}",
    )
    if stage == "s1":
        return Comparison(metrics=(("val", "eval/val/success"), ("test", "eval/test/success")),
                          random_envs=tuple(envs.items()), split_title="{split} games", **common)
    metrics = (("win rate val", "eval/val/success"), ("win rate test", "eval/test/success"),
               ("return val", "eval/val/return"), ("return test", "eval/test/return"))
    return Comparison(
        metrics=metrics,
        random_envs=tuple((name, envs[name.split()[-1]]) for name, _ in metrics),
        random_keys=tuple((name, "return") for name, _ in metrics if name.startswith("return")),
        split_title="{split} games", column="{split}", measure="greedy win rate, return", sharey=False, **common)


def plan(out: Path, seeds: list[int], stages: list[str], scale: str, rl_extra: list[str],
         smoke: bool = False, s2_setting: str = "ldd") -> list[Stage]:
    lightning = [sys.executable, "-m", "lit_rlseq"]
    extra = {k: (v if smoke else []) for k, v in SMOKE.items()}
    rl_extra = extra["rl"] + rl_extra
    runs_root, run_name = out.parent, out.name
    dynamics = out / "dynamics"

    def rl_stage(method: str, title: str, config: str, stage: str, seed: int, *args: str) -> Stage:
        directory = run_directory(method, stage, s2_setting)
        init = []
        if stage != "s1":  # the curriculum: start from this method's run on the previous stage
            previous = run_directory(method, STAGES[STAGES.index(stage) - 1], s2_setting)
            init = [f"--model.init_args.init_checkpoint={out / previous / f'seed{seed}' / 'checkpoints' / 'last.ckpt'}"]
            if stage == "s2":
                init += S2_SETTINGS[s2_setting]  # S3 has its own limit and discount (EMMA's) in its configs
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
    parser.add_argument("--s2-setting", choices=sorted(S2_SETTINGS), default="ldd",
                        help="S2's step limit and discount: LDD's (10, 0.8; the configs) or EMMA's (64, 0.99)")
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
    for stage in plan(out, args.seeds, stages, args.scale, args.rl_extra, smoke=args.smoke,
                      s2_setting=args.s2_setting):
        wall[stage.key or stage.name] = run_stage(stage, args.dry_run)
    if args.dry_run:
        return 0
    for stage in stages:
        limit = eval_max_steps(out, run_directory("baseline", stage, args.s2_setting), args.seeds, stage, args.scale)
        spec = comparison(stage, limit, args.s2_setting)
        report = compare(out, args.seeds, wall, spec)
        (out / f"{spec.name}.md").write_text(report + "\n")
        print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
