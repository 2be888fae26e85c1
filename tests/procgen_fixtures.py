"""Small procgen artefacts for the simulator tests: a random agent checkpoint and a store recorded with it."""

from pathlib import Path

import torch

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.loops.collect import recorded_episode
from lit_rlseq.loops.collector import Collector
from lit_rlseq.nn.recurrent_impala import RecurrentImpala, RecurrentImpalaConfig
from lit_rlseq.rollouts import EpisodeTags, RolloutStore

ENV = "procgen:coinrun"
ENV_KWARGS = {"distribution_mode": "easy", "num_levels": 20, "start_level": 0}
SMALL_AGENT = RecurrentImpalaConfig(channels=(4, 8, 8), hidden=16)  # small, so recording in tests is quick
SMALL_AGENT_ARGS = ["--model.init_args.agent_hidden=16", "--model.init_args.agent_channels=[4, 8, 8]"]


def save_agent_checkpoint(path: Path, config: RecurrentImpalaConfig | None = None, seed: int = 0) -> RecurrentImpala:
    """A Lightning-style checkpoint holding a (random) agent as ``policy``."""
    torch.manual_seed(seed)
    agent = RecurrentImpala(config or RecurrentImpalaConfig())
    torch.save({"state_dict": {f"policy.{k}": v for k, v in agent.state_dict().items()}}, path)
    return agent


def record(store: Path, agent, episodes: int, record_outputs: bool = True, num_envs: int = 4, seed: int = 0) -> None:
    env = make_vector_env(ENV, num_envs=num_envs, seed=seed, **ENV_KWARGS)
    collector = Collector(env, seed=seed)
    collector.reset(seed)
    tags = EpisodeTags(run_id="test", env=ENV, agent="random")
    with RolloutStore(store).writer({"env": ENV}) as writer:
        collector.run_episodes(agent, -(-episodes // num_envs), greedy=False, max_env_steps=5000,
                               on_episode=lambda e: writer.append(recorded_episode(e, tags)),
                               record_outputs=record_outputs)
    env.close()


def procgen_command(name: str, tmp_path: Path, request) -> list[str]:
    """The smoke-test command line of a procgen config (for tests/test_configs.py)."""
    if name == "procgen_sim":
        store, agent = request.getfixturevalue("procgen_store"), request.getfixturevalue("procgen_agent_ckpt")
        return ["fit", f"--data.init_args.path={store}", f"--model.init_args.agent_checkpoint={agent}",
                "--data.init_args.batch_size=2", *SMALL_AGENT_ARGS]
    small_agent = ["--model.init_args.channels=[4, 8, 8]", "--model.init_args.hidden=16"]
    if name == "procgen_agent":  # two short sequences per batch, one per minibatch
        return ["fit", "--data.init_args.num_envs=2", "--data.init_args.unroll_length=8",
                "--model.init_args.num_minibatches=2", "--data.init_args.eval_episodes=2",
                "--data.init_args.eval_num_envs=2", "--data.init_args.env_kwargs={num_levels: 20}", *small_agent]
    if name == "procgen_collect":
        return ["collect", f"--data.init_args.store={tmp_path / 'store'}", "--data.init_args.episodes=2",
                "--data.init_args.num_envs=2", f"--data.init_args.video={tmp_path / 'episodes.gif'}",
                "--data.init_args.env_kwargs={distribution_mode: easy, num_levels: 20}", *small_agent]
    raise KeyError(f"no smoke-test command for configs/{name}.yaml")
