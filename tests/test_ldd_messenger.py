"""LDD on Messenger: the dynamics model learns from demonstrations; bad stores and checkpoints fail clearly."""

from pathlib import Path

import pytest
import torch

from lit_rlseq.cli import run_cli
from lit_rlseq.envs.messenger import MessengerVectorEnv
from lit_rlseq.errors import DataError, MissingArtifactError
from lit_rlseq.ldd.messenger import (
    MessengerDynamicsDataModule,
    MessengerDynamicsModule,
    canonical_layers,
    load_emma_dynamics,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(messenger_demos):
    dm = MessengerDynamicsDataModule(str(messenger_demos), env="messenger:s2", batch_size=8, val_fraction=0.2)
    dm.setup("fit")
    return dm


def small_model(dm, **kwargs):
    torch.manual_seed(0)
    return MessengerDynamicsModule(vocab=dm.vocab, num_actions=dm.num_actions, num_classes=17, d_word=32,
                                   d_model=32, conv_channels=16, hidden=32, lr=3e-3, **kwargs)


def test_batches_hold_whole_short_episodes(data):
    batch = next(iter(data.train_dataloader()))
    assert batch["obs"]["entities"].shape[:2] == (11, 8) and batch["action"].shape == (10, 8)
    assert batch["first"][0].all() and not batch["first"][1:].any()
    assert batch["mask"][0].all()  # every window has at least one real transition


def test_dynamics_model_fits_a_batch(data):
    model = small_model(data)
    batch = next(iter(data.train_dataloader()))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first_loss = None
    for _ in range(40):
        loss, _, _ = model.loss_and_logits(batch)
        first_loss = first_loss if first_loss is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.5 * first_loss


def test_targets_do_not_depend_on_the_random_layer_order(data):
    model = small_model(data)
    batch = next(iter(data.train_dataloader()))
    loss, _, target = model.loss_and_logits(batch)
    assert (target[..., :-1] >= target[..., 1:]).all()  # sorted, empty layers last
    shuffled = {**batch, "obs": dict(batch["obs"])}
    entities = batch["obs"]["entities"]
    shuffled["obs"]["entities"] = entities.flip(-1)  # another layer order of the same frames
    assert torch.equal(canonical_layers(entities), canonical_layers(entities.flip(-1)))
    assert torch.allclose(model.loss_and_logits(shuffled)[0], loss)


def test_untrained_model_predicts_that_nothing_moves(data):
    model = small_model(data)
    batch = next(iter(data.train_dataloader()))
    _, logits, _ = model.loss_and_logits(batch)
    current = canonical_layers(batch["obs"]["entities"][:-1])
    mask = batch["mask"]
    assert torch.equal(logits[mask].argmax(-1), current[mask])
    without = small_model(data, copy_init=0.0)
    _, logits, _ = without.loss_and_logits(batch)
    assert not torch.equal(logits[mask].argmax(-1), current[mask])


def test_store_of_another_stage_is_refused(messenger_demos):
    with pytest.raises(DataError, match=r"(?s)recorded on env 'messenger:s2', expected 'messenger:s1'.*lightning collect"):
        MessengerDynamicsDataModule(str(messenger_demos), env="messenger:s1")
    with pytest.raises(MissingArtifactError, match="ldd_messenger_collect.yaml"):
        MessengerDynamicsDataModule(str(messenger_demos) + "_missing", env="messenger:s2")


def test_checkpoint_loading_checks_kind_and_vocabulary(tmp_path, data):
    model = small_model(data)
    path = tmp_path / "dyn.ckpt"
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    config, state = load_emma_dynamics(str(path), vocab=data.vocab)
    assert config.d_model == 32 and "conv.weight" in state and "actor.0.weight" in state
    with pytest.raises(DataError, match="another vocabulary"):
        load_emma_dynamics(str(path), vocab=data.vocab[:-1])
    torch.save({"state_dict": {}, "lit_rlseq_kind": "ldd.DynamicsModule"}, tmp_path / "rtfm.ckpt")
    with pytest.raises(DataError, match="(?s)not a Messenger dynamics model checkpoint.*ldd_messenger_dynamics.yaml"):
        load_emma_dynamics(str(tmp_path / "rtfm.ckpt"))
    with pytest.raises(MissingArtifactError):
        load_emma_dynamics(str(tmp_path / "none.ckpt"))


def test_layer_count_mismatch_is_a_clear_error(messenger_demos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", str(ROOT / "configs" / "ldd_messenger_dynamics.yaml"),
            f"--data.init_args.path={messenger_demos}", "--model.init_args.num_layers=5",
            "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false"])
    assert "num_layers is 5 but the data has 3 entity layers" in capsys.readouterr().err


def test_expert_demonstrations_reach_the_message(data):
    # S2 at LDD's 10-step limit: most games need more steps to deliver, but the expert picks the message up
    # (+0.5; a timeout then makes the return -0.5, a win 1.5) in most of them; a random policy rarely does.
    returns = [ref.tags.metadata["return"] for ref in data.episodes.refs]
    assert sum(r >= -0.5 for r in returns) / len(returns) > 0.7
    assert MessengerVectorEnv("s2").vocab.words == data.vocab


def test_padded_windows_give_finite_gradients(data):
    batch = next(iter(data.train_dataloader()))
    # A window past its episode's end, as the store pads it: zeros (an empty manual) and mask False.
    batch["mask"][6:, 0] = False
    for value in batch["obs"].values():
        value[7:, 0] = 0
    model = small_model(data)
    loss, _, _ = model.loss_and_logits(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
