"""Group sums of the packed per-image counts, and percentile intervals of draws.

Every metric is a ratio of column sums of the packed per-image counts
(:mod:`biaskit.metrics.counts`) over the images of one group (model x
prompt); :func:`group_sums` computes them.  :func:`percentile_interval` gives
quantile intervals of Monte-Carlo draws (the posterior-predictive pivots of
:mod:`biaskit.metrics.posterior`), fast and NaN-aware.  (biaskit <= 0.1
bootstrapped images here; see :mod:`biaskit.metrics.posterior` for why that
was replaced.)

Examples
--------
>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> group = np.array([0, 0, 0])
>>> group_sums(X, group, n_groups=1)
array([[2., 2.]])
"""

from __future__ import annotations

import numpy as np



def group_bounds(group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """First row and number of rows of each group in a group-sorted matrix."""
    starts = np.searchsorted(group, np.arange(n_groups))
    stops = np.searchsorted(group, np.arange(n_groups), side="right")
    return starts, stops - starts


def group_sums(matrix: np.ndarray, group: np.ndarray, *, n_groups: int) -> np.ndarray:
    """Column sums per group, shape (n_groups, width); zero rows for empty groups."""
    sums = np.zeros((n_groups, matrix.shape[1]))
    starts, sizes = group_bounds(group, n_groups)
    full = sizes > 0
    if full.any():
        sums[full] = np.add.reduceat(matrix, starts[full], axis=0)
    return sums


def percentile_interval(replicates: np.ndarray, *, confidence: float = 0.95,
                        overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the last axis, ignoring NaN replicates.

    A replicate is NaN when its resample has no data for the metric (say, no
    known label); the interval is NaN when every replicate is.  Quantiles use
    linear interpolation, as ``numpy.nanquantile``'s default.  Float32
    replicates are ordered as float32 (numpy's SIMD partition is ~3 times
    faster on them, and their values are exact there), the interpolation is
    float64.  With ``overwrite``, a C-contiguous float64 (or float32)
    ``replicates`` is reordered in place (no copy of a large temporary).

    Examples
    --------
    >>> low, high = percentile_interval(np.array([[1.0, 2.0, np.nan, 3.0]]), confidence=0.5)
    >>> float(low[0]), float(high[0])
    (1.5, 2.5)
    """
    shape = replicates.shape[:-1]
    if replicates.shape[-1] == 0:  # no replicates, no interval
        return np.full(shape, np.nan), np.full(shape, np.nan)
    dtype = np.float32 if replicates.dtype == np.float32 else np.float64
    flat = np.asarray(replicates, dtype=dtype).reshape(-1, replicates.shape[-1])
    low, high = np.full(len(flat), np.nan), np.full(len(flat), np.nan)
    quantiles = ((1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0)
    complete = ~np.isnan(flat).any(axis=1)
    if complete.all():
        # A fresh conversion (or an overwritable input) is partitioned as it is.
        ordered = flat if overwrite or not np.shares_memory(flat, replicates) else flat.copy()
        return tuple(b.reshape(shape) for b in _complete_rows(ordered, quantiles))
    low[complete], high[complete] = _complete_rows(flat[complete], quantiles)
    partial = np.flatnonzero(~complete)
    low[partial], high[partial] = _rows_with_nan(flat[partial], quantiles)
    return low.reshape(shape), high.reshape(shape)


def _interpolate(ordered, position):
    """Linear interpolation between the order statistics around ``position`` (per row)."""
    def take(index):
        index = np.broadcast_to(index, (len(ordered),))[:, None]
        return np.take_along_axis(ordered, index, axis=1)[:, 0]

    below = np.floor(position).astype(np.int64)
    above = np.ceil(position).astype(np.int64)
    return take(below) + (position - below) * (take(above) - take(below))


def _complete_rows(ordered, quantiles):
    """Rows without NaN: the order statistics around each quantile, by partitioning (fast).

    ``ordered`` (float64, owned by the caller) is reordered in place.  One
    single-``kth`` partition per quantile (numpy selects a single ``kth``
    with SIMD, several ``kth`` at once much more slowly); the neighbouring
    order statistic is then a max over one side of the partition.
    """
    rows = ordered
    bounds = []
    for q in quantiles:
        position = np.float64(q * (rows.shape[1] - 1))
        below, above = int(np.floor(position)), int(np.ceil(position))
        ordered.partition(above, axis=1)
        upper = ordered[:, above].astype(np.float64)
        lower = ordered[:, :above].max(axis=1).astype(np.float64) if below < above else upper
        bounds.append(lower + (position - below) * (upper - lower))
    return tuple(bounds)


def _rows_with_nan(rows, quantiles):
    """Rows with NaN replicates: sort (NaN last) and interpolate within each row's valid part."""
    ordered = np.sort(rows, axis=1).astype(np.float64)
    valid = (~np.isnan(rows)).sum(axis=1)
    bounds = []
    for q in quantiles:
        value = _interpolate(ordered, q * np.maximum(valid - 1, 0))
        bounds.append(np.where(valid > 0, value, np.nan))
    return tuple(bounds)
