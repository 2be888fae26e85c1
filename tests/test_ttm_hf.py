"""A Hugging Face causal LM from a local directory as the TTM LM: a tiny random GPT-2 saved in the test itself
(no network), its tokenizer on the data, the loss on the completion only, training, sampling, the student
through the CLI from a checkpoint that no longer needs the directory, and bad directories."""

import shutil

import pytest
import torch

pytest.importorskip("transformers")

from lit_rlseq.cli import run_cli  # noqa: E402
from lit_rlseq.errors import DataError, MissingArtifactError, UserError  # noqa: E402
from lit_rlseq.nn.hf_lm import HFCausalLM, hf_tokenizer_json  # noqa: E402
from lit_rlseq.rollouts import RolloutStore  # noqa: E402
from lit_rlseq.ttm.lm import IGNORE, FinetuneDataModule, HFFinetuneDataModule, TextLM, collate  # noqa: E402
from lit_rlseq.ttm.trajectory import TextTrajectory  # noqa: E402
from tests.conftest import ROOT, save_tiny_hf_model  # noqa: E402
from tests.test_ttm_lm import CORPUS, assert_learns_the_completions, write_jsonl  # noqa: E402


@pytest.fixture
def data(tmp_path, tiny_hf_model):
    return FinetuneDataModule(str(write_jsonl(tmp_path / "d.jsonl", CORPUS)), hf_model=str(tiny_hf_model),
                              block_size=64, val_fraction=0.0)


def hf_lm(data, **kw):
    return TextLM(tokenizer=data.tokenizer, hf_model=data.hf_model, block_size=64, max_new_tokens=20, **kw)


def test_data_uses_the_directory_tokenizer_and_the_loss_is_on_the_completion_only(data, tiny_hf_model):
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(tiny_hf_model), local_files_only=True)
    ids, start = data.train_rows[0]
    example = next(e for e in CORPUS if hf_tok(e["prompt"])["input_ids"] == ids[:start])
    assert ids[start:] == hf_tok(example["completion"], add_special_tokens=False)["input_ids"]

    model = hf_lm(data).eval()
    rows = data.train_rows[:2]
    batch = collate(rows)
    # transformers' own loss with the prompt and the padding labelled -100 (it shifts the labels itself)
    x = torch.zeros(2, batch["x"].shape[1] + 1, dtype=torch.long)
    labels = torch.full_like(x, IGNORE)
    for row, (row_ids, row_start) in enumerate(rows):
        x[row, : len(row_ids)] = torch.tensor(row_ids)
        labels[row, row_start: len(row_ids)] = torch.tensor(row_ids[row_start:])
    with torch.no_grad():
        expected = model.gpt.model(input_ids=x, labels=labels).loss
        ours = model._loss(batch)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)


def test_fine_tuning_learns_the_completions_and_samples_them(data):
    torch.manual_seed(0)
    assert_learns_the_completions(hf_lm(data, lr=3e-3), data)


def test_student_filters_and_likelihoods_match_a_full_forward_pass(data):
    model = hf_lm(data, format="bc").eval()
    prefix, actions = "goal: eat\nstate: [x]\n action: [", ["take banana", "look"]
    scores = model.action_likelihoods(prefix, actions)
    for action, score in zip(actions, scores):
        p, c = model.tok.encode(prefix).ids, model.tok.encode(f" {action} ]\n", add_special_tokens=False).ids
        logits, _ = model.gpt(torch.tensor([p + c]))
        logp = torch.log_softmax(logits[0], -1)
        assert score == pytest.approx(sum(logp[len(p) - 1 + j, c[j]].item() for j in range(len(c))), abs=1e-4)
    trajectory = TextTrajectory.start("you see a banana", {"goal": "eat", "score": 0})
    valid = ["take banana", "look", "eat banana"]
    for filter in ("closest", "likelihood"):
        model.hparams.filter = filter
        assert model.act(trajectory, {"valid_actions": valid}).action in valid
    model.hparams.filter = "none"
    assert model.act(trajectory, {"valid_actions": valid}).generated.count("\n") <= 1


def test_generation_stops_at_any_token_holding_a_newline(data):
    model = hf_lm(data)
    newline = model.tok.encode("\n", add_special_tokens=False).ids[0]
    assert newline in model.stop_ids
    assert all("\n" in model.tok.decode([i]) for i in model.stop_ids)
    merged = model.tok.encode("]\n\n", add_special_tokens=False).ids
    assert set(merged[1:]) <= set(model.stop_ids)


@pytest.mark.slow
def test_cli_fine_tunes_and_the_student_plays_from_the_checkpoint_alone(tmp_path, ttm_jsonl, cooking_cache):
    directory = save_tiny_hf_model(tmp_path / "gpt2_copy")
    run_cli(["fit", "--config", str(ROOT / "configs" / "ttm_cooking_finetune_hf.yaml"),
             f"--data.init_args.path={ttm_jsonl}", f"--data.init_args.hf_model={directory}",
             "--model.init_args.block_size=256", "--data.init_args.block_size=256",
             f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.max_steps=2",
             "--trainer.enable_progress_bar=false"])
    checkpoint = tmp_path / "ttm_cooking" / "lm_hf" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["hf_config"]["model_type"] == "gpt2" and saved["hyper_parameters"]["hf_model"] == str(directory)
    assert saved["hyper_parameters"]["completion_tokens"] > 0  # recorded from the data for the student's prompts
    trained = saved["state_dict"]["gpt.model.transformer.h.0.mlp.c_fc.weight"]
    fresh = HFCausalLM.from_directory(directory).model.transformer.h[0].mlp.c_fc.weight
    assert not torch.equal(trained, fresh)  # two optimiser steps changed the weights
    shutil.rmtree(directory)  # the student needs only the checkpoint
    store = tmp_path / "store"
    run_cli(["play", "--config", str(ROOT / "configs" / "ttm_cooking_student_train.yaml"),
             f"--data.init_args.store={store}", "--data.init_args.max_rollouts=1", "--data.init_args.games=1",
             f"--data.init_args.game_cache={cooking_cache}", "--data.init_args.max_actions=2",
             f"--model.init_args.init_from={checkpoint}", "--model.init_args.max_new_tokens=30",
             "--model.init_args.filter=closest", "--trainer.enable_progress_bar=false"])
    (ref,) = RolloutStore(store).episodes(partition="student_train", agent="lm_student")
    assert ref.length == 2 and ref.tags.metadata["engine"].startswith("hf gpt2 (from checkpoint) ctx256")
    actions = RolloutStore(store).load(ref).fields["action"]
    assert all(str(a) for a in actions)  # the closest filter maps every action to a valid one


def test_bad_directories_and_settings(tmp_path, tiny_hf_model, data, capsys):
    with pytest.raises(MissingArtifactError, match=r"(?s)nowhere/gpt2.*save_pretrained.*nothing is downloaded"):
        hf_tokenizer_json(tmp_path / "nowhere" / "gpt2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty is not a Hugging Face model directory: expected a folder with config"):
        HFCausalLM.from_directory(tmp_path / "empty")
    jsonl = str(write_jsonl(tmp_path / "d.jsonl", CORPUS))
    with pytest.raises(UserError, match="data.hf_model is required"):
        HFFinetuneDataModule(jsonl, hf_model=None)
    with pytest.raises(UserError, match="not both"):
        FinetuneDataModule(jsonl, tokenizer=str(tmp_path / "t.json"), hf_model=str(tiny_hf_model))
    with pytest.raises(UserError, match=r"block_size=512 exceeds the 256 positions"):
        TextLM(hf_model=str(tiny_hf_model), block_size=512)
    other = FinetuneDataModule(jsonl, vocab_size=300, block_size=64)
    with pytest.raises(DataError, match="tokenizer is not the one in"):
        TextLM(tokenizer=other.tokenizer, hf_model=str(tiny_hf_model), block_size=64)
    with pytest.raises(SystemExit):  # the config's directory is a required argument
        run_cli(["fit", "--config", str(ROOT / "configs" / "ttm_cooking_finetune_hf.yaml"),
                 f"--data.init_args.path={jsonl}", "--trainer.fast_dev_run=true"])
    err = capsys.readouterr().err
    assert "HFFinetuneDataModule" in err and "required: hf_model" in err
