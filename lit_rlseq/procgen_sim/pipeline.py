"""bin/procgen-sim: agent -> recording -> simulator -> analyses -> report.md, on coinrun at a small scale.

    bin/procgen-sim                        small scale (CPU): runs/procgen_sim/
    bin/procgen-sim --scale paper          the paper's sizes (GPU machines; days)
    bin/procgen-sim --smoke                every stage for a few steps (checks an installation)
    bin/procgen-sim --dry-run              print the commands only
    bin/procgen-sim --from simulator       rerun from a stage on (removes that stage's completion marks)

Stages, each a printed command that can be rerun by hand:

1. agent      ``lightning fit --config configs/procgen_agent.yaml``        -> <out>/agent/checkpoints/last.ckpt
2. recording  ``lightning collect --config configs/procgen_collect.yaml``  -> <out>/recordings (+ recordings.gif)
3. simulator  ``lightning fit --config configs/procgen_sim.yaml``          -> <out>/simulator/checkpoints/
4. analyses   ``python -m lit_rlseq.procgen_sim.analyses <stage>``          -> <out>/report/*.png, *.gif, *.md
5. report     <out>/report/report.md: the agent against a random policy, then every analysis section

Resumable: a finished fit stage leaves ``complete`` and is skipped, an interrupted one resumes from its
``last.ckpt``; the recording tops the store up to its episode count; an analysis whose ``.md`` exists is skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from lit_rlseq.loops.curves import FRAMES, read_curve
from lit_rlseq.stages import Stage, config_args, run_stage

ANALYSES = ("hidden", "evaluate", "saliency", "optimise")
SMOKE = {
    "agent": ["--trainer.max_epochs=1", "--data.init_args.steps_per_epoch=2", "--data.init_args.eval_episodes=2",
              "--data.init_args.eval_num_envs=2"],
    "recording": ["--data.init_args.episodes=6", "--data.init_args.num_envs=6"],
    "simulator": ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
                  "--data.init_args.num_sim=8", "--model.init_args.num_sim=8"],
}
RETURN = "eval/test/return"


def plan(out: Path, scale: str, smoke: bool, extra: list[str]) -> list[Stage]:
    lightning = [sys.executable, "-m", "lit_rlseq"]
    more = {k: (v if smoke else []) for k, v in SMOKE.items()}
    agent_dir, sim_dir, store = out / "agent", out / "simulator", out / "recordings"
    logger = lambda name: [f"--trainer.logger.init_args.save_dir={out}",  # noqa: E731
                           f"--trainer.logger.init_args.name={name}", "--trainer.logger.init_args.version="]
    agent_ckpt = agent_dir / "checkpoints" / "last.ckpt"
    stages = [
        Stage("agent", [*lightning, "fit", *config_args("procgen_agent", scale), *logger("agent"), *more["agent"],
                        *extra], agent_dir),
        Stage("recording", [*lightning, "collect", *config_args("procgen_collect", scale), f"--ckpt_path={agent_ckpt}",
                            f"--data.init_args.store={store}", f"--data.init_args.video={out / 'recordings.gif'}",
                            *more["recording"]], None),
        Stage("simulator", [*lightning, "fit", *config_args("procgen_sim", scale), *logger("simulator"),
                            f"--data.init_args.path={store}", f"--model.init_args.agent_checkpoint={agent_ckpt}",
                            *more["simulator"]], sim_dir),
    ]
    return stages


def analysis_command(stage: str, out: Path, smoke: bool) -> list[str]:
    command = [sys.executable, "-m", "lit_rlseq.procgen_sim.analyses", stage, "--out", str(out / "report"),
               "--store", str(out / "recordings"), "--simulator", str(out / "simulator" / "checkpoints" / "last.ckpt")]
    return command + (["--quick"] if smoke else [])


def random_policy_return(env_kwargs: dict, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of uniformly random actions on the agent's evaluation env (coinrun by default)."""
    from lit_rlseq.envs.registry import make_vector_env
    from lit_rlseq.loops.collector import Collector

    class RandomPolicy:
        def __init__(self) -> None:
            self.rng = np.random.default_rng(seed)

        def act(self, env, obs) -> np.ndarray:
            return self.rng.integers(0, env.single_action_space.n, env.num_envs)

    env = make_vector_env(env_kwargs.pop("env"), num_envs=min(episodes, 50), **env_kwargs)
    collector = Collector(env, seed=seed)
    collector.reset(seed)
    per_env = np.full(env.num_envs, episodes // env.num_envs)
    per_env[: episodes % env.num_envs] += 1
    stats = collector.run_episodes(RandomPolicy(), per_env, greedy=False)
    env.close()
    return float(stats.episode_return.mean())


def agent_section(out: Path) -> str:
    import yaml

    config = yaml.safe_load((out / "agent" / "config.yaml").read_text())
    data = config["data"]["init_args"]
    eval_env = next(iter((data.get("eval_envs") or {"test": data["env"]}).values()))
    kwargs = {"env": eval_env, **(data.get("eval_env_kwargs") or data.get("env_kwargs") or {})}
    random_return = random_policy_return(dict(kwargs), episodes=100)
    rows = [r for r in read_curve(out / "agent" / "learning_curve.csv") if not math.isnan(r.get(RETURN, math.nan))]
    options = {k: v for k, v in kwargs.items() if k != "env"}
    lines = ["## The agent", f"Evaluation on {eval_env} {options}; a uniformly random policy scores "
             f"{random_return:.2f} on 100 episodes.", "", "| frames | agent return |", "|---|---|"]
    lines += [f"| {r[FRAMES]:,.0f} | {r[RETURN]:.2f} |" for r in rows]
    if (out / "agent" / "learning_curve.png").exists():
        lines += ["", "![learning curve](../agent/learning_curve.png)"]
    lines += ["", "Recorded episodes: [recordings.gif](../recordings.gif)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/procgen-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/procgen_sim"), help="where every stage writes")
    parser.add_argument("--scale", choices=["small", "paper"], default="small")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets everywhere (an installation check)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--from", dest="start", choices=["agent", "recording", "simulator", "analyses"],
                        help="rerun this stage and the ones after it")
    parser.add_argument("extra", nargs="*", help="after --: extra arguments for the agent's training")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    stages = plan(out, args.scale, args.smoke, args.extra)
    names = [s.name for s in stages] + ["analyses"]
    if args.start:
        for stage in stages[names.index(args.start):]:
            if stage.directory is not None and (stage.directory / "complete").exists():
                (stage.directory / "complete").unlink()
        for name in ANALYSES:
            (out / "report" / f"{name}.md").unlink(missing_ok=True)
    for stage in stages:
        run_stage(stage, args.dry_run)
    for name in ANALYSES:
        if (out / "report" / f"{name}.md").exists():
            print(f"== analysis: {name}: done already ({out / 'report' / f'{name}.md'})", flush=True)
            continue
        run_stage(Stage(f"analysis: {name}", analysis_command(name, out, args.smoke), None), args.dry_run)
    if args.dry_run:
        return 0
    sections = ["# Procgen generative simulator: results", "", agent_section(out)]
    sections += [(out / "report" / f"{name}.md").read_text() for name in ANALYSES]
    report = out / "report" / "report.md"
    report.write_text("\n".join(sections))
    summary = json.loads((out / "report" / "evaluate.json").read_text())
    print(f"\nreport: {report}\nheld-out frame MSE: {json.dumps(summary['frame_mse'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
