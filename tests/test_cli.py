"""The command line: every config runs (fast_dev_run), configs round-trip, user errors are one clear line."""

import subprocess
import sys
from pathlib import Path

import pytest

from lit_rlseq.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
TOY = str(ROOT / "configs" / "toy_impala.yaml")


def fails_with(capsys, args: list[str], *expected: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_print_config_is_complete_and_reruns(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", TOY, "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for key in ("class_path: lit_rlseq.ldd.TextGridImpala", "entropy_cost: 0.01", "rho_bar:", "unroll_length: 5",
                "eval_episodes: 200", "d_rep: 64"):
        assert key in printed
    assert "vocab:" not in printed  # linked from the data, not a config value
    config = tmp_path / "printed.yaml"
    config.write_text(printed)
    cli = run_cli(["fit", "--config", str(config), "--trainer.fast_dev_run=true",
                   "--data.init_args.eval_episodes=4"])
    assert int(cli.model.frames) == 16 * 5


def test_command_line_overrides_reach_the_model(tmp_path):
    cli = run_cli(["fit", "--config", TOY, "--trainer.fast_dev_run=true", "--model.init_args.lr=3e-4",
                   "--data.init_args.eval_episodes=4"])
    assert cli.model.lr == pytest.approx(3e-4)
    assert cli.model.policy.config.vocab_size == len(cli.datamodule.vocab)


def test_unknown_key(capsys):
    fails_with(capsys, ["fit", "--config", TOY, "--model.init_args.lrr=3"], "lrr", "not accepted")


def test_wrong_type(capsys):
    fails_with(capsys, ["fit", "--config", TOY, "--model.init_args.lr=fast"], "lr", "float")


def test_missing_config_file(capsys):
    fails_with(capsys, ["fit", "--config", "configs/nope.yaml"], "nope.yaml", "does not exist")


def test_missing_checkpoint_names_it_and_how_to_make_one(capsys):
    fails_with(capsys, ["validate", "--config", TOY, "--ckpt_path", "runs/none/last.ckpt"],
               "runs/none/last.ckpt", "create it with: lightning fit")


def test_unknown_environment(capsys):
    fails_with(capsys, ["fit", "--config", TOY, "--data.init_args.env=atarii"], "unknown environment 'atarii'")


def test_collect_needs_collection_data(capsys):
    fails_with(capsys, ["collect", "--config", TOY], "CollectDataModule")


@pytest.mark.slow
@pytest.mark.parametrize("command", [["lit-rlseq"], ["lightning"], [sys.executable, "-m", "lit_rlseq"]])
def test_console_scripts(command):
    if command[0] != sys.executable:
        command = [str(Path(sys.executable).parent / command[0])]
    result = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for subcommand in ("fit", "validate", "collect", "evaluate"):
        assert subcommand in result.stdout


def test_a_cli_checkpoint_loads_with_load_from_checkpoint(tmp_path):
    """Linked shapes the model does not take (a vocabulary, a tokenizer...) stay out of its saved
    hyperparameters, so `Model.load_from_checkpoint(path)` rebuilds it without the CLI."""
    import torch

    from lit_rlseq.loops import MLPPPO

    cli = run_cli(["fit", "--config", str(ROOT / "configs" / "ppo_hopper.yaml"), "--trainer.max_epochs=1",
                   "--data.init_args.steps_per_epoch=1", "--data.init_args.unroll_length=64",
                   "--data.init_args.eval_episodes=1", "--data.init_args.eval_num_envs=1",
                   "--model.init_args.ppo_epochs=1", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    saved = torch.load(checkpoint, weights_only=False)["hyper_parameters"]
    assert saved["obs_dim"] == 11 and saved["action_dim"] == 3
    assert not {"vocab", "tokenizer", "dataset_spec"} & set(saved)
    restored = MLPPPO.load_from_checkpoint(checkpoint)
    for name, value in cli.model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name


def test_a_checkpoint_with_retired_or_foreign_link_names_still_resumes(tmp_path):
    """Checkpoints of earlier versions hold linked names the model does not take (as None), including names
    that are no longer linked (TT's `observation_dim`); validating or resuming from one drops them."""
    import torch

    common = ["--config", str(ROOT / "configs" / "ppo_hopper.yaml"), "--data.init_args.steps_per_epoch=1",
              "--data.init_args.unroll_length=64", "--data.init_args.eval_episodes=1",
              "--data.init_args.eval_num_envs=1", "--model.init_args.ppo_epochs=1",
              f"--trainer.logger.init_args.save_dir={tmp_path}"]
    run_cli(["fit", *common, "--trainer.max_epochs=1"])
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    saved = torch.load(checkpoint, weights_only=False)
    saved["hyper_parameters"].update(observation_dim=None, vocab=None)
    old = tmp_path / "old.ckpt"
    torch.save(saved, old)
    cli = run_cli(["fit", *common, "--trainer.max_epochs=2", "--ckpt_path", str(old)])
    assert cli.trainer.current_epoch == 2
