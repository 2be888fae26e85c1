"""Every config in configs/ (and every scale overlay on its base config) runs in-process with fast_dev_run."""

from pathlib import Path

import pytest

from lit_rlseq.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
OVERLAYS = sorted((ROOT / "configs" / "scale").glob("*.yaml"))


def base_of(overlay: Path) -> Path:
    """configs/scale/<base>_<scale>.yaml applies on top of configs/<base>.yaml."""
    return ROOT / "configs" / (overlay.stem.rsplit("_", 1)[0] + ".yaml")


def command_for(config: Path, tmp_path: Path, demos: Path, dynamics: Path) -> list[str]:
    name = config.stem
    if name.endswith("_collect"):
        return ["collect", f"--data.init_args.store={tmp_path / 'store'}", "--data.init_args.num_envs=4",
                "--data.init_args.episodes_per_batch=4"]
    args = ["fit", "--data.init_args.eval_episodes=4"] if not name.endswith("_dynamics") else ["fit"]
    if name.endswith("_dynamics"):
        args.append(f"--data.init_args.path={demos}")
    if name == "ldd_rtfm":
        args.append(f"--model.init_args.dynamics_checkpoint={dynamics}")
    if name.startswith("ldd_nethack"):  # a greedy NetHack policy may wait until the step limit
        args += ["--data.init_args.eval_env_kwargs={max_steps: 20}", "--data.init_args.num_workers=0"]
    return args


@pytest.mark.parametrize("config", CONFIGS + OVERLAYS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_runs_with_fast_dev_run(config, tmp_path, monkeypatch, rtfm_demos, dynamics_checkpoint):
    monkeypatch.chdir(tmp_path)
    configs = ["--config", str(config)]
    if config in OVERLAYS:
        assert base_of(config).exists(), f"{config.name}: no base config {base_of(config).name}"
        configs = ["--config", str(base_of(config)), *configs]
    subcommand, *overrides = command_for(base_of(config) if config in OVERLAYS else config, tmp_path, rtfm_demos,
                                         dynamics_checkpoint)
    cli = run_cli([subcommand, *configs, "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false",
                   *overrides])
    if subcommand == "fit" and hasattr(cli.model, "frames"):
        assert int(cli.model.frames) > 0  # one learner step happened


def test_every_config_is_covered():
    assert {p.stem for p in CONFIGS} == {"toy_impala", "ldd_rtfm_baseline", "ldd_rtfm_collect",
                                         "ldd_rtfm_dynamics", "ldd_rtfm", "ldd_nethack_baseline"}
    assert all(base_of(p) in CONFIGS for p in OVERLAYS)
