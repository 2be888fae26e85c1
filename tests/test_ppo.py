"""The PPO learner and what it needs: action distributions, normalisers, continuous actions in the collector,
recurrent-safe minibatches, learning on a continuous and a discrete toy task, checkpointed normaliser state."""

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.envs.toy import ReachVectorEnv, ToyVectorEnv
from lit_rlseq.errors import UserError
from lit_rlseq.loops import OnlineDataModule
from lit_rlseq.loops.collector import Collector
from lit_rlseq.loops.ppo import MLPPPO, PPOModule, minibatch_indices
from lit_rlseq.nn import (
    Categorical,
    DiagGaussian,
    MLPActorCritic,
    MLPActorCriticConfig,
    ObservationNormalizer,
    RewardScaler,
    RunningMeanStd,
)
from lit_rlseq.nn.actor_critic import ActorCritic, PolicyOutput, mask_invalid
from lit_rlseq.nn.normalize import merge_moments
from lit_rlseq.rl import clip_fraction, explained_variance, normalize_advantages

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


# -- distributions -------------------------------------------------------------------------------------
def test_diag_gaussian_log_prob_and_entropy_match_torch_distributions():
    torch.manual_seed(0)
    mean, log_std = torch.randn(5, 3, 4), torch.randn(5, 3, 4) * 0.5
    params = torch.cat([mean, log_std], -1)
    action = torch.randn(5, 3, 4)
    reference = torch.distributions.Normal(mean, log_std.exp())
    dist = DiagGaussian()
    torch.testing.assert_close(dist.log_prob(params, action), reference.log_prob(action).sum(-1))
    torch.testing.assert_close(dist.entropy(params), reference.entropy().sum(-1))
    assert torch.equal(dist.mode(params), mean)


def test_diag_gaussian_samples_have_the_mean_and_std_and_follow_the_generator():
    params = torch.tensor([[0.5, -1.0, math.log(0.1), math.log(2.0)]]).expand(20000, 4)
    samples = DiagGaussian().sample(params, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), torch.tensor([0.5, -1.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.tensor([0.1, 2.0]), atol=0.05, rtol=0)
    again = DiagGaussian().sample(params, torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)


def test_categorical_matches_torch_and_samples_as_the_collector_always_did():
    torch.manual_seed(1)
    logits = torch.randn(6, 5)
    action = torch.randint(0, 5, (6,))
    reference = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(Categorical().log_prob(logits, action), reference.log_prob(action))
    torch.testing.assert_close(Categorical().entropy(logits), reference.entropy())
    # The same draws as the collector's original multinomial sampling with the same generator.
    old = torch.multinomial(torch.softmax(logits, -1), 1, generator=torch.Generator().manual_seed(3))[:, 0]
    assert torch.equal(Categorical().sample(logits, torch.Generator().manual_seed(3)), old)


def test_distributions_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="2 \\* action_dim"):
        DiagGaussian().log_prob(torch.zeros(3, 5), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="actions have shape"):
        DiagGaussian().log_prob(torch.zeros(3, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="integer actions"):
        Categorical().log_prob(torch.zeros(3, 4), torch.zeros(3, 1, dtype=torch.long))


# -- pure PPO pieces -----------------------------------------------------------------------------------
def test_clip_fraction_advantage_normalisation_and_explained_variance_by_hand():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.0, 1.1, 1.3, 0.7]))
    assert float(clip_fraction(new, old, 0.2)) == pytest.approx(0.5)  # 1.3 and 0.7 are outside [0.8, 1.2]
    adv = torch.tensor([1.0, 2.0, 3.0, 6.0])
    normed = normalize_advantages(adv)
    assert float(normed.mean()) == pytest.approx(0.0, abs=1e-6) and float(normed.std()) == pytest.approx(1.0, abs=1e-4)
    assert torch.equal(normalize_advantages(torch.tensor([5.0])), torch.tensor([0.0]))
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(explained_variance(returns, returns)) == 1.0
    assert float(explained_variance(torch.full((4,), 2.5), returns)) == pytest.approx(0.0)
    # var(returns - values) = var([0, 0, 0, 2]) = 0.75; var(returns) = 1.25
    assert float(explained_variance(torch.tensor([1.0, 2.0, 3.0, 2.0]), returns)) == pytest.approx(1 - 0.75 / 1.25)
    assert math.isnan(float(explained_variance(returns, torch.ones(4))))


def test_minibatch_indices_partition_the_samples():
    parts = minibatch_indices(10, 3, torch.Generator().manual_seed(0))
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="cannot split 2 samples into 3"):
        minibatch_indices(2, 3)


# -- normalisers ---------------------------------------------------------------------------------------
def test_merge_moments_is_the_moments_of_the_union(rng):
    a, b = rng.normal(2.0, 3.0, (50, 3)), rng.normal(-1.0, 0.5, (7, 3))
    count, mean, var = merge_moments(*(torch.tensor(v) for v in (50.0, a.mean(0), a.var(0), 7.0, b.mean(0), b.var(0))))
    both = np.concatenate([a, b])
    assert float(count) == 57
    np.testing.assert_allclose(mean.numpy(), both.mean(0), rtol=1e-8)
    np.testing.assert_allclose(var.numpy(), both.var(0), rtol=1e-8)


def test_running_mean_std_tracks_all_batches_and_normalises_with_clipping(rng):
    stats = RunningMeanStd((2,))
    batches = [rng.normal(5.0, 2.0, (n, 2)) for n in (3, 40, 17)]
    for batch in batches:
        stats.update(torch.tensor(batch, dtype=torch.float32).reshape(-1, 1, 2))  # any leading dims
    data = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean.numpy(), data.mean(0), rtol=1e-4)  # count starts at 1e-4, not 0
    np.testing.assert_allclose(stats.var.numpy(), data.var(0), rtol=1e-3)
    x = torch.tensor([[8.0, 1e6]])
    out = stats.normalize(x, clip=10.0)
    assert float(out[0, 1]) == 10.0
    assert float(out[0, 0]) == pytest.approx((8.0 - data.mean(0)[0]) / math.sqrt(data.var(0)[0]), rel=1e-3)


def test_observation_normalizer_leaves_other_keys_and_does_not_update_in_forward():
    norm = ObservationNormalizer({"obs": (2,)})
    obs = {"obs": torch.tensor([[[3.0, -3.0]]]), "valid": torch.ones(1, 1, 5, dtype=torch.bool)}
    out = norm(obs)
    assert out["valid"] is obs["valid"] and float(norm.stats["obs"].count) == pytest.approx(1e-4)
    norm.update(obs)
    assert torch.allclose(norm.stats["obs"].mean.float(), torch.tensor([3.0, -3.0]), atol=1e-3)
    with pytest.raises(KeyError, match="missing"):
        norm({"valid": obs["valid"]})


def test_reward_scaler_divides_by_the_std_of_the_running_discounted_return(rng):
    gamma, prior = 0.9, 1e-4  # the statistics start as baselines' do: count 1e-4, mean 0, variance 1

    def variance_with_prior(samples):
        n, m = len(samples), samples.mean()
        return (prior * 1.0 + ((samples - m) ** 2).sum() + m**2 * prior * n / (prior + n)) / (prior + n)

    scaler = RewardScaler(num_envs=2, gamma=gamma, clip=100.0)
    rewards = rng.normal(1.0, 1.0, (30, 2)).astype(np.float32)
    done = np.zeros((30, 2), dtype=bool)
    done[9, 0] = done[19, 1] = True
    returns, seen = np.zeros(2), []
    for t in range(30):
        returns = gamma * returns + rewards[t]
        seen.append(returns.copy())
        expected = rewards[t] / np.sqrt(variance_with_prior(np.concatenate(seen)) + 1e-8)
        out = scaler(torch.from_numpy(rewards[t]), torch.from_numpy(done[t]))
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4)
        returns[done[t]] = 0.0  # a new episode starts a new return


# -- the MLP actor-critic --------------------------------------------------------------------------------
@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_mlp_actor_critic_outputs_gaussian_parameters(state_dependent_std):
    net = MLPActorCritic(MLPActorCriticConfig(obs_dim=3, action_dim=2, state_dependent_std=state_dependent_std,
                                              init_log_std=-0.5))
    out = net({"obs": torch.randn(4, 5, 3)}, torch.zeros(4, 5, dtype=torch.bool))
    assert out.logits.shape == (4, 5, 4) and out.value.shape == (4, 5) and out.state == ()
    mean, log_std = DiagGaussian.split(out.logits)
    assert mean.abs().max() < 0.5  # the mean layer starts small (orthogonal, gain 0.01)
    torch.testing.assert_close(log_std, torch.full_like(log_std, -0.5), atol=0.2 if state_dependent_std else 0, rtol=0)
    assert isinstance(net.action_dist, DiagGaussian)
    discrete = MLPActorCritic(MLPActorCriticConfig(obs_dim=3, num_actions=4, shared_trunk=True))
    assert discrete.critic_trunk is None and isinstance(discrete.action_dist, Categorical)
    with pytest.raises(ValueError, match="exactly one of action_dim"):
        MLPActorCriticConfig(obs_dim=3, action_dim=2, num_actions=4)
    with pytest.raises(ValueError, match=r"expected \[T, B, 3\]"):
        net({"obs": torch.randn(4, 5, 2)}, torch.zeros(4, 5, dtype=torch.bool))


# -- continuous actions through the collector ----------------------------------------------------------
def reach_policy(normalize_obs=True):
    return MLPActorCritic(MLPActorCriticConfig(obs_dim=2, action_dim=1, init_log_std=0.5, normalize_obs=normalize_obs))


def test_collector_records_continuous_actions_and_clips_what_the_env_receives():
    collector = Collector(ReachVectorEnv(3), seed=0)
    collector.reset(0)
    policy = reach_policy()
    u = collector.unroll(policy, 12)
    assert u.action.dtype == torch.float32 and u.action.shape == (12, 3, 1)
    assert u.behaviour_logits.shape == (12, 3, 2)
    assert (u.action.abs() > 1).any()  # std e^0.5: some samples lie outside the bounds, and are kept as sampled
    # The env moved by the clipped action: position_{t+1} = clip(position_t + 0.25 * clip(a_t)) within episodes.
    pos = u.obs["obs"][..., 0]
    moved = ~u.done
    expected = (pos[:-1] + 0.25 * u.action[..., 0].clamp(-1, 1)).clamp(-1, 1)
    torch.testing.assert_close(pos[1:][moved], expected[moved])
    greedy = collector.unroll(policy, 3, greedy=True)
    torch.testing.assert_close(greedy.action, DiagGaussian.split(greedy.behaviour_logits)[0])


def test_recorded_continuous_episodes_hold_executed_actions_log_probs_values_and_how_they_ended():
    collector = Collector(ReachVectorEnv(4, max_steps=6), seed=0)
    collector.reset(0)
    policy = reach_policy()
    recorded = []
    collector.run_episodes(policy, 5, greedy=False, on_episode=recorded.append)
    assert len(recorded) == 20
    for e in recorded:
        length = len(e.reward)
        assert e.action.shape == (length, 1) and e.action.dtype == np.float32 and np.abs(e.action).max() <= 1
        assert e.behaviour_log_prob.shape == e.value.shape == (length,) and np.isfinite(e.value).all()
        out = policy({"obs": torch.from_numpy(e.obs["obs"][:-1])[:, None]}, torch.zeros(length, 1, dtype=torch.bool))
        np.testing.assert_allclose(e.value, out.value[:, 0].detach().numpy(), rtol=1e-5, atol=1e-6)
        # A terminated episode ended within 0.05 of the target; a truncated one ran the full 6 steps.
        final_distance = abs(e.obs["obs"][-1, 0] - e.obs["obs"][-1, 1])
        assert (final_distance < 0.05) == e.terminated
        assert e.terminated or length == 6
    assert any(e.terminated for e in recorded) and not all(e.terminated for e in recorded)


def test_collector_refuses_a_policy_for_the_other_kind_of_action():
    collector = Collector(ReachVectorEnv(2), seed=0)
    collector.reset(0)
    with pytest.raises(ValueError, match="continuous"):
        collector.unroll(MLPActorCritic(MLPActorCriticConfig(obs_dim=2, num_actions=3)), 2)


def test_reward_normalisation_scales_unroll_rewards_but_not_episode_returns():
    plain = Collector(ReachVectorEnv(2), seed=0)
    scaled = Collector(ReachVectorEnv(2), seed=0, reward_scaler=RewardScaler(2, gamma=0.99))
    policy = reach_policy()
    torch.manual_seed(0)
    for c in (plain, scaled):
        c.reset(0)
    a, b = plain.unroll(policy, 40), scaled.unroll(policy, 40)
    assert torch.equal(a.action, b.action) and not torch.allclose(a.reward, b.reward)
    torch.testing.assert_close(a.episodes.episode_return, b.episodes.episode_return)
    ratio = b.reward / a.reward  # one positive scale per step, shared by the envs
    assert (ratio > 0).all()


# -- recurrent-safe minibatches ------------------------------------------------------------------------
class TinyGRUPolicy(ActorCritic):
    """A GRU over the reach observation that resets at episode starts."""

    action_dist = DiagGaussian()

    def __init__(self):
        super().__init__()
        self.num_actions = 1
        self.cell = nn.GRUCell(2, 8)
        self.head = nn.Linear(8, 3)

    def initial_state(self, batch_size, device="cpu"):
        return (torch.zeros(batch_size, 8, device=device),)

    def forward(self, obs, first, state=()):
        (h,) = state
        outs = []
        for t in range(first.shape[0]):
            h = self.cell(obs["obs"][t], torch.where(first[t, :, None], torch.zeros_like(h), h))
            outs.append(h)
        y = self.head(torch.stack(outs))
        return PolicyOutput(torch.cat([y[..., :1], y[..., 1:2] * 0 - 1.0], -1), y[..., 2], (h,))


class PolicyPPO(PPOModule):
    def __init__(self, policy, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy


def test_column_minibatches_rerun_whole_sequences_from_the_unrolls_initial_state():
    collector = Collector(ReachVectorEnv(6, max_steps=4), seed=0)
    collector.reset(0)
    policy = TinyGRUPolicy()
    collector.unroll(policy, 3)  # the next unroll starts mid-episode, with a carried state
    u = collector.unroll(policy, 9)
    assert u.initial_state[0].abs().sum() > 0 and u.first[1:].any()
    module = PolicyPPO(policy, num_minibatches=3)
    assert module.split(u) == "columns"
    old_log_prob, old_value, adv, ret = module.advantages(u)
    full = policy({k: v[:-1] for k, v in u.obs.items()}, u.first[:-1], u.initial_state)
    for index in minibatch_indices(u.batch_size, 3, torch.Generator().manual_seed(0)):
        mb = module.minibatch(u, "columns", index, old_log_prob, old_value, adv, ret)
        out, _ = module.learner_forward(mb)
        torch.testing.assert_close(out.logits, full.logits[:, index])
        torch.testing.assert_close(out.value, full.value[:, index])
        assert torch.equal(mb.action, u.action[:, index]) and torch.equal(mb.advantages, adv[:, index])
    with pytest.raises(UserError, match="recurrent"):
        PolicyPPO(policy, minibatch_split="transitions").split(u)
    with pytest.raises(UserError, match="num_minibatches \\(7\\) is larger than the batch's 6 columns"):
        PolicyPPO(policy, num_minibatches=7).split(u)


def test_transition_minibatches_of_a_feedforward_policy_pick_single_steps():
    collector = Collector(ReachVectorEnv(3), seed=0)
    collector.reset(0)
    policy = reach_policy()
    u = collector.unroll(policy, 5)
    module = PolicyPPO(policy, num_minibatches=4)
    assert module.split(u) == "transitions"
    old_log_prob, old_value, adv, ret = module.advantages(u)
    index = torch.tensor([0, 4, 14])  # (t, b) = (0, 0), (1, 1), (4, 2)
    mb = module.minibatch(u, "transitions", index, old_log_prob, old_value, adv, ret)
    assert mb.obs["obs"].shape == (1, 3, 2) and mb.action.shape == (1, 3, 1)
    torch.testing.assert_close(mb.obs["obs"][0], torch.stack([u.obs["obs"][0, 0], u.obs["obs"][1, 1], u.obs["obs"][4, 2]]))
    torch.testing.assert_close(mb.old_log_prob[0], torch.stack([old_log_prob[0, 0], old_log_prob[1, 1], old_log_prob[4, 2]]))


def test_the_first_update_starts_on_policy_the_behaviour_log_probs_are_the_learners():
    collector = Collector(ReachVectorEnv(4), seed=0)
    collector.reset(0)
    policy = reach_policy()
    policy.normalizer.update({"obs": torch.randn(50, 2) * 3 + 1})  # non-trivial statistics inside the policy
    u = collector.unroll(policy, 8)
    module = PolicyPPO(policy, num_minibatches=2)
    old_log_prob, old_value, adv, ret = module.advantages(u)
    torch.testing.assert_close(old_log_prob, DiagGaussian().log_prob(u.behaviour_logits, u.action))
    mb = module.minibatch(u, "transitions", torch.arange(u.frames), old_log_prob, old_value, adv, ret)
    _, diagnostics = module.ppo_losses(mb, module.learner_forward(mb)[0])
    assert float(diagnostics["approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(diagnostics["clip_fraction"]) == 0.0


# -- learning ------------------------------------------------------------------------------------------
def reach_run(epochs, tmp_path=None, **data):
    L.seed_everything(0)
    dm = OnlineDataModule(**{"env": "toy:reach", "num_envs": 8, "unroll_length": 64, "steps_per_epoch": 10,
                             "eval_envs": {"test": "toy:reach"}, "eval_episodes": 50, "eval_num_envs": 10, **data})
    module = MLPPPO(obs_dim=dm.obs_dim, action_dim=dm.action_dim, ppo_epochs=4, num_minibatches=8, lr=3e-3,
                    lr_schedule="constant")
    kwargs = dict(QUIET, default_root_dir=tmp_path) if tmp_path else QUIET
    if tmp_path:
        kwargs["enable_checkpointing"] = True
    trainer = L.Trainer(max_epochs=epochs, **kwargs)
    trainer.fit(module, datamodule=dm)
    return trainer, module, dm


@pytest.mark.slow
def test_ppo_learns_to_reach_the_target_with_a_gaussian_policy():
    before = Collector(ReachVectorEnv(10), seed=0)
    before.reset(1)
    untrained = float(before.run_episodes(reach_policy(), 5, greedy=True).episode_return.mean())
    trainer, module, _ = reach_run(epochs=3)
    learned = float(trainer.callback_metrics["eval/test/return"])
    assert untrained < -3.0  # standing still (the untrained mean is about 0) costs the whole distance every step
    assert learned > -1.8, f"PPO did not learn toy:reach: greedy return {learned:.2f} (untrained {untrained:.2f})"
    assert int(module.frames) == 3 * 10 * 8 * 64
    assert float(trainer.callback_metrics["ppo/epochs"]) == 4.0


class GoalFeaturePolicy(ActorCritic):
    """Toy-env features a small MLP can use: per cell, is it the goal the wiki names, the other object, the agent."""

    def __init__(self, hidden=64):
        super().__init__()
        self.num_actions = 5
        self.body = nn.Sequential(nn.Linear(36 * 3, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.pi = nn.Linear(hidden, 5)
        self.v = nn.Linear(hidden, 1)

    def forward(self, obs, first, state=()):
        names, wiki = obs["name"][..., 0, :2], obs["wiki"][..., None, None, 4:6]  # [T, B, 6, 6, 2], goal words
        is_object = obs["name_len"][..., 0] == 2
        goal = is_object & (names == wiki).all(-1)
        agent = (obs["rel_pos"] == 0).all(-1)
        h = self.body(torch.stack([goal, is_object & ~goal, agent], -1).flatten(2).float())
        logits = mask_invalid(self.pi(h), obs["valid"])
        return PolicyOutput(logits, self.v(h).squeeze(-1), ())


@pytest.mark.slow
def test_ppo_learns_the_discrete_toy_env():
    L.seed_everything(0)
    dm = OnlineDataModule(env="toy", num_envs=16, unroll_length=32, steps_per_epoch=20, eval_envs={"test": "toy"},
                          eval_episodes=100, eval_num_envs=50)
    module = PolicyPPO(GoalFeaturePolicy(), ppo_epochs=4, num_minibatches=4, lr=1e-3, entropy_cost=0.01,
                       lr_schedule="constant")
    trainer = L.Trainer(max_epochs=3, **QUIET)
    trainer.fit(module, datamodule=dm)
    success = float(trainer.callback_metrics["eval/test/success"])
    # Measured: 0.15 untrained, 0.78 / 0.85 / 0.88 after 10k / 20k / 30k frames.
    assert success > 0.7, f"PPO did not learn the toy env: greedy success {success:.2f} (untrained about 0.15)"


# -- normaliser state: updated from each batch after the update, and checkpointed ------------------------
class FirstBatch(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.obs = batch.obs["obs"][:-1].clone()
        self.stats_before = pl_module.policy.normalizer.stats["obs"].mean.clone()


def test_observation_statistics_come_from_the_batch_after_the_update():
    L.seed_everything(0)
    dm = OnlineDataModule(env="toy:reach", num_envs=4, unroll_length=16, steps_per_epoch=1)
    module = MLPPPO(obs_dim=dm.obs_dim, action_dim=dm.action_dim, num_minibatches=4, ppo_epochs=1)
    probe = FirstBatch()
    L.Trainer(max_epochs=1, callbacks=[probe], **QUIET).fit(module, datamodule=dm)
    assert torch.equal(probe.stats_before, torch.zeros(2, dtype=torch.float64))  # fixed while collecting
    stats = module.policy.normalizer.stats["obs"]
    expected = probe.obs.reshape(-1, 2).double()
    torch.testing.assert_close(stats.mean, expected.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stats.var, expected.var(0, unbiased=False), rtol=1e-3, atol=1e-4)
    assert float(stats.count) == pytest.approx(64, abs=1e-3)


def test_normaliser_state_survives_a_checkpoint_round_trip(tmp_path):
    trainer, module, dm = reach_run(epochs=1, tmp_path=tmp_path, steps_per_epoch=2, normalize_reward=True)
    ckpt = next(tmp_path.rglob("*.ckpt"))
    checkpoint = torch.load(ckpt, weights_only=False)
    restored = MLPPPO.load_from_checkpoint(ckpt)
    for name in ("count", "mean", "var"):
        ours = getattr(module.policy.normalizer.stats["obs"], name)
        assert torch.equal(getattr(restored.policy.normalizer.stats["obs"], name), ours)
    assert float(restored.policy.normalizer.stats["obs"].count) > 1
    # The reward scaler's running returns and statistics travel in the data module's state.
    scaler = dm._stream.collector.reward_scaler
    dm2 = OnlineDataModule(env="toy:reach", num_envs=8, unroll_length=64, steps_per_epoch=2, normalize_reward=True)
    dm2.load_state_dict(checkpoint[type(dm).__qualname__])
    collector = dm2.make_collector(0, 0)
    collector.load_state_dict(dm2._pending_collector_state)
    for key, value in scaler.state_dict().items():
        assert torch.equal(collector.reward_scaler.state_dict()[key], value), key
    assert float(collector.reward_scaler.return_stats.count) > 100


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_input_names_the_fix():
    with pytest.raises(UserError, match="toy:reach"):
        MLPPPO(obs_dim=None, action_dim=None)
    with pytest.raises(UserError, match="ppo_epochs"):
        PolicyPPO(reach_policy(), ppo_epochs=0)
    with pytest.raises(UserError, match="minibatch_split"):
        PolicyPPO(reach_policy(), minibatch_split="rows")
    with pytest.raises(UserError, match="toy:reach"):
        make_vector_env("toy:nope", num_envs=1)
    scripted = Collector(ReachVectorEnv(1), seed=0)
    scripted.reset(0)

    class Scripted:
        def act(self, env, obs):
            return np.zeros(1)

    with pytest.raises(ValueError, match="discrete action spaces only"):
        scripted.unroll(Scripted(), 1)
    with pytest.raises(ValueError, match="tracks 3 envs"):
        Collector(ToyVectorEnv(2), seed=0, reward_scaler=RewardScaler(3))


@pytest.mark.slow
def test_cli_resume_of_a_ppo_run_continues_its_frames_and_statistics(tmp_path, monkeypatch):
    from lit_rlseq.cli import run_cli

    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs" / "ppo_hopper.yaml")
    tiny = ["--data.init_args.unroll_length=64", "--data.init_args.steps_per_epoch=2", "--data.init_args.eval_episodes=1",
            "--data.init_args.eval_num_envs=1", "--data.init_args.env_kwargs={max_episode_steps: 50}",
            "--data.init_args.eval_env_kwargs={max_episode_steps: 50}", "--trainer.enable_progress_bar=false",
            "--model.init_args.ppo_epochs=1", "--model.init_args.num_minibatches=2"]
    first = run_cli(["fit", "--config", config, *tiny, "--trainer.max_epochs=1"])
    count = float(first.model.policy.normalizer.stats["obs"].count)
    last = tmp_path / "runs" / "ppo_hopper" / "checkpoints" / "last.ckpt"
    resumed = run_cli(["fit", "--config", config, *tiny, "--trainer.max_epochs=2", f"--ckpt_path={last}"])
    assert int(resumed.model.frames) == 2 * 2 * 64
    assert float(resumed.model.policy.normalizer.stats["obs"].count) == pytest.approx(count + 2 * 64, abs=1e-3)


def test_lightning_collect_records_continuous_episodes_with_how_they_ended(tmp_path, monkeypatch):
    from lit_rlseq.cli import run_cli
    from lit_rlseq.rollouts import RolloutStore

    monkeypatch.chdir(tmp_path)
    run_cli(["collect", "--model=lit_rlseq.loops.MLPPPO", "--data=lit_rlseq.loops.CollectDataModule",
             "--data.init_args.env=toy:reach", f"--data.init_args.store={tmp_path / 'store'}",
             "--data.init_args.episodes=12", "--data.init_args.run_id=reach", "--data.init_args.num_envs=4",
             "--data.init_args.greedy=false", "--data.init_args.env_kwargs={max_steps: 6}",
             "--trainer.enable_progress_bar=false"])
    store = RolloutStore(tmp_path / "store")
    refs = store.episodes(run_id="reach")
    assert len(refs) == 12
    for ref in refs:
        episode = store.load(ref).fields
        assert episode["action"].shape == (ref.length, 1) and episode["action"].dtype == np.float32
        assert np.abs(episode["action"]).max() <= 1.0  # as executed
        assert episode["behaviour_logits"].shape == (ref.length, 2)
        assert episode["behaviour_log_prob"].shape == episode["value"].shape == (ref.length,)
        final = episode["obs/obs"][-1]
        assert ref.tags.metadata["terminated"] == bool(abs(final[0] - final[1]) < 0.05)
        assert ref.tags.metadata["terminated"] or ref.length == 6


@pytest.mark.slow
def test_ppo_with_an_asynchronous_actor():
    L.seed_everything(0)
    dm = OnlineDataModule(env="toy:reach", num_envs=4, unroll_length=16, steps_per_epoch=4, num_workers=1)
    module = MLPPPO(obs_dim=dm.obs_dim, action_dim=dm.action_dim, ppo_epochs=2, num_minibatches=4)
    trainer = L.Trainer(max_epochs=1, **QUIET)
    trainer.fit(module, datamodule=dm)
    assert int(module.frames) == 4 * 4 * 16
    assert 0 <= float(trainer.callback_metrics["perf/policy_lag"]) <= 2  # one worker, prefetch 2
    # The actor's copy carries the observation statistics the learner published.
    assert torch.equal(dm._publisher.shared.normalizer.stats["obs"].mean, module.policy.normalizer.stats["obs"].mean)
