"""D4RL-style datasets made on Gymnasium MuJoCo from a PPO run's checkpoints (D4RL itself cannot be downloaded).

    python -m lit_rlseq.trajectory.datasets --ppo-run runs/tt_mujoco/ppo --store runs/tt_mujoco/datasets

Given the checkpoints of a behaviour-policy run (``lightning fit --config configs/ppo_hopper.yaml`` saves one
per epoch), the episodes are recorded with the stochastic policy, tagged by ``partition``:

* ``replay``: ``replay_episodes`` episodes of every checkpoint in training order (the policies the learner went
  through; ``epoch`` tag = the checkpoint's epoch). Their mean returns pick the medium policy.
* ``random``: uniformly random actions.
* ``expert``: the last checkpoint.
* ``medium``: the first checkpoint whose replay episodes average at least a third of the expert's return.
* ``medium-replay``: the replay episodes of every checkpoint up to the medium one (copied under this tag).
* ``medium-expert``: not recorded: select ``{partition: [medium, expert]}`` (their union, as in D4RL).

D4RL's medium-replay is the replay buffer of one SAC run; ours holds episodes of every PPO checkpoint up to
the medium one, sampled after training (fresh episodes, not the exact ones the learner saw).
Episodes have the fields ``obs`` (L + 1 rows), ``action``, ``reward``, ``terminal``, ``timeout``. Every stage
is topped up to its count, so an interrupted run continues where it stopped. ``<store>_summary.json`` beside
the store lists each dataset's episodes, transitions and returns (raw and D4RL-normalised).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import MissingArtifactError, UserError
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore
from lit_rlseq.trajectory.evaluate import mean_and_standard_error, normalized_score, recorded_episode, run_round

DATASETS = ("random", "medium", "medium-replay", "expert", "medium-expert")
SELECT = {name: {"partition": name} for name in DATASETS if name != "medium-expert"}
SELECT["medium-expert"] = {"partition": ["medium", "expert"]}


def checkpoints_by_epoch(run: Path) -> list[tuple[int, Path]]:
    """The ``epoch=K-step=S.ckpt`` files of a run's ``checkpoints`` folder, in epoch order."""
    folder = run / "checkpoints"
    found = []
    for path in folder.glob("epoch=*.ckpt"):
        match = re.match(r"epoch=(\d+)", path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise MissingArtifactError(
            "behaviour-policy checkpoints (epoch=*.ckpt)", str(folder),
            produce_with=f"lightning fit --config configs/ppo_hopper.yaml --trainer.logger.init_args.name={run.name}",
        )
    return sorted(found)


class RandomAgent:
    """Uniform random actions in the env's bounds (the D4RL ``random`` datasets)."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int):
        self.low, self.high = low, high
        self.rng = np.random.default_rng(seed)

    def reset(self, n_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, size=(len(obs), *self.low.shape)).astype(np.float32)

    def observe(self, obs, action, reward, active) -> None:
        pass


def policy_episodes(checkpoint: Path, env_id: str, episodes: int, num_envs: int, seed: int) -> list[dict[str, Any]]:
    """``episodes`` episodes of a PPO checkpoint's stochastic policy, as store fields."""
    from lit_rlseq.loops.collector import Collector

    policy = load_ppo_policy(checkpoint)
    n_envs = min(num_envs, episodes)
    quota = np.full(n_envs, episodes // n_envs)
    quota[: episodes % n_envs] += 1
    env = make_vector_env(env_id, num_envs=n_envs, seed=seed)
    recorded: list[dict[str, Any]] = []
    try:
        collector = Collector(env, seed=seed)
        collector.reset(seed)

        def keep(episode) -> None:
            length = len(episode.reward)
            terminal, timeout = np.zeros(length, bool), np.zeros(length, bool)
            terminal[-1], timeout[-1] = episode.terminated, not episode.terminated
            recorded.append({"obs": episode.obs["obs"], "action": episode.action, "reward": episode.reward,
                             "terminal": terminal, "timeout": timeout})

        collector.run_episodes(policy, quota, greedy=False, on_episode=keep)
    finally:
        env.close()
    return recorded


def load_ppo_policy(checkpoint: Path):
    """The policy of an ``MLPPPO`` checkpoint written by ``lightning fit``.

    Not ``MLPPPO.load_from_checkpoint``: checkpoints written before the CLI kept the data-linked names a model
    does not take out of its hyperparameters hold them as None, and MLPPPO refuses unknown keywords.
    """
    import torch

    from lit_rlseq.loops.ppo import MLPPPO

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    accepted = set(inspect.signature(MLPPPO.__init__).parameters) | set(inspect.signature(MLPPPO.__mro__[1].__init__).parameters)
    hparams = {k: v for k, v in saved["hyper_parameters"].items() if k in accepted}
    module = MLPPPO(**hparams)
    module.load_state_dict(saved["state_dict"])
    return module.policy.eval()


def random_episodes(env_id: str, episodes: int, num_envs: int, seed: int) -> list[dict[str, Any]]:
    env = make_vector_env(env_id, num_envs=1)
    low, high = env.single_action_space.low, env.single_action_space.high
    env.close()
    fields = []
    for k, start in enumerate(range(0, episodes, num_envs)):
        n = min(num_envs, episodes - start)
        agent = RandomAgent(low, high, seed + k)
        for rec in run_round(agent, env_id, n, seed + 1000 * k, progress=False):
            fields.append(recorded_episode(rec, EpisodeTags(run_id="tmp"), env_id).fields)
    return fields


def write(store: RolloutStore, fields: list[dict[str, Any]], tags: EpisodeTags, env_id: str) -> None:
    with store.writer({"env": env_id}) as writer:
        for i, f in enumerate(fields):
            episode_return = float(np.sum(f["reward"]))
            metadata = {**tags.metadata, "return": episode_return,
                        "score": float(normalized_score(episode_return, env_id))}
            writer.append(Episode(dict(f), EpisodeTags(**{**tags.__dict__, "seed": tags.seed + i, "metadata": metadata})))


def returns_of(store: RolloutStore, **select: Any) -> np.ndarray:
    return np.array([ref.tags.metadata["return"] for ref in store.episodes(**select)]) if store.path.exists() else np.array([])


def make_datasets(ppo_run: Path, store_path: Path, env_id: str, episodes: int = 50, replay_episodes: int = 10,
                  num_envs: int = 10, seed: int = 0) -> dict[str, Any]:
    """Record every dataset (see the module docstring) into ``store_path``; returns and writes the summary."""
    if episodes < 1 or replay_episodes < 1:
        raise UserError(f"episodes ({episodes}) and replay_episodes ({replay_episodes}) must be >= 1")
    checkpoints = checkpoints_by_epoch(ppo_run)
    store = RolloutStore(store_path)

    def count(**select: Any) -> int:
        return store.count(**select) if store_path.exists() and store.schema is not None else 0

    def top_up(partition: str, make, epoch: int = 0, want: int = episodes) -> None:
        have = count(partition=partition, epoch=epoch)
        if have < want:
            print(f"[datasets] {partition} (epoch {epoch}): recording {want - have} episodes", flush=True)
            tags = EpisodeTags(run_id="tt_datasets", partition=partition, env=env_id, epoch=epoch,
                               seed=seed + 100_000 * epoch + have, agent=partition)
            write(store, make(want - have, tags.seed), tags, env_id)

    top_up("random", lambda n, s: random_episodes(env_id, n, num_envs, s))
    for epoch, checkpoint in checkpoints:
        top_up("replay", lambda n, s, c=checkpoint: policy_episodes(c, env_id, n, num_envs, s), epoch=epoch,
               want=replay_episodes)
    last_epoch, last = checkpoints[-1]
    top_up("expert", lambda n, s: policy_episodes(last, env_id, n, num_envs, s), epoch=last_epoch)
    expert_return = returns_of(store, partition="expert").mean()
    means = {epoch: returns_of(store, partition="replay", epoch=epoch).mean() for epoch, _ in checkpoints}
    medium_epoch = next((e for e, _ in checkpoints if means[e] >= expert_return / 3), last_epoch)
    medium = dict(checkpoints)[medium_epoch]
    top_up("medium", lambda n, s: policy_episodes(medium, env_id, n, num_envs, s), epoch=medium_epoch)
    replay_refs = [ref for ref in store.episodes(partition="replay") if ref.tags.epoch <= medium_epoch]
    if count(partition="medium-replay") < len(replay_refs):  # copied once, all together
        if count(partition="medium-replay"):
            raise UserError(f"{store_path}: medium-replay is incomplete; delete the store and make it again")
        with store.writer() as writer:
            for ref in replay_refs:
                episode = store.load(ref)
                writer.append(Episode(episode.fields, EpisodeTags(**{**ref.tags.__dict__, "partition": "medium-replay"})))
    summary = summarise(store, env_id)
    summary["behaviour_policy"] = {"run": str(ppo_run), "medium_epoch": medium_epoch, "expert_epoch": last_epoch,
                                   "replay_mean_return_by_epoch": {str(k): float(v) for k, v in means.items()}}
    summary_path(store_path).write_text(json.dumps(summary, indent=2) + "\n")
    store.close()
    return summary


def summary_path(store_path: Path) -> Path:
    """Beside the store: a store directory holds shards only."""
    return store_path.parent / f"{store_path.name}_summary.json"


def summarise(store: RolloutStore, env_id: str) -> dict[str, Any]:
    """Episodes, transitions and returns (raw and normalised, mean ± s.e.) of every dataset in the store."""
    out: dict[str, Any] = {"env": env_id, "datasets": {}}
    for name in DATASETS:
        refs = store.episodes(**SELECT[name])
        if not refs:
            continue
        returns = np.array([ref.tags.metadata["return"] for ref in refs])
        mean, se = mean_and_standard_error(returns)
        score, score_se = mean_and_standard_error(normalized_score(returns, env_id))
        out["datasets"][name] = {"episodes": len(refs), "transitions": int(sum(ref.length for ref in refs)),
                                 "return": mean, "return_se": se, "score": score, "score_se": score_se}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_rlseq.trajectory.datasets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppo-run", type=Path, required=True, help="the behaviour-policy run (its checkpoints/)")
    parser.add_argument("--store", type=Path, required=True, help="the rollout store to record into")
    parser.add_argument("--env", default="mujoco:Hopper-v5")
    parser.add_argument("--episodes", type=int, default=50, help="episodes of random, medium and expert")
    parser.add_argument("--replay-episodes", type=int, default=10, help="episodes per checkpoint for replay")
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = make_datasets(args.ppo_run, args.store, args.env, args.episodes, args.replay_episodes,
                                args.num_envs, args.seed)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
