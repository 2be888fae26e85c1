"""The online DataModule: environments as a data source for an RL learner.

``train_dataloader()`` yields unrolls collected with the learner's current policy, exactly
``steps_per_epoch`` batches per epoch on every rank (DDP all-reduces gradients every step, so uneven data
would hang it). ``val_dataloader()`` yields one evaluation request per evaluation env; the module's
``validation_step`` runs it (evaluation is validation).

Synchronous mode (``num_workers=0``): the learner's process collects each unroll with the learner's own
network (on the learner's device), then learns on it.

Asynchronous mode (``num_workers=N``): N DataLoader worker processes are actors, each with its own envs and
a CPU copy of the policy. The refresh rule: after every optimizer step the learner publishes its weights to
a shared-memory copy (``WeightPublisher``); an actor copies them before starting each unroll whenever their
version changed. An unroll therefore lags the learner by at most the number of unrolls in flight
(num_workers x prefetch_factor batches); V-trace's importance weights correct for that lag.

Each (rank, worker) seeds its envs and action sampling from ``SeedSequence([seed, rank, worker, restart])``,
so ranks step different episodes, runs are reproducible, and a resumed run continues with fresh episodes.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lit_rlseq.envs.registry import make_vector_env
from lit_rlseq.errors import UserError
from lit_rlseq.loops.collector import Collector, Policy, ScriptedPolicy
from lit_rlseq.loops.unroll import EpisodeStats, Unroll, concat_unrolls
from lit_rlseq.nn.normalize import RewardScaler

EVAL_STREAM = 1_000_000  # keeps evaluation seeds apart from actor seeds

# Lightning cautions that an IterableDataset's __len__ may be wrong with several workers; UnrollStream splits
# every epoch exactly between its workers (see __iter__), so its length is exact.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined", category=UserWarning)


def env_shapes(env: gym.vector.VectorEnv) -> tuple[int | None, int | None, int | None]:
    """What models need to know about an env (linked into them by the CLI): ``num_actions`` (discrete action
    spaces), ``action_dim`` (continuous ``Box`` actions, flattened) and ``obs_dim`` (the size of a flat float
    observation ``obs["obs"]``, when the env has one); None where it does not apply."""
    space = env.single_action_space
    num_actions = int(space.n) if isinstance(space, gym.spaces.Discrete) else None
    action_dim = int(np.prod(space.shape)) if isinstance(space, gym.spaces.Box) else None
    obs_space = env.single_observation_space
    flat = obs_space.spaces.get("obs") if isinstance(obs_space, gym.spaces.Dict) else None
    obs_dim = int(np.prod(flat.shape)) if isinstance(flat, gym.spaces.Box) else None
    return num_actions, action_dim, obs_dim


def stream_seed(seed: int, rank: int, stream: int, restart: int = 0) -> int:
    return int(np.random.SeedSequence([seed, rank, stream, restart]).generate_state(1)[0])


class WeightPublisher:
    """Learner -> actors: a shared-memory CPU copy of the policy's weights and a version counter."""

    def __init__(self, policy: torch.nn.Module):
        self.shared = copy.deepcopy(policy).cpu().share_memory()
        self.version = torch.zeros((), dtype=torch.long).share_memory_()
        self.lock = multiprocessing.get_context().Lock()

    def publish(self, policy: torch.nn.Module) -> None:
        with self.lock, torch.no_grad():
            for dst, src in zip(self.shared.state_dict().values(), policy.state_dict().values(), strict=True):
                dst.copy_(src)
            self.version += 1

    def refresh(self, local: torch.nn.Module, seen_version: int) -> int:
        """Copies the shared weights into ``local`` if they changed since ``seen_version``; returns the version."""
        if int(self.version) == seen_version:
            return seen_version
        with self.lock:
            local.load_state_dict(self.shared.state_dict())
            return int(self.version)


class UnrollStream(IterableDataset):
    """Yields unrolls forever-per-epoch: each worker yields its share of one epoch, then stops."""

    def __init__(self, dm: OnlineDataModule, rank: int, policy: Policy, publisher: WeightPublisher | None):
        self.dm = dm
        self.rank = rank
        self.policy = policy  # the learner's own network (sync) or the template of the actors' copies (async)
        self.publisher = publisher
        self.collector: Collector | None = None
        self._local_policy: Policy | None = None
        self._seen_version = -1

    def __len__(self) -> int:
        return self.dm.steps_per_epoch * self.dm.unrolls_per_batch

    def __iter__(self) -> Iterator[Unroll]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        batches = self.dm.steps_per_epoch // workers + (worker < self.dm.steps_per_epoch % workers)
        if self.collector is None:
            self.collector = self.dm.make_collector(self.rank, worker)
        for _ in range(batches * self.dm.unrolls_per_batch):
            unroll = self.collector.unroll(self._acting_policy(), self.dm.unroll_length)
            unroll.policy_version = self._seen_version
            yield unroll

    def _acting_policy(self) -> Policy:
        if self.publisher is None:
            return self.policy
        if self._local_policy is None:
            self._local_policy = copy.deepcopy(self.publisher.shared)
        self._seen_version = self.publisher.refresh(self._local_policy, self._seen_version)
        return self._local_policy


@dataclass
class EvaluationRequest:
    """One validation batch: run fresh episodes of an evaluation env with the given policy."""

    name: str
    collector: Collector = field(repr=False)
    episodes_per_env: np.ndarray = field(repr=False)
    greedy: bool
    seed: int

    def run(self, policy: Policy) -> EpisodeStats:
        self.collector.reset(self.seed)
        self.collector.generator.manual_seed(self.seed)
        return self.collector.run_episodes(policy, self.episodes_per_env, greedy=self.greedy)


class OnlineDataModule(L.LightningDataModule):
    def __init__(
        self,
        env: str,
        env_kwargs: dict[str, Any] | None = None,
        num_envs: int = 24,
        batch_size: int | None = None,
        unroll_length: int = 80,
        steps_per_epoch: int = 100,
        num_workers: int = 0,
        eval_envs: dict[str, str] | None = None,
        eval_env_kwargs: dict[str, Any] | None = None,
        eval_episodes: int = 100,
        eval_num_envs: int = 50,
        eval_greedy: bool = True,
        seed: int = 0,
        normalize_reward: bool = False,
        reward_norm_gamma: float = 0.99,
    ):
        """
        Args:
            env: training environment id (``family`` or ``family:variant``, see lit_rlseq.envs.registry).
            env_kwargs: keyword arguments for the env factory (e.g. ``max_steps``).
            num_envs: environments stepped together by one actor (columns of its unrolls).
            batch_size: unroll columns per learner step (per rank); a multiple of num_envs. Default num_envs.
            unroll_length: T, transitions per unroll.
            steps_per_epoch: learner steps (batches) per epoch, identical on every rank.
            num_workers: 0 = synchronous collection in the learner process; N = N asynchronous actors.
            eval_envs: evaluation name -> env id, evaluated at every validation (e.g. {"dev": "rtfm:..._dev"}).
            eval_env_kwargs: keyword arguments for the evaluation env factories.
            eval_episodes: episodes per evaluation env per rank (each started fresh; none cut short).
            eval_num_envs: environments stepped together during evaluation.
            eval_greedy: act greedily (argmax) in evaluation, else sample.
            seed: base seed for envs and action sampling on every rank and worker.
            normalize_reward: scale training rewards by the running std of each env's discounted return
                (baselines' VecNormalize, the Procgen and MuJoCo PPO setting); episode returns stay unscaled.
                Each actor keeps its own statistics (as each VecNormalize process does); they are checkpointed
                with the collector in synchronous mode.
            reward_norm_gamma: the discount of that running return (set it to the learner's discount).
        """
        super().__init__()
        self.save_hyperparameters()
        batch_size = num_envs if batch_size is None else batch_size
        if num_envs < 1 or unroll_length < 1 or steps_per_epoch < 1 or eval_episodes < 1:
            raise UserError("num_envs, unroll_length, steps_per_epoch and eval_episodes must all be >= 1")
        if batch_size % num_envs:
            raise UserError(f"data.batch_size ({batch_size}) must be a multiple of data.num_envs ({num_envs})")
        self.env_id = env
        self.env_kwargs = dict(env_kwargs or {})
        self.num_envs = num_envs
        self.batch_size = batch_size
        self.unrolls_per_batch = batch_size // num_envs
        self.unroll_length = unroll_length
        self.steps_per_epoch = steps_per_epoch
        self.num_workers = num_workers
        self.eval_envs = dict(eval_envs or {})
        self.eval_env_kwargs = dict(eval_env_kwargs or {})
        self.eval_episodes = eval_episodes
        self.eval_num_envs = min(eval_num_envs, eval_episodes)
        self.eval_greedy = eval_greedy
        self.seed = seed
        self.normalize_reward = normalize_reward
        self.reward_norm_gamma = reward_norm_gamma
        self.restarts = 0  # how many times this run was resumed; part of every seed

        # Properties of the environment that models need (linked into the model by the CLI).
        probe = make_vector_env(env, num_envs=1, seed=0, **self.env_kwargs)
        self.num_actions, self.action_dim, self.obs_dim = env_shapes(probe)
        vocab = getattr(probe, "vocab", None)
        self.vocab: list[str] | None = list(vocab.words) if vocab is not None else None
        # Extra per-episode numbers the env reports (e.g. NetHack's depth); the learner logs their means.
        self.episode_info: tuple[str, ...] = tuple(getattr(probe, "episode_info", ()))
        probe.close()

        self._stream: UnrollStream | None = None
        self._publisher: WeightPublisher | None = None
        self._eval_collectors: dict[str, Collector] = {}

    # -- construction helpers ------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def make_collector(self, rank: int, worker: int) -> Collector:
        env = make_vector_env(self.env_id, num_envs=self.num_envs, **self.env_kwargs)
        scaler = RewardScaler(self.num_envs, self.reward_norm_gamma) if self.normalize_reward else None
        collector = Collector(env, seed=stream_seed(self.seed, rank, worker, self.restarts) + 1, reward_scaler=scaler)
        collector.reset(stream_seed(self.seed, rank, worker, self.restarts))
        return collector

    def _policy(self) -> Policy:
        module = self.trainer.lightning_module if self.trainer is not None else None
        policy = getattr(module, "policy", None)
        if not isinstance(policy, (torch.nn.Module, ScriptedPolicy)):
            raise UserError(
                f"OnlineDataModule needs a model with a `policy` network, got {type(module).__name__}; "
                "use an RL module such as lit_rlseq.ldd.TextGridImpala"
            )
        return policy

    # -- dataloaders ---------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        if self._stream is None:
            policy = self._policy()
            if self.num_workers > 0 and isinstance(policy, torch.nn.Module):
                self._publisher = WeightPublisher(policy)
                self._share_cores_with_actors()
            self._stream = UnrollStream(self, self.rank, policy, self._publisher)
            if self._pending_collector_state is not None and self.num_workers == 0:
                self._stream.collector = self.make_collector(self.rank, 0)
                self._stream.collector.load_state_dict(self._pending_collector_state)
        return DataLoader(
            self._stream,
            batch_size=self.unrolls_per_batch,
            collate_fn=concat_unrolls,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        requests = []
        for index, (name, env_id) in enumerate(sorted(self.eval_envs.items())):
            if name not in self._eval_collectors:
                env = make_vector_env(env_id, num_envs=self.eval_num_envs, **self.eval_env_kwargs)
                self._eval_collectors[name] = Collector(env, seed=0)
            quota = np.full(self.eval_num_envs, self.eval_episodes // self.eval_num_envs)
            quota[: self.eval_episodes % self.eval_num_envs] += 1
            seed = stream_seed(self.seed, self.rank, EVAL_STREAM + index)
            requests.append(EvaluationRequest(name, self._eval_collectors[name], quota, self.eval_greedy, seed))
        return DataLoader(requests, batch_size=None, collate_fn=lambda request: request, num_workers=0)

    def _share_cores_with_actors(self) -> None:
        """A CPU learner leaves one core per actor: oversubscribed cores stall OpenMP badly (10x seen here)."""
        if self.trainer is None or self.trainer.strategy.root_device.type != "cpu":
            return
        cores_per_rank = len(os.sched_getaffinity(0)) // max(1, self.trainer.num_devices)
        threads = max(1, cores_per_rank - self.num_workers)
        if torch.get_num_threads() > threads:
            rank_zero_info(f"online data: the learner uses {threads} thread(s), leaving a core to each actor")
            torch.set_num_threads(threads)

    # -- learner -> actors ---------------------------------------------------------------------------
    def publish(self, policy: torch.nn.Module) -> None:
        """Called by the learner after every optimizer step (a no-op in synchronous mode)."""
        if self._publisher is not None:
            self._publisher.publish(policy)

    # -- checkpointing -------------------------------------------------------------------------------
    _pending_collector_state: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"restarts": self.restarts}
        if self._stream is not None and self._stream.collector is not None:
            state["collector"] = self._stream.collector.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Episodes in progress at the checkpoint are not restored: a resumed run starts fresh episodes
        # from new seeds, and continues the collector's action-sampling RNG stream where it stopped.
        self.restarts = int(state["restarts"]) + 1
        self._pending_collector_state = state.get("collector")
