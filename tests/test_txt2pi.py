"""txt2pi encoder and policy on synthetic text-grid observations (no environment needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.nn.text import BiLSTMEncoder, EncodedText, attend, group_rows, unique_rows
from lit_rlseq.nn.txt2pi import Txt2PiConfig, Txt2PiEncoder, Txt2PiPolicy

VOCAB = 30
H, W, P, NW = 4, 3, 2, 3  # a non-square grid so that transposed axes would show
LW, LT, LI = 7, 5, 4


def small_config(**overrides) -> Txt2PiConfig:
    sizes = dict(vocab_size=VOCAB, d_word=16, d_text=16, channels=(8, 8, 8, 8, 8), d_rep=32)
    return Txt2PiConfig(**{**sizes, **overrides})


def padded_words(lengths: torch.Tensor, max_len: int, g: torch.Generator) -> torch.Tensor:
    """Random word ids (>= 1) within each length and random junk ids (0 included) beyond it."""
    words = torch.randint(1, VOCAB, (*lengths.shape, max_len), generator=g)
    junk = torch.randint(0, VOCAB, words.shape, generator=g)
    return torch.where(torch.arange(max_len) < lengths.unsqueeze(-1), words, junk)


def random_obs(n: int, seed: int = 0, num_texts: int | None = None) -> dict[str, torch.Tensor]:
    """n observations [n, ...]; with num_texts, rows share that many distinct wikis/tasks/inventories
    (same words and length, different junk beyond the length)."""
    g = torch.Generator().manual_seed(seed)
    name_len = torch.randint(0, NW + 1, (n, H, W, P), generator=g)
    obs = {"name": padded_words(name_len, NW, g), "name_len": name_len}
    for key, max_len in (("wiki", LW), ("task", LT), ("inv", LI)):
        lengths = torch.randint(1, max_len + 1, (n if num_texts is None else num_texts,), generator=g)
        ids = padded_words(lengths, max_len, g)
        if num_texts is not None:
            which = torch.randint(0, num_texts, (n,), generator=g)
            lengths, ids = lengths[which], ids[which]
            junk = torch.randint(0, VOCAB, ids.shape, generator=g)
            ids = torch.where(torch.arange(max_len) < lengths.unsqueeze(-1), ids, junk)
        obs[key], obs[f"{key}_len"] = ids, lengths
    agent = torch.randint(0, H, (n, 1, 1)), torch.randint(0, W, (n, 1, 1))
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    obs["rel_pos"] = torch.stack([(rows - agent[0]) / H, (cols - agent[1]) / W], dim=-1).float()
    return obs


def time_major(obs: dict[str, torch.Tensor], t: int, b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {key: value.unflatten(0, (t, b)) for key, value in obs.items()}
    valid = torch.rand(t, b, 5, generator=g) < 0.5
    valid[..., 0] = True  # "stay" is always legal
    out["valid"] = valid
    return out


def seeded(cls, config: Txt2PiConfig, seed: int):
    torch.manual_seed(seed)
    return cls(config)


# ---------------------------------------------------------------- policy outputs


def test_policy_shapes_masking_and_rep_from_one_pass():
    t, b = 3, 4
    policy = seeded(Txt2PiPolicy, small_config(), 0)
    obs = time_major(random_obs(t * b), t, b)
    first = torch.zeros(t, b, dtype=torch.bool)

    out, encoded = policy.forward_with_rep(obs, first)

    assert out.logits.shape == (t, b, 5) and out.value.shape == (t, b) and out.state == ()
    assert encoded.rep.shape == (t, b, 32) and encoded.film_map.shape == (t, b, 8, H, W)
    probs = out.logits.softmax(-1)
    assert torch.all(probs[~obs["valid"]] == 0)
    assert torch.all(probs[obs["valid"]] > 0)
    assert torch.isfinite(out.value).all()
    torch.testing.assert_close(policy(obs, first).logits, out.logits)
    torch.testing.assert_close(policy.representation(obs).rep, encoded.rep)
    # rep is the encoder's on the flattened batch, and the heads read it
    flat_rep = policy.encoder({k: v.flatten(0, 1) for k, v in obs.items()}).rep
    torch.testing.assert_close(encoded.rep.flatten(0, 1), flat_rep)
    torch.testing.assert_close(out.value, policy.value_head(encoded.rep).squeeze(-1))


def test_policy_rejects_state_and_bad_valid():
    policy = seeded(Txt2PiPolicy, small_config(), 0)
    obs = time_major(random_obs(4), 2, 2)
    first = torch.zeros(2, 2, dtype=torch.bool)
    with pytest.raises(UserError, match="feedforward"):
        policy(obs, first, (torch.zeros(1),))
    with pytest.raises(DataError, match="valid"):
        policy({**obs, "valid": obs["valid"][..., :4]}, first)
    with pytest.raises(DataError, match="valid"):
        policy({k: v for k, v in obs.items() if k != "valid"}, first)


# ---------------------------------------------------------------- text dedupe


def test_unique_rows_ignores_padding_and_maps_back():
    ids = torch.tensor([[3, 4, 9], [3, 4, 0], [3, 4, 5], [3, 0, 0], [3, 4, 7]])
    lengths = torch.tensor([2, 2, 3, 1, 2])
    unique_ids, unique_lengths, inverse = unique_rows(ids, lengths)
    assert len(unique_ids) == 3  # [3,4]x3, [3,4,5], [3]
    assert inverse[0] == inverse[1] == inverse[4]
    torch.testing.assert_close(unique_lengths[inverse], lengths)
    clean = torch.tensor([[3, 4, 0], [3, 4, 0], [3, 4, 5], [3, 0, 0], [3, 4, 0]])
    torch.testing.assert_close(unique_ids[inverse], clean)
    groups = group_rows(inverse, len(unique_ids))
    assert groups.size == 3
    assert groups.slot[[0, 1, 4]].tolist() == [0, 1, 2]  # slots follow batch order
    assert groups.slot[[2, 3]].tolist() == [0, 0]


def test_grouped_attention_matches_per_row_attention():
    g = torch.Generator().manual_seed(1)
    states = torch.randn(3, 6, 8, generator=g)
    lengths = torch.tensor([6, 2, 4])
    inverse = torch.tensor([2, 0, 2, 1, 2, 0])
    query = torch.randn(6, 8, generator=g)
    got = attend(EncodedText(states, lengths, group_rows(inverse, 3)), query)
    for n in range(6):
        keys = states[inverse[n], : lengths[inverse[n]]]
        weights = (keys @ query[n] / 8**0.5).softmax(0)
        torch.testing.assert_close(got[n], weights @ keys)


def test_bilstm_equals_packed_bidirectional_lstm():
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    encoder = BiLSTMEncoder(5, 6)
    reference = nn.LSTM(5, 3, batch_first=True, bidirectional=True)
    for name, value in encoder.forward_lstm.named_parameters():
        getattr(reference, name).data.copy_(value)
    for name, value in encoder.backward_lstm.named_parameters():
        getattr(reference, f"{name}_reverse").data.copy_(value)
    x = torch.randn(4, 7, 5, generator=g)
    lengths = torch.tensor([7, 1, 4, 3])
    packed, _ = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    expected, _ = pad_packed_sequence(packed, batch_first=True, total_length=7)
    torch.testing.assert_close(encoder(x, lengths), expected)


def test_dedupe_is_exactly_encoding_every_row():
    obs = random_obs(24, seed=3, num_texts=3)
    assert len(unique_rows(obs["wiki"], obs["wiki_len"])[0]) == 3
    assert len(set(obs["wiki_len"].tolist())) > 1  # the shared texts have different lengths
    outputs, grads = {}, {}
    for dedupe in (True, False):
        encoder = seeded(Txt2PiEncoder, small_config(dedupe_text=dedupe), 0)
        film_map, rep = encoder(obs)
        g = torch.Generator().manual_seed(4)
        rep_weights, map_weights = torch.randn(rep.shape, generator=g), torch.randn(film_map.shape, generator=g)
        ((rep * rep_weights).sum() + (film_map * map_weights).sum()).backward()
        outputs[dedupe] = (film_map, rep)
        grads[dedupe] = {name: p.grad for name, p in encoder.named_parameters()}
    torch.testing.assert_close(outputs[True], outputs[False])
    assert grads[True].keys() == grads[False].keys()
    for name in grads[True]:
        torch.testing.assert_close(grads[True][name], grads[False][name], msg=f"gradient of {name}")


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("dedupe", [True, False])
@pytest.mark.parametrize("key", ["wiki", "task", "inv", "name"])
def test_padding_beyond_length_changes_nothing(key, dedupe):
    obs = random_obs(3, seed=5)
    row = (0, 0, 0, 0) if key == "name" else (0,)  # one name placement or one text of row 0
    obs[f"{key}_len"][row] = 2
    obs[key][row][:2] = torch.tensor([5, 6])
    beyond, within = (*row, 2), (*row, 1)
    encoder = seeded(Txt2PiEncoder, small_config(dedupe_text=dedupe), 0)
    film_map, rep = encoder(obs)

    changed = {**obs, key: obs[key].clone()}
    changed[key][beyond] = (obs[key][beyond] + 7) % VOCAB
    torch.testing.assert_close(encoder(changed), (film_map, rep))

    changed = {**obs, key: obs[key].clone()}
    changed[key][within] = obs[key][within] % (VOCAB - 1) + 1  # another real word
    _, new_rep = encoder(changed)
    assert (new_rep[0] - rep[0]).abs().max() > 1e-5
    torch.testing.assert_close(new_rep[1:], rep[1:])  # other rows untouched


def test_cell_encoding_is_mean_of_name_words_summed_over_placements():
    obs = random_obs(2, seed=6)
    encoder = seeded(Txt2PiEncoder, small_config(), 0)
    cells = encoder.encode_cells(obs["name"], obs["name_len"])
    emb = encoder.embedding.weight
    expected = torch.zeros(2, 16, H, W)
    for n in range(2):
        for r in range(H):
            for c in range(W):
                for p in range(P):
                    length = int(obs["name_len"][n, r, c, p])
                    if length:
                        expected[n, :, r, c] += emb[obs["name"][n, r, c, p, :length]].mean(0)
    torch.testing.assert_close(cells, expected)


# ---------------------------------------------------------------- wiring, weights, gradients


def test_last_layer_reads_sum_of_layers_3_and_4_plus_rel_pos():
    encoder = seeded(Txt2PiEncoder, small_config(channels=(4, 6, 8, 8, 5)), 0)
    obs = random_obs(3, seed=7)
    outputs, inputs = {}, {}
    for i, film in enumerate(encoder.films):
        film.register_forward_hook(lambda module, args, out, i=i: outputs.__setitem__(i, out))
        film.register_forward_pre_hook(lambda module, args, i=i: inputs.__setitem__(i, args[0]))
    film_map, _ = encoder(obs)
    rel_pos = obs["rel_pos"].permute(0, 3, 1, 2)
    torch.testing.assert_close(inputs[4], torch.cat([outputs[2] + outputs[3], rel_pos], dim=1))
    torch.testing.assert_close(inputs[3], torch.cat([outputs[2], rel_pos], dim=1))
    torch.testing.assert_close(film_map, outputs[4])
    assert film_map.shape == (3, 5, H, W)


def test_config_rejects_unsummable_residual_and_odd_text_size():
    with pytest.raises(UserError, match="channels"):
        small_config(channels=(8, 8, 8, 16, 8))
    with pytest.raises(UserError, match="d_text"):
        small_config(d_text=15)


def test_loading_encoder_weights_makes_reps_identical():
    config = small_config()
    student, teacher = seeded(Txt2PiPolicy, config, 0), seeded(Txt2PiPolicy, config, 1)
    obs = time_major(random_obs(6, seed=8), 2, 3)
    assert not torch.allclose(student.representation(obs).rep, teacher.representation(obs).rep)
    student.encoder.load_state_dict(teacher.encoder.state_dict())
    torch.testing.assert_close(student.representation(obs), teacher.representation(obs), rtol=0, atol=0)
    first = torch.zeros(2, 3, dtype=torch.bool)
    assert not torch.allclose(student(obs, first).value, teacher(obs, first).value)  # heads stay their own


def test_gradients_reach_every_parameter():
    t, b = 2, 3
    policy = seeded(Txt2PiPolicy, small_config(), 0)
    obs = time_major(random_obs(t * b, seed=9), t, b)
    out = policy(obs, torch.zeros(t, b, dtype=torch.bool))
    actions = torch.zeros(t, b, 1, dtype=torch.long)  # "stay" is always valid
    loss = -out.logits.log_softmax(-1).gather(-1, actions).mean() + out.value.pow(2).mean()
    loss.backward()
    dead = [name for name, p in policy.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize("dedupe", [True, False])
def test_batch_permutation_equivariance(dedupe):
    obs = random_obs(8, seed=10, num_texts=3)
    encoder = seeded(Txt2PiEncoder, small_config(dedupe_text=dedupe), 0)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(11))
    film_map, rep = encoder(obs)
    permuted = encoder({key: value[perm] for key, value in obs.items()})
    torch.testing.assert_close(permuted, (film_map[perm], rep[perm]))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o.pop("wiki_len"), "lacks keys"),
        (lambda o: o.__setitem__("wiki", o["wiki"][:, None]), "obs\\['wiki'\\] has shape"),
        (lambda o: o.__setitem__("rel_pos", o["rel_pos"][:, :, :2]), "grid shapes disagree"),
        (lambda o: o.__setitem__("task", o["task"] + VOCAB), "vocab_size=30"),
        (lambda o: o.__setitem__("wiki_len", o["wiki_len"] * 0), "obs\\['wiki_len'\\] holds lengths"),
        (lambda o: o.__setitem__("inv_len", o["inv_len"] + LI), "obs\\['inv_len'\\] holds lengths"),
    ],
)
def test_malformed_observation_names_the_key(change, message):
    obs = random_obs(2)
    change(obs)
    encoder = seeded(Txt2PiEncoder, small_config(), 0)
    with pytest.raises(DataError, match=message):
        encoder(obs)


def test_benchmark_runs_at_tiny_scale():
    from lit_rlseq.bench import REGISTRY
    import lit_rlseq.bench.txt2pi  # noqa: F401  (registers the benchmark)

    result = REGISTRY["txt2pi.forward"](0.002)
    assert result.name == "txt2pi.forward" and result.ratio > 0
    assert all(value > 0 for value in result.figures.values()) and len(result.figures) == 8
