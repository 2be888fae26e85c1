"""The LDD-on-NetHack pipeline: IMPALA baseline -> demonstrations of the baseline -> next-screen dynamics model
-> LDD, then the baseline-vs-LDD comparison (mean in-game score and depth reached) at equal frame budgets.

    bin/ldd-nethack                       CPU scale, seed 0 (hours on 2 cores; see below)
    bin/ldd-nethack --seeds 0 1 2         baseline and LDD for three seeds (demonstrations and dynamics once)
    bin/ldd-nethack --scale paper         the reference's sizes and batches (for GPU machines)
    bin/ldd-nethack --dry-run             print the commands only
    bin/ldd-nethack --smoke               every stage for a few steps (checks an installation in minutes)
    bin/ldd-nethack -- --trainer.accelerator=gpu --trainer.devices=4    extra arguments for the RL stages

Honest about scale: the CPU scale trains each policy for 205k frames, about 1e-4 of a NetHack training budget
(the reference's APPO runs used billions). It shows every stage running and compares the two methods at
that budget; expect both near the random policy's level, and read no claim about LDD on NetHack into it.

Every stage is a `lightning` command, printed before it runs; finished stages are skipped and interrupted ones
resume (see lit_rlseq.stages). The demonstrations are recorded from the first seed's baseline checkpoint. At
the end the table of greedy-evaluation means (in-game score gained, deepest level reached; and the uniform
random policy's, measured once into ``<out>/random_level.json``) is printed and written with learning curves
of both to ``<out>/comparison.{md,png}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lit_rlseq.ldd.pipeline import Comparison
from lit_rlseq.ldd.pipeline import main as ldd_main
from lit_rlseq.ldd.pipeline import plan as ldd_plan
from lit_rlseq.stages import Stage

EVAL_MAX_STEPS = 2000  # the evaluation episodes' step limit in configs/ldd_nethack{,_baseline}.yaml
SMOKE_EVAL_MAX_STEPS = 100

# --smoke: tiny budgets for every stage, to check that the whole pipeline runs.
SMOKE = {
    "rl": ["--trainer.max_epochs=2", "--data.init_args.steps_per_epoch=2", "--data.init_args.num_envs=4",
           "--data.init_args.unroll_length=16", "--data.init_args.num_workers=0", "--data.init_args.eval_episodes=4",
           "--data.init_args.eval_num_envs=4", f"--data.init_args.eval_env_kwargs={{max_steps: {SMOKE_EVAL_MAX_STEPS}}}"],
    "collect": ["--data.init_args.episodes=8", "--data.init_args.num_envs=4", "--data.init_args.episodes_per_batch=4",
                "--data.init_args.env_kwargs={max_steps: 100}"],
    "dynamics": ["--trainer.max_epochs=2", "--trainer.limit_train_batches=5", "--trainer.limit_val_batches=3"],
}


def comparison(smoke: bool = False) -> Comparison:
    env = ("nethack", {"max_steps": SMOKE_EVAL_MAX_STEPS if smoke else EVAL_MAX_STEPS})
    return Comparison(
        methods=("baseline", "ldd"),
        labels=("IMPALA baseline", "LDD"),
        metrics=(("score", "eval/challenge/score"), ("depth", "eval/challenge/depth")),
        random_envs=(("score", env), ("depth", env)),
        random_keys=(("score", "score"), ("depth", "depth")),
        random_episodes=4 if smoke else 32,
        heading="LDD vs IMPALA baseline on NetHackChallenge-v0"
                + (" (smoke budgets: checks the pipeline only)" if smoke else
                   " (CPU scale: about 1e-4 of a NetHack training budget)"),
        measure="greedy evaluation",
        column="mean {split}",
        split_note=f"score = in-game score gained, depth = deepest dungeon level reached, episodes of at most "
                   f"{env[1]['max_steps']} steps",
        split_title="mean {split}",
        title="NetHack: LDD vs IMPALA baseline",
        sharey=False,
    )


def plan(out: Path, seeds: list[int], scale: str, rl_extra: list[str], smoke: bool = False) -> list[Stage]:
    return ldd_plan(out, seeds, scale, rl_extra, smoke, system="ldd_nethack", smoke_args=SMOKE,
                    demos_from_baseline=True)


def main(argv: list[str] | None = None) -> int:
    return ldd_main(argv, "bin/ldd-nethack", __doc__, Path("runs/ldd_nethack"), plan, comparison)


if __name__ == "__main__":
    sys.exit(main())
