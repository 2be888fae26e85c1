"""The ``play`` stage: an agent plays text games and every trajectory goes into the rollout store.

    lightning play --config configs/ttm_cooking_teacher.yaml --data.partition=teacher --data.run_id=0 \
        --data.epoch=0 --data.env=cooking_level_2 --data.split=train --data.max_actions=30 --data.max_rollouts=20

Rollout ``r`` plays game ``r % games`` of the env (cooking: the game with seed ``first_seed + r % games`` of the
split; Jericho: the one game file). Tags: ``run_id``, ``epoch``, ``partition``, ``env``, ``split``, the agent's
name; metadata: goal, final score, max score, won/lost, the game file, time and the agent's engine. Reruns
with the same tags play only the missing rollouts (an interrupted play resumes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from lit_rlseq.envs.text import TextEnv, is_cooking_env, make_text_env
from lit_rlseq.errors import UserError
from lit_rlseq.rollouts import EpisodeTags, RolloutStore, RolloutWriter
from lit_rlseq.ttm.agents import TextAgent
from lit_rlseq.ttm.trajectory import TextTrajectory, auto_annotate, trajectory_episode

PARTITIONS = ("teacher", "student_train", "student_test")


def play_rollout(env: TextEnv, agent: TextAgent, game: int | None = None) -> TextTrajectory:
    """One game from its start until it ends, the agent quits, or ``env.max_actions`` actions were taken.

    Annotations: the agent's own when it annotates (the human), else the automatic rule (``auto_annotate``).
    """
    obs, info = env.reset(options=None if game is None else {"game": game})
    trajectory = TextTrajectory.start(obs, info)
    agent.begin(obs, info)
    while True:
        act = agent.act(trajectory, info)
        if act.action == "/quit":
            break
        if act.annotation is not None:
            trajectory.annotate(len(trajectory), act.annotation.summary, act.annotation.length,
                                act.annotation.value)
        obs, _, terminated, truncated, info = env.step(act.action)
        trajectory.add_step(act.action, obs, info)
        if terminated or truncated:
            break
    return trajectory if agent.annotates else auto_annotate(trajectory)


@dataclass
class PlayRequest:
    """One predict batch: play rollouts ``first .. first + count - 1`` and write each to the store."""

    env: TextEnv = field(repr=False)
    writer: RolloutWriter = field(repr=False)
    tags: EpisodeTags
    first: int
    count: int
    metadata: dict[str, Any]

    def run(self, agent: TextAgent) -> dict[str, float]:
        scores = []
        for r in range(self.first, self.first + self.count):
            start = time.perf_counter()
            trajectory = play_rollout(self.env, agent, game=r % len(self.env.games))
            if len(trajectory) == 0:
                rank_zero_info(f"play: rollout {r} ended before any action; nothing to record")
                continue
            tags = EpisodeTags(**{**self.tags.__dict__, "agent": agent.name, "seed": r, "metadata": {
                **self.metadata, "game": self.env.games[self.env.game_index], "rollout": r,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - start, 3),
            }})
            self.writer.append(trajectory_episode(trajectory, tags))
            scores.append(trajectory.final_score)
        return {"mean_score": float(np.mean(scores)) if scores else float("nan")}


class PlayDataModule(L.LightningDataModule):
    def __init__(
        self,
        env: str,
        store: str,
        run_id: str = "0",
        epoch: int = 0,
        partition: str = "teacher",
        split: str = "train",
        max_actions: int = 100,
        max_rollouts: int = 1,
        games: int | None = None,
        first_seed: int = 0,
        game_cache: str | None = None,
        rollouts_per_batch: int = 5,
    ):
        """
        Args:
            env: ``cooking_level_<k>`` / ``cooking_level_<k>_take`` (generated games) or a Jericho game file path.
            store: rollout store directory to append to (created if missing).
            run_id, epoch, partition, split: episode tags (partition: teacher / student_train / student_test;
                split: train / valid / test for cooking, recorded as given for Jericho).
            max_actions: actions per rollout before it is cut off (truncated).
            max_rollouts: how many rollouts with these tags (and this agent) the store should hold at the end.
            games: how many different games of the split to cycle through (default: max_rollouts).
            first_seed: cooking games of the split have seeds first_seed, first_seed + 1, ...
            game_cache: where generated games are cached (default: $LIT_RLSEQ_GAMES or ~/.cache/lit_rlseq/games).
            rollouts_per_batch: rollouts per predict batch (the progress bar advances per batch).
        """
        super().__init__()
        if partition not in PARTITIONS:
            raise UserError(f"data.partition={partition!r} is not one of {PARTITIONS}")
        if max_actions < 1 or max_rollouts < 1 or rollouts_per_batch < 1 or (games is not None and games < 1):
            raise UserError("data.max_actions, data.max_rollouts, data.games and data.rollouts_per_batch must be >= 1")
        self.env_id, self.store_path = env, store
        self.tags = EpisodeTags(run_id=str(run_id), epoch=epoch, partition=partition, env=env, split=split)
        self.max_actions, self.max_rollouts = max_actions, max_rollouts
        self.games = games or max_rollouts
        self.first_seed, self.game_cache = first_seed, game_cache
        self.rollouts_per_batch = rollouts_per_batch
        self._writer: RolloutWriter | None = None
        self._env: TextEnv | None = None

    def make_env(self) -> TextEnv:
        return make_text_env(self.env_id, split=self.tags.split, games=self.games if is_cooking_env(self.env_id) else 1,
                             first_seed=self.first_seed, max_actions=self.max_actions, cache_dir=self.game_cache)

    def _filters(self, agent: str) -> dict[str, Any]:
        t = self.tags
        return dict(run_id=t.run_id, epoch=t.epoch, partition=t.partition, env=t.env, split=t.split, agent=agent)

    def already_played(self, agent: str) -> int:
        store = RolloutStore(self.store_path)
        return store.count(**self._filters(agent)) if store.path.exists() else 0

    def predict_dataloader(self) -> DataLoader:
        if self.trainer.world_size > 1:
            raise UserError("play runs in one process (text games are CPU-bound); use trainer.devices=1")
        agent = self.trainer.lightning_module
        if not isinstance(agent, TextAgent):
            raise UserError(f"play needs an agent model (lit_rlseq.ttm.*Agent or TextLM), got {type(agent).__name__}")
        have = self.already_played(agent.name)
        missing = max(0, self.max_rollouts - have)
        rank_zero_info(f"play: {self.store_path} holds {have} of {self.max_rollouts} rollouts of agent "
                       f"{agent.name!r} with tags {self._filters(agent.name)}; playing {missing}")
        requests = []
        if missing:
            self._env = self.make_env()
            self._writer = RolloutStore(self.store_path).writer({"kind": "text_game_trajectories"})
            metadata = {"engine": agent.engine() if hasattr(agent, "engine") else agent.name,
                        "max_actions": self.max_actions}
            for first in range(have, self.max_rollouts, self.rollouts_per_batch):
                count = min(self.rollouts_per_batch, self.max_rollouts - first)
                requests.append(PlayRequest(self._env, self._writer, self.tags, first, count, metadata))
        return DataLoader(requests, batch_size=None, collate_fn=lambda request: request, num_workers=0)

    def teardown(self, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._env is not None:
            self._env.close()
            self._env = None
        if stage == "predict" and self.trainer is not None and RolloutStore(self.store_path).path.exists():
            agent = self.trainer.lightning_module
            refs = RolloutStore(self.store_path).episodes(**self._filters(getattr(agent, "name", "")))
            if refs:
                scores = [r.tags.metadata["score"] for r in refs]
                maxima = [r.tags.metadata.get("max_score") or np.nan for r in refs]
                rank_zero_info(f"play: {len(refs)} rollouts, mean score {np.mean(scores):.3f}, "
                               f"normalised {np.nanmean(np.divide(scores, maxima)):.3f}")
