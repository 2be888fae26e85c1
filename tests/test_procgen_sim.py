"""The generative simulator: straight-through actions, frozen agent, masking, data, errors."""

import numpy as np
import pytest
import torch

from lit_rlseq.errors import DataError, MissingArtifactError
from lit_rlseq.nn.recurrent_impala import RecurrentImpalaConfig
from lit_rlseq.procgen_sim.data import SimulatorDataModule
from lit_rlseq.procgen_sim.model import Simulator, SimulatorConfig, gaussian_kl, straight_through
from lit_rlseq.procgen_sim.module import SimulatorModule, load_agent, simulator_losses
from lit_rlseq.rollouts import RolloutStore
from tests.procgen_fixtures import SMALL_AGENT, save_agent_checkpoint

AGENT = SMALL_AGENT
TINY = dict(agent_hidden=16, agent_channels=(4, 8, 8), latent=8, encoder_channels=(4, 4, 4, 4), encoder_lstm=16,
            mlp_hidden=16, env_hidden=16, decoder_channels=4, num_init=3, num_sim=6)


@pytest.fixture
def agent_ckpt(procgen_agent_ckpt):
    return procgen_agent_ckpt


@pytest.fixture
def store(procgen_store):
    return procgen_store


def tiny_module(agent_ckpt, **kw):
    return SimulatorModule(str(agent_ckpt), **{**TINY, **kw})


def batch_of(store, num_sim=6, batch_size=4):
    dm = SimulatorDataModule(str(store), batch_size=batch_size, num_init=3, num_sim=num_sim, stride=4, val_fraction=0.25)
    dm.setup("fit")
    return dm, next(iter(dm.train_dataloader()))


def test_straight_through_is_one_hot_forward_and_softmax_backward():
    logits = torch.tensor([[0.5, 2.0, -1.0]], requires_grad=True)
    action = straight_through(logits)
    assert torch.equal(action.detach(), torch.tensor([[0.0, 1.0, 0.0]]))
    weights = torch.tensor([[1.0, -2.0, 3.0]])
    (action * weights).sum().backward()
    probe = logits.detach().clone().requires_grad_(True)
    (torch.softmax(probe, -1) * weights).sum().backward()
    torch.testing.assert_close(logits.grad, probe.grad)
    assert logits.grad.abs().sum() > 0


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() == 0
    torch.testing.assert_close(gaussian_kl(torch.ones(1, 2), torch.zeros(1, 2)), torch.tensor([1.0]))


def test_recording_holds_hidden_states_fed_into_every_step(store, agent_ckpt):
    agent = load_agent(agent_ckpt, AGENT)
    with RolloutStore(store) as s:
        assert {"hx", "value", "obs/rgb", "obs/level_seed", "behaviour_logits"} <= set(s.schema)
        episode = s.load(s.episodes()[0])
    hx, frames = episode.fields["hx"], episode.fields["obs/rgb"]
    assert hx.shape == (episode.length, 16) and frames.shape == (episode.length + 1, 3, 64, 64)
    np.testing.assert_allclose(hx[0], agent.h0.detach().numpy(), rtol=1e-6)  # a fresh episode starts from h0
    # Replaying the frames reproduces the recorded states and logits.
    first = torch.zeros(episode.length, 1, dtype=torch.bool)
    first[0] = True
    out = agent({"rgb": torch.from_numpy(frames[:-1])[:, None]}, first, agent.initial_state(1))
    np.testing.assert_allclose(out.extras["hx"][:, 0].detach().numpy(), hx, atol=1e-4)
    np.testing.assert_allclose(out.logits[:, 0].detach().numpy(), episode.fields["behaviour_logits"], atol=1e-4)
    assert len(set(episode.fields["obs/level_seed"].tolist())) == 1


def test_batches(store):
    dm, batch = batch_of(store)
    assert batch["frames"].shape == (4, 8, 3, 64, 64) and batch["frames"].max() <= 1.0
    assert batch["hx"].shape == (4, 8, 16) and batch["log_probs"].shape == (4, 8, 15)
    torch.testing.assert_close(batch["log_probs"].exp().sum(-1)[batch["mask"]], torch.ones(int(batch["mask"].sum())))
    # done marks the last step of an episode, and nothing after it is real.
    for row in range(4):
        mask, done = batch["mask"][row], batch["done"][row]
        assert done.sum() <= 1 and (not done.any() or not mask[int(done.argmax()) + 1 :].any())
    assert set(dm.train_dataset.window_episode) .isdisjoint(dm.val_dataset.window_episode)


def test_agent_stays_frozen_and_simulator_learns(agent_ckpt, store):
    module = tiny_module(agent_ckpt)
    _, batch = batch_of(store)
    agent_before = {k: v.clone() for k, v in module.agent.state_dict().items()}
    sim_before = {k: v.clone() for k, v in module.simulator.state_dict().items()}
    optimizer = module.configure_optimizers()
    assert not any(p.requires_grad for p in module.agent.parameters())
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in module.simulator.parameters()}
    rollout = module.simulate_batch(batch)
    losses = simulator_losses(rollout, batch, 3)
    # The hidden-state loss reaches the observation decoder through the frozen agent.
    grads = torch.autograd.grad(losses["hx"], module.simulator.obs_decoder.out.weight, retain_graph=True)
    assert grads[0].abs().sum() > 0
    sum(losses.values()).backward()
    optimizer.step()
    for k, v in module.agent.state_dict().items():
        assert torch.equal(v, agent_before[k]), k
    assert any(not torch.equal(v, sim_before[k]) for k, v in module.simulator.state_dict().items())


def test_losses_ignore_everything_after_done(agent_ckpt, store):
    module = tiny_module(agent_ckpt)
    module.eval()
    _, batch = batch_of(store)
    batch = {k: v[:1].clone() for k, v in batch.items()}
    batch["mask"][0, 5:] = False  # pretend the episode ended at step 4 (the simulated steps are 2..7)
    batch["done"][0] = 0.0
    batch["done"][0, 4] = 1.0
    torch.manual_seed(0)
    rollout = module.simulate_batch(batch, sample=False)
    before = simulator_losses(rollout, batch, 3)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["frames"][0, 5:] = torch.rand_like(changed["frames"][0, 5:])
    changed["hx"][0, 5:] += 10
    changed["log_probs"][0, 5:] -= 3
    changed["reward"][0, 5:] = 7.0
    changed["done"][0, 5:] = 1.0
    after = simulator_losses(rollout, changed, 3)
    for name in before:
        torch.testing.assert_close(after[name], before[name])
    changed["reward"][0, 4] = 7.0  # the done transition itself still counts for reward and done
    assert simulator_losses(rollout, changed, 3)["reward"] > before["reward"]


def test_free_running_uses_the_agents_straight_through_actions(agent_ckpt):
    module = tiny_module(agent_ckpt)
    sim: Simulator = module.simulator
    z = sim.prior(2, generator=torch.Generator().manual_seed(0))
    rollout = sim.simulate(z, module.agent)
    assert rollout.obs.shape == (2, 6, 3, 64, 64) and rollout.action.shape == (2, 6, 15)
    assert torch.equal(rollout.action.argmax(-1), rollout.logits.argmax(-1))


def test_store_without_hidden_states_names_the_collect_command(tmp_path, store):
    with RolloutStore(store) as s:  # the same episodes recorded without the policy's outputs
        episodes = [s.load(ref) for ref in s.episodes()[:2]]
    with RolloutStore(tmp_path / "plain").writer({"env": "procgen:coinrun"}) as writer:
        for episode in episodes:
            for name in ("hx", "value"):
                del episode.fields[name]
            writer.append(episode)
    with pytest.raises(DataError, match="lightning collect --config configs/procgen_collect.yaml"):
        SimulatorDataModule(str(tmp_path / "plain")).setup("fit")


def test_window_longer_than_every_episode(store):
    with pytest.raises(DataError, match="fewer than a training sequence"):
        SimulatorDataModule(str(store), num_sim=100_000).setup("fit")


def test_agent_checkpoint_must_match_the_agent_sizes(tmp_path, agent_ckpt):
    with pytest.raises(DataError, match="does not match the simulator's agent sizes"):
        tiny_module(agent_ckpt, agent_hidden=32)
    with pytest.raises(MissingArtifactError, match="procgen_agent.yaml"):
        tiny_module(tmp_path / "none.ckpt")
    torch.save({"weights": 1}, tmp_path / "bad.ckpt")
    with pytest.raises(DataError, match="not a Lightning checkpoint"):
        tiny_module(tmp_path / "bad.ckpt")


def test_config_sizes():
    with pytest.raises(Exception, match="divisible"):
        SimulatorConfig(encoder_channels=(4,) * 7)


def test_ppo_minibatches_replay_whole_recurrent_sequences():
    """PPO's column minibatches re-run each sequence from the unroll's initial state: the procgen agent gives
    back exactly the logits it acted with (hidden states and resets intact)."""
    from lit_rlseq.envs.registry import make_vector_env
    from lit_rlseq.loops.collector import Collector
    from lit_rlseq.loops.ppo import minibatch_indices
    from lit_rlseq.procgen_sim.agent import ProcgenAgent
    from tests.procgen_fixtures import ENV, ENV_KWARGS

    module = ProcgenAgent(channels=(4, 8, 8), hidden=16, num_minibatches=2)
    env = make_vector_env(ENV, num_envs=4, seed=0, **ENV_KWARGS)
    collector = Collector(env, seed=0)
    collector.reset(0)
    collector.unroll(module.policy, 5)  # so the next unroll starts mid-episode, from a non-initial state
    unroll = collector.unroll(module.policy, 12)
    env.close()
    assert module.split(unroll) == "columns"
    old_log_prob, old_value, advantages, returns = module.advantages(unroll)
    seen = []
    for index in minibatch_indices(unroll.batch_size, 2, generator=torch.Generator().manual_seed(0)):
        batch = module.minibatch(unroll, "columns", index, old_log_prob, old_value, advantages, returns)
        assert batch.obs["rgb"].shape[:2] == (12, 2) and batch.initial_state[0].shape == (2, 16)
        with torch.no_grad():
            out, _ = module.learner_forward(batch)
        torch.testing.assert_close(out.logits, batch.behaviour_logits, atol=1e-5, rtol=1e-5)
        seen += index.tolist()
    assert sorted(seen) == [0, 1, 2, 3]


def test_store_recorded_by_another_agent_is_refused(procgen_store, procgen_agent_ckpt, tmp_path):
    import lightning as L

    other = tmp_path / "other.ckpt"
    save_agent_checkpoint(other, RecurrentImpalaConfig(channels=(4, 8, 8), hidden=32))
    module = SimulatorModule(str(other), **{**TINY, "agent_hidden": 32})
    dm = SimulatorDataModule(str(procgen_store), batch_size=2, num_init=3, num_sim=6, stride=4, val_fraction=0.25)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(DataError, match="hidden states of 16 dimensions but the agent has 32"):
        trainer.fit(module, datamodule=dm)
