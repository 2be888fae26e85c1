import numpy as np
import pytest
import torch

from lit_rlseq.envs.toy import ToyVectorEnv
from lit_rlseq.loops.collector import Collector
from lit_rlseq.loops.unroll import concat_unrolls
from tests.policies import CountingRecurrentPolicy, TinyTextGridPolicy


def make_collector(num_envs=4, seed=0, max_steps=20):
    collector = Collector(ToyVectorEnv(num_envs, max_steps=max_steps), seed=seed)
    collector.reset(seed)
    return collector


def test_unroll_layout_and_continuity():
    collector = make_collector()
    policy = TinyTextGridPolicy(len(collector.env.vocab))
    a = collector.unroll(policy, 7)
    b = collector.unroll(policy, 7)
    assert a.obs["name"].shape == (8, 4, 6, 6, 1, 8) and a.first.shape == (8, 4)
    assert a.action.shape == a.reward.shape == a.done.shape == (7, 4)
    assert a.behaviour_logits.shape == (7, 4, 5)
    assert a.first[0].all()  # fresh episodes after reset
    assert torch.equal(a.first[1:], a.done)  # first[t + 1] == done[t]
    for k in a.obs:  # the next unroll starts where this one ended
        assert torch.equal(a.obs[k][-1], b.obs[k][0])
    assert torch.equal(a.first[-1], b.first[0])
    # Sampled actions were valid where they were taken.
    taken_valid = a.obs["valid"][:-1].gather(-1, a.action[..., None])
    assert taken_valid.all()


def test_episode_statistics_sum_the_rewards_of_finished_episodes():
    collector = make_collector(num_envs=3, max_steps=5)
    policy = TinyTextGridPolicy(len(collector.env.vocab))
    u = collector.unroll(policy, 40)
    expected = []
    running = np.zeros(3)
    lengths = np.zeros(3, dtype=int)
    for t in range(40):  # the stats come out in time order, env order within a step
        running += u.reward[t].numpy()
        lengths += 1
        for i in np.flatnonzero(u.done[t].numpy()):
            expected.append((running[i], lengths[i]))
            running[i], lengths[i] = 0, 0
    assert len(u.episodes) == len(expected) > 0
    np.testing.assert_allclose(u.episodes.episode_return.numpy(), [e[0] for e in expected], rtol=1e-5)
    assert u.episodes.length.tolist() == [e[1] for e in expected]
    assert set(u.episodes.success.tolist()) <= {0.0, 1.0}


def test_recurrent_state_resets_at_episode_starts_and_the_learner_can_recompute_it():
    collector = make_collector(num_envs=3, max_steps=4)
    policy = CountingRecurrentPolicy()
    collector.unroll(policy, 5)  # leave episodes mid-way so the next unroll starts with a carried state
    u = collector.unroll(policy, 9)
    assert u.initial_state[0].shape == (3,)
    out = policy(u.obs, u.first, u.initial_state)
    # The count is the number of steps since the episode began (1 at the first observation).
    expected = np.zeros((10, 3))
    count = u.initial_state[0].numpy().copy()
    for t in range(10):
        count = np.where(u.first[t].numpy(), 0, count) + 1
        expected[t] = count
    np.testing.assert_array_equal(out.value.detach().numpy(), expected)
    assert (expected <= 4).all() and (expected == 1).any()


def test_greedy_acting_takes_the_argmax():
    collector = make_collector()
    policy = TinyTextGridPolicy(len(collector.env.vocab))
    u = collector.unroll(policy, 5, greedy=True)
    assert torch.equal(u.action, u.behaviour_logits.argmax(-1))


def test_same_seed_same_unroll():
    policy = TinyTextGridPolicy(21)
    torch.manual_seed(0)
    a = make_collector(seed=3).unroll(policy, 6)
    b = make_collector(seed=3).unroll(policy, 6)
    assert torch.equal(a.action, b.action) and torch.equal(a.obs["name"], b.obs["name"])


def test_run_episodes_counts_exactly_the_quota_and_records_complete_episodes():
    collector = make_collector(num_envs=3, max_steps=6)
    policy = TinyTextGridPolicy(len(collector.env.vocab))
    recorded = []
    stats = collector.run_episodes(policy, np.array([2, 0, 3]), greedy=False, on_episode=recorded.append)
    assert len(stats) == 5 == len(recorded)
    assert sorted(e.env_index for e in recorded) == [0, 0, 2, 2, 2]
    for episode, length, ret in zip(recorded, stats.length.tolist(), stats.episode_return.tolist()):
        assert len(episode.action) == length and episode.obs["name"].shape[0] == length + 1
        assert episode.reward.sum() == pytest.approx(ret, abs=1e-5)
        assert episode.reward[-1] in (1.0, -1.0)  # every episode ends in success, failure or the step limit
        # Observations chain: the agent moved (or not) as the actions say.
        assert episode.obs["valid"][:-1][np.arange(length), episode.action].all()


def test_concat_unrolls_joins_columns():
    collector = make_collector(num_envs=2)
    policy = CountingRecurrentPolicy()
    a, b = collector.unroll(policy, 3), collector.unroll(policy, 3)
    both = concat_unrolls([a, b])
    assert both.batch_size == 4 and both.initial_state[0].shape == (4,)
    assert torch.equal(both.reward[:, 2:], b.reward)
