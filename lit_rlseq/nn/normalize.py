"""Running normalisation of observations and rewards (as baselines' VecNormalize and CleanRL's PPO do).

* ``RunningMeanStd``: count, mean and variance as buffers, merged batch by batch with Chan et al.'s parallel
  formula (``merge_moments``). Being buffers, they travel in checkpoints and in the weight copies actors use.
* ``ObservationNormalizer``: a policy network holds one and applies it first in ``forward``:
  ``clip((x - mean) / sqrt(var + eps), -clip, clip)`` for the named observation keys. It never updates itself
  in ``forward``; the learner calls ``update`` with the observations of each batch (so the statistics stay
  fixed while a batch is collected and learned from, and are the same on every DDP rank).
* ``RewardScaler``: divides rewards by the running standard deviation of each env's discounted return
  (``ret = gamma * ret + r``, reset at episode ends), clipped; the collector applies it to training unrolls.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

Reduce = Callable[[Tensor], Tensor]  # sums a tensor over DDP ranks (identity on one process)


def merge_moments(
    count: Tensor, mean: Tensor, var: Tensor, batch_count: Tensor, batch_mean: Tensor, batch_var: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Count, mean and (population) variance of the union of two samples given each one's moments (tensors or
    numpy arrays)."""
    total = count + batch_count
    delta = batch_mean - mean
    new_mean = mean + delta * (batch_count / total)
    m2 = var * count + batch_var * batch_count + delta**2 * (count * batch_count / total)
    return total, new_mean, m2 / total


class RunningMeanStd(nn.Module):
    """Running moments of vectors of shape ``shape`` (float64 buffers; count starts at ``eps``, as baselines)."""

    def __init__(self, shape: tuple[int, ...] = (), eps: float = 1e-4):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor, reduce: Reduce | None = None) -> None:
        """Adds the rows of ``x`` ``[..., *shape]``; ``reduce`` sums the batch's moments over DDP ranks."""
        if tuple(x.shape[x.dim() - len(self.shape):]) != self.shape:
            raise ValueError(f"RunningMeanStd: got shape {tuple(x.shape)}, expected [..., {self.shape}]")
        rows = x.detach().reshape(-1, *self.shape).to(self.mean.device, torch.float64)
        sums = torch.stack([
            torch.full(self.shape, float(rows.shape[0]), dtype=torch.float64, device=rows.device),
            rows.sum(0),
            rows.pow(2).sum(0),
        ])
        if reduce is not None:
            sums = reduce(sums)
        n, total, total_sq = sums
        if float(n.reshape(-1)[0]) == 0:
            return
        batch_mean = total / n
        batch_var = (total_sq / n - batch_mean.pow(2)).clamp(min=0.0)
        count, mean, var = merge_moments(self.count, self.mean, self.var, n.reshape(-1)[0], batch_mean, batch_var)
        self.count.copy_(count)
        self.mean.copy_(mean)
        self.var.copy_(var)

    def normalize(self, x: Tensor, clip: float | None = None, eps: float = 1e-8) -> Tensor:
        out = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + eps)
        return out if clip is None else out.clamp(-clip, clip)


class ObservationNormalizer(nn.Module):
    """Normalises the float observation keys given in ``shapes`` (key -> per-env shape); others pass through."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.stats = nn.ModuleDict({key: RunningMeanStd(tuple(shape)) for key, shape in shapes.items()})
        self.clip = clip
        self.eps = eps

    def forward(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        missing = set(self.stats) - set(obs)
        if missing:
            raise KeyError(f"ObservationNormalizer: observation keys {sorted(missing)} missing; got {sorted(obs)}")
        return {k: self.stats[k].normalize(v.float(), self.clip, self.eps) if k in self.stats else v
                for k, v in obs.items()}

    def update(self, obs: dict[str, Tensor], reduce: Reduce | None = None) -> None:
        for key, stats in self.stats.items():
            stats.update(obs[key], reduce)


class RewardScaler(nn.Module):
    """Scales rewards by the running std of the discounted return of each of ``num_envs`` reward streams."""

    def __init__(self, num_envs: int, gamma: float = 0.99, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.gamma = gamma
        self.clip = clip
        self.eps = eps
        self.return_stats = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(num_envs, dtype=torch.float64))

    @torch.no_grad()
    def forward(self, reward: Tensor, done: Tensor) -> Tensor:
        """One step of every stream: ``reward`` and ``done`` ``[num_envs]`` (CPU); returns the scaled rewards.

        Runs once per env step in the collector, so it works in numpy on views of the buffers (a dozen torch
        calls on tiny tensors cost more than the env step of a fast simulator)."""
        r = reward.numpy().astype(np.float64)
        returns = self.returns.numpy()
        returns *= self.gamma
        returns += r
        stats = self.return_stats
        count, mean, var = stats.count.numpy(), stats.mean.numpy(), stats.var.numpy()  # 0-d views
        new = merge_moments(count, mean, var, np.float64(len(returns)), returns.mean(), returns.var())
        count[...], mean[...], var[...] = new
        scaled = np.clip(r / np.sqrt(var + self.eps), -self.clip, self.clip)
        returns[done.numpy().astype(bool)] = 0.0
        return torch.from_numpy(scaled.astype(reward.numpy().dtype))
