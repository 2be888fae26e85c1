import os

import pytest
import torch

# Tests are small; one intra-op thread keeps them from fighting over the machine's cores.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rtfm_demos(tmp_path_factory):
    """A small store of scripted-expert demonstrations on RTFM S1, recorded with `lightning collect`."""
    from lit_rlseq.cli import run_cli

    store = tmp_path_factory.mktemp("demos") / "demos"
    run_cli(["collect", "--config", str(ROOT / "configs" / "ldd_rtfm_collect.yaml"), f"--data.init_args.store={store}",
             "--data.init_args.episodes=60", "--data.init_args.num_envs=16", "--trainer.enable_progress_bar=false"])
    return store


@pytest.fixture(scope="session")
def messenger_demos(tmp_path_factory):
    """A small store of scripted-expert demonstrations on Messenger S2, recorded with `lightning collect`."""
    from lit_rlseq.cli import run_cli

    store = tmp_path_factory.mktemp("messenger_demos") / "demos"
    run_cli(["collect", "--config", str(ROOT / "configs" / "ldd_messenger_collect.yaml"),
             f"--data.init_args.store={store}", "--data.init_args.episodes=40", "--data.init_args.num_envs=8",
             "--trainer.enable_progress_bar=false"])
    return store


@pytest.fixture(scope="session")
def dynamics_checkpoint(rtfm_demos, tmp_path_factory):
    """A (barely trained) dynamics model checkpoint from configs/ldd_rtfm_dynamics.yaml."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("dynamics")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_rtfm_dynamics.yaml"), f"--data.init_args.path={rtfm_demos}",
             f"--trainer.logger.init_args.save_dir={out}", "--trainer.logger.init_args.name=dynamics",
             "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.enable_progress_bar=false"])
    return out / "dynamics" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def procgen_agent_ckpt(tmp_path_factory):
    """A checkpoint of a small random procgen agent (see tests/procgen_fixtures.py)."""
    from tests.procgen_fixtures import SMALL_AGENT, save_agent_checkpoint

    path = tmp_path_factory.mktemp("procgen_agent") / "agent.ckpt"
    save_agent_checkpoint(path, SMALL_AGENT)
    return path


@pytest.fixture(scope="session")
def procgen_store(tmp_path_factory, procgen_agent_ckpt):
    """Four coinrun episodes recorded with that agent, with its hidden states."""
    from lit_rlseq.procgen_sim.module import load_agent
    from tests.procgen_fixtures import SMALL_AGENT, record

    path = tmp_path_factory.mktemp("procgen_store") / "store"
    record(path, load_agent(procgen_agent_ckpt, SMALL_AGENT), episodes=4)
    return path


@pytest.fixture(scope="session")
def cooking_cache(tmp_path_factory):
    """A game cache with two TextWorld cooking level-1 games made by tw-make for this test run (about 15 s
    each): train seed 0 and test seed 0."""
    from lit_rlseq.envs.text import make_games

    cache = tmp_path_factory.mktemp("games")
    make_games("cooking_level_1", "train", 1, cache_dir=cache, progress=False)
    make_games("cooking_level_1", "test", 1, cache_dir=cache, progress=False)
    return cache


@pytest.fixture(scope="session")
def ttm_store(cooking_cache, tmp_path_factory):
    """Two walkthrough-teacher rollouts on the cached cooking game, recorded with `lightning play`."""
    from lit_rlseq.cli import run_cli

    store = tmp_path_factory.mktemp("ttm") / "rollouts"
    run_cli(["play", "--config", str(ROOT / "configs" / "ttm_cooking_teacher.yaml"), f"--data.init_args.store={store}",
             f"--data.init_args.game_cache={cooking_cache}", "--data.init_args.max_rollouts=2",
             "--data.init_args.games=1", "--trainer.enable_progress_bar=false"])
    return store


@pytest.fixture(scope="session")
def ttm_jsonl(ttm_store, tmp_path_factory):
    from lit_rlseq.cli import run_cli

    path = tmp_path_factory.mktemp("ttm_jsonl") / "teacher.jsonl"
    run_cli(["write_finetune", "--config", str(ROOT / "configs" / "ttm_cooking_write_finetune.yaml"),
             f"--store={ttm_store}", f"--finetune_path={path}"])
    return path


TINY_LM = ["--model.init_args.n_layer=1", "--model.init_args.n_head=2", "--model.init_args.n_embd=32",
           "--model.init_args.block_size=256", "--data.init_args.block_size=256", "--data.init_args.vocab_size=400",
           "--model.init_args.max_new_tokens=40"]


@pytest.fixture(scope="session")
def ttm_checkpoint(ttm_jsonl, tmp_path_factory):
    """A tiny TextLM trained for two steps with configs/ttm_cooking_finetune.yaml."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("ttm_lm")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ttm_cooking_finetune.yaml"), f"--data.init_args.path={ttm_jsonl}",
             f"--trainer.logger.init_args.save_dir={out}", "--trainer.max_steps=2", "--trainer.enable_progress_bar=false",
             *TINY_LM])
    return out / "ttm_cooking" / "lm" / "checkpoints" / "last.ckpt"


HF_TEXT = ["goal: You are hungry! Let's cook a delicious meal.\nstate: [-= Kitchen =- You see a knife on the table.] "
           "fitness: 'high' batch_fitness: 'high'\n expectation: take knife from table: score up by 1 summary:  "
           "length: 0 value: 1.00 action: [ take knife from table ]\n"] * 4


def save_tiny_hf_model(path, positions: int = 256):
    """A randomly initialised 1-layer GPT-2 and a small byte-level BPE tokenizer, saved with save_pretrained
    (a local Hugging Face model directory made without the network)."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from lit_rlseq.ttm.lm import train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer(HF_TEXT, vocab_size=400)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(path)
    config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=positions, n_embd=32, n_layer=1, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory):
    return save_tiny_hf_model(tmp_path_factory.mktemp("hf_model") / "tiny_gpt2")


# Trajectory Transformer artifacts (a Hopper-shaped dataset, tiny TT and BC checkpoints): tests/tt_fixtures.py
from tests.tt_fixtures import bc_checkpoint, tt_checkpoint, tt_store  # noqa: E402,F401


@pytest.fixture(scope="session")
def messenger_dynamics_checkpoint(messenger_demos, tmp_path_factory):
    """A (barely trained) Messenger dynamics checkpoint from configs/ldd_messenger_dynamics.yaml at a tiny size."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("messenger_dynamics")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_messenger_dynamics.yaml"),
             f"--data.init_args.path={messenger_demos}", f"--trainer.logger.init_args.save_dir={out}",
             "--trainer.logger.init_args.name=dynamics", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
             "--model.init_args.d_word=16", "--model.init_args.d_model=16", "--model.init_args.conv_channels=8",
             "--model.init_args.hidden=16", "--trainer.enable_progress_bar=false"])
    return out / "dynamics" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def messenger_s1_checkpoints(messenger_dynamics_checkpoint, tmp_path_factory):
    """S1 checkpoints of the EMMA baseline and of LDD (one learner step each), for the S2 curriculum configs."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("messenger_s1")
    paths = {}
    for method, config, extra in (
        ("baseline", "ldd_messenger_baseline.yaml", ["--model.init_args.d_word=16", "--model.init_args.d_model=16",
                                                     "--model.init_args.conv_channels=8", "--model.init_args.hidden=16"]),
        ("ldd", "ldd_messenger.yaml", [f"--model.init_args.dynamics_checkpoint={messenger_dynamics_checkpoint}"]),
    ):
        run_cli(["fit", "--config", str(ROOT / "configs" / config), f"--trainer.logger.init_args.save_dir={out}",
                 f"--trainer.logger.init_args.name={method}", "--trainer.max_epochs=1",
                 "--data.init_args.steps_per_epoch=1", "--data.init_args.eval_episodes=2",
                 "--trainer.enable_progress_bar=false", *extra])
        paths[method] = out / method / "checkpoints" / "last.ckpt"
    return paths


@pytest.fixture(scope="session")
def nethack_baseline_checkpoint(tmp_path_factory):
    """A NetHackImpala checkpoint after one learner step of configs/ldd_nethack_baseline.yaml (tiny batch)."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("nethack_baseline")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_nethack_baseline.yaml"), "--trainer.max_steps=1",
             "--trainer.limit_val_batches=0", "--data.init_args.num_envs=2", "--data.init_args.unroll_length=4",
             "--data.init_args.num_workers=0", f"--trainer.logger.init_args.save_dir={out}",
             "--trainer.logger.init_args.name=baseline", "--trainer.enable_progress_bar=false"])
    return out / "baseline" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def nethack_demos(nethack_baseline_checkpoint, tmp_path_factory):
    """Six short NetHack episodes of that policy, recorded with configs/ldd_nethack_collect.yaml."""
    from lit_rlseq.cli import run_cli

    store = tmp_path_factory.mktemp("nethack_demos") / "demos"
    run_cli(["collect", "--config", str(ROOT / "configs" / "ldd_nethack_collect.yaml"),
             f"--ckpt_path={nethack_baseline_checkpoint}", f"--data.init_args.store={store}",
             "--data.init_args.episodes=6", "--data.init_args.num_envs=3", "--data.init_args.episodes_per_batch=3",
             "--data.init_args.env_kwargs={max_steps: 40}", "--trainer.enable_progress_bar=false"])
    return store


@pytest.fixture(scope="session")
def nethack_dynamics_checkpoint(nethack_demos, tmp_path_factory):
    """A (barely trained) NetHack dynamics model checkpoint from configs/ldd_nethack_dynamics.yaml."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("nethack_dynamics")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_nethack_dynamics.yaml"),
             f"--data.init_args.path={nethack_demos}", f"--trainer.logger.init_args.save_dir={out}",
             "--trainer.logger.init_args.name=dynamics", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
             "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false"])
    return out / "dynamics" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def touchdown_root(tmp_path_factory):
    """A tiny synthetic Touchdown data set in SILG's layout (tests/test_touchdown_env.py; not real data)."""
    from tests.test_touchdown_env import write_fixture

    return write_fixture(tmp_path_factory.mktemp("touchdown"))


def touchdown_data_args(root) -> list[str]:
    kwargs = f"{{root: {root}, layout: text_grid}}"
    return [f"--data.init_args.env_kwargs={kwargs}", f"--data.init_args.eval_env_kwargs={kwargs}"]


@pytest.fixture(scope="session")
def touchdown_baseline_checkpoint(touchdown_root, tmp_path_factory):
    """A TextGridImpala checkpoint after one learner step of configs/ldd_touchdown_baseline.yaml."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("touchdown_baseline")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_touchdown_baseline.yaml"), "--trainer.max_steps=1",
             "--trainer.limit_val_batches=0", "--data.init_args.num_envs=2", "--data.init_args.unroll_length=4",
             "--data.init_args.num_workers=0", *touchdown_data_args(touchdown_root),
             f"--trainer.logger.init_args.save_dir={out}", "--trainer.logger.init_args.name=baseline",
             "--trainer.enable_progress_bar=false"])
    return out / "baseline" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def touchdown_demos(touchdown_baseline_checkpoint, touchdown_root, tmp_path_factory):
    """Twelve greedy episodes of that policy, recorded with configs/ldd_touchdown_collect.yaml."""
    from lit_rlseq.cli import run_cli

    store = tmp_path_factory.mktemp("touchdown_demos") / "demos"
    run_cli(["collect", "--config", str(ROOT / "configs" / "ldd_touchdown_collect.yaml"),
             f"--ckpt_path={touchdown_baseline_checkpoint}", f"--data.init_args.store={store}",
             "--data.init_args.episodes=12", "--data.init_args.num_envs=4", "--data.init_args.episodes_per_batch=12",
             f"--data.init_args.env_kwargs={{root: {touchdown_root}, layout: text_grid}}",
             "--trainer.enable_progress_bar=false"])
    return store


@pytest.fixture(scope="session")
def touchdown_dynamics_checkpoint(touchdown_demos, touchdown_root, tmp_path_factory):
    """A (barely trained) text-grid dynamics model of Touchdown from configs/ldd_touchdown_dynamics.yaml."""
    from lit_rlseq.cli import run_cli

    out = tmp_path_factory.mktemp("touchdown_dynamics")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_touchdown_dynamics.yaml"),
             f"--data.init_args.path={touchdown_demos}",
             f"--data.init_args.env_kwargs={{root: {touchdown_root}, layout: text_grid}}",
             f"--trainer.logger.init_args.save_dir={out}", "--trainer.logger.init_args.name=dynamics",
             "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.enable_progress_bar=false"])
    return out / "dynamics" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def alfworld_layout(tmp_path_factory):
    """A synthetic ALFWorld layout in SILG's paths with one selectable trial per split (not playable games)."""
    from tests.test_alfworld_env import make_layout

    trials = [(f"{split}/pick_x/trial_1", "pick_and_place_simple", True)
              for split in ("train", "valid_seen", "valid_unseen")]
    return make_layout(tmp_path_factory.mktemp("alfworld"), trials)
