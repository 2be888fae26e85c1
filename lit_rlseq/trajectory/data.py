"""Trajectory Transformer data: store episodes -> discretised transitions -> training windows.

Every transition becomes ``[obs | action | reward | value]`` (``transition_dim = obs + act + 2``):

* the reward of a transition that really terminated (``terminal``, not a time-out) is replaced by the
  termination penalty (-100);
* ``value`` is the discounted reward-to-go *after* the transition, ``V_t = sum_{k>t} gamma^(k-t-1) r_k``
  within the episode (0 on its last transition; a time-out is not bootstrapped), penalties included;
* every dimension is discretised into ``n_bins`` tokens (``lit_rlseq.trajectory.discretize``), fitted on the
  training episodes; positions after the end of an episode hold the stop token ``n_bins``.

A training example is a window of ``window`` transitions starting at every transition but the last of an
episode, flattened to ``window * transition_dim`` tokens: ``x = tokens[:-1]``, ``y = tokens[1:]``.
``mask`` (aligned with ``x`` as in the reference) is False for transitions beyond ``max_path_length``.
Episodes are split into train and validation by episode.

Episodes need the fields ``obs`` (L or L + 1 rows), ``action``, ``reward``, ``terminal`` and ``timeout`` (L
rows), as written by ``lit_rlseq.rollouts.d4rl`` and by the dataset stage of ``lit_rlseq.trajectory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lit_rlseq.errors import DataError, UserError
from lit_rlseq.rollouts.datamodule import split_episodes
from lit_rlseq.rollouts.store import RolloutStore
from lit_rlseq.trajectory.discretize import encode, fit_thresholds

FIELDS = ("obs", "action", "reward", "terminal", "timeout")


def value_to_go(rewards: np.ndarray, discount: float) -> np.ndarray:
    """``V_t = sum_{k > t} discount^(k - t - 1) r_k`` for one episode's rewards ``[L]`` (so ``V_{L-1} = 0``)."""
    values = np.zeros(len(rewards), dtype=np.float64)
    for t in range(len(rewards) - 2, -1, -1):
        values[t] = rewards[t + 1] + discount * values[t + 1]
    return values


def joined_transitions(
    obs: np.ndarray, action: np.ndarray, reward: np.ndarray, terminal: np.ndarray, discount: float,
    termination_penalty: float | None,
) -> np.ndarray:
    """One episode -> ``[L, obs + act + 2]`` rows ``[obs_t | a_t | r_t | V_t]`` (float64).

    ``obs`` may have ``L + 1`` rows (the final observation is dropped). If the last transition is a real
    terminal, its reward becomes ``termination_penalty`` (None: unchanged).
    """
    length = len(reward)
    reward = np.asarray(reward, dtype=np.float64).copy()
    if termination_penalty is not None and bool(terminal[-1]):
        reward[-1] = termination_penalty
    return np.concatenate(
        [
            np.asarray(obs[:length], dtype=np.float64).reshape(length, -1),
            np.asarray(action, dtype=np.float64).reshape(length, -1),
            reward[:, None],
            value_to_go(reward, discount)[:, None],
        ],
        axis=1,
    )


@dataclass
class TrajectoryData:
    """Joined transitions of a selection of episodes and their discretisation."""

    joined: list[np.ndarray]  # per episode [L, transition_dim] float64
    observation_dim: int
    action_dim: int
    returns: np.ndarray  # undiscounted return per episode (original rewards, no penalty)

    @property
    def transition_dim(self) -> int:
        return self.observation_dim + self.action_dim + 2


def load_trajectories(
    path: str, select: dict[str, Any], discount: float, termination_penalty: float | None
) -> TrajectoryData:
    """Read the selected episodes of a store and join their transitions (see the module docstring)."""
    with RolloutStore(path) as store:
        schema = store.schema
        if schema is None:
            raise DataError(f"rollout store {path} holds no episodes yet")
        missing = [name for name in FIELDS if name not in schema]
        if missing:
            raise DataError(
                f"rollout store {path} lacks the field(s) {missing} the Trajectory Transformer needs "
                f"(it has {sorted(schema)}); import D4RL files with lit_rlseq.rollouts.d4rl or make datasets "
                "with bin/tt-mujoco"
            )
        refs = store.episodes(**select)
        if not refs:
            raise DataError(
                f"no episode in rollout store {path} matches the tag filters {select}; the store holds "
                f"{len(store)} episodes with tags:\n{store.describe_tags()}"
            )
        loaded = store.load_fields(refs, list(FIELDS))
    joined, returns = [], []
    for i in range(len(loaded)):
        episode = loaded.episode(i).fields
        joined.append(
            joined_transitions(
                episode["obs"], episode["action"], episode["reward"], episode["terminal"], discount,
                termination_penalty,
            )
        )
        returns.append(float(np.sum(episode["reward"])))
    obs_dim = int(np.prod(schema["obs"].shape))
    act_dim = int(np.prod(schema["action"].shape))
    return TrajectoryData(joined, obs_dim, act_dim, np.array(returns))


class TokenWindows(Dataset):
    """Windows of ``window`` transitions at every start but the last of each episode, as token sequences.

    Each episode's tokens are followed by ``window - 1`` stop-token rows in one flat ``[rows, D]`` array, so a
    window is one contiguous slice; ``__getitems__`` gathers a whole batch at once.
    """

    def __init__(self, tokens: list[np.ndarray], window: int, stop_token: int, max_path_length: int):
        self.window = window
        dim = tokens[0].shape[1]
        pad = np.full((window - 1, dim), stop_token, dtype=np.int64)
        pieces, starts, steps = [], [], []
        offset = 0
        for episode in tokens:
            pieces += [episode, pad]
            n_starts = len(episode) - 1
            starts.append(offset + np.arange(n_starts))
            steps.append(np.arange(n_starts))
            offset += len(episode) + window - 1
        self.tokens = torch.from_numpy(np.concatenate(pieces).astype(np.int64))
        self.starts = torch.from_numpy(np.concatenate(starts))
        self.first_step = torch.from_numpy(np.concatenate(steps))  # the window's first transition in its episode
        self.dim = dim
        self.max_path_length = max_path_length

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        offsets = torch.arange(self.window)
        rows = self.starts[indices, None] + offsets  # [B, window]
        tokens = self.tokens[rows].reshape(len(indices), -1)  # [B, window * D]
        steps = self.first_step[indices, None] + offsets
        valid = (steps < self.max_path_length)[:, :, None].expand(-1, -1, self.dim).reshape(len(indices), -1)
        return {"x": tokens[:, :-1], "y": tokens[:, 1:], "mask": valid[:, :-1]}


def _collate(batch: Any) -> Any:
    return batch  # __getitems__ already made the batch


class TrajectoryDataModule(L.LightningDataModule):
    """Discretised transition windows over the episodes of a rollout store (see the module docstring).

    Args:
        path: the rollout store directory.
        dataset: the dataset's name (e.g. ``hopper-medium-replay``); it is written into checkpoints so that
            planning with a model trained on another dataset is refused.
        env: the environment the dataset comes from (e.g. ``mujoco:Hopper-v5``), used for evaluation; when given,
            the dataset's observation size must be the env's (None: not checked, evaluation needs an env id).
        select: tag filters choosing the episodes (as for ``RolloutStore.episodes``).
        window: transitions per training window (reference: 10).
        n_bins: tokens per dimension (reference: 100).
        discretizer: ``quantile`` (reference) or ``uniform``.
        discount: discount of the value-to-go (reference: 0.99).
        termination_penalty: reward of a real terminal transition (reference: -100; None keeps it).
        max_path_length: transitions beyond this step of an episode get no loss (reference: 1000).
        batch_size: windows per batch (reference: 256).
        val_fraction: share of the episodes held out for validation.
        seed: seeds the split and the shuffle.
    """

    def __init__(
        self,
        path: str,
        dataset: str,
        env: str | None = None,
        select: dict[str, Any] | None = None,
        window: int = 10,
        n_bins: int = 100,
        discretizer: str = "quantile",
        discount: float = 0.99,
        termination_penalty: float | None = -100.0,
        max_path_length: int = 1000,
        batch_size: int = 256,
        val_fraction: float = 0.05,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        if window < 2:
            raise UserError(f"TrajectoryDataModule: window must be >= 2 transitions, got {window}")
        if not 0 <= val_fraction < 1:
            raise UserError(f"TrajectoryDataModule: val_fraction must be in [0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.path, self.dataset, self.env = path, dataset, env
        self.select = dict(select or {})
        self.window, self.n_bins, self.discretizer = window, n_bins, discretizer
        self.discount, self.termination_penalty = discount, termination_penalty
        self.max_path_length, self.batch_size = max_path_length, batch_size
        self.val_fraction, self.seed, self.num_workers = val_fraction, seed, num_workers
        self.data: TrajectoryData | None = None
        self.thresholds: np.ndarray | None = None
        self.train_dataset: TokenWindows | None = None
        self.val_dataset: TokenWindows | None = None

    def prepare_data_info(self) -> TrajectoryData:
        if self.data is None:
            self.data = load_trajectories(self.path, self.select, self.discount, self.termination_penalty)
            too_short = [i for i, j in enumerate(self.data.joined) if len(j) < 2]
            if len(too_short) == len(self.data.joined):
                raise DataError(
                    f"every selected episode of {self.path} ({self.select}) has fewer than 2 transitions: no "
                    f"training window can start in it; the dataset is too small for window={self.window}"
                )
            if self.env is not None:
                from lit_rlseq.trajectory.evaluate import check_observation_size

                check_observation_size(self.env, self.data.observation_dim, f"dataset {self.path} ({self.select})")
            longest = max(len(j) for j in self.data.joined)
            if longest > self.max_path_length:
                raise DataError(
                    f"an episode of {self.path} has {longest} transitions, more than max_path_length="
                    f"{self.max_path_length}; set --data.init_args.max_path_length to the env's episode cap"
                )
        return self.data

    @property
    def obs_dim(self) -> int:
        return self.prepare_data_info().observation_dim

    @property
    def action_dim(self) -> int:
        return self.prepare_data_info().action_dim

    @property
    def dataset_spec(self) -> dict[str, Any]:
        """What a trained model must remember about its data (checked again when it plans)."""
        return {
            "dataset": self.dataset,
            "env": self.env,
            "n_bins": self.n_bins,
            "window": self.window,
            "discretizer": self.discretizer,
            "discount": self.discount,
            "termination_penalty": self.termination_penalty,
            "max_path_length": self.max_path_length,
        }

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        data = self.prepare_data_info()
        if len(data.joined) < 2:
            train_ids, val_ids = np.arange(len(data.joined)), np.arange(0)
        else:
            train_ids, val_ids = split_episodes(len(data.joined), self.val_fraction, self.seed)
        self.train_ids, self.val_ids = train_ids, val_ids
        train = [data.joined[i] for i in train_ids]
        self.thresholds = fit_thresholds(np.concatenate(train), self.n_bins, self.discretizer)
        self.train_dataset = self._windows(train)
        self.val_dataset = self._windows([data.joined[i] for i in val_ids]) if len(val_ids) else None
        if len(self.train_dataset) == 0:
            raise DataError(
                f"the training episodes of {self.path} ({self.select}) yield no window: every episode has fewer "
                "than 2 transitions; record longer episodes"
            )

    def _windows(self, joined: list[np.ndarray]) -> TokenWindows:
        tokens = [encode(j, self.thresholds) for j in joined]
        return TokenWindows(tokens, self.window, self.n_bins, self.max_path_length)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset, batch_size=self.batch_size, shuffle=True, collate_fn=_collate,
            generator=torch.Generator().manual_seed(self.seed), num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None or len(self.val_dataset) == 0:
            return []
        return DataLoader(self.val_dataset, batch_size=self.batch_size, collate_fn=_collate)
