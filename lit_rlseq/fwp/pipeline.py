"""bin/fwp-atari: LSTM and the four FWP cores side by side on one game, then the test mode and a comparison.

    bin/fwp-atari                                  Breakout, cores lstm lt delta rdn delta_rnn, small budget
    bin/fwp-atari --game Pong --epochs 40          another game, a longer run
    bin/fwp-atari --cores lstm rdn --parallel 1    some cores, one run at a time
    bin/fwp-atari --smoke                          a few steps of everything (checks an installation)
    bin/fwp-atari --cores lstm rdn --max-minutes 60 -- --data.init_args.steps_per_epoch=25
                                                   a reduced comparison: each run stops after 60 minutes
    bin/fwp-atari test --ckpt runs/.../last.ckpt --core rdn --game Breakout [--noneg] [--runs 5 --episodes 30]
    bin/fwp-atari -- --trainer.accelerator=gpu     extra arguments for every training run

Every training run is a `lightning fit` command on configs/fwp_atari.yaml, printed before it runs; a finished
run (``complete`` in its directory) is skipped. Afterwards each core's last checkpoint and a uniformly random
policy play the test mode (greedy, runs x episodes lives, full-game scores beside), and
``<out>/comparison.{md,png}`` hold the results table and the learning curves of all cores in one figure. The
random policy plays first, and the table and figure are re-drawn every minute while the cores train (from their
``learning_curve.csv``), so an interrupted comparison still leaves its curves so far.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

from lit_rlseq.loops.curves import FRAMES, read_curve

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fwp_atari.yaml"
CORES = ["lstm", "lt", "delta", "rdn", "delta_rnn"]
SMOKE = ["--trainer.max_epochs=1", "--data.init_args.steps_per_epoch=2", "--data.init_args.unroll_length=5",
         "--data.init_args.eval_episodes=2", "--data.init_args.eval_num_envs=2", "--trainer.check_val_every_n_epoch=1"]


def train_command(core: str, game: str, out: Path, epochs: int, seed: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "lit_rlseq", "fit", "--config", str(CONFIG), f"--model.init_args.core={core}",
            f"--data.init_args.env=atari:{game}", f"--data.init_args.eval_envs={{test: atari:{game}}}",
            f"--trainer.max_epochs={epochs}", f"--seed_everything={seed}", f"--data.init_args.seed={seed}",
            f"--trainer.logger.init_args.save_dir={out.parent}",
            f"--trainer.logger.init_args.name={out.name}/{core}", *extra]


def max_time_argument(minutes: float) -> str:
    """Lightning's ``--trainer.max_time=DD:HH:MM:SS`` for a budget in minutes (rounded up to whole seconds)."""
    seconds = math.ceil(minutes * 60)
    return (f"--trainer.max_time={seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:"
            f"{seconds % 60:02d}")


def train_all(cores: list[str], game: str, out: Path, epochs: int, seed: int, parallel: int,
              extra: list[str], on_progress=None, every_s: float = 60.0) -> dict[str, float]:
    """Runs the cores' trainings, ``parallel`` at a time; returns each core's wall time in seconds.
    ``on_progress(walls)`` is called every ``every_s`` seconds while they run and whenever one finishes."""
    pending = [c for c in cores if not (out / c / "complete").exists()]
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    walls: dict[str, float] = {}
    wall_file = out / "wall_times.json"
    if wall_file.exists():
        walls.update(json.loads(wall_file.read_text()))
    last_progress = time.time()
    while pending or running:
        while pending and len(running) < parallel:
            core = pending.pop(0)
            command = train_command(core, game, out, epochs, seed, extra)
            (out / core).mkdir(parents=True, exist_ok=True)
            resume = out / core / "checkpoints" / "last.ckpt"
            if resume.exists():
                command.append(f"--ckpt_path={resume}")
            print(f"[fwp-atari] {core}: {shlex.join(command)}", flush=True)
            log = (out / core / "train.log").open("a")
            running[core] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), time.time())
        time.sleep(2)
        for core, (proc, start) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[core]
            if proc.returncode != 0:
                raise SystemExit(f"fwp-atari: training {core} failed (status {proc.returncode}); "
                                 f"see {out / core / 'train.log'}")
            walls[core] = time.time() - start
            (out / core / "complete").write_text("done\n")
            wall_file.write_text(json.dumps(walls, indent=1))
            print(f"[fwp-atari] {core}: finished in {walls[core] / 60:.1f} min", flush=True)
            last_progress = 0.0
        if on_progress is not None and time.time() - last_progress >= every_s:
            on_progress(walls)
            last_progress = time.time()
    return walls


def load_policy(ckpt: Path, core: str | None = None):
    import torch

    from lit_rlseq.errors import MissingArtifactError, UserError
    from lit_rlseq.fwp.module import FWPAtari

    if not ckpt.is_file():
        raise MissingArtifactError("checkpoint", str(ckpt), produce_with="bin/fwp-atari (or lightning fit --config "
                                   "configs/fwp_atari.yaml)")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    hparams = dict(saved["hyper_parameters"])
    if core is not None and hparams.get("core") != core:
        raise UserError(f"{ckpt} holds a {hparams.get('core')!r} agent, not {core!r}: pass --core "
                        f"{hparams.get('core')} or another checkpoint")
    import inspect

    from lit_rlseq.loops.impala import ImpalaModule

    accepted = set(inspect.signature(FWPAtari).parameters) | set(inspect.signature(ImpalaModule).parameters)
    module = FWPAtari(**{k: v for k, v in hparams.items() if k in accepted})
    module.load_state_dict(saved["state_dict"])
    return module.policy.eval()


def test_all(cores: list[str], game: str, out: Path, runs: int, episodes: int, noneg: bool,
             seed: int, results: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """The test mode for the random policy and each core's last checkpoint (names already in ``results`` are
    kept, not played again)."""
    from lit_rlseq.fwp.evaluate import run_test_mode

    results = dict(results or {})
    for name in [n for n in ["random", *cores] if n not in results]:
        policy = "random" if name == "random" else load_policy(out / name / "checkpoints" / "last.ckpt", name)
        report = run_test_mode(policy, f"atari:{game}", runs=runs, episodes=episodes, noneg=noneg, seed=seed)
        results[name] = report.summary()
        print(f"[fwp-atari] test mode {name}: {results[name]}", flush=True)
    (out / "test_mode.json").write_text(json.dumps(results, indent=1))
    return results


def compare(cores: list[str], game: str, out: Path, results: dict[str, dict[str, float]],
            walls: dict[str, float], runs: int, episodes: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    rows = []
    for core in cores:
        curve = read_curve(out / core / "learning_curve.csv")
        for ax, key in zip(axes, ("train/return", "eval/test/return")):
            points = [(r[FRAMES], r[key]) for r in curve if not math.isnan(r.get(key, math.nan))]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=core)
        frames = int(curve[-1][FRAMES]) if curve else 0
        train = curve[-1].get("train/return", math.nan) if curve else math.nan
        r = results.get(core, {})
        rows.append(f"| {core} | {frames:,} | {train:.2f} | {r.get('life_return_mean', math.nan):.2f} ± "
                    f"{r.get('life_return_std_over_runs', math.nan):.2f} | {r.get('game_return_mean', math.nan):.2f} "
                    f"({int(r.get('games', 0))}) | {walls.get(core, math.nan) / 60:.1f} |")
    rnd = results.get("random", {})
    rows.append(f"| random policy | – | – | {rnd.get('life_return_mean', math.nan):.2f} ± "
                f"{rnd.get('life_return_std_over_runs', math.nan):.2f} | {rnd.get('game_return_mean', math.nan):.2f} "
                f"({int(rnd.get('games', 0))}) | – |")
    if "random" in results:
        for ax, key in zip(axes, ("train", "test")):
            ax.axhline(rnd["life_return_mean"], color="grey", linestyle="--", label="random policy")
    for ax, title in zip(axes, ("training episodes (lives, sampled actions)", "greedy evaluation (lives)")):
        ax.set_xlabel("agent steps (4 frames each)")
        ax.set_ylabel("return per life")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"FWP cores vs LSTM on {game}")
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=100)
    plt.close(fig)
    table = "\n".join([
        f"FWP agents on {game}: test mode = greedy, {runs} runs x {episodes} lives; full games that ended within "
        "them in parentheses.",
        "",
        "| core | agent steps | last train return / life | test return / life (± std over runs) | "
        "test full-game return (games) | wall min |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    (out / "comparison.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    if argv[:1] == ["test"]:
        return test_command(argv[1:])
    parser = argparse.ArgumentParser(prog="bin/fwp-atari", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--cores", nargs="+", default=CORES, choices=["feedforward", *CORES])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per core (see configs/fwp_atari.yaml)")
    parser.add_argument("--parallel", type=int, default=len(CORES), help="training runs at a time")
    parser.add_argument("--out", type=Path, default=Path("runs/fwp_atari_compare"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=2, help="test-mode runs (the reference: 5)")
    parser.add_argument("--episodes", type=int, default=30, help="test-mode lives per run (the reference: 30)")
    parser.add_argument("--noneg", action="store_true", help="discard negative-score test episodes")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop each training run after this many minutes (its last checkpoint is tested)")
    parser.add_argument("--smoke", action="store_true", help="a few steps of every stage")
    args = parser.parse_args(argv)
    if args.smoke:
        extra = SMOKE + extra
        args.runs, args.episodes = 1, 2
    if args.max_minutes is not None:
        if args.max_minutes <= 0:
            parser.error(f"--max-minutes must be positive, got {args.max_minutes}")
        extra = [max_time_argument(args.max_minutes), *extra]
    args.out.mkdir(parents=True, exist_ok=True)
    baseline = test_all([], args.game, args.out, args.runs, args.episodes, args.noneg, args.seed)

    def progress(walls: dict[str, float]) -> None:
        compare(args.cores, args.game, args.out, baseline, walls, args.runs, args.episodes)

    walls = train_all(args.cores, args.game, args.out, args.epochs, args.seed, args.parallel, extra, progress)
    results = test_all(args.cores, args.game, args.out, args.runs, args.episodes, args.noneg, args.seed,
                       results=baseline)
    print(compare(args.cores, args.game, args.out, results, walls, args.runs, args.episodes))
    print(f"[fwp-atari] wrote {args.out / 'comparison.md'} and {args.out / 'comparison.png'}")
    return 0


def test_command(argv: list[str]) -> int:
    from lit_rlseq.errors import UserError
    from lit_rlseq.fwp.evaluate import run_test_mode

    parser = argparse.ArgumentParser(prog="bin/fwp-atari test", description="the reference's test mode")
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--core", default=None, help="the core the checkpoint must hold (checked)")
    parser.add_argument("--game", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--noneg", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.ckpt, args.core)
        report = run_test_mode(policy, f"atari:{args.game}", runs=args.runs, episodes=args.episodes,
                               noneg=args.noneg, seed=args.seed)
    except UserError as e:
        print(f"fwp-atari: error: {e}", file=sys.stderr)
        return 2
    for key, value in report.summary().items():
        print(f"{key:28s} {value:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
