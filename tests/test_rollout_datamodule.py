import contextlib

import lightning as L
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

import lit_rlseq.rollouts.datamodule as datamodule_module
from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutDataModule, RolloutStore, split_episodes
from lit_rlseq.rollouts.datamodule import ArrayBatchSampler, SeededShuffle


TEXT = ("words", "valid")


def make_episode(e: int, length: int, partition: str = "teacher") -> Episode:
    t = np.arange(length)
    return Episode(
        {
            "obs": (1000 * e + 10 * np.arange(length + 1)[:, None] + np.arange(2)).astype(np.float32),
            "action": 1000 * e + t,
            "done": t == length - 1,
            "words": [f"e{e}t{i}" for i in t],
            "valid": [[f"e{e}t{i}v{k}" for k in range(i % 3)] for i in t],  # 0, 1 or 2 strings per step
        },
        EpisodeTags(run_id="r", epoch=e, partition=partition),
    )


def make_store(path, lengths, partitions=None) -> list[Episode]:
    episodes = [make_episode(e, n, (partitions or ["teacher"] * len(lengths))[e]) for e, n in enumerate(lengths)]
    with RolloutStore(path).writer({"env": "toy"}) as writer:
        for episode in episodes:
            writer.append(episode)
    return episodes


def all_windows(dataset) -> dict:
    return dataset.__getitems__(list(range(len(dataset))))


def reference_windows(episodes: list[Episode], window: int, stride: int) -> list[dict]:
    """Windows built one at a time with plain slicing and explicit zero padding."""
    result = []
    for e, episode in enumerate(episodes):
        for start in range(0, episode.length, stride):
            item = {"episode": e, "start": start}
            for name, value in episode.fields.items():
                rows = window + (episode.kind(name) == "state")
                real = value[start : start + rows]
                if isinstance(value, list):
                    padding = [] if isinstance(value[0], list) else ""
                    item[name] = real + [padding] * (rows - len(real))
                else:
                    item[name] = np.concatenate([real, np.zeros((rows - len(real), *value.shape[1:]), value.dtype)])
            item["mask"] = np.arange(window) < episode.length - start
            item["state_mask"] = np.arange(window + 1) < episode.length + 1 - start
            result.append(item)
    return result


def test_windows_padding_and_masks_by_hand(tmp_path):
    make_store(tmp_path / "s", [3, 5])
    dm = RolloutDataModule(str(tmp_path / "s"), window=4, batch_size=2, stride=2, val_fraction=0)
    dm.setup("fit")
    batch = all_windows(dm.train_dataset)
    np.testing.assert_array_equal(batch["episode"], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(batch["start"], [0, 2, 0, 2, 4])
    np.testing.assert_array_equal(
        batch["action"],
        [[0, 1, 2, 0], [2, 0, 0, 0], [1000, 1001, 1002, 1003], [1002, 1003, 1004, 0], [1004, 0, 0, 0]],
    )
    np.testing.assert_array_equal(batch["mask"], [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(
        batch["state_mask"], [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]
    )
    np.testing.assert_array_equal(batch["obs"][1, :, 0], [20, 30, 0, 0, 0])  # states 2, 3 of episode 0
    np.testing.assert_array_equal(batch["obs"][3, :, 1], [1021, 1031, 1041, 1051, 0])
    assert batch["words"][1] == ["e0t2", "", "", ""]
    assert batch["valid"][1] == [["e0t2v0", "e0t2v1"], [], [], []]
    assert batch["valid"][3] == [["e1t2v0", "e1t2v1"], [], ["e1t4v0"], []]
    np.testing.assert_array_equal(batch["done"][0], [False, False, True, False])


@pytest.mark.parametrize("window,stride", [(1, 1), (3, 1), (4, 3), (10, 2), (20, 1)])
def test_windows_match_reference(tmp_path, window, stride):
    episodes = make_store(tmp_path / "s", [1, 7, 4, 9])
    dm = RolloutDataModule(str(tmp_path / "s"), window=window, batch_size=3, stride=stride, val_fraction=0)
    dm.setup("fit")
    expected = reference_windows(episodes, window, stride)
    batch = all_windows(dm.train_dataset)
    assert len(dm.train_dataset) == len(expected)
    for key in expected[0]:
        got = batch[key]
        want = [item[key] for item in expected]
        if key in TEXT:
            assert got == want, key
        else:
            np.testing.assert_array_equal(got, np.asarray(want), err_msg=key)
    single = dm.train_dataset[len(expected) - 1]  # __getitem__ agrees with __getitems__
    np.testing.assert_array_equal(single["obs"], expected[-1]["obs"])


def assert_batch_matches(batch: dict, expected: list[dict]) -> None:
    for key in expected[0]:
        want = [item[key] for item in expected]
        if key in TEXT:
            assert batch[key] == want
        else:
            assert batch[key].is_contiguous(), key
            np.testing.assert_array_equal(batch[key], np.asarray(want), err_msg=key)


def test_shuffled_batches_of_full_padded_and_mixed_windows_match_reference(tmp_path):
    episodes = make_store(tmp_path / "s", [1, 7, 4, 9])
    dm = RolloutDataModule(str(tmp_path / "s"), window=4, batch_size=3, val_fraction=0)
    dm.setup("fit")
    expected = reference_windows(episodes, window=4, stride=1)
    full = [i for i, item in enumerate(expected) if item["mask"].all()]
    padded = [i for i, item in enumerate(expected) if not item["mask"].all()]
    assert len(full) == 11 and len(padded) == 10  # the last 3 windows of each episode (all of a 1-step one)
    rng = np.random.default_rng(0)
    for indices in (rng.permutation(full), rng.permutation(padded), rng.permutation(len(expected))[:8], [padded[3]]):
        for as_given in (np.asarray(indices), list(map(int, indices))):  # the DataLoader's arrays, or plain lists
            batch = dm.train_dataset.__getitems__(as_given)
            assert_batch_matches(batch, [expected[i] for i in indices])


def test_batches_made_in_a_worker_share_one_segment_per_field(tmp_path, monkeypatch):
    """In a DataLoader worker the batch is gathered straight into shared memory: one segment for the
    bookkeeping tensors, one per numeric field; the values are those of the main-process path."""
    episodes = make_store(tmp_path / "s", [3, 6, 2])
    dm = RolloutDataModule(str(tmp_path / "s"), window=4, batch_size=3, val_fraction=0)
    dm.setup("fit")
    indices = [7, 0, 2, 9, 4]
    main_process = dm.train_dataset.__getitems__(indices)
    monkeypatch.setattr(datamodule_module, "get_worker_info", lambda: object())  # as torch's worker loop sets it
    in_worker = dm.train_dataset.__getitems__(indices)
    assert_batch_matches(in_worker, [reference_windows(episodes, window=4, stride=1)[i] for i in indices])
    tensors = {key: value for key, value in in_worker.items() if isinstance(value, torch.Tensor)}
    assert set(tensors) == {"episode", "start", "mask", "state_mask", "obs", "action", "done"}
    assert all(tensor.is_shared() for tensor in tensors.values())
    assert not any(tensor.is_shared() for tensor in main_process.values() if isinstance(tensor, torch.Tensor))
    segment = {key: tensor.untyped_storage().data_ptr() for key, tensor in tensors.items()}
    assert segment["episode"] == segment["start"] == segment["mask"] == segment["state_mask"]
    assert len({segment["episode"], segment["obs"], segment["action"], segment["done"]}) == 4


@pytest.mark.parametrize("drop_last", [False, True])
def test_array_batch_sampler_batches_like_torchs_batch_sampler(drop_last):
    samplers = [
        lambda: SequentialSampler(range(10)),
        lambda: SeededShuffle(10, seed=3),  # vectorised order; iterating a twin gives the same first epoch
        lambda: [4, 8, 1, 9, 0, 2, 7, 3, 5, 6],  # any other sampler: read by iteration
    ]
    for make in samplers:
        ours = ArrayBatchSampler(make(), batch_size=4, drop_last=drop_last)
        batches = list(ours)
        assert all(batch.dtype == np.int64 for batch in batches)
        assert [batch.tolist() for batch in batches] == list(BatchSampler(make(), batch_size=4, drop_last=drop_last))
        assert len(batches) == len(ours) == (2 if drop_last else 3)
    shuffle = ArrayBatchSampler(SeededShuffle(10, seed=3), batch_size=10, drop_last=False)
    first, second = next(iter(shuffle)), next(iter(shuffle))
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10)) and first.tolist() != second.tolist()


def test_split_by_episode_is_disjoint_and_deterministic(tmp_path):
    make_store(tmp_path / "s", [5 + e % 4 for e in range(20)])

    def split(seed):
        dm = RolloutDataModule(str(tmp_path / "s"), window=3, batch_size=4, val_fraction=0.25, seed=seed)
        dm.setup("fit")
        return set(dm.train_dataset.window_episode.tolist()), set(dm.val_dataset.window_episode.tolist())

    train, val = split(seed=0)
    assert len(val) == 5 and len(train) == 15 and not train & val and train | val == set(range(20))
    assert split(seed=0) == (train, val)
    assert split(seed=1)[1] != val
    train_ids, val_ids = split_episodes(3, 0.1, seed=0)  # at least one episode on each side
    assert len(val_ids) == 1 and len(train_ids) == 2


def test_field_selection_and_text_fields(tmp_path):
    make_store(tmp_path / "s", [2, 3])
    dm = RolloutDataModule(str(tmp_path / "s"), window=3, batch_size=8, fields=["words", "action"], val_fraction=0)
    assert list(dm.field_specs) == ["words", "action"] and dm.store_metadata == {"env": "toy"}
    dm.setup("fit")
    dl = torch.utils.data.DataLoader(dm.train_dataset, batch_size=8, collate_fn=dm.train_dataloader().collate_fn)
    (batch,) = list(dl)
    assert set(batch) == {"words", "action", "mask", "episode", "start"}  # no per-state field, no state_mask
    assert batch["words"] == [
        ["e0t0", "e0t1", ""], ["e0t1", "", ""], ["e1t0", "e1t1", "e1t2"], ["e1t1", "e1t2", ""], ["e1t2", "", ""]
    ]
    assert batch["action"].dtype == torch.int64 and batch["mask"].dtype == torch.bool
    with pytest.raises(UserError, match=r"field\(s\) \['reward'\] not in store"):
        RolloutDataModule(str(tmp_path / "s"), window=3, batch_size=8, fields=["reward"]).setup("fit")
    with pytest.raises(UserError, match="clash with batch keys"):
        RolloutDataModule(str(tmp_path / "s"), window=3, batch_size=8, fields=["mask"])


def test_selection_by_tags_and_empty_selection(tmp_path):
    make_store(tmp_path / "s", [2, 3, 4, 5], partitions=["teacher", "student_train", "teacher", "student_test"])
    dm = RolloutDataModule(
        str(tmp_path / "s"), window=2, batch_size=8, val_fraction=0, select={"partition": ["teacher", "student_test"]}
    )
    dm.setup("fit")
    assert [ref.tags.epoch for ref in dm.episodes.refs] == [0, 2, 3]
    assert len(dm.train_dataset) == 2 + 4 + 5
    empty = RolloutDataModule(str(tmp_path / "s"), window=2, batch_size=8, select={"partition": "student"})
    with pytest.raises(DataError, match=r"(?s)no episode .* matches the tag filters \{'partition': 'student'\}.*"
                                        r"partition: 'teacher' \(2\), 'student_train' \(1\), 'student_test' \(1\)"):
        empty.setup("fit")


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="window must be >= 1, got 0"):
        RolloutDataModule("s", window=0, batch_size=2)
    with pytest.raises(UserError, match="stride must be >= 1, got 0"):
        RolloutDataModule("s", window=2, batch_size=2, stride=0)
    with pytest.raises(UserError, match="val_fraction must be in"):
        RolloutDataModule("s", window=2, batch_size=2, val_fraction=1.0)
    with pytest.raises(MissingArtifactError, match="rollout store not found"):
        RolloutDataModule(str(tmp_path / "missing"), window=2, batch_size=2).setup("fit")
    make_store(tmp_path / "one", [4])
    with pytest.raises(UserError, match="too few to split by episode"):
        RolloutDataModule(str(tmp_path / "one"), window=2, batch_size=2).setup("fit")
    dm = RolloutDataModule(str(tmp_path / "one"), window=50, batch_size=2, val_fraction=0)  # longer than all: fine
    dm.setup("fit")
    assert len(dm.train_dataset) == 4 and dm.val_dataloader() == []


def epoch_batches(dm) -> list[dict]:
    return list(dm.train_dataloader())


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                torch.testing.assert_close(x[key], y[key], rtol=0, atol=0)
            else:
                assert x[key] == y[key]


class ReturnsDataModule(RolloutDataModule):
    """Uses the extension point: adds each window's masked action sum (computed in the workers)."""

    def transform_batch(self, batch):
        batch["action_sum"] = (batch["action"] * batch["mask"]).sum(dim=1)
        return batch


def test_shuffled_batches_are_deterministic_and_the_same_with_workers(tmp_path):
    make_store(tmp_path / "s", [5 + e % 7 for e in range(12)])
    kwargs = dict(path=str(tmp_path / "s"), window=4, batch_size=5, val_fraction=0.2, seed=3)
    dms = [ReturnsDataModule(**kwargs, num_workers=workers) for workers in (0, 0, 2)]
    for dm in dms:
        dm.setup("fit")
    serial = epoch_batches(dms[0])
    assert_same_batches(serial, epoch_batches(dms[1]))
    assert_same_batches(serial, epoch_batches(dms[2]))
    first = serial[0]
    torch.testing.assert_close(first["action_sum"], (first["action"] * first["mask"]).sum(1))
    starts = torch.cat([b["start"] for b in serial])
    assert sorted(starts.tolist()) == sorted(dms[0].train_dataset.window_start.tolist())  # each window once
    assert starts.tolist() != dms[0].train_dataset.window_start.tolist()  # shuffled
    other_seed = ReturnsDataModule(**{**kwargs, "seed": 4})
    other_seed.setup("fit")
    assert [b["start"].tolist() for b in epoch_batches(other_seed)] != [b["start"].tolist() for b in serial]
    val = list(dms[0].val_dataloader())
    assert torch.cat([b["episode"] for b in val]).tolist() == dms[0].val_dataset.window_episode.tolist()


@pytest.mark.parametrize("in_hook", [False, True])
def test_ddp_ranks_get_disjoint_windows_covering_the_set(tmp_path, in_hook):
    """What Lightning does to the train DataLoader under DDP: inject a DistributedSampler, rebuild the loader
    (from the arguments it recorded when the loader was made in the ``train_dataloader`` hook, or from its
    attributes), call ``set_epoch`` every epoch."""
    make_store(tmp_path / "s", [4, 6, 3, 5])  # 18 windows: even, so DistributedSampler adds no duplicates
    dm = RolloutDataModule(str(tmp_path / "s"), window=3, batch_size=4, val_fraction=0)
    dm.setup("fit")
    every = set(zip(dm.train_dataset.window_episode.tolist(), dm.train_dataset.window_start.tolist()))
    orders = []
    for rank in range(2):
        with contextlib.ExitStack() as stack:
            if in_hook:  # Lightning records the arguments of loaders and batch samplers made in the hook
                stack.enter_context(_replace_dunder_methods(DataLoader, "dataset"))
                stack.enter_context(_replace_dunder_methods(BatchSampler))
            loader = dm.train_dataloader()
        assert hasattr(loader.batch_sampler, "__pl_saved_args") == in_hook
        sampler = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0, num_replicas=2, rank=rank, seed=0)
        loader = _update_dataloader(loader, sampler)
        assert type(loader.batch_sampler) is ArrayBatchSampler and loader.batch_sampler.sampler is sampler
        assert loader.batch_sampler.batch_size == 4 and len(loader) == 3
        orders.append([])
        for epoch in range(2):
            _set_sampler_epoch(loader, epoch)
            orders[rank].append([(e, s) for b in loader for e, s in zip(b["episode"].tolist(), b["start"].tolist())])
    for epoch in range(2):
        rank0, rank1 = set(orders[0][epoch]), set(orders[1][epoch])
        assert len(orders[0][epoch]) == len(rank0) == len(rank1) == 9
        assert not rank0 & rank1 and rank0 | rank1 == every
    assert orders[0][0] != orders[0][1]  # a new shuffle every epoch


class TinySequenceModel(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(2, 1)
        self.seen_keys: set[str] = set()

    def training_step(self, batch, batch_idx):
        self.seen_keys |= set(batch)
        prediction = self.head(batch["obs"][:, :-1]).squeeze(-1)
        return ((prediction - batch["action"].float()) ** 2 * batch["mask"]).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.head(batch["obs"]).mean(), batch_size=len(batch["start"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-6)


def test_trainer_fits_on_windows(tmp_path):
    make_store(tmp_path / "s", [6, 7, 8, 9, 10])
    model = TinySequenceModel()
    dm = RolloutDataModule(str(tmp_path / "s"), window=4, batch_size=4, val_fraction=0.2)
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, dm)
    assert model.seen_keys == {"obs", "action", "done", "words", "valid", "mask", "state_mask", "episode", "start"}
    assert trainer.num_training_batches == -(-len(dm.train_dataset) // 4)
    assert "val_loss" in trainer.callback_metrics


class WindowRecorder(TinySequenceModel):
    def __init__(self):
        super().__init__()
        self.windows: dict[int, list[tuple[int, int]]] = {}

    def training_step(self, batch, batch_idx):
        windows = zip(batch["episode"].tolist(), batch["start"].tolist())
        self.windows.setdefault(self.current_epoch, []).extend(windows)
        return super().training_step(batch, batch_idx)


def test_overfit_batches_turns_shuffling_off(tmp_path):
    make_store(tmp_path / "s", [6, 7, 8, 9, 10])
    model = WindowRecorder()
    dm = RolloutDataModule(str(tmp_path / "s"), window=4, batch_size=4, val_fraction=0.2)
    trainer = L.Trainer(
        max_epochs=2, overfit_batches=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, dm)
    first_windows = list(zip(dm.train_dataset.window_episode.tolist(), dm.train_dataset.window_start.tolist()))[:8]
    assert model.windows == {0: first_windows, 1: first_windows}


def test_benchmark_runs_at_tiny_scale():
    import lit_rlseq.bench.rollouts  # noqa: F401  (registers the benchmark)
    from lit_rlseq.bench import REGISTRY

    results = REGISTRY["rollouts.windows"](0.01)
    assert [r.name for r in results] == [
        "rollouts.windows[vector,workers=0]",
        "rollouts.windows[vector,workers=2]",
        "rollouts.windows[frames,workers=0]",
        "rollouts.windows[frames,workers=2]",
    ]
    assert [r.figures["windows"] for r in results] == [2000, 2000, 200, 200]  # 2 x 1000 and 1 x 200 steps
    assert all(r.ratio > 0 and r.goal == 0.5 for r in results)
    assert ["handover_only_windows_per_s" in r.figures for r in results] == [False, True, False, True]
