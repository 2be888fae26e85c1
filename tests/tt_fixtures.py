"""Trajectory Transformer test artifacts: a Hopper-shaped synthetic dataset and tiny TT / BC checkpoints."""

from pathlib import Path

import pytest

from tests.trajectory_data import write_synthetic_store

ROOT = Path(__file__).resolve().parents[1]
TINY_TT = ["--model.init_args.n_layer=1", "--model.init_args.n_head=1", "--model.init_args.n_embd=16",
           "--data.init_args.batch_size=8"]


@pytest.fixture(scope="session")
def tt_store(tmp_path_factory):
    """Random-walk episodes shaped like Hopper's (observation 11, action 3), tagged partition medium-replay."""
    return write_synthetic_store(tmp_path_factory.mktemp("tt") / "datasets", episodes=8, obs_dim=11, act_dim=3,
                                 partition="medium-replay")


def _fit(config: str, store: Path, out: Path, extra: list[str]) -> Path:
    from lit_rlseq.cli import run_cli

    run_cli(["fit", "--config", str(ROOT / "configs" / config), f"--data.init_args.path={store}",
             f"--trainer.logger.init_args.save_dir={out}", "--trainer.logger.init_args.name=run",
             "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
             "--trainer.enable_progress_bar=false", *extra])
    return out / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def tt_checkpoint(tt_store, tmp_path_factory):
    return _fit("tt_hopper.yaml", tt_store, tmp_path_factory.mktemp("tt_fit"), TINY_TT)


@pytest.fixture(scope="session")
def bc_checkpoint(tt_store, tmp_path_factory):
    return _fit("tt_hopper_bc.yaml", tt_store, tmp_path_factory.mktemp("bc_fit"), ["--model.init_args.hidden=[16]"])


def tt_command(name: str, tmp_path: Path, request) -> list[str]:
    """fit: on the synthetic store; evaluate: the tiny checkpoints, 2 envs, 3 steps, a tiny planner."""
    if not name.endswith("_evaluate"):
        return ["fit", f"--data.init_args.path={request.getfixturevalue('tt_store')}", "--data.init_args.batch_size=16"]
    checkpoint = request.getfixturevalue("bc_checkpoint" if "_bc" in name else "tt_checkpoint")
    args = ["evaluate", f"--model.init_args.checkpoint={checkpoint}", f"--model.init_args.results={tmp_path}/r.json",
            "--model.init_args.progress=false", f"--data.init_args.store={tmp_path / 'eval'}",
            "--data.init_args.episodes=2", "--data.init_args.num_envs=2", "--data.init_args.max_steps=3"]
    if "_bc" not in name:
        args += ["--model.init_args.horizon=2", "--model.init_args.beam_width=2"]
    return args
