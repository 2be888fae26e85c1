"""Evaluate an offline-RL agent (the Trajectory Transformer planner, or the BC baseline) in its MuJoCo env.

    lightning evaluate --config configs/tt_hopper_evaluate.yaml --model.init_args.checkpoint=...

``EvaluationEpisodes`` (the data) says how many episodes, in how many envs at once, recorded where. Episodes run
in rounds of ``num_envs`` envs stepped in lockstep; an env whose episode ended stops acting (its remaining
steps in the round are not planned), so all envs of a round share the same context length and one batched
planning call serves them all. Every episode is recorded to the store (fields ``obs`` (L + 1 rows),
``action``, ``reward``, ``terminal``, ``timeout``; tags: ``run_id``, ``partition`` = the dataset name,
``agent``, ``seed``, metadata ``return`` and ``score``). The results (raw and D4RL-normalised return, mean ±
standard error) are logged, printed and written as JSON to ``results`` when given.

D4RL normalisation: ``100 * (R - random) / (expert - random)`` with D4RL's reference returns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from lit_rlseq.envs.registry import make_vector_env, split_env_id
from lit_rlseq.errors import MissingArtifactError, UserError
from lit_rlseq.rollouts import Episode, EpisodeTags, RolloutStore

# D4RL's reference returns (random, expert) per locomotion task, for normalised scores.
D4RL_REFERENCE_RETURNS = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


def task_name(env_id: str) -> str:
    """``mujoco:Hopper-v5`` -> ``hopper``."""
    _, variant = split_env_id(env_id)
    return (variant or env_id).split("-")[0].lower()


def normalized_score(returns: np.ndarray | float, env_id: str) -> np.ndarray | float:
    """D4RL's normalised score (0 = random policy, 100 = expert); NaN for tasks without reference returns."""
    if task_name(env_id) not in D4RL_REFERENCE_RETURNS:
        return np.full_like(np.asarray(returns, dtype=float), np.nan) if np.ndim(returns) else float("nan")
    low, high = D4RL_REFERENCE_RETURNS[task_name(env_id)]
    return 100.0 * (np.asarray(returns, dtype=float) - low) / (high - low)


def mean_and_standard_error(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), se


def check_observation_size(env_id: str, observation_dim: int, what: str) -> None:
    """A clear error when ``what`` (a dataset or a checkpoint) has other observations than ``env_id``."""
    env = make_vector_env(env_id, num_envs=1)
    try:
        size = int(np.prod(env.single_observation_space["obs"].shape))
    finally:
        env.close()
    if size != observation_dim:
        raise UserError(
            f"{what} has observations of size {observation_dim}, but {env_id} has size {size}: use the env the "
            "data was recorded in (D4RL hopper 11, halfcheetah 17, walker2d 17)"
        )


class Agent(Protocol):
    """What the evaluation loop drives: ``act`` for the envs still running, ``observe`` what happened."""

    def reset(self, n_envs: int) -> None: ...

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray: ...

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, active: np.ndarray) -> None: ...


@dataclass
class _Recording:
    obs: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    terminal: bool = False
    timeout: bool = False


def run_round(agent: Agent, env_id: str, n_envs: int, seed: int, max_steps: int | None = None,
              progress: bool = True) -> list[_Recording]:
    """One episode in each of ``n_envs`` envs (seeded ``seed``), stepped in lockstep until all have ended."""
    env = make_vector_env(env_id, num_envs=n_envs, seed=seed)
    try:
        low, high = env.single_action_space.low, env.single_action_space.high
        obs, _ = env.reset(seed=seed)
        obs = obs["obs"]
        agent.reset(n_envs)
        records = [_Recording(obs=[obs[i].copy()]) for i in range(n_envs)]
        active = np.ones(n_envs, dtype=bool)
        steps = 0
        bar = tqdm(desc=f"{env_id} x{n_envs}", unit="step", disable=not progress, leave=False)
        while active.any():
            action = np.zeros((n_envs, *low.shape), dtype=np.float32)
            action[active] = agent.act(obs[active], active)
            action = np.clip(action, low, high)
            next_obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                truncated = truncated | active
            final = next_obs["obs"].copy()
            if "final_obs" in info:
                for i in np.flatnonzero(info.get("_final_obs", np.zeros(n_envs, bool))):
                    final[i] = info["final_obs"][i]["obs"]
            agent.observe(obs, action, reward, active)
            for i in np.flatnonzero(active):
                rec = records[i]
                rec.action.append(action[i].copy())
                rec.reward.append(float(reward[i]))
                rec.obs.append(final[i].copy())
                if terminated[i] or truncated[i]:
                    rec.terminal, rec.timeout = bool(terminated[i]), bool(truncated[i] and not terminated[i])
                    active[i] = False
            obs = next_obs["obs"]
            bar.update(1)
        bar.close()
        return records
    finally:
        env.close()


def recorded_episode(rec: _Recording, tags: EpisodeTags, env_id: str) -> Episode:
    length = len(rec.action)
    terminal, timeout = np.zeros(length, bool), np.zeros(length, bool)
    terminal[-1], timeout[-1] = rec.terminal, rec.timeout
    episode_return = float(np.sum(rec.reward))
    metadata = {**tags.metadata, "return": episode_return, "score": float(normalized_score(episode_return, env_id))}
    fields = {
        "obs": np.asarray(rec.obs, dtype=np.float32),
        "action": np.asarray(rec.action, dtype=np.float32),
        "reward": np.asarray(rec.reward, dtype=np.float32),
        "terminal": terminal,
        "timeout": timeout,
    }
    return Episode(fields, EpisodeTags(**{**tags.__dict__, "metadata": metadata}))


class EvaluationEpisodes(L.LightningDataModule):
    """Which evaluation episodes to run and where to record them (the data of ``lightning evaluate``).

    Args:
        store: rollout store the evaluated episodes are recorded into.
        episodes: how many episodes (>= 1).
        num_envs: envs planned for together in one batch (a round).
        seed: seed of the first round; round ``k`` uses ``seed + 1000 * k``.
        run_id: tag of the recorded episodes.
        max_steps: cut episodes after this many steps (None: the env's own time limit).
    """

    def __init__(self, store: str, episodes: int = 10, num_envs: int = 10, seed: int = 0, run_id: str = "eval",
                 max_steps: int | None = None):
        super().__init__()
        if episodes < 1 or num_envs < 1:
            raise UserError(f"EvaluationEpisodes: episodes ({episodes}) and num_envs ({num_envs}) must be >= 1")
        self.store, self.episodes, self.num_envs = store, episodes, num_envs
        self.seed, self.run_id, self.max_steps = seed, run_id, max_steps

    def rounds(self) -> list[dict[str, int]]:
        sizes = [min(self.num_envs, self.episodes - start) for start in range(0, self.episodes, self.num_envs)]
        return [{"round": k, "n_envs": n, "seed": self.seed + 1000 * k} for k, n in enumerate(sizes)]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.rounds(), batch_size=None, collate_fn=lambda x: x)


class PolicyEvaluator(L.LightningModule):
    """Runs evaluation rounds as validation steps; subclasses load their agent from a checkpoint.

    Args:
        checkpoint: the trained model's checkpoint.
        dataset: the dataset the user means to evaluate on; a checkpoint trained on another one is refused
            (None: take the checkpoint's).
        env: the env id (None: the one of the checkpoint's dataset).
        results: a JSON file for the results (None: not written).
        progress: show a progress bar per round.
    """

    agent_name = "agent"

    def __init__(self, checkpoint: str, dataset: str | None = None, env: str | None = None,
                 results: str | None = None, progress: bool = True):
        super().__init__()
        if not Path(checkpoint).is_file():
            raise MissingArtifactError(
                f"{self.agent_name} checkpoint", checkpoint, produce_with="bin/tt-mujoco (or lightning fit --config ...)"
            )
        self.checkpoint, self.results, self.progress = checkpoint, results, progress
        self.spec = self.load(checkpoint)
        trained_on = self.spec.get("dataset")
        if dataset is not None and trained_on != dataset:
            raise UserError(
                f"{checkpoint} was trained on dataset {trained_on!r}, not {dataset!r}: plan with a checkpoint "
                f"trained on {dataset!r}, or pass --model.init_args.dataset={trained_on}"
            )
        self.dataset = trained_on
        self.env_id = env or self.spec.get("env")
        if self.env_id is None:
            raise UserError(f"{checkpoint} does not name its env: pass --model.init_args.env (e.g. mujoco:Hopper-v5)")
        self.returns: list[float] = []

    def load(self, checkpoint: str) -> dict[str, Any]:
        """Load the model; return its dataset spec (``dataset``, ``env``, ...)."""
        raise NotImplementedError

    def make_agent(self) -> Agent:
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self.returns = []

    def validation_step(self, batch: dict[str, int], batch_idx: int) -> None:
        data: EvaluationEpisodes = self.trainer.datamodule
        agent = self.make_agent()
        records = run_round(agent, self.env_id, batch["n_envs"], batch["seed"], data.max_steps, self.progress)
        tags = EpisodeTags(run_id=data.run_id, partition=self.dataset, env=self.env_id, agent=self.agent_name)
        with RolloutStore(data.store) as store, store.writer() as writer:
            for i, rec in enumerate(records):
                writer.append(recorded_episode(rec, EpisodeTags(**{**tags.__dict__, "seed": batch["seed"] + i}),
                                               self.env_id))
                self.returns.append(float(np.sum(rec.reward)))

    def on_validation_epoch_end(self) -> None:
        returns = np.array(self.returns)
        summary = self.summary(returns)
        for key in ("return", "return_se", "score", "score_se"):
            self.log(f"eval/{key}", float(summary[key]))
        self.log("eval/episodes", float(len(returns)))
        if self.results:
            Path(self.results).parent.mkdir(parents=True, exist_ok=True)
            Path(self.results).write_text(json.dumps(summary, indent=2))

    def summary(self, returns: np.ndarray) -> dict[str, Any]:
        mean, se = mean_and_standard_error(returns)
        scores = normalized_score(returns, self.env_id)
        score, score_se = mean_and_standard_error(scores)
        return {"agent": self.agent_name, "dataset": self.dataset, "env": self.env_id, "checkpoint": self.checkpoint,
                "episodes": len(returns), "return": mean, "return_se": se, "score": score, "score_se": score_se,
                "returns": returns.tolist()}

    def check_observation_size(self, observation_dim: int) -> None:
        check_observation_size(self.env_id, observation_dim, f"{self.checkpoint} (dataset env {self.spec.get('env')})")

    def configure_optimizers(self) -> None:
        return None
