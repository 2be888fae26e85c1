"""The TTM LM: tokenizer, JSONL data (loss on the completion only), training, generation, the student."""

import json

import pytest
import torch

from lit_rlseq.errors import DataError, MissingArtifactError, UserError
from lit_rlseq.ttm.lm import (
    IGNORE,
    FinetuneDataModule,
    TextLM,
    closest_valid_action,
    collate,
    encode_example,
    load_tokenizer,
    newline_id,
    read_jsonl,
    train_tokenizer,
)
from lit_rlseq.ttm.trajectory import TextTrajectory

CORPUS = [
    {"prompt": f"goal: eat\nstate: [you see a {fruit} on the table]\n", "completion": f" action: [ take {fruit} ]\n"}
    for fruit in ("banana", "red apple", "carrot", "yellow potato", "orange bell pepper", "white onion")
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_lm(tokenizer_json, **kw):
    return TextLM(tokenizer=tokenizer_json, n_layer=1, n_head=2, n_embd=32, block_size=64, dropout=0.0,
                  max_new_tokens=20, **kw)


def test_tokenizer_round_trip_and_newline_token():
    tok = train_tokenizer([r["prompt"] + r["completion"] for r in CORPUS], vocab_size=300)
    text = "state: [you see a banana]\n action: [ take banana ]\n"
    assert tok.decode(tok.encode(text).ids) == text
    nl = newline_id(tok)
    assert tok.encode("a ]\n\n").ids[-2:] == [nl, nl]  # a newline never merges with its neighbours
    assert tok.token_to_id("<pad>") == 0


def test_loss_only_on_completion(tmp_path):
    data = FinetuneDataModule(str(write_jsonl(tmp_path / "d.jsonl", CORPUS)), vocab_size=300, block_size=64,
                              val_fraction=0.0)
    tok = load_tokenizer(data.tokenizer)
    ids, start = data.train_rows[0]
    batch = collate([data.train_rows[0], data.train_rows[1]])
    y = batch["y"][0]
    # targets are exactly the completion's tokens, everything else ignored
    assert tok.decode([t for t in y.tolist() if t != IGNORE]) == tok.decode(ids[start:])
    assert (y[: start - 1] == IGNORE).all()
    assert torch.equal(batch["x"][0, : len(ids) - 1], torch.tensor(ids[:-1]))


def test_long_prompts_are_cut_from_the_left_and_counted():
    tok = train_tokenizer([r["prompt"] + r["completion"] for r in CORPUS], vocab_size=300)
    prompt = "goal: eat\n" + "state: [you see a banana]\n" * 20
    ids, start, cut = encode_example(tok, prompt, " action: [ take banana ]\n", block_size=40)
    assert cut and len(ids) == 41 and tok.decode(ids[start:]) == " action: [ take banana ]\n"
    assert tok.decode(ids[:start]).endswith("banana]\n")
    with pytest.raises(DataError, match="completion of .* does not fit"):
        encode_example(tok, "p", " action: [ " + "take banana " * 30 + "]\n", block_size=40)


def test_training_loss_falls_on_a_tiny_corpus(tmp_path):
    torch.manual_seed(0)
    data = FinetuneDataModule(str(write_jsonl(tmp_path / "d.jsonl", CORPUS)), vocab_size=300, block_size=64,
                              val_fraction=0.0)
    assert_learns_the_completions(tiny_lm(data.tokenizer, lr=3e-3), data)


def assert_learns_the_completions(model, data, steps: int = 60):
    """Full-batch training on the corpus cuts the loss by 70 % and greedy generation reproduces a completion."""
    optimizer = model.configure_optimizers()
    batch = collate(data.train_rows)
    first = model._loss(batch).item()
    for _ in range(steps):
        optimizer.zero_grad()
        model._loss(batch).backward()
        optimizer.step()
    assert model._loss(batch).item() < 0.3 * first
    model.eval()
    model.hparams.temperature = 0.0
    assert model.complete(CORPUS[0]["prompt"]) == CORPUS[0]["completion"]


def test_student_parses_and_filters_actions(tmp_path):
    data = FinetuneDataModule(str(write_jsonl(tmp_path / "d.jsonl", CORPUS)), vocab_size=300, block_size=64)
    trajectory = TextTrajectory.start("you see a banana", {"goal": "eat", "score": 0})
    valid = ["take banana", "look", "eat banana"]
    for filter in ("closest", "likelihood"):
        model = tiny_lm(data.tokenizer, filter=filter, format="bc").eval()  # untrained: random text
        for _ in range(3):
            act = model.act(trajectory, {"valid_actions": valid})
            assert act.action in valid
    model = tiny_lm(data.tokenizer, format="bc").eval()
    act = model.act(trajectory, {"valid_actions": valid})
    assert act.generated.count("\n") <= 1 and len(act.action) <= 50  # unfiltered: whatever it wrote


def test_student_prompt_ends_where_the_training_prompts_ended(tmp_path):
    data = FinetuneDataModule(str(write_jsonl(tmp_path / "d.jsonl", CORPUS)), vocab_size=300, block_size=64)
    tok = load_tokenizer(data.tokenizer)
    assert data.completion_tokens == max(len(tok.encode(r["completion"]).ids) for r in CORPUS)
    model = tiny_lm(data.tokenizer)
    long_prompt = "goal: eat\n" + "state: [you see a banana]\n" * 20
    assert model._encode_prompt(long_prompt).shape[1] == 64 - 20  # nothing recorded: min(max_new_tokens, 64 / 2)
    model.hparams.completion_tokens = data.completion_tokens  # what setup("fit") records from the data
    assert model._encode_prompt(long_prompt).shape[1] == 64 - data.completion_tokens
    # the training example with the same prompt starts its completion at that position too (up to its length)
    ids, start, _ = encode_example(tok, long_prompt, CORPUS[0]["completion"], 64)
    assert start == 65 - len(tok.encode(CORPUS[0]["completion"]).ids) >= 64 - data.completion_tokens


def test_action_likelihoods_match_a_full_forward_pass(tmp_path):
    data = FinetuneDataModule(str(write_jsonl(tmp_path / "d.jsonl", CORPUS)), vocab_size=300, block_size=64)
    model = tiny_lm(data.tokenizer).eval()
    prefix, actions = "goal: eat\nstate: [x]\n action: [", ["take banana", "look"]
    scores = model.action_likelihoods(prefix, actions)
    tok = model.tok
    for action, score in zip(actions, scores):
        p, c = tok.encode(prefix).ids, tok.encode(f" {action} ]\n").ids
        logits, _ = model.gpt(torch.tensor([p + c]))
        logp = torch.log_softmax(logits[0], -1)
        expected = sum(logp[len(p) - 1 + j, c[j]].item() for j in range(len(c)))
        assert score == pytest.approx(expected, abs=1e-4)


def test_closest_valid_action():
    valid = ["take red apple from counter", "take knife from counter", "look"]
    assert closest_valid_action("take red aple", valid) == "take red apple from counter"
    assert closest_valid_action("look", valid) == "look"
    assert closest_valid_action("anything", []) == "anything"


def test_bad_jsonl_lines(tmp_path):
    with pytest.raises(DataError, match=r"bad.jsonl:2: a fine-tune line needs string fields 'prompt' and 'completion'"):
        read_jsonl(write_jsonl(tmp_path / "bad.jsonl", [CORPUS[0], {"prompt": "x"}]))
    (tmp_path / "nojson.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="nojson.jsonl:1: not JSON"):
        read_jsonl(tmp_path / "nojson.jsonl")
    with pytest.raises(MissingArtifactError, match="write_finetune"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_checkpoint_with_another_tokenizer_is_refused(tmp_path):
    tok_a = train_tokenizer([r["prompt"] for r in CORPUS], vocab_size=280).to_str()
    tok_b = train_tokenizer([r["completion"] for r in CORPUS], vocab_size=270).to_str()
    model = tiny_lm(tok_a)
    path = tmp_path / "a.ckpt"
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, path)
    with pytest.raises(DataError, match="tokenizer of checkpoint .* does not match"):
        TextLM(tokenizer=tok_b, init_from=str(path))
    loaded = TextLM(init_from=str(path))  # the student: architecture and tokenizer from the checkpoint
    assert torch.equal(loaded.gpt.tok_emb.weight, model.gpt.tok_emb.weight)
    with pytest.raises(MissingArtifactError, match="TextLM checkpoint"):
        TextLM(init_from=str(tmp_path / "none.ckpt"))
    with pytest.raises(UserError, match="needs a tokenizer"):
        TextLM()
    with pytest.raises(UserError, match="filter"):
        tiny_lm(tok_a, filter="fuzzy")


def test_well_formed_completions():
    from lit_rlseq.ttm.diagnose import well_formed

    good = " expectation: take knife: score up by 1 summary:  length: 0 value: 1.00 action: [ take knife ]\n"
    assert well_formed(good, "hindsight_expectation_str")
    assert not well_formed(good.replace(" length: 0", ""), "hindsight_expectation_str")
    assert not well_formed(good[:-1], "hindsight_expectation_str")  # stopped before the newline
    assert well_formed(" action: [ look ]\n", "bc") and not well_formed(" action: look\n", "bc")


@pytest.mark.slow
def test_diagnose_reports_on_sampled_completions(ttm_checkpoint, ttm_jsonl, tmp_path):
    from lit_rlseq.ttm.diagnose import main

    main(["--checkpoint", str(ttm_checkpoint), "--jsonl", str(ttm_jsonl), "--samples", "3", "--room", "30",
          "--out", str(tmp_path / "d.json")])
    stats = json.loads((tmp_path / "d.json").read_text())
    n = len(read_jsonl(ttm_jsonl))
    assert stats["examples"] == stats["boundary_same"] == n  # a newline is its own token: no merge at the boundary
    assert stats["samples"] == 3 and stats["ended_newline"] + stats["hit_limit"] == 3 and stats["room"] == 30
    assert stats["blank"] >= 3 - stats["has_action"] and stats["well_formed"] <= stats["has_action"]
