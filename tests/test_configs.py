"""Every config in configs/ (and every scale overlay on its base config) runs in-process with fast_dev_run.

Each system says how to run its configs in ``COMMANDS`` (name prefix -> function of (config name, tmp_path,
pytest request) returning the subcommand and overrides; fixtures are requested lazily, so a config only builds
the artifacts it needs) and lists its configs in ``CONFIGS_BY_SYSTEM``.
"""

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from lit_rlseq.cli import STANDALONE_STAGES, run_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
OVERLAYS = sorted((ROOT / "configs" / "scale").glob("*.yaml"))

CONFIGS_BY_SYSTEM = {
    "foundation": {"toy_impala"},
    "ldd_rtfm": {"ldd_rtfm_baseline", "ldd_rtfm_collect", "ldd_rtfm_dynamics", "ldd_rtfm"},
    "ldd_messenger": {"ldd_messenger_collect", "ldd_messenger_dynamics", "ldd_messenger_baseline",
                      "ldd_messenger", "ldd_messenger_baseline_s2", "ldd_messenger_s2", "ldd_messenger_baseline_s3",
                      "ldd_messenger_s3"},
    "procgen": {"procgen_agent", "procgen_collect", "procgen_sim"},
    "fwp": {"fwp_atari"},
    "ppo": {"toy_ppo", "ppo_hopper"},
    "ldd_nethack": {"ldd_nethack_baseline", "ldd_nethack_collect", "ldd_nethack_dynamics", "ldd_nethack"},
    "ldd_touchdown": {"ldd_touchdown_baseline", "ldd_touchdown_collect", "ldd_touchdown_dynamics", "ldd_touchdown"},
    "ldd_alfworld": {"ldd_alfworld_baseline", "ldd_alfworld_collect", "ldd_alfworld_dynamics", "ldd_alfworld"},
    "ttm": {"ttm_cooking_teacher", "ttm_cooking_write_finetune", "ttm_cooking_finetune", "ttm_cooking_student_train",
            "ttm_cooking_student_test", "ttm_cooking_finetune_hf"},
    "trajectory": {"tt_hopper", "tt_hopper_bc", "tt_hopper_evaluate", "tt_hopper_bc_evaluate"},
}


def base_of(overlay: Path) -> Path:
    """configs/scale/<base>_<scale>.yaml applies on top of configs/<base>.yaml."""
    return ROOT / "configs" / (overlay.stem.rsplit("_", 1)[0] + ".yaml")


def ldd_command(name: str, tmp_path: Path, request, demos_fixture: str = "rtfm_demos") -> list[str]:
    """The LDD stages: collect, dynamics (on the demos fixture), RL (LDD reads the dynamics checkpoint)."""
    if name.endswith("_collect"):
        return ["collect", f"--data.init_args.store={tmp_path / 'store'}", "--data.init_args.num_envs=4",
                "--data.init_args.episodes_per_batch=4"]
    if name.endswith("_dynamics"):
        return ["fit", f"--data.init_args.path={request.getfixturevalue(demos_fixture)}"]
    args = ["fit", "--data.init_args.eval_episodes=4"]
    if name == "ldd_rtfm":
        args.append(f"--model.init_args.dynamics_checkpoint={request.getfixturevalue('dynamics_checkpoint')}")
    if name.startswith("ldd_nethack"):  # a greedy NetHack policy may wait until the step limit
        args += ["--data.init_args.eval_env_kwargs={max_steps: 20}", "--data.init_args.num_workers=0"]
    return args


def nethack_command(name: str, tmp_path: Path, request) -> list[str]:
    """LDD on NetHack: collect from the baseline fixture's checkpoint, dynamics on the demos fixture, LDD from the
    dynamics fixture; short episodes and small batches (the paper overlays ask for large ones)."""
    if name.endswith("_collect"):
        return ["collect", f"--ckpt_path={request.getfixturevalue('nethack_baseline_checkpoint')}",
                f"--data.init_args.store={tmp_path / 'store'}", "--data.init_args.num_envs=2",
                "--data.init_args.episodes_per_batch=2", "--data.init_args.env_kwargs={max_steps: 20}"]
    if name.endswith("_dynamics"):
        return ["fit", f"--data.init_args.path={request.getfixturevalue('nethack_demos')}",
                "--data.init_args.batch_size=8", "--data.init_args.num_workers=0"]
    args = ldd_command(name, tmp_path, request)
    if name == "ldd_nethack":
        args += [f"--model.init_args.dynamics_checkpoint={request.getfixturevalue('nethack_dynamics_checkpoint')}",
                 "--data.init_args.num_envs=4", "--data.init_args.batch_size=4", "--data.init_args.unroll_length=8",
                 "--data.init_args.eval_num_envs=4"]
    return args


def touchdown_command(name: str, tmp_path: Path, request) -> list[str]:
    """LDD on Touchdown over the synthetic SILG-layout fixture (tests/test_touchdown_env.py): collect from the
    baseline fixture's checkpoint, dynamics on the demos fixture, LDD from the dynamics fixture."""
    from tests.conftest import touchdown_data_args

    root = request.getfixturevalue("touchdown_root")
    data = touchdown_data_args(root)
    if name.endswith("_collect"):
        return ["collect", f"--ckpt_path={request.getfixturevalue('touchdown_baseline_checkpoint')}",
                f"--data.init_args.store={tmp_path / 'store'}", "--data.init_args.num_envs=4",
                "--data.init_args.episodes_per_batch=4", data[0]]
    if name.endswith("_dynamics"):
        return ["fit", f"--data.init_args.path={request.getfixturevalue('touchdown_demos')}", data[0]]
    args = ["fit", "--data.init_args.eval_episodes=4", "--data.init_args.num_workers=0",
            "--data.init_args.unroll_length=8", *data]
    if name == "ldd_touchdown":
        args.append(f"--model.init_args.dynamics_checkpoint={request.getfixturevalue('touchdown_dynamics_checkpoint')}")
    return args


def alfworld_command(name: str, tmp_path: Path, request) -> list[str]:
    """LDD on ALFWorld over a synthetic layout (tests/test_alfworld_env.py): its games are not real, so every
    stage must stop at the one thing missing here, the alfworld package that plays .tw-pddl games
    (``NEEDS_PACKAGE``); with the package installed the test is skipped (the synthetic games cannot be played)."""
    kwargs = f"{{root: {request.getfixturevalue('alfworld_layout')}, layout: text_grid}}"
    if name.endswith("_collect"):
        return ["collect", "--ckpt_path=null", f"--data.init_args.env_kwargs={kwargs}"]
    if name.endswith("_dynamics"):
        return ["fit", f"--data.init_args.path={tmp_path / 'demos'}", f"--data.init_args.env_kwargs={kwargs}"]
    return ["fit", f"--data.init_args.env_kwargs={kwargs}", f"--data.init_args.eval_env_kwargs={kwargs}"]


# Configs whose environment needs a package that bin/setup cannot install: prefix -> (module, expected message).
NEEDS_PACKAGE = {"ldd_alfworld": ("alfworld", "pip install alfworld")}


def procgen_command(name: str, tmp_path: Path, request) -> list[str]:
    from tests.procgen_fixtures import procgen_command as command

    return command(name, tmp_path, request)


def fwp_command(name: str, tmp_path: Path, request) -> list[str]:
    """Short unrolls, actors in-process, a game with short lives."""
    return ["fit", "--data.init_args.eval_episodes=4", "--data.init_args.unroll_length=4",
            "--data.init_args.num_workers=0", "--data.init_args.num_envs=2", "--data.init_args.batch_size=2",
            "--data.init_args.env=atari:Breakout", "--data.init_args.eval_envs={test: atari:Breakout}",
            "--data.init_args.eval_num_envs=2"]


def ppo_command(name: str, tmp_path: Path, request) -> list[str]:
    args = ["fit", "--data.init_args.eval_episodes=4"]
    if name == "ppo_hopper":  # one short batch (still >= the 32 minibatches)
        args.append("--data.init_args.unroll_length=64")
    return args


def ttm_command(name: str, tmp_path: Path, request) -> list[str]:
    """TTM stages: games from the session's tw-make cache, a store/JSONL/checkpoint from the session fixtures."""
    from tests.conftest import TINY_LM

    if name == "ttm_cooking_write_finetune":
        return ["write_finetune", f"--store={request.getfixturevalue('ttm_store')}",
                f"--finetune_path={tmp_path / 'out.jsonl'}"]
    if name == "ttm_cooking_finetune":
        return ["fit", f"--data.init_args.path={request.getfixturevalue('ttm_jsonl')}", *TINY_LM]
    if name == "ttm_cooking_finetune_hf":  # the tiny GPT-2 saved by the fixture (256 positions)
        return ["fit", f"--data.init_args.path={request.getfixturevalue('ttm_jsonl')}",
                f"--data.init_args.hf_model={request.getfixturevalue('tiny_hf_model')}",
                "--model.init_args.block_size=256", "--data.init_args.block_size=256"]
    play = ["play", f"--data.init_args.store={tmp_path / 'store'}", "--data.init_args.max_rollouts=1",
            "--data.init_args.games=1", f"--data.init_args.game_cache={request.getfixturevalue('cooking_cache')}"]
    if name.startswith("ttm_cooking_student"):
        play += [f"--model.init_args.init_from={request.getfixturevalue('ttm_checkpoint')}",
                 "--data.init_args.max_actions=3"]
    return play


def tt_command(name: str, tmp_path: Path, request) -> list[str]:
    from tests.tt_fixtures import tt_command as command

    return command(name, tmp_path, request)


def messenger_command(name: str, tmp_path: Path, request) -> list[str]:
    """LDD on Messenger: RL stages read the dynamics fixture; S2 and S3 stages start from the S1 fixtures (EMMA
    reads every stage)."""
    args = ldd_command(name, tmp_path, request, "messenger_demos")
    if name.endswith("_dynamics"):  # a small EMMA trunk: the paper overlay's 128-class head is large enough
        args += ["--model.init_args.d_word=16", "--model.init_args.d_model=16", "--model.init_args.conv_channels=8"]
    if name in ("ldd_messenger", "ldd_messenger_s2", "ldd_messenger_s3"):
        args.append(f"--model.init_args.dynamics_checkpoint={request.getfixturevalue('messenger_dynamics_checkpoint')}")
    if name.endswith(("_s2", "_s3")):
        checkpoints = request.getfixturevalue("messenger_s1_checkpoints")
        method = "baseline" if "_baseline_" in name else "ldd"
        args.append(f"--model.init_args.init_checkpoint={checkpoints[method]}")
    if name.startswith("ldd_messenger_baseline_s"):  # starts from the tiny S1 fixture: match its sizes
        args += ["--model.init_args.d_word=16", "--model.init_args.d_model=16", "--model.init_args.conv_channels=8",
                 "--model.init_args.hidden=16"]
    return args


COMMANDS: dict[str, Callable[[str, Path, object], list[str]]] = {
    "tt_": tt_command,
    "procgen_": procgen_command,
    "fwp_atari": fwp_command,
    "toy_ppo": ppo_command,
    "ppo_hopper": ppo_command,
    "ttm_": ttm_command,
    "ldd_messenger": messenger_command,
    "ldd_nethack": nethack_command,
    "ldd_touchdown": touchdown_command,
    "ldd_alfworld": alfworld_command,
}


def command_for(config: Path, tmp_path: Path, request) -> list[str]:
    name = config.stem
    for prefix, command in COMMANDS.items():
        if name.startswith(prefix):
            return command(name, tmp_path, request)
    return ldd_command(name, tmp_path, request)


@pytest.mark.parametrize("config", CONFIGS + OVERLAYS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_runs_with_fast_dev_run(config, tmp_path, monkeypatch, request, capsys):
    monkeypatch.chdir(tmp_path)
    configs = ["--config", str(config)]
    if config in OVERLAYS:
        assert base_of(config).exists(), f"{config.name}: no base config {base_of(config).name}"
        configs = ["--config", str(base_of(config)), *configs]
    subcommand, *overrides = command_for(base_of(config) if config in OVERLAYS else config, tmp_path, request)
    if subcommand in STANDALONE_STAGES:
        run_cli([subcommand, *configs, *overrides])
        return
    stem = (base_of(config) if config in OVERLAYS else config).stem
    package = next((need for prefix, need in NEEDS_PACKAGE.items() if stem.startswith(prefix)), None)
    if package is not None:
        if importlib.util.find_spec(package[0]) is not None:
            pytest.skip(f"{package[0]} is installed, and this config's test data are not playable games")
        with pytest.raises(SystemExit):
            run_cli([subcommand, *configs, "--trainer.fast_dev_run=true", *overrides])
        assert package[1] in capsys.readouterr().err
        return
    cli = run_cli([subcommand, *configs, "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false",
                   *overrides])
    if subcommand == "fit" and hasattr(cli.model, "frames"):
        assert int(cli.model.frames) > 0  # one learner step happened


def test_every_config_is_covered():
    assert {p.stem for p in CONFIGS} == set().union(*CONFIGS_BY_SYSTEM.values())
    assert all(base_of(p) in CONFIGS for p in OVERLAYS)
