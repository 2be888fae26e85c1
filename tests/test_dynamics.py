"""LDD's dynamics model: targets and metrics by hand, learning on expert demonstrations, the checks of the
demonstration store, the encoder loader for the LDD stage, and the config through the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from lit_rlseq.cli import run_cli
from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.envs.rtfm.expert import ExpertPolicy
from lit_rlseq.errors import DataError, MissingArtifactError
from lit_rlseq.ldd import DynamicsDataModule, DynamicsMetricsPlot, DynamicsModule, load_dynamics_encoder
from lit_rlseq.ldd.dynamics import COLLECT_COMMAND, FIT_COMMAND
from lit_rlseq.loops.collect import recorded_episode
from lit_rlseq.loops.collector import Collector
from lit_rlseq.nn.text_grid_dynamics import (
    NO_PREDICTION,
    cell_hits,
    cell_targets,
    changed_cells,
    copy_predictions,
)
from lit_rlseq.nn.txt2pi import Txt2PiEncoder, Txt2PiPolicy
from lit_rlseq.rollouts import EpisodeTags, RolloutStore

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "ldd_rtfm_dynamics.yaml")
ENV = "rtfm:groups_simple_stationary"
SMALL = dict(d_word=16, d_text=16, channels=(8, 8, 8, 8, 8), d_rep=32, d_action=8, d_cell=32)


def record_demos(path: Path, env_id: str = ENV, episodes: int = 16, seed: int = 0, metadata: dict | None = None,
                 edit=None) -> None:
    """Scripted-expert episodes of env_id written as ``lightning collect`` writes them; ``edit(fields)`` may
    corrupt an episode's fields before it is written."""
    env = make_vector_env(env_id, num_envs=8, seed=seed)
    store_metadata = {"env": env_id, "env_kwargs": {}, "vocab": list(env.vocab.words),
                      "vocab_fingerprint": env.vocab.fingerprint(), **(metadata or {})}
    collector = Collector(env, seed=seed)
    collector.reset(seed)
    with RolloutStore(path).writer(store_metadata) as writer:
        def write(episode):
            stored = recorded_episode(episode, EpisodeTags(run_id="expert", env=env_id, agent="scripted"))
            if edit is not None:
                edit(stored.fields)
            writer.append(stored)

        collector.run_episodes(ExpertPolicy(), episodes // 8, greedy=True, on_episode=write)


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "store"
    record_demos(path, episodes=64)
    return path


def data(path: Path, **kwargs) -> DynamicsDataModule:
    dm = DynamicsDataModule(path=str(path), env=ENV, **kwargs)
    dm.setup("fit")
    return dm


def small_module(dm: DynamicsDataModule, **kwargs) -> DynamicsModule:
    return DynamicsModule(vocab=dm.vocab, num_actions=dm.num_actions, **{**SMALL, **kwargs})


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def grid(*cells: list[int], width: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """One observation whose name grid is one row of cells: name [1, 1, W, 1, width], name_len [1, 1, W, 1].
    Positions beyond a cell's words hold junk (99), which nothing may read."""
    name = torch.full((1, 1, len(cells), 1, width), 99)
    for i, words in enumerate(cells):
        name[0, 0, i, 0, : len(words)] = torch.tensor(words, dtype=torch.long)
    lengths = torch.tensor([len(words) for words in cells]).view(1, 1, len(cells), 1)
    return name, lengths


# ---- targets and metrics, by hand ---------------------------------------------------------------------


def test_targets_are_the_words_then_the_end_marker():
    name, lengths = grid([5, 7], [3], [])  # "fire goblin", "you", and an empty placement
    targets = cell_targets(name, lengths)
    assert targets.ids.tolist() == [[[[5, 7, 0], [3, 0, 0], [0, 0, 0]]]]
    assert targets.mask.tolist() == [[[[True, True, True], [True, True, False], [True, False, False]]]]


def test_more_than_one_placement_is_refused():
    name = torch.ones(1, 2, 2, 2, 3, dtype=torch.long)
    with pytest.raises(DataError, match="2 placements"):
        cell_targets(name, torch.ones(1, 2, 2, 2, dtype=torch.long))


# Five cells of one step (word ids: 3 you, 4 empty, 6 wall, 8 blessed, 10 sword, 5 fire, 7 goblin).
BEFORE = grid([3], [4], [6], [8, 10], [5, 7])
AFTER = grid([4], [3], [6], [8, 10], [3])


def test_copy_baseline_and_changed_cells():
    targets = cell_targets(*AFTER)
    assert targets.ids.shape[-1] == 3
    assert copy_predictions(*BEFORE, 3).tolist() == [[[
        [3, 0, NO_PREDICTION], [4, 0, NO_PREDICTION], [6, 0, NO_PREDICTION], [8, 10, 0], [5, 7, 0],
    ]]]
    assert changed_cells(*BEFORE, *AFTER).tolist() == [[[True, True, False, False, True]]]


def test_hits_of_the_copy_baseline_and_of_a_prediction():
    targets = cell_targets(*AFTER)  # [4,0,.] [3,0,.] [6,0,.] [8,10,0] [3,0,.]: 11 target positions
    changed = changed_cells(*BEFORE, *AFTER)
    copy = cell_hits(copy_predictions(*BEFORE, 3), targets, changed)
    # right positions: 1 (end) + 1 (end) + 2 + 3 + 0 ("fire goblin" vs "you"); cells: wall and sword
    assert copy.token.float().mean().item() == pytest.approx(7 / 11)
    assert copy.cell.float().mean().item() == pytest.approx(2 / 5)
    assert copy.changed_token.float().mean().item() == pytest.approx(2 / 6)
    assert copy.changed_cell.float().mean().item() == 0.0

    # Position 2 of the one-word cells is not a target: what is predicted there does not count.
    predicted = torch.tensor([[[[4, 0, 5], [3, 7, 0], [6, 0, 0], [8, 10, 0], [3, 0, 9]]]])
    model = cell_hits(predicted, targets, changed)
    assert model.token.float().mean().item() == pytest.approx(10 / 11)
    assert model.cell.tolist() == [True, False, True, True, True]
    assert model.changed_token.float().mean().item() == pytest.approx(5 / 6)
    assert model.changed_cell.tolist() == [True, False, True]


def test_changed_cells_ignore_junk_beyond_the_length():
    name, lengths = grid([6], [3])
    other = name.clone()
    other[..., 1:] = 42  # different junk after the one word
    assert not changed_cells(name, lengths, other, lengths).any()
    assert changed_cells(name, lengths, name, lengths.clone().fill_(0)).all()


# ---- the model on demonstrations ----------------------------------------------------------------------


def test_batches_and_output_shapes(demos):
    dm = data(demos, batch_size=6)
    batch = next(iter(dm.train_dataloader()))
    assert batch["obs"]["name"].shape == (6, 6, 6, 1, 8) and batch["action"].shape == (6,)
    assert batch["next_name"].shape == (6, 6, 6, 1, 8) and batch["next_name_len"].shape == (6, 6, 6, 1)
    module = small_module(dm)
    targets = cell_targets(batch["next_name"], batch["next_name_len"])
    logits = module.model(batch["obs"], batch["action"], targets.ids)
    assert logits.shape == (6, 6, 6, targets.ids.shape[-1], len(dm.vocab))
    names, lengths = module.model.generate(batch["obs"], batch["action"], max_words=8)
    assert names.shape == (6, 6, 6, 1, 8) and lengths.shape == (6, 6, 6, 1)


def test_validation_metrics_are_means_over_all_batches(demos):
    """Logged per-batch means would differ from these: batches of 7 leave a short last batch."""
    dm = data(demos, batch_size=7)
    assert len(dm.val_dataset) % 7
    module = small_module(dm)
    logged = quiet_trainer().validate(module, datamodule=dm, verbose=False)[0]

    batches = list(dm.val_dataloader())
    whole = {key: torch.cat([b[key] for b in batches]) for key in ("action", "next_name", "next_name_len")}
    whole["obs"] = {key: torch.cat([b["obs"][key] for b in batches]) for key in batches[0]["obs"]}
    targets = cell_targets(whole["next_name"], whole["next_name_len"])
    changed = changed_cells(whole["obs"]["name"], whole["obs"]["name_len"], whole["next_name"], whole["next_name_len"])
    with torch.no_grad():
        predicted = module.model(whole["obs"], whole["action"], targets.ids).argmax(-1)
    copied = copy_predictions(whole["obs"]["name"], whole["obs"]["name_len"], targets.ids.shape[-1])
    for prefix, hits in (("", cell_hits(predicted, targets, changed)), ("copy_", cell_hits(copied, targets, changed))):
        for name in ("token", "cell", "changed_token", "changed_cell"):
            expected = getattr(hits, name).float().mean().item()
            assert logged[f"val/{prefix}{name}_acc"] == pytest.approx(expected, abs=1e-6), (prefix, name)
    assert logged["val/copy_changed_cell_acc"] == 0.0
    assert 0.3 < logged["val/copy_changed_token_acc"] < 0.7  # "you" -> "empty" keeps the end marker right


@pytest.mark.slow
def test_a_few_hundred_steps_beat_the_copy_baseline_on_changed_cells(demos, tmp_path):
    torch.manual_seed(0)
    dm = data(demos, batch_size=32)
    module = small_module(dm, lr=3e-3)
    trainer = quiet_trainer(max_steps=300, check_val_every_n_epoch=10_000, gradient_clip_val=10,
                            default_root_dir=str(tmp_path), callbacks=[DynamicsMetricsPlot()])
    trainer.fit(module, datamodule=dm)
    logged = trainer.validate(module, datamodule=dm, verbose=False)[0]
    assert logged["val/changed_cell_acc"] > 0.5  # the baseline's is 0
    assert logged["val/changed_token_acc"] > logged["val/copy_changed_token_acc"] + 0.2
    assert logged["val/token_acc"] > 0.9

    # Teacher-forced exact match is greedy-decoding exact match, cell by cell.
    batch = next(iter(dm.val_dataloader()))
    targets = cell_targets(batch["next_name"], batch["next_name_len"])
    module.eval()
    with torch.no_grad():
        predicted = module.model(batch["obs"], batch["action"], targets.ids).argmax(-1)
    teacher_forced = cell_hits(predicted, targets, torch.zeros(targets.ids.shape[:3], dtype=torch.bool)).cell
    names, lengths = module.model.generate(batch["obs"], batch["action"], max_words=8)
    generated = cell_targets(names, lengths)
    t = max(generated.ids.shape[-1], targets.ids.shape[-1])
    pad = lambda x: torch.nn.functional.pad(x, (0, t - x.shape[-1]))  # noqa: E731
    greedy_exact = ((pad(generated.ids) == pad(targets.ids)) & (lengths[..., 0] == batch["next_name_len"][..., 0])
                    .unsqueeze(-1)).all(-1)
    assert 0 < teacher_forced.float().mean() < 1
    assert torch.equal(teacher_forced, greedy_exact.flatten())

    with (tmp_path / "dynamics_metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["val/changed_cell_acc"]) == pytest.approx(logged["val/changed_cell_acc"])
    assert (tmp_path / "dynamics_metrics.png").stat().st_size > 0


# ---- demonstrations that do not fit -------------------------------------------------------------------


def test_demonstrations_of_another_variant(tmp_path):
    record_demos(tmp_path / "s2", env_id="rtfm:groups_simple", episodes=8)
    with pytest.raises(DataError) as error:
        data(tmp_path / "s2")
    message = str(error.value)
    for text in (str(tmp_path / "s2"), "'rtfm:groups_simple'", f"'{ENV}'", COLLECT_COMMAND):
        assert text in message


def test_demonstrations_with_another_vocabulary(tmp_path):
    record_demos(tmp_path / "v", episodes=8, metadata={"vocab_fingerprint": "0123456789ab"})
    expected = make_vector_env(ENV, num_envs=1).vocab.fingerprint()
    with pytest.raises(DataError, match=f"'0123456789ab', expected '{expected}'.*\n.*{COLLECT_COMMAND}"):
        data(tmp_path / "v")


def test_missing_store(tmp_path):
    with pytest.raises(MissingArtifactError) as error:
        data(tmp_path / "none")
    assert error.value.produce_with == COLLECT_COMMAND and str(tmp_path / "none") in str(error.value)


def test_store_without_a_needed_field(tmp_path):
    record_demos(tmp_path / "f", episodes=8, edit=lambda fields: fields.pop("obs/rel_pos"))
    with pytest.raises(DataError, match="'obs/rel_pos' is missing, expected float32"):
        data(tmp_path / "f")


def test_word_ids_outside_the_vocabulary(tmp_path):
    vocab_size = len(make_vector_env(ENV, num_envs=1).vocab)

    def corrupt(fields):
        fields["obs/name"][1, 2, 3, 0, 0] = vocab_size + 3

    record_demos(tmp_path / "oov", episodes=8, edit=corrupt)
    dm = DynamicsDataModule(path=str(tmp_path / "oov"), env=ENV)  # the metadata is fine ...
    with pytest.raises(DataError, match=rf"'obs/name' holds word ids in \[0, {vocab_size + 3}\].*episode 0 of shard"):
        dm.setup("fit")  # ... the contents are not


def test_actions_outside_the_action_space(tmp_path):
    record_demos(tmp_path / "a", episodes=8, edit=lambda fields: fields["action"].__setitem__(0, 7))
    with pytest.raises(DataError, match=r"'action' holds actions in \[\d, 7\]"):
        data(tmp_path / "a")


# ---- the encoder for the LDD stage --------------------------------------------------------------------


def test_load_dynamics_encoder_round_trip(demos, tmp_path):
    dm = data(demos, batch_size=8)
    module = small_module(dm)
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    path = tmp_path / "dynamics.ckpt"
    trainer.save_checkpoint(path)

    config, state = load_dynamics_encoder(str(path), vocab=dm.vocab)
    assert (config.vocab_size, config.d_rep, config.channels) == (len(dm.vocab), 32, (8, 8, 8, 8, 8))
    encoder = Txt2PiEncoder(config)
    encoder.load_state_dict(state)  # strict: exactly the encoder's keys
    Txt2PiPolicy(config).encoder.load_state_dict(state)  # what the LDD stage does
    obs = next(iter(dm.val_dataloader()))["obs"]
    with torch.no_grad():
        assert torch.equal(encoder(obs).rep, module.model.encoder(obs).rep)

    with pytest.raises(DataError, match="another vocabulary"):
        load_dynamics_encoder(str(path), vocab=dm.vocab[:-1] + ["zzz"])


def test_load_dynamics_encoder_errors(tmp_path):
    with pytest.raises(MissingArtifactError) as error:
        load_dynamics_encoder(str(tmp_path / "none.ckpt"))
    assert error.value.produce_with == FIT_COMMAND
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"policy.encoder.fc.weight": torch.zeros(1)}, "hyper_parameters": {}}, other)
    with pytest.raises(DataError, match="not a dynamics model checkpoint"):
        load_dynamics_encoder(str(other))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_dynamics_encoder(str(garbage))


# ---- the config through the command line --------------------------------------------------------------


def test_config_runs_through_the_cli(demos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run_cli(["fit", "--config", CONFIG, "--trainer.fast_dev_run=true", f"--data.init_args.path={demos}"])
    assert cli.model.model.encoder.config.vocab_size == len(cli.datamodule.vocab)
    assert cli.model.model.encoder.config.d_rep == 128
    assert cli.model.hparams.vocab == cli.datamodule.vocab


def test_cli_names_the_command_that_records_demonstrations(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", CONFIG, "--trainer.fast_dev_run=true"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "runs/ldd_rtfm/demos" in err and COLLECT_COMMAND in err and "Traceback" not in err
