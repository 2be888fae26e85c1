"""The shared GPT: KV-cache equivalence (incl. beam reindexing), causal and extra masks, heads, generate."""

import pytest
import torch

from lit_rlseq.errors import UserError
from lit_rlseq.nn.gpt import GPT, GPTConfig, generate_with_cache, sample_logits


def small(**kw) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(**{"vocab_size": 23, "block_size": 24, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw})
    return GPT(config).double().eval()


def test_cached_logits_equal_uncached_logits():
    model = small()
    idx = torch.randint(0, 23, (3, 20))
    full, _ = model(idx)
    logits, cache = model(idx[:, :7], use_cache=True)
    pieces = [logits]
    for t in range(7, 20, 3):  # continue in chunks of up to 3 tokens
        logits, cache = model(idx[:, t : t + 3], cache=cache)
        pieces.append(logits)
    assert cache.length == 20
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-10)


def test_cache_reindexed_for_beams_matches_uncached_on_the_reindexed_rows():
    model = small()
    prefix = torch.randint(0, 23, (2, 9))
    _, cache = model(prefix, use_cache=True)
    tiled = cache.repeat(3)  # rows [0, 1, 0, 1, 0, 1]
    cont = torch.randint(0, 23, (6, 4))
    logits, tiled = model(cont, cache=tiled)
    expected, _ = model(torch.cat([prefix.repeat(3, 1), cont], dim=1))
    assert torch.allclose(logits, expected[:, 9:], atol=1e-10)
    # reorder like a beam search keeping rows 5, 5, 0 and continue once more
    rows = torch.tensor([5, 5, 0])
    chosen = tiled.index_select(rows)
    step = torch.randint(0, 23, (3, 1))
    logits, chosen = model(step, cache=chosen)
    seq = torch.cat([prefix.repeat(3, 1), cont], dim=1)[rows]
    expected, _ = model(torch.cat([seq, step], dim=1))
    assert torch.allclose(logits[:, -1], expected[:, -1], atol=1e-10)
    # the interleaved expansion orders rows [0, 0, 1, 1]
    inter = cache.repeat_interleave(2)
    logits, _ = model(cont[:4], cache=inter)
    expected, _ = model(torch.cat([prefix.repeat_interleave(2, 0), cont[:4]], dim=1))
    assert torch.allclose(logits, expected[:, 9:], atol=1e-10)


def test_reindexing_copies_so_rows_can_diverge():
    model = small()
    _, cache = model(torch.randint(0, 23, (1, 5)), use_cache=True)
    beams = cache.repeat(2)
    model(torch.tensor([[1], [2]]), cache=beams)
    assert cache.length == 5  # the shared prefix cache is untouched by its copy
    assert beams.length == 6


def test_attention_is_causal():
    model = small()
    idx = torch.randint(0, 23, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (idx[0, 8:] + 1) % 23
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_extra_attention_mask_hides_keys_by_position():
    # hide position 3 from every later query (like the trajectory model's value tokens)
    mask = torch.ones(24, 24, dtype=torch.bool)
    mask[:, 3] = False
    torch.manual_seed(0)
    masked = GPT(GPTConfig(vocab_size=23, block_size=24, n_layer=2, n_head=2, n_embd=16), attention_mask=mask)
    masked = masked.double().eval()
    idx = torch.randint(0, 23, (2, 10))
    changed = idx.clone()
    changed[:, 3] = (idx[:, 3] + 5) % 23
    a, _ = masked(idx)
    b, _ = masked(changed)
    # earlier positions never see later tokens; later ones never see the hidden key
    assert torch.allclose(a[:, :3], b[:, :3])
    assert torch.allclose(a[:, 4:], b[:, 4:], atol=1e-12)  # nobody attends to it
    assert not torch.allclose(a[:, 3], b[:, 3])  # its own embedding still flows through the residual
    # the same model without the mask does see it
    plain = small()
    a, _ = plain(idx)
    b, _ = plain(changed)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_per_call_key_mask_hides_padding():
    model = small()
    idx = torch.randint(0, 23, (2, 6))
    keep = torch.ones(2, 6, dtype=torch.bool)
    keep[:, 1] = False
    changed = idx.clone()
    changed[:, 1] = (idx[:, 1] + 1) % 23
    a, _ = model(idx, attn_mask=keep)
    b, _ = model(changed, attn_mask=keep)
    assert torch.allclose(a[:, 2:], b[:, 2:], atol=1e-12)


def test_per_position_output_heads():
    model = small(n_output_heads=3, out_size=5, vocab_size=30)
    assert model.head.shape == (3, 5, 16)
    idx = torch.randint(0, 30, (1, 7))
    logits, _ = model(idx)
    assert logits.shape == (1, 7, 5)
    with torch.no_grad():
        model.head[1].zero_()  # head 1 serves positions 1 and 4
    logits, _ = model(idx)
    assert torch.equal(logits[0, [1, 4]], torch.zeros(2, 5, dtype=logits.dtype))
    assert (logits[0, [0, 2, 3, 5, 6]].abs() > 0).all()
    # with a cache the head follows the absolute position, not the position in the chunk
    _, cache = model(idx[:, :4], use_cache=True)
    logits, _ = model(idx[:, 4:5], cache=cache)
    assert torch.equal(logits[0, 0], torch.zeros(5, dtype=logits.dtype))


def test_optim_groups_decay_linear_and_head_weights_only():
    model = small()
    decay, no_decay = model.optim_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert "head" in names and "blocks.0.attn.qkv.weight" in names and "blocks.1.mlp.2.weight" in names
    assert not any(n.endswith("bias") or "ln" in n or "emb" in n for n in names)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_generate_with_cache_equals_uncached_sampling():
    model = small()
    idx = torch.randint(0, 23, (2, 5))
    out = model.generate(idx, 30, temperature=0.8, top_k=10, generator=torch.Generator().manual_seed(3))
    assert out.shape == (2, 35)  # runs past block_size 24: cropped and re-encoded
    # the same sampling with full forward passes on the cropped sequence
    gen = torch.Generator().manual_seed(3)
    seq = idx
    for _ in range(30):
        logits, _ = model(seq[:, -24:])
        seq = torch.cat([seq, sample_logits(logits[:, -1], 0.8, 10, None, gen)], dim=1)
    assert torch.equal(out, seq)


def test_generate_stops_once_every_row_produced_the_stop_token():
    model = small()
    idx = torch.randint(0, 23, (2, 5))
    full = model.generate(idx, 12, temperature=0)  # greedy: the same tokens with or without stopping
    stop = int(full[0, 7])  # row 0's third new token
    out = model.generate(idx, 12, temperature=0, stop_token=stop)
    firsts = [next((i for i in range(5, 17) if full[row, i] == stop), 16) for row in range(2)]
    assert torch.equal(out, full[:, : max(firsts) + 1])  # ends when the later row first produced it


def test_generate_with_several_stop_tokens_stops_at_the_first_of_any():
    model = small()
    idx = torch.randint(0, 23, (1, 5))
    full = model.generate(idx, 12, temperature=0)
    stops = [int(full[0, 9]), int(full[0, 7])]  # the second is produced first
    first = next(i for i in range(5, 17) if int(full[0, i]) in stops)
    out = generate_with_cache(model, idx, 12, model.config.block_size, temperature=0, stop_token=stops)
    assert torch.equal(out, full[:, : first + 1]) and first <= 7


def test_sample_logits_top_k_top_p_and_greedy():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_logits(logits.repeat(200, 1), top_k=2, generator=gen) for _ in range(5)])
    assert set(draws.flatten().tolist()) == {0, 1}
    draws = sample_logits(logits.repeat(1000, 1), top_p=0.7, generator=gen)
    assert set(draws.flatten().tolist()) == {0, 1}  # 0.5 < 0.7 so token 1 is needed; 0.8 >= 0.7 stops
    draws = sample_logits(logits.repeat(1000, 1), top_p=0.5, generator=gen)
    assert set(draws.flatten().tolist()) == {0}
    assert sample_logits(logits, temperature=0).item() == 0


def test_bad_config_and_inputs():
    with pytest.raises(UserError, match="divisible"):
        GPTConfig(vocab_size=5, block_size=4, n_embd=10, n_head=3)
    with pytest.raises(UserError, match=r"\(8, 8\)"):
        GPT(GPTConfig(vocab_size=5, block_size=8, n_embd=8, n_head=2), attention_mask=torch.ones(4, 4).bool())
    model = small()
    with pytest.raises(ValueError, match="block_size 24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    _, cache = model(torch.zeros(1, 20, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match="capacity 24"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
