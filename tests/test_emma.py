"""EMMA: the fast (sparse, deduplicated) path equals the plain definition; history across unroll boundaries."""

import numpy as np
import pytest
import torch

from lit_rlseq.envs.messenger import MessengerVectorEnv
from lit_rlseq.nn.emma import Emma, EmmaConfig, ManualEncoder


def rollout(stage, num_envs=6, steps=9, seed=0):
    env = MessengerVectorEnv(stage, num_envs=num_envs, seed=seed, max_steps=3)
    obs, _ = env.reset()
    rng = np.random.default_rng(seed)
    seq, firsts, first = [], [], np.ones(num_envs, dtype=bool)
    for _ in range(steps):
        seq.append(obs)
        firsts.append(first)
        obs, _, terminated, truncated, _ = env.step(rng.integers(0, 5, num_envs))
        first = terminated | truncated
    obs = {k: torch.from_numpy(np.stack([s[k] for s in seq])) for k in seq[0]}
    return env, obs, torch.from_numpy(np.stack(firsts))


def small(env, **kwargs):
    torch.manual_seed(0)
    return Emma(EmmaConfig(vocab_size=len(env.vocab), d_word=32, d_model=16, conv_channels=8,
                           hidden=16, **kwargs))


@pytest.mark.parametrize("stage", ["s1", "s2"])
@pytest.mark.parametrize("layout", ["frames_as_channels", "raw_reshape"])
@pytest.mark.parametrize("sparse_heads", [True, False])
def test_sparse_trunk_equals_dense_definition(stage, layout, sparse_heads, monkeypatch):
    from lit_rlseq.nn import emma

    # The heads read the sparse features from this many steps on (the batch here has 54 steps).
    monkeypatch.setattr(emma, "SPARSE_HEADS_MIN_STEPS", 0 if sparse_heads else 10_000)
    env, obs, first = rollout(stage)
    model = small(env, history_layout=layout)
    assert first[1:].any() and not first[1:].all()  # episodes start inside the unroll
    state = model.initial_state(first.shape[1])
    def loss(out):  # reaches every parameter through the features (LDD) and through the heads (PPO)
        return out.features.square().sum() + out.policy.logits.logsumexp(-1).sum() + out.policy.value.sum()

    sparse = model.forward_with_features(obs, first, state)
    loss(sparse).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert model.entities.weight.grad[0].abs().max() == 0  # the padding row stays zero
    heads_only = model(obs, first, state).logits.detach()  # the sparse path without building the features
    model.zero_grad()
    model.config.sparse = False
    dense = model.forward_with_features(obs, first, state)
    loss(dense).backward()
    torch.testing.assert_close(sparse.features, dense.features, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(sparse.policy.logits, dense.policy.logits, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(sparse.policy.value, dense.policy.value, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(heads_only, dense.policy.logits, rtol=1e-4, atol=1e-6)
    assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in grads.items():
        torch.testing.assert_close(grad, model.get_parameter(name).grad, rtol=1e-3, atol=1e-6)


def test_layouts_differ():
    env, obs, first = rollout("s2")
    a = small(env)
    b = small(env, history_layout="raw_reshape")
    b.load_state_dict(a.state_dict())
    state = a.initial_state(first.shape[1])
    assert not torch.allclose(a(obs, first, state).logits, b(obs, first, state).logits)


def test_state_carries_the_history_across_unroll_boundaries():
    env, obs, first = rollout("s2", steps=10)
    model = small(env)
    whole = model(obs, first, model.initial_state(first.shape[1]))
    state = model.initial_state(first.shape[1])
    parts = []
    for lo, hi in ((0, 1), (1, 4), (4, 10)):  # one step at a time too, as the collector acts
        out = model({k: v[lo:hi] for k, v in obs.items()}, first[lo:hi], state)
        parts.append(out.logits)
        state = out.state
    torch.testing.assert_close(torch.cat(parts), whole.logits)


def test_history_uses_previous_frames_within_an_episode_only():
    env, obs, first = rollout("s2", steps=6)
    model = small(env)
    state = model.initial_state(first.shape[1])
    base = model(obs, first, state).logits
    changed = {k: v.clone() for k, v in obs.items()}
    changed["entities"][0] = 0  # wipe frame 0: steps 0..2 of its episode see it, a new episode does not
    out = model(changed, first, state).logits
    assert not torch.allclose(out[1], base[1])
    restarted = first.clone()
    restarted[1] = True
    out = model(changed, restarted, state).logits
    base = model(obs, restarted, state).logits
    torch.testing.assert_close(out[1:], base[1:])


def test_manual_encoder_pools_over_real_words_only():
    torch.manual_seed(0)
    encoder = ManualEncoder(EmmaConfig(vocab_size=10, d_word=8, d_model=4))
    manual = torch.tensor([[[3, 4, 0, 0]], [[3, 4, 7, 0]]])
    keys, values = encoder(manual, torch.tensor([[2], [2]]))  # the 7 is beyond the length: ignored
    torch.testing.assert_close(keys[0], keys[1])
    # The same pooling written out: softmax over the two words' scores, then the projection.
    h = encoder.words.weight[[3, 4]]
    a = torch.softmax(encoder.key_score(h).squeeze(-1), 0)
    torch.testing.assert_close(keys[0, 0], (a[:, None] * encoder.key(h)).sum(0))


def test_reference_sizes():
    model = Emma(EmmaConfig(vocab_size=100))
    params = sum(p.numel() for n, p in model.named_parameters() if "words" not in n)
    # The reference counts 1,942,984 (one 128 x 128 layer fewer than its own description of the heads).
    assert params == 1_942_984 + 128 * 128 + 128
    assert model.config.d_features == 5184


def test_one_network_reads_every_stage():
    model = None
    for stage in ("s1", "s2", "s3"):
        env, obs, first = rollout(stage, steps=3)
        model = model or small(env)
        out = model(obs, first, model.initial_state(first.shape[1]))
        assert out.logits.shape == (3, 6, 5) and torch.isfinite(out.logits).all()


def test_empty_sentences_of_padding_rows_stay_finite():
    torch.manual_seed(0)
    encoder = ManualEncoder(EmmaConfig(vocab_size=10, d_word=8, d_model=4))
    keys, values = encoder(torch.zeros(2, 3, 5, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    assert torch.isfinite(keys).all() and torch.isfinite(values).all()
    (keys.sum() + values.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


@pytest.mark.parametrize("reached", [0, 1, 40, 300])
def test_sparse_features_linear_equals_the_dense_product(reached):
    from lit_rlseq.nn.emma import POSITIONS, SparseFeatures
    torch.manual_seed(reached)
    steps, channels, hidden = 7, 4, 6
    # Skewed positions (a few reached by almost every step, as Messenger's fixed entity cells), no repeats.
    weights = torch.linspace(3, 0.1, POSITIONS).repeat(steps, 1)
    pairs = torch.multinomial(weights.flatten(), reached) if reached else torch.zeros(0, dtype=torch.long)
    index = pairs.sort().values
    delta = torch.randn(len(index), channels, requires_grad=True)
    base = torch.randn(channels, requires_grad=True)
    weight = torch.randn(hidden, POSITIONS * channels, requires_grad=True)
    bias = torch.randn(hidden, requires_grad=True)
    features = SparseFeatures(base, index, delta, steps)
    dense = features.dense()
    expected = base.repeat(steps * POSITIONS, 1)
    expected[index] += delta.detach()
    torch.testing.assert_close(dense, expected.view(steps, -1))
    out = features.linear(weight, bias)
    torch.testing.assert_close(out, torch.nn.functional.linear(dense, weight, bias))
    grad = torch.randn_like(out)
    sparse_grads = torch.autograd.grad(out, (delta, base, weight, bias), grad, allow_unused=True)
    dense_grads = torch.autograd.grad(torch.nn.functional.linear(features.dense(), weight, bias),
                                      (delta, base, weight, bias), grad, allow_unused=True)
    for a, b in zip(sparse_grads, dense_grads):
        torch.testing.assert_close(a if a is not None else torch.zeros_like(b), b, rtol=1e-4, atol=1e-5)
