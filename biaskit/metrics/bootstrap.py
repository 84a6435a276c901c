"""Bootstrap over images, vectorised: one weighted matrix product per batch of groups.

The image (resample) is the unit of resampling (DESIGN.md §4): persons in one
image are not independent.  A replicate of a group (model x prompt) with ``n``
images draws ``n`` images with replacement; since every metric is a ratio of
column sums of the packed per-image counts (:mod:`biaskit.metrics.counts`), the
replicate's sums are ``w @ X`` where ``w`` counts how often each image was drawn.
Groups with the same number of images are stacked, their draws made in one
``Generator.integers`` call, turned into weights (by comparisons for small
groups, one ``bincount`` for large ones) and summed by one batched ``matmul``
-- no Python loop over replicates.  All attributes of an image are resampled
together.

Examples
--------
>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> group = np.array([0, 0, 0])
>>> group_sums(X, group, n_groups=1)
array([[2., 2.]])
>>> bootstrap_sums(X, group, n_groups=1, n_boot=4, rng=np.random.default_rng(0)).shape
(1, 4, 2)
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

#: Upper bound on the draws held at once (index matrix and weights), ~64 MB each.
MAX_DRAWS_PER_BATCH = 1 << 23


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


def compact_dtype(bound: float) -> np.dtype:
    """Smallest unsigned integer type holding every value up to ``bound``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if bound <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.float64)


def bootstrap_sums(matrix: np.ndarray, group: np.ndarray, *, n_groups: int, n_boot: int,
                   rng: np.random.Generator, columns: int | None = None) -> np.ndarray:
    """Column sums of ``n_boot`` image resamples per group, shape (n_groups, n_boot, width).

    Empty groups get zero sums (every ratio metric of them is then NaN).  The
    packed counts are non-negative integers, so every replicate sum is an
    integer too, and is stored exactly in the smallest unsigned type that holds
    the largest possible sum (uint8 for 20 resamples of a few persons): a
    thousand replicates of every group then fit in memory.  ``columns``
    restricts the work to the leading columns (those some interval needs):
    the result is then (n_groups, n_boot, columns).

    The result is a (n_groups, n_boot, width) view of an array stored with
    the replicates last, (n_groups, width, n_boot): that is the shape of the
    product ``rows.T @ weights`` (a long inner dimension, which BLAS computes
    several times faster than ``weights @ rows``), and each column's
    replicates are then contiguous, as the intervals want them.
    """
    starts, sizes = group_bounds(group, n_groups)
    matrix = matrix[:, :columns]
    bound = float(sizes.max(initial=0)) * float(matrix.max(initial=0))
    out = np.zeros((n_groups, matrix.shape[1], n_boot), dtype=compact_dtype(bound))
    # float32 holds every integer sum below 2**24 exactly, and halves the work.
    work = np.float32 if bound < 2**24 else np.float64
    # One BLAS thread: these products are many and small, and BLAS threads that
    # wait spinning for one another cost far more than they bring.
    with threadpool_limits(limits=1, user_api="blas"):
        for size in np.unique(sizes[sizes > 0]) if n_boot else ():
            _bootstrap_size(out, matrix, starts=starts, same=np.flatnonzero(sizes == size),
                            size=int(size), work=work, rng=rng)
    return out.transpose(0, 2, 1)


def _bootstrap_size(out, matrix, *, starts, same, size: int, work, rng) -> None:
    """Replicate sums of the groups ``same``, which all have ``size`` images, batch by batch."""
    n_boot = out.shape[2]
    per_batch = max(1, MAX_DRAWS_PER_BATCH // (n_boot * size))
    for first in range(0, len(same), per_batch):
        batch = same[first:first + per_batch]
        rows = matrix[starts[batch, None] + np.arange(size)].astype(work)  # (g, size, width)
        weights = _resample_weights(len(batch), n_boot, size, rng).astype(work)
        out[batch] = np.matmul(np.ascontiguousarray(rows.transpose(0, 2, 1)), weights)


#: Largest group (images) whose resample weights are counted by comparisons (size**2
#: work per replicate, small temporaries) rather than by ``bincount`` (size work, large ones).
MAX_COMPARED_SIZE = 32


def _resample_weights(n_groups: int, n_boot: int, size: int, rng) -> np.ndarray:
    """How often each image is drawn, shape (n_groups, size, n_boot); columns sum to ``size``."""
    # int16 draws are several times faster than int64 ones (and than uint8 ones).
    dtype = np.int16 if size <= np.iinfo(np.int16).max else np.int64
    if size <= MAX_COMPARED_SIZE:
        # draws[g, j, b]: image drawn j-th in replicate b; weight = how many j drew it.
        draws = rng.integers(0, size, size=(n_groups, size, n_boot), dtype=dtype).astype(np.uint8)
        weights = np.zeros((n_groups, size, n_boot), dtype=np.uint8)
        for j in range(size):
            for image in range(size):
                weights[:, image] += draws[:, j] == image
        return weights
    # int32 slot numbers halve the memory traffic where they fit.
    slot_type = np.int32 if n_groups * size * n_boot < 2**31 else np.int64
    draws = rng.integers(0, size, size=(n_groups, n_boot, size), dtype=dtype)
    # Slot of (group, drawn image, replicate) in the (n_groups, size, n_boot) result.
    slots = np.multiply(draws, n_boot, dtype=slot_type)
    slots += (np.arange(n_groups, dtype=slot_type)[:, None, None] * (size * n_boot)
              + np.arange(n_boot, dtype=slot_type)[None, :, None])
    weights = np.bincount(slots.ravel(), minlength=n_groups * size * n_boot)
    return weights.reshape(n_groups, size, n_boot)


def percentile_interval(replicates: np.ndarray, *, confidence: float = 0.95,
                        overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the last axis, ignoring NaN replicates.

    A replicate is NaN when its resample has no data for the metric (say, no
    known label); the interval is NaN when every replicate is.  Quantiles use
    linear interpolation, as ``numpy.nanquantile``'s default.  With
    ``overwrite``, a C-contiguous float64 ``replicates`` is reordered in place
    (no copy of a large temporary).

    Examples
    --------
    >>> low, high = percentile_interval(np.array([[1.0, 2.0, np.nan, 3.0]]), confidence=0.5)
    >>> float(low[0]), float(high[0])
    (1.5, 2.5)
    """
    shape = replicates.shape[:-1]
    if replicates.shape[-1] == 0:  # no replicates, no interval
        return np.full(shape, np.nan), np.full(shape, np.nan)
    flat = np.asarray(replicates, dtype=np.float64).reshape(-1, replicates.shape[-1])
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
        upper = ordered[:, above]
        lower = ordered[:, :above].max(axis=1) if below < above else upper
        bounds.append(lower + (position - below) * (upper - lower))
    return tuple(bounds)


def _rows_with_nan(rows, quantiles):
    """Rows with NaN replicates: sort (NaN last) and interpolate within each row's valid part."""
    ordered = np.sort(rows, axis=1)
    valid = (~np.isnan(rows)).sum(axis=1)
    bounds = []
    for q in quantiles:
        value = _interpolate(ordered, q * np.maximum(valid - 1, 0))
        bounds.append(np.where(valid > 0, value, np.nan))
    return tuple(bounds)
