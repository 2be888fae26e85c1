import lightning as L
import numpy as np
import pytest
import torch

from lit_rlseq.errors import UserError
from lit_rlseq.loops.impala import ImpalaModule, linear_decay, reduce_loss
from lit_rlseq.loops.online import OnlineDataModule, WeightPublisher, stream_seed
from tests.policies import TinyTextGridPolicy


class TinyImpala(ImpalaModule):
    def __init__(self, vocab=None, num_actions=None, **impala):
        super().__init__(**impala)
        self.policy = TinyTextGridPolicy(len(vocab), num_actions)


class RecordBatches(L.Callback):
    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append((trainer.current_epoch, batch))


def fit(dm, epochs=2, callbacks=(), **module_kwargs):
    module = TinyImpala(dm.vocab, dm.num_actions, **module_kwargs)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1, callbacks=list(callbacks),
                        num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return module, trainer


@pytest.mark.parametrize("num_workers", [0, 1])
def test_every_epoch_has_exactly_steps_per_epoch_batches_and_episodes_continue(num_workers):
    dm = OnlineDataModule("toy", num_envs=2, batch_size=4, unroll_length=5, steps_per_epoch=3,
                          num_workers=num_workers, eval_envs={}, seed=1)
    record = RecordBatches()
    module, _ = fit(dm, epochs=2, callbacks=[record])
    epochs = [e for e, _ in record.batches]
    assert epochs == [0, 0, 0, 1, 1, 1]
    for _, unroll in record.batches:
        assert unroll.batch_size == 4 and unroll.num_steps == 5  # two unrolls of 2 envs joined
    assert int(module.frames) == 6 * 4 * 5
    # Environments persist across epochs: the second epoch does not start from fresh episodes everywhere.
    assert not record.batches[3][1].first[0].all()


def test_async_actors_use_the_published_weights():
    policy = TinyTextGridPolicy(21)
    publisher = WeightPublisher(policy)
    local = TinyTextGridPolicy(21)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    version = publisher.refresh(local, -1)
    assert not torch.equal(local.pi.weight, policy.pi.weight)  # nothing published yet: still the old copy
    publisher.publish(policy)
    version = publisher.refresh(local, version)
    assert version == 1 and torch.equal(local.pi.weight, policy.pi.weight)


def test_async_actors_refresh_their_weights_with_bounded_lag():
    dm = OnlineDataModule("toy", num_envs=4, unroll_length=5, steps_per_epoch=12, num_workers=1,
                          eval_envs={}, seed=0)
    record = RecordBatches()
    fit(dm, epochs=1, callbacks=[record])
    versions = [unroll.policy_version for _, unroll in record.batches]
    assert versions[0] == 0  # the first unroll acted with the initial weights
    assert versions == sorted(versions) and versions[-1] > 0  # refreshed, never going back
    # Lag = learner updates made before this batch that its actor had not seen. In flight are at most the
    # batch being learned plus prefetch_factor (2) per worker.
    lags = [step - version for step, version in enumerate(versions)]
    assert max(lags) <= 3


def test_ranks_and_workers_get_different_seeds():
    seeds = {stream_seed(0, rank, worker) for rank in range(4) for worker in range(3)}
    assert len(seeds) == 12
    assert stream_seed(0, 0, 0, restart=1) != stream_seed(0, 0, 0)


def test_batch_size_must_be_a_multiple_of_num_envs():
    with pytest.raises(UserError, match="multiple of data.num_envs"):
        OnlineDataModule("toy", num_envs=3, batch_size=4)


def test_evaluation_logs_the_mean_over_all_episodes():
    dm = OnlineDataModule("toy", num_envs=2, unroll_length=3, steps_per_epoch=1, eval_envs={"test": "toy"},
                          eval_episodes=7, eval_num_envs=3, seed=0)
    module = TinyImpala(dm.vocab, dm.num_actions)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    results = trainer.validate(module, datamodule=dm, verbose=False)[0]
    # Re-run the same evaluation by hand: same seeds, same greedy policy -> same episodes.
    request = dm.val_dataloader().dataset[0]
    stats = request.run(module.policy)
    assert len(stats) == 7
    assert results["eval/test/return"] == pytest.approx(stats.episode_return.mean().item(), abs=1e-5)
    assert results["eval/test/success"] == pytest.approx(stats.success.mean().item(), abs=1e-5)


def test_linear_decay_and_reductions():
    assert linear_decay(0, 100) == 1.0 and linear_decay(25, 100) == 0.75 and linear_decay(150, 100) == 0.0
    term = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # [T=3, B=2]
    assert reduce_loss(term, "time_sum_batch_mean").item() == pytest.approx((9 + 12) / 2)
    assert reduce_loss(term, "sum").item() == pytest.approx(21)


def test_learning_rate_decays_with_frames():
    dm = OnlineDataModule("toy", num_envs=2, unroll_length=5, steps_per_epoch=4, eval_envs={}, seed=0)
    module, trainer = fit(dm, epochs=1, lr=0.01, lr_decay_frames=80)
    # 4 steps x 10 frames = 40 frames of an 80-frame decay: the factor is 1 - 40/80.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5)


def test_checkpoint_state_restores_the_collectors_rng_and_starts_new_episode_seeds():
    dm = OnlineDataModule("toy", num_envs=2, unroll_length=5, steps_per_epoch=3, eval_envs={}, seed=4)
    fit(dm, epochs=1)
    state = dm.state_dict()
    saved_rng = state["collector"]["generator"]
    assert state["restarts"] == 0

    resumed = OnlineDataModule("toy", num_envs=2, unroll_length=5, steps_per_epoch=3, eval_envs={}, seed=4)
    resumed.load_state_dict(state)
    module = TinyImpala(resumed.vocab, resumed.num_actions)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu")
    resumed.trainer = trainer
    trainer.strategy.connect(module)  # the loader asks the trainer for its rank and the module for its policy
    resumed.train_dataloader()
    collector = resumed._stream.collector
    assert torch.equal(collector.generator.get_state(), saved_rng)  # action sampling continues its stream
    assert resumed.restarts == 1  # and the envs restart from seeds no earlier run used
    fresh = dm.make_collector(rank=0, worker=0)
    assert not all(np.array_equal(fresh._obs[k], collector._obs[k]) for k in fresh._obs)


def test_constant_learning_rate():
    dm = OnlineDataModule("toy", num_envs=2, unroll_length=5, steps_per_epoch=4, eval_envs={}, seed=0)
    _, trainer = fit(dm, epochs=1, lr=0.01, lr_schedule="constant")
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)
