"""The FWP Atari agent: cores, state handling, bad input, and a short learning test on a tiny memory task."""

import lightning as L
import pytest
import torch

from lit_rlseq.envs import registry
from lit_rlseq.errors import UserError
from lit_rlseq.fwp import CORES, FWPAtari
from lit_rlseq.loops import OnlineDataModule
from lit_rlseq.loops.collector import Collector

TINY = dict(num_layers=1, num_heads=2, d_head=8, d_model=16, d_ff=32, lstm_hidden=16, torso_channels=(4, 4),
            torso_features=16)


def batch(t=6, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = {"pixels": torch.randint(0, 256, (t, b, 4, 84, 84), generator=g, dtype=torch.uint8),
           "last_reward": torch.randn(t, b, generator=g) * 2}
    first = torch.zeros(t, b, dtype=torch.bool)
    first[0, 0] = first[3, 1] = True
    return obs, first


@pytest.mark.parametrize("core", CORES)
def test_one_unroll_equals_step_by_step_acting(core):
    """The learner's unroll (fast path over T) gives what the actors computed one step at a time."""
    torch.manual_seed(0)
    agent = FWPAtari(num_actions=5, core=core, **TINY).policy.double()
    obs, first = batch()
    obs = {"pixels": obs["pixels"], "last_reward": obs["last_reward"].double()}
    state0 = tuple(s.double() for s in agent.initial_state(3))
    state0 = tuple(s + 0.1 * torch.randn_like(s) for s in state0)
    whole = agent(obs, first, state0)
    state, logits, values = state0, [], []
    for t in range(6):
        out = agent({k: v[t:t + 1] for k, v in obs.items()}, first[t:t + 1], state)
        logits.append(out.logits), values.append(out.value)
        state = out.state
    assert whole.logits.shape == (6, 3, 5) and whole.value.shape == (6, 3)
    torch.testing.assert_close(whole.logits, torch.cat(logits))
    torch.testing.assert_close(whole.value, torch.cat(values))
    for a, b in zip(whole.state, state):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("core", ["lt", "delta", "rdn", "delta_rnn"])
def test_fast_and_naive_cores_agree(core):
    torch.manual_seed(0)
    fast = FWPAtari(num_actions=4, core=core, impl="fast", **TINY).policy
    naive = FWPAtari(num_actions=4, core=core, impl="naive", **TINY).policy
    naive.load_state_dict(fast.state_dict())
    obs, first = batch()
    a, b = fast(obs, first, fast.initial_state(3)), naive(obs, first, naive.initial_state(3))
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("core", ["lstm", "rdn"])
def test_episode_start_forgets_the_past(core):
    torch.manual_seed(0)
    agent = FWPAtari(num_actions=4, core=core, **TINY).policy
    obs, first = batch()
    first[3, :] = True
    out_a = agent(obs, first, agent.initial_state(3))
    obs_b = {k: v.clone() for k, v in obs.items()}
    obs_b["pixels"][:3] = 255 - obs_b["pixels"][:3]
    out_b = agent(obs_b, first, tuple(s + 1 for s in agent.initial_state(3)))
    torch.testing.assert_close(out_a.logits[3:], out_b.logits[3:])
    assert not torch.allclose(out_a.logits[:3], out_b.logits[:3])


def test_bad_input_errors():
    with pytest.raises(UserError, match="core='gru' is not one of feedforward, lstm, lt, delta, rdn, delta_rnn"):
        FWPAtari(num_actions=4, core="gru")
    with pytest.raises(UserError, match="num_actions from an Atari env"):
        FWPAtari(core="lt")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="impl=cuda needs a CUDA GPU"):
            FWPAtari(num_actions=4, core="lt", impl="cuda")
    module = FWPAtari(num_actions=4, core="lt", **TINY)
    with pytest.raises(UserError, match=r"trained with model.init_args.core='rdn'.*--model.init_args.core=rdn"):
        module.on_load_checkpoint({"hyper_parameters": {"core": "rdn", "num_actions": 4}})


def test_cli_links_num_actions_from_the_game(tmp_path, monkeypatch):
    from lit_rlseq.cli import run_cli

    monkeypatch.chdir(tmp_path)
    cli = run_cli(["fit", "--config", str(__import__("pathlib").Path(__file__).parents[1] / "configs/fwp_atari.yaml"),
                   "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false", "--model.init_args.core=lt",
                   "--data.init_args.env=atari:MsPacman", "--data.init_args.num_workers=0",
                   "--data.init_args.num_envs=2", "--data.init_args.unroll_length=3", "--data.init_args.eval_envs={}"])
    assert cli.model.policy.num_actions == 9  # MsPacman's minimal action set


@pytest.mark.slow
@pytest.mark.parametrize("core", ["delta"])
def test_a_fast_weight_agent_learns_to_remember_a_cue(core, monkeypatch):
    """IMPALA + the FWP agent on a 4-step memory task: greedy return goes from ~0 (chance) to > 0.8."""
    monkeypatch.setitem(registry.FAMILIES, "cue", "tests.cue_env:make_vector_env")
    L.seed_everything(0)
    dm = OnlineDataModule(env="cue", num_envs=16, unroll_length=8, steps_per_epoch=60, eval_envs={}, seed=0)
    module = FWPAtari(num_actions=dm.num_actions, core=core, frame_size=12, lr=2e-3, lr_schedule="constant", entropy_cost=0.003,
                      rmsprop_eps=1e-5, **TINY)
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    collector = Collector(registry.make_vector_env("cue", num_envs=20), seed=0)
    collector.reset(seed=123)
    stats = collector.run_episodes(module.policy, 5, greedy=True)
    assert len(stats) == 100
    assert float(stats.episode_return.mean()) > 0.8


def test_test_mode_counts_lives_per_run_and_noneg_discards_negative_episodes(monkeypatch):
    from lit_rlseq.fwp.evaluate import run_test_mode

    monkeypatch.setitem(registry.FAMILIES, "cue", "tests.cue_env:make_vector_env")
    report = run_test_mode("random", "cue", runs=2, episodes=12, num_envs=4, seed=0)
    assert [len(r) for r in report.life_returns] == [12, 12]
    assert {-1.0, 1.0} == {x for r in report.life_returns for x in r}  # random answers: both outcomes
    noneg = run_test_mode("random", "cue", runs=1, episodes=12, num_envs=4, noneg=True, seed=0)
    assert len(noneg.life_returns[0]) == 12 and min(noneg.life_returns[0]) >= 0 and noneg.discarded > 0
    torch.manual_seed(0)
    agent = FWPAtari(num_actions=2, core="rdn", frame_size=12, **TINY).policy
    greedy = run_test_mode(agent, "cue", runs=1, episodes=4, num_envs=2, seed=0)
    assert greedy.summary()["episodes"] == 4


def test_test_mode_reports_full_games_on_atari():
    from lit_rlseq.fwp.evaluate import run_test_mode

    report = run_test_mode("random", "atari:Breakout", runs=1, episodes=10, num_envs=2, seed=0)
    summary = report.summary()
    assert summary["episodes"] == 10 and summary["games"] >= 1  # 5 lives per game, 5 per env
    assert summary["game_return_mean"] >= summary["life_return_mean"]
