"""Per-dimension discretisation of continuous transitions into tokens (Trajectory Transformer, Janner et al. 2021).

Each dimension ``j`` has ``N + 1`` ascending thresholds ``t_0 <= ... <= t_N`` (``thresholds[:, j]``):

* **quantile** (the default): ``t_i`` is the ``i * ceil(n / N)``-th smallest value (clamped to the largest),
  ``t_N`` the maximum, so every bin holds about ``n / N`` values. When ``n`` is not a multiple of
  ``ceil(n / N)`` the original would produce fewer than ``N`` bins; here the missing top bins have zero width
  at the maximum, so every dimension always has exactly ``N`` bins.
* **uniform**: ``N`` equal-width bins from the minimum to the maximum.

``encode``: the largest ``i`` with ``x >= t_i``, clipped to ``[0, N-1]`` (values below ``t_0`` go to bin 0, the
maximum and beyond to bin ``N-1``). ``decode``: the bin midpoint ``(t_i + t_{i+1}) / 2``. ``expectation``: the
mean of the midpoints under a distribution over the ``N`` bins (the planner scores rewards and values with it).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lit_rlseq.errors import DataError, UserError

KINDS = ("quantile", "uniform")


def quantile_thresholds(data: np.ndarray, n_bins: int) -> np.ndarray:
    """``data [n, D]`` -> thresholds ``[n_bins + 1, D]`` at every ``ceil(n / n_bins)``-th sorted value, plus the max."""
    data = _check_data(data, n_bins)
    n = len(data)
    step = math.ceil(n / n_bins)
    rows = np.minimum(np.arange(n_bins) * step, n - 1)
    ordered = np.sort(data, axis=0)
    return np.concatenate([ordered[rows], ordered[-1:]], axis=0)


def uniform_thresholds(data: np.ndarray, n_bins: int) -> np.ndarray:
    """``data [n, D]`` -> thresholds ``[n_bins + 1, D]`` evenly spaced from each dimension's min to its max."""
    data = _check_data(data, n_bins)
    return np.linspace(data.min(axis=0), data.max(axis=0), n_bins + 1)


def fit_thresholds(data: np.ndarray, n_bins: int, kind: str = "quantile") -> np.ndarray:
    if kind not in KINDS:
        raise UserError(f"discretiser kind {kind!r} is not one of {KINDS}")
    fit = quantile_thresholds if kind == "quantile" else uniform_thresholds
    return fit(data, n_bins)


def encode(x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Values ``[..., D]`` -> bin ids ``[..., D]`` (int64 in ``[0, N-1]``) under ``thresholds [N + 1, D]``."""
    x = np.asarray(x, dtype=np.float64)
    n_bins, dim = thresholds.shape[0] - 1, thresholds.shape[1]
    if x.shape[-1] != dim:
        raise DataError(f"cannot discretise values of shape {x.shape}: the discretiser has {dim} dimensions")
    flat = x.reshape(-1, dim)
    ids = np.empty(flat.shape, dtype=np.int64)
    for j in range(dim):  # the largest i with x >= t_i is (number of thresholds <= x) - 1
        ids[:, j] = np.searchsorted(thresholds[:, j], flat[:, j], side="right") - 1
    return np.clip(ids, 0, n_bins - 1).reshape(x.shape)


def decode(ids: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Bin ids ``[..., D]`` -> bin midpoints ``[..., D]``."""
    ids = np.asarray(ids)
    n_bins, dim = thresholds.shape[0] - 1, thresholds.shape[1]
    if ids.shape[-1] != dim:
        raise DataError(f"cannot decode ids of shape {ids.shape}: the discretiser has {dim} dimensions")
    if ids.size and (ids.min() < 0 or ids.max() >= n_bins):
        raise DataError(f"bin ids must be in [0, {n_bins - 1}], got [{ids.min()}, {ids.max()}]")
    midpoints = (thresholds[:-1] + thresholds[1:]) / 2  # [N, D]
    return np.take_along_axis(midpoints, ids.reshape(-1, dim), axis=0).reshape(ids.shape)


def expectation(probs: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """``probs [..., K, >= N]`` over the bins of K dimensions -> ``[..., K]``: sum_i p_i * midpoint_i.

    ``thresholds [N + 1, K]`` are those of the K dimensions. Classes beyond the N bins (the stop token) are
    dropped without renormalising, as the reference planner does.
    """
    midpoints = (thresholds[:-1] + thresholds[1:]) / 2  # [N, K]
    n_bins = midpoints.shape[0]
    return torch.einsum("...kn,nk->...k", probs[..., :n_bins], midpoints.to(probs.dtype))


def _check_data(data: np.ndarray, n_bins: int) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    if n_bins < 1:
        raise UserError(f"the discretiser needs at least one bin, got n_bins={n_bins}")
    if data.ndim != 2 or len(data) == 0:
        raise DataError(f"the discretiser is fitted on data [n, D] with n >= 1, got shape {data.shape}")
    if not np.isfinite(data).all():
        bad = np.argwhere(~np.isfinite(data))[0]
        raise DataError(f"the discretiser's data holds a non-finite value at row {bad[0]}, dimension {bad[1]}")
    return data
