"""Trajectory Transformer: discretiser, value-to-go, windows, the trajectory GPT's masks and the training module."""

import numpy as np
import pytest
import torch

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.trajectory.data import TrajectoryDataModule, joined_transitions, value_to_go
from lit_rlseq.trajectory.discretize import (
    decode,
    encode,
    expectation,
    fit_thresholds,
    quantile_thresholds,
    uniform_thresholds,
)
from lit_rlseq.trajectory.model import TrajectoryGPT, TrajectoryGPTConfig, value_key_mask
from lit_rlseq.trajectory.module import TrajectoryTransformer, lr_multiplier
from tests.trajectory_data import write_synthetic_store

# ---- discretiser


def test_quantile_thresholds_follow_the_reference_rule():
    data = np.arange(1000, dtype=float)[:, None] * np.array([[1.0, -2.0]])
    t = quantile_thresholds(data, 100)
    assert t.shape == (101, 2)
    assert np.array_equal(t[:100, 0], np.arange(0, 1000, 10))  # every ceil(1000/100) = 10th sorted value
    assert t[100, 0] == 999 and t[100, 1] == 0  # then the maximum
    assert np.all(np.diff(t, axis=0) >= 0)
    # n not a multiple of ceil(n / N): the missing top bins have zero width at the max (always N bins)
    t = quantile_thresholds(np.arange(1050, dtype=float)[:, None], 100)
    assert t.shape == (101, 1) and t[95, 0] == 1045 and np.all(t[96:, 0] == 1049)


def test_encode_decode_round_trip_error_is_within_half_a_bin():
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(size=(5000, 1)), rng.exponential(size=(5000, 1))], axis=1)
    for kind in ("quantile", "uniform"):
        t = fit_thresholds(data, 50, kind)
        ids = encode(data, t)
        assert ids.min() >= 0 and ids.max() <= 49
        left, right = np.take_along_axis(t, ids, 0), np.take_along_axis(t, ids + 1, 0)
        inside = (data >= left) & (data <= right)
        assert inside.all()  # every value falls in its bin (the max in the last one)
        err = np.abs(decode(ids, t) - data)
        assert np.all(err <= (right - left) / 2 + 1e-12)
    # uniform bins have equal width, so the error bound is global
    t = uniform_thresholds(data, 50)
    width = (data.max(0) - data.min(0)) / 50
    assert np.all(np.abs(decode(encode(data, t), t) - data) <= width / 2 + 1e-12)
    # quantile bins hold about the same number of values each
    counts = np.bincount(encode(data, quantile_thresholds(data, 50))[:, 0], minlength=50)
    assert counts.min() >= 99 and counts.max() <= 101


def test_encode_is_monotone_and_clips_edge_values():
    t = uniform_thresholds(np.array([[0.0], [10.0]]), 10)
    x = np.linspace(-5, 15, 401)[:, None]
    ids = encode(x, t)[:, 0]
    assert np.all(np.diff(ids) >= 0)
    assert ids[0] == 0 and ids[-1] == 9  # below the min -> first bin, above the max -> last bin
    assert encode(np.array([[0.0], [10.0], [1.0], [0.999]]), t)[:, 0].tolist() == [0, 9, 1, 0]
    assert decode(np.array([[0], [9]]), t)[:, 0].tolist() == [0.5, 9.5]


def test_expectation_uses_bin_midpoints_and_drops_the_stop_token():
    t = torch.tensor([[0.0, 10.0], [2.0, 20.0], [4.0, 30.0]], dtype=torch.float64)  # N = 2 bins, K = 2 dims
    probs = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.6, 0.2]]], dtype=torch.float64)  # [1, K, N + 1 (stop)]
    e = expectation(probs, t)
    assert torch.allclose(e, torch.tensor([[0.5 * 1 + 0.5 * 3, 0.2 * 15 + 0.6 * 25]], dtype=torch.float64))


def test_bad_discretiser_input():
    with pytest.raises(DataError, match="row 1, dimension 0"):
        fit_thresholds(np.array([[0.0], [np.nan]]), 4)
    with pytest.raises(UserError, match="'log'"):
        fit_thresholds(np.zeros((3, 1)), 4, "log")
    with pytest.raises(DataError, match="2 dimensions"):
        encode(np.zeros((3, 3)), np.zeros((5, 2)))


# ---- value-to-go and transitions


def test_value_to_go_excludes_the_current_reward():
    r = np.array([1.0, 2.0, 3.0, 4.0])
    v = value_to_go(r, 0.5)
    assert np.allclose(v, [2 + 0.5 * 3 + 0.25 * 4, 3 + 0.5 * 4, 4, 0])


def test_termination_penalty_at_terminals_but_not_timeouts():
    obs = np.zeros((4, 2))  # L + 1 rows: the final observation is dropped
    act = np.ones((3, 1))
    r = np.array([1.0, 1.0, 1.0])
    terminal = joined_transitions(obs, act, r, np.array([0, 0, 1]), 0.9, -100.0)
    assert terminal.shape == (3, 2 + 1 + 2)
    assert terminal[:, 3].tolist() == [1.0, 1.0, -100.0]
    assert np.allclose(terminal[:, 4], [1 + 0.9 * -100, -100, 0])  # the penalty flows into the values
    timeout = joined_transitions(obs, act, r, np.array([0, 0, 0]), 0.9, -100.0)
    assert timeout[:, 3].tolist() == [1.0, 1.0, 1.0]
    assert np.allclose(timeout[:, 4], [1.9, 1.0, 0.0])  # truncated at the time-out, not bootstrapped


def test_windows_start_everywhere_but_the_last_step_and_pad_with_stop_tokens(tmp_path):
    store = write_synthetic_store(tmp_path / "s", episodes=3, lengths=[5, 12, 8])
    dm = TrajectoryDataModule(str(store), "synthetic", window=4, n_bins=10, val_fraction=0, batch_size=4)
    dm.setup("fit")
    d = dm.obs_dim + dm.action_dim + 2
    assert (dm.obs_dim, dm.action_dim) == (3, 2)
    assert len(dm.train_dataset) == 4 + 11 + 7
    # the window starting at the first episode's transition 2 covers transitions 2, 3, 4 and one stop row
    batch = dm.train_dataset.__getitems__([2])
    tokens = torch.cat([batch["x"][0], batch["y"][0, -1:]])
    assert tokens.shape == (4 * d,)
    joined = dm.data.joined[0]
    assert torch.equal(tokens[: 3 * d], torch.from_numpy(encode(joined[2:5], dm.thresholds).reshape(-1)))
    assert (tokens[3 * d :] == 10).all()  # the stop token
    assert torch.equal(batch["y"][0], tokens[1:])
    # every batch of the loader is [B, window * d - 1]
    first = next(iter(dm.train_dataloader()))
    assert first["x"].shape == (4, 4 * d - 1) and first["mask"].all()


def test_mask_drops_transitions_beyond_max_path_length(tmp_path):
    store = write_synthetic_store(tmp_path / "s", episodes=1, lengths=[6])
    dm = TrajectoryDataModule(str(store), "synthetic", window=4, n_bins=10, val_fraction=0, max_path_length=6)
    dm.setup("fit")
    d = 7
    batch = dm.train_dataset.__getitems__([4])  # transitions 4, 5, then steps 6 and 7 beyond the cap
    assert batch["mask"][0, : 2 * d].all() and not batch["mask"][0, 2 * d :].any()


def test_split_is_by_episode(tmp_path):
    store = write_synthetic_store(tmp_path / "s", episodes=10)
    dm = TrajectoryDataModule(str(store), "synthetic", window=3, n_bins=10, val_fraction=0.2)
    dm.setup("fit")
    train, val = set(dm.train_ids.tolist()), set(dm.val_ids.tolist())
    assert len(val) == 2 and not train & val and train | val == set(range(10))
    lengths = [len(j) for j in dm.data.joined]
    assert len(dm.train_dataset) == sum(lengths[i] - 1 for i in train)
    assert len(dm.val_dataset) == sum(lengths[i] - 1 for i in val)


def test_bad_data_inputs(tmp_path):
    store = write_synthetic_store(tmp_path / "s", episodes=2, lengths=[1, 1])
    with pytest.raises(DataError, match="fewer than 2 transitions"):
        TrajectoryDataModule(str(store), "synthetic", val_fraction=0).setup("fit")
    store = write_synthetic_store(tmp_path / "long", episodes=1, lengths=[30])
    with pytest.raises(DataError, match="max_path_length"):
        TrajectoryDataModule(str(store), "synthetic", max_path_length=20, val_fraction=0).setup("fit")
    with pytest.raises(DataError, match="matches the tag filters"):
        TrajectoryDataModule(str(store), "synthetic", select={"run_id": "other"}).setup("fit")


# ---- model


def test_value_tokens_are_hidden_from_every_query():
    torch.manual_seed(0)
    config = TrajectoryGPTConfig(observation_dim=2, action_dim=1, n_bins=7, window=3, n_layer=1, n_embd=16, n_head=2)
    model = TrajectoryGPT(config).double().eval()
    d = config.transition_dim  # 5; value tokens at positions 4, 9
    mask = value_key_mask(config.block_size, d)
    assert not mask[:, 4].any() and not mask[:, 9].any() and mask[:, [0, 3, 5, 8]].all()
    tokens = torch.randint(0, 7, (2, 14))
    changed = tokens.clone()
    changed[:, [4, 9]] = (tokens[:, [4, 9]] + 3) % 7
    a, _ = model(tokens)
    b, _ = model(changed)
    others = [p for p in range(14) if p not in (4, 9)]
    assert torch.allclose(a[:, others], b[:, others], atol=1e-12)
    changed = tokens.clone()
    changed[:, 3] = (tokens[:, 3] + 3) % 7  # a reward token is seen by later positions
    b, _ = model(changed)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_per_dimension_offsets_and_stop_token():
    config = TrajectoryGPTConfig(observation_dim=2, action_dim=1, n_bins=7, window=3)
    model = TrajectoryGPT(config)
    tokens = torch.tensor([[1, 1, 1, 1, 1, 7, 0]])
    ids = model.embedding_ids(tokens, start=0)
    assert ids.tolist() == [[1, 8, 15, 22, 29, 35, 7]]  # stop token 7 -> shared id 5 * 7 = 35
    assert model.embedding_ids(tokens[:, :2], start=4).tolist() == [[29, 1]]  # offsets follow the position


# ---- training module


def test_lr_schedule_warms_up_then_decays_to_ten_percent():
    assert lr_multiplier(0, 100, 2000) == 0
    assert lr_multiplier(50, 100, 2000) == 0.5
    assert lr_multiplier(100, 100, 2000) == 1.0
    assert abs(lr_multiplier(1050, 100, 2000) - 0.5) < 1e-9
    assert lr_multiplier(2000, 100, 2000) == 0.1 and lr_multiplier(5000, 100, 2000) == 0.1


@pytest.mark.slow
def test_training_lowers_the_loss_and_saves_the_discretiser(tmp_path):
    import lightning as L

    store = write_synthetic_store(tmp_path / "s", episodes=8)
    dm = TrajectoryDataModule(str(store), "synthetic", window=4, n_bins=10, batch_size=32, val_fraction=0.25)
    dm.setup("fit")
    model = TrajectoryTransformer(dm.obs_dim, dm.action_dim, dm.dataset_spec, n_layer=1, n_embd=32,
                                  n_head=2, dropout=0.0, lr=3e-3)
    trainer = L.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        gradient_clip_val=1.0, default_root_dir=tmp_path)
    first = trainer.validate(model, datamodule=dm, verbose=False)[0]["val/loss"]
    trainer.fit(model, datamodule=dm)
    logged = trainer.callback_metrics
    assert logged["train/loss_epoch"] < first * 0.8
    assert 0 <= logged["val/acc_act"] <= 1 and "val/acc_obs" in logged
    assert torch.equal(model.thresholds, torch.from_numpy(dm.thresholds))
    assert model.tokens_seen == 8 * len(dm.train_dataset) * (4 * 7 - 1)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = TrajectoryTransformer.load_from_checkpoint(tmp_path / "m.ckpt")
    assert torch.equal(loaded.thresholds, model.thresholds)
    assert loaded.dataset_spec["dataset"] == "synthetic"


def test_module_weighs_actions_five_times():
    model = TrajectoryTransformer(2, 1, {"n_bins": 5, "window": 2}, n_layer=1, n_embd=8, n_head=1)
    # transition [o o a r v]; the target of position p is dimension (p + 1) % 5
    assert model.target_weight[:9].tolist() == [1, 5, 1, 1, 1, 1, 5, 1, 1]
    with pytest.raises(UserError, match="TrajectoryDataModule"):
        TrajectoryTransformer()
