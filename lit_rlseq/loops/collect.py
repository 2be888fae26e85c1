"""The collection stage: run a policy and record its episodes into a rollout store (``lightning collect``).

``CollectDataModule`` turns "N episodes of this env, tagged so" into a list of ``CollectionRequest`` batches for
a predict run; the module's ``predict_step`` runs each with its policy. The target N counts the episodes of
``run_id`` (and ``partition``) already in the store, so an interrupted or repeated collection only adds what
is missing; every finished episode is flushed to disk before the next one starts (see lit_rlseq.rollouts).
Under DDP every rank collects its share into its own shard, with its own seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import UserError
from lit_rlseq.loops.collector import Collector, Policy, RecordedEpisode
from lit_rlseq.loops.online import env_shapes, stream_seed
from lit_rlseq.loops.unroll import EpisodeStats
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore, RolloutWriter

COLLECT_STREAM = 2_000_000  # keeps collection seeds apart from training and evaluation seeds


def episode_fields(episode: RecordedEpisode) -> dict[str, np.ndarray]:
    """How a recorded episode is laid out in a store: ``obs/<key>`` (L+1 rows); action, reward, the behaviour
    distribution's parameters (``behaviour_logits``), the log-probability of each action and the policy's value
    estimate (``behaviour_log_prob``, ``value``: L rows), and with recorded policy outputs each of the network's
    extra outputs (e.g. ``hx``, L rows). Continuous actions are stored as executed (clipped)."""
    fields = {
        **{f"obs/{k}": v for k, v in episode.obs.items()},
        "action": episode.action,
        "reward": episode.reward,
        "behaviour_logits": episode.behaviour_logits,
        **episode.outputs,
    }
    if episode.behaviour_log_prob is not None:
        fields["behaviour_log_prob"] = episode.behaviour_log_prob
    if episode.value is not None:
        fields["value"] = episode.value
    return fields


def recorded_episode(episode: RecordedEpisode, tags: EpisodeTags) -> Episode:
    """A recorded episode as stored: its fields, and the tags plus its return, success and whether it ended by
    termination (``terminated``: False means a time limit cut it, D4RL's ``timeouts``) in tag metadata."""
    success = None if np.isnan(episode.success) else bool(episode.success)
    metadata = {**tags.metadata, "return": float(episode.reward.sum()), "success": success,
                "terminated": bool(episode.terminated)}
    return Episode(episode_fields(episode), replace(tags, metadata=metadata))


@dataclass
class CollectionRequest:
    """One predict batch: finish ``episodes_per_env[i]`` fresh episodes in env i and write them all."""

    collector: Collector = field(repr=False)
    episodes_per_env: np.ndarray = field(repr=False)
    writer: RolloutWriter = field(repr=False)
    tags: EpisodeTags
    greedy: bool
    seed: int
    record_outputs: bool = False

    def run(self, policy: Policy) -> EpisodeStats:
        self.collector.reset(self.seed)
        return self.collector.run_episodes(policy, self.episodes_per_env, greedy=self.greedy, on_episode=self._write,
                                           record_outputs=self.record_outputs)

    def _write(self, episode: RecordedEpisode) -> None:
        self.writer.append(recorded_episode(episode, self.tags))


class CollectDataModule(L.LightningDataModule):
    def __init__(
        self,
        env: str,
        store: str,
        episodes: int,
        run_id: str,
        env_kwargs: dict[str, Any] | None = None,
        partition: str = "teacher",
        split: str = "",
        agent: str = "",
        epoch: int = 0,
        greedy: bool = True,
        num_envs: int = 32,
        episodes_per_batch: int = 100,
        seed: int = 0,
        record_outputs: bool = False,
        video: str | None = None,
        video_episodes: int = 4,
        video_key: str = "rgb",
    ):
        """
        Args:
            env: environment id (see lit_rlseq.envs.registry).
            store: rollout store directory to append to (created if missing).
            episodes: how many episodes tagged ``run_id`` / ``partition`` the store should hold at the end.
            run_id: tag identifying this collection (reruns with the same run_id resume it).
            env_kwargs: keyword arguments for the env factory (e.g. ``max_steps``: the episode cap).
            partition, split, agent, epoch: more episode tags (split: e.g. "train" / "dev").
            greedy: act with the argmax action (demonstrations) rather than sampling.
            num_envs: environments stepped together.
            episodes_per_batch: episodes per predict batch (the progress bar advances per batch).
            seed: base seed; each rank and each restart of the collection draws its own.
            record_outputs: also record the policy's value and its extra outputs at every step (a recurrent
                agent's hidden state fed into each step, ``hx``), as fields ``value`` and ``hx``.
            video: write a GIF of the run's first ``video_episodes`` episodes here when collection ends
                (frames from ``obs/<video_key>``, uint8 [3, H, W] or [H, W, 3]).
        """
        super().__init__()
        if episodes < 1 or num_envs < 1 or episodes_per_batch < 1:
            raise UserError("data.episodes, data.num_envs and data.episodes_per_batch must all be >= 1")
        self.env_id, self.env_kwargs = env, dict(env_kwargs or {})
        self.store_path = store
        self.target_episodes = episodes
        self.tags = EpisodeTags(run_id=run_id, partition=partition, env=env, agent=agent, epoch=epoch,
                                split=split, seed=seed)
        self.greedy = greedy
        self.num_envs = num_envs
        self.episodes_per_batch = episodes_per_batch
        self.seed = seed
        self.record_outputs = record_outputs
        self.video, self.video_episodes, self.video_key = video, video_episodes, video_key

        probe = make_vector_env(env, num_envs=1, seed=0, **self.env_kwargs)
        self.num_actions, self.action_dim, self.obs_dim = env_shapes(probe)
        vocab = getattr(probe, "vocab", None)
        self.vocab: list[str] | None = list(vocab.words) if vocab is not None else None
        self.store_metadata: dict[str, Any] = {"env": env, "env_kwargs": self.env_kwargs}
        if vocab is not None:
            self.store_metadata.update(vocab=list(vocab.words), vocab_fingerprint=vocab.fingerprint())
        probe.close()
        self._writer: RolloutWriter | None = None

    def already_collected(self) -> int:
        store = RolloutStore(self.store_path)
        if not store.path.exists():
            return 0
        return store.count(run_id=self.tags.run_id, partition=self.tags.partition)

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        have = self.already_collected()
        self.trainer.strategy.barrier()  # every rank counts before any rank writes
        missing = max(0, self.target_episodes - have)
        mine = missing // world + (rank < missing % world)
        rank_zero_info(
            f"collect: {self.store_path} holds {have} of {self.target_episodes} episodes of run "
            f"{self.tags.run_id!r}; collecting {missing}"
        )
        requests: list[CollectionRequest] = []
        if mine > 0:
            env = make_vector_env(self.env_id, num_envs=min(self.num_envs, mine), **self.env_kwargs)
            collector = Collector(env, seed=stream_seed(self.seed, rank, COLLECT_STREAM, have))
            self._writer = RolloutStore(self.store_path).writer(self.store_metadata)
            for start in range(0, mine, self.episodes_per_batch):
                n = min(self.episodes_per_batch, mine - start)
                quota = np.full(env.num_envs, n // env.num_envs)
                quota[: n % env.num_envs] += 1
                # Seeds depend on how many episodes existed when this run started, so a resumed collection
                # does not repeat the episodes it already recorded.
                seed = stream_seed(self.seed, rank, COLLECT_STREAM + 1 + start, have)
                requests.append(CollectionRequest(collector, quota, self._writer, self.tags, self.greedy, seed,
                                                  self.record_outputs))
        return DataLoader(requests, batch_size=None, collate_fn=lambda request: request, num_workers=0)

    def teardown(self, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if stage != "predict" or self.trainer is None:
            return
        self.trainer.strategy.barrier()  # every rank has closed its shard
        if self.trainer.is_global_zero:
            store = RolloutStore(self.store_path)
            if store.path.exists():
                refs = store.episodes(run_id=self.tags.run_id, partition=self.tags.partition)
                successes = [r.tags.metadata.get("success") for r in refs]
                known = [s for s in successes if s is not None]
                rate = f", success rate {np.mean(known):.3f}" if known else ""
                steps = sum(r.length for r in refs)
                rank_zero_info(f"collect: {self.store_path} now holds {len(refs)} episodes ({steps} steps){rate}")
                if self.video and refs:
                    from lit_rlseq.rollouts.video import write_episodes_gif

                    write_episodes_gif(store, refs[: self.video_episodes], self.video_key, self.video)
                    rank_zero_info(f"collect: wrote {self.video} ({min(len(refs), self.video_episodes)} episodes)")
