"""Intervals with their stated coverage: Jeffreys intervals and posterior-predictive pivots.

Why not the percentile bootstrap over images (biaskit <= 0.1): a prompt with 0 of
20 images showing a category gets the interval [0, 0] for that share and for the
entropy, although a true share of 1-10 % gives 0 of 20 most of the time; the
plug-in entropy is biased down and its replicates further down, so intervals sit
below a near-uniform truth; HOF replicates lose the rare image that made a
prompt heterogeneous.  Measured coverage of nominal 95 % was far below 95 %
(``benchmarks/bench_coverage.py``).  Two methods replace it.

**Jeffreys intervals** for proportions of independent units: the quantiles
``(1 - c) / 2`` and ``(1 + c) / 2`` of ``Beta(x + 1/2, n - x + 1/2)``, with the
lower bound 0 when ``x = 0`` and the upper bound 1 when ``x = n`` (Brown, Cai &
DasGupta 2001: coverage close to nominal, never a zero-width interval).  Used
for a category's share (persons, in effective counts, see below), the
within-image heterogeneity (images with >= 2 known persons), count accuracy
(images) and a prompt's match rate.

**Posterior-predictive pivots** for everything that is a non-linear function of
the category distribution (entropy) or an average over prompts (HOF, mean
entropy, mean match rate) and for every model-vs-baseline difference.  For a
prompt with effective label counts ``n`` (``N = sum n``), draw the category
distribution from its posterior ``p* ~ Dirichlet(n + 1/2)`` (Jeffreys-type
prior) and a new sample from it, ``n** ~ Multinomial(N, p*)``; the pivot
``D = f(n** / N) - f(p*)`` is the estimator's error when the truth is ``p*``.
The interval of ``f`` is ``[f(n / N) - q_hi(D), f(n / N) - q_lo(D)]`` (``q``:
quantiles of the draws), clipped to the metric's range and widened to hold the
point estimate.  This is the basic bootstrap interval with the parameter drawn
from its posterior rather than fixed at the observed shares, which is what
keeps it from collapsing at 0 of 20, and the pivot carries the plug-in
entropy's bias (so near-uniform truths are covered).  Means over prompts
average the prompts' pivots draw by draw (the prompts' draws are independent);
differences subtract the two models' pivots.

**HOF.** A prompt is heterogeneous when its ``N`` images with a known label
hold more than one label.  Its expectation, the estimand, is ``1 - sum_c
pi_c^N`` where ``pi_c`` is the probability that an image's known persons are
all ``c`` (for one person per image, ``pi = p``).  The observed indicator is
unbiased for it; its pivot is ``I** - P*`` with ``P* = 1 - sum pi*^N``, ``pi* ~
Dirichlet(t + 1/2)`` over the image types (all-``c`` for each ``c``, and
"mixed", which gets the prior only where some image has >= 2 known persons)
and ``I** ~ Bernoulli(P*)``.

**Images are the unit.**  Persons in one image are correlated (a group prompt
tends to show one gender).  Counts of persons are turned into effective counts
``n / deff`` with the design effect ``deff`` = the variance of the share
estimate with images as the unit (ratio estimator) over its variance with
independent persons, pooled over the categories and kept within [1, persons per
image]; where only one label was seen ``deff`` is the mean number of persons
per image (each image one unit).  With one person per image ``deff = 1``.

Draws are made once per distinct sorted effective-count vector (prompts with
the same counts share a distribution up to the order of the categories) and
given to each prompt with its own random shift, so prompts' draws are
independent.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaincinv

from biaskit.metrics.bootstrap import percentile_interval
from biaskit.metrics.entropy import normalized_entropy

#: Jeffreys prior of a proportion: half a pseudo-count on each side.
PRIOR = 0.5


def dirichlet_prior(k: int) -> float:
    """Pseudo-count per category of a K-category distribution: ``1 / K`` (Perks).

    The Jeffreys prior of a proportion for K = 2; for more categories it keeps
    the prior's total weight at one observation, where Jeffreys' K / 2 would
    dominate 20 samples (with 7 categories it adds 3.5 persons spread over
    them, and makes every skewed prompt look heterogeneous).
    """
    return 1.0 / k
#: Draws of (groups x draws x categories) made at once.
MAX_DRAW_CELLS = 1 << 22


def jeffreys_interval(successes, trials, *, confidence: float = 0.95):
    """Jeffreys interval of ``successes / trials`` (arrays; effective, non-integer counts allowed).

    Lower bound 0 at ``successes = 0``, upper bound 1 at ``successes =
    trials``; NaN where ``trials <= 0``; always holds ``successes / trials``.

    Examples
    --------
    >>> low, high = jeffreys_interval(0, 20)
    >>> float(low), round(float(high), 4)
    (0.0, 0.1165)
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    valid = n > 0
    safe_n = np.where(valid, n, 1.0)
    x = np.clip(x, 0.0, safe_n)
    tail = (1.0 - confidence) / 2.0
    low = np.where(x <= 0, 0.0, betaincinv(x + PRIOR, safe_n - x + PRIOR, tail))
    high = np.where(x >= safe_n, 1.0, betaincinv(x + PRIOR, safe_n - x + PRIOR, 1.0 - tail))
    point = x / safe_n
    low, high = np.minimum(low, point), np.maximum(high, point)
    return np.where(valid, low, np.nan), np.where(valid, high, np.nan)


def pivot_interval(point, pivots, *, confidence: float = 0.95, bounds=(0.0, 1.0)):
    """``[point - q_hi(D), point - q_lo(D)]`` over the pivots' last axis, clipped and holding ``point``.

    ``bounds`` is the metric's range; the upper bound never cuts below the
    point (a Miller-Madow entropy can exceed 1).  NaN where ``point`` is NaN or
    every pivot is.
    """
    point = np.asarray(point, dtype=np.float64)
    q_low, q_high = percentile_interval(pivots, confidence=confidence)
    low = np.clip(point - q_high, bounds[0], None)
    high = np.minimum(point - q_low, np.maximum(bounds[1], point))
    low, high = np.fmin(low, point), np.fmax(high, point)
    missing = np.isnan(point) | np.isnan(q_low)
    return np.where(missing, np.nan, low), np.where(missing, np.nan, high)


def mover_interval(value, interval, baseline_value, baseline_interval):
    """Interval of ``value - baseline_value`` from the two independent estimates' intervals.

    The method of variance estimates recovery (Newcombe 1998; Zou & Donner
    2008): ``[d - sqrt((v - l)**2 + (u' - v')**2), d + sqrt((u - v)**2 + (v' - l')**2)]``
    with ``d = v - v'``; with Jeffreys intervals, Newcombe's recommended
    interval for a difference of proportions.  NaN where either side is.
    """
    (low, high), (base_low, base_high) = interval, baseline_interval
    delta = value - baseline_value
    return (delta - np.hypot(value - low, base_high - baseline_value),
            delta + np.hypot(high - value, baseline_value - base_low))


def design_sums(counts: np.ndarray) -> np.ndarray:
    """Per-image columns the design effect needs, from (images, K) label counts.

    Columns: ``y_c**2`` (K), ``y_c m`` (K), ``m**2``, whether the image has a
    known person; ``m`` = known persons of the image.
    """
    m = counts.sum(axis=1, keepdims=True)
    return np.hstack([counts**2, counts * m, m**2, m > 0]).astype(np.float64)


def effective_counts(counts: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Label counts (G, K) divided by each group's design effect (see the module docstring)."""
    k = counts.shape[1]
    squares, cross, m2 = design[:, :k], design[:, k:2 * k], design[:, 2 * k]
    images = design[:, -1]
    total = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = counts / total[:, None]
        residual = (squares - 2 * share * cross + share**2 * m2[:, None]).sum(axis=1)
        clustered = images / (images - 1) * residual / total**2
        independent = (share * (1 - share)).sum(axis=1) / total
        per_image = total / images
        deff = np.where((independent > 0) & (images > 1), clustered / independent, per_image)
    deff = np.clip(np.nan_to_num(deff, nan=1.0), 1.0, np.maximum(np.nan_to_num(per_image, nan=1.0), 1.0))
    return counts / deff[:, None]


def _chunks(n_rows: int, cells_per_row: int):
    per_chunk = max(1, MAX_DRAW_CELLS // max(1, cells_per_row))
    for first in range(0, n_rows, per_chunk):
        yield slice(first, min(first + per_chunk, n_rows))


def _dirichlet(alpha: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """(U, B, K) draws of Dirichlet(alpha) for each row of alpha (U, K); zero alphas stay 0."""
    gammas = rng.standard_gamma(np.broadcast_to(alpha[:, None, :], (len(alpha), n_draws,
                                                                   alpha.shape[1])))
    return gammas / gammas.sum(axis=-1, keepdims=True)


def proportion_pivots(successes, trials, *, n_draws: int, rng) -> np.ndarray:
    """Pivots (..., B) of a proportion: ``x** / n - r*`` with ``r* ~ Beta(x + 1/2, n - x + 1/2)``
    and ``x** ~ Binomial(n, r*)``; NaN where ``trials`` is 0.  ``trials`` are rounded to integers."""
    x = np.asarray(successes, dtype=np.float64)
    n = np.rint(np.asarray(trials, dtype=np.float64))
    safe = np.maximum(n, 1.0)
    x = np.clip(x, 0.0, safe)
    rate = rng.beta(x[..., None] + PRIOR, (safe - x)[..., None] + PRIOR, size=x.shape + (n_draws,))
    redrawn = rng.binomial(safe.astype(np.int64)[..., None], rate)
    return np.where(n[..., None] > 0, redrawn / safe[..., None] - rate, np.nan)


class AttributeDraws:
    """Posterior-predictive pivots of one attribute for every group (model x prompt).

    Parameters
    ----------
    counts : array (G, K)
        Known-label person counts per group.
    design : array (G, 2K + 2)
        Group sums of :func:`design_sums`.
    n_draws : int
    rng : numpy Generator
    correction : entropy estimator (see :mod:`biaskit.metrics.entropy`)

    Attributes
    ----------
    entropy : (G, B) float32
        Pivot of the (corrected or plug-in) entropy estimator; NaN rows where no known label.
    """

    def __init__(self, counts, design, *, n_draws: int, rng,
                 correction: str | None = None):
        self.n_draws = n_draws
        g, k = counts.shape
        effective = np.rint(effective_counts(counts, design))
        known = counts.sum(axis=1) > 0
        # A group with a known label keeps at least one effective person.
        top = np.argmax(effective, axis=1)
        lift = known & (effective.sum(axis=1) == 0)
        effective[np.flatnonzero(lift), top[lift]] = 1
        order = np.argsort(-effective, axis=1, kind="stable")
        ordered = np.take_along_axis(effective, order, axis=1).astype(np.int64)
        self._rank = np.argsort(order, axis=1)  # position of each category in its key
        keys, self._key = np.unique(ordered, axis=0, return_inverse=True)
        self._key = self._key.ravel()
        self._shift = rng.integers(0, max(n_draws, 1), size=g)
        self._known = known
        shares, entropy = self._label_pivots(keys, rng=rng, correction=correction)
        self._share_pivots = shares
        index = self._draw_index(np.arange(g))
        self.entropy = np.where(known[:, None], entropy[self._key[:, None], index], np.nan
                                ).astype(np.float32)

    def _draw_index(self, groups: np.ndarray) -> np.ndarray:
        return (np.arange(self.n_draws)[None, :] + self._shift[groups, None]) % max(self.n_draws, 1)

    def _label_pivots(self, keys, *, rng, correction):
        """Per key: share pivots (U, B, K) float16 and entropy pivots (U, B)."""
        u, k = keys.shape
        b = self.n_draws
        shares = np.zeros((u, b, k), dtype=np.float16)
        entropy = np.zeros((u, b))
        for rows in _chunks(u, b * k):
            n = keys[rows]
            total = n.sum(axis=1)
            live = total > 0
            p = _dirichlet(n + dirichlet_prior(k), b, rng)
            redrawn = np.zeros(p.shape, dtype=np.int64)
            if live.any():
                redrawn[live] = rng.multinomial(total[live, None], p[live])
            safe = np.where(live, total, 1)[:, None, None]
            shares[rows] = (redrawn / safe - p).astype(np.float16)
            entropy[rows] = normalized_entropy(redrawn, correction=correction) - normalized_entropy(p)
        return shares, entropy

    def shares(self, rows: slice) -> np.ndarray:
        """Share pivots (g, K, B) float32 of the groups ``rows``; NaN where no known label."""
        groups = np.arange(len(self._key))[rows]
        pivots = self._share_pivots[self._key[groups][:, None, None],
                                    self._draw_index(groups)[:, None, :],
                                    self._rank[groups][:, :, None]].astype(np.float32)
        pivots[~self._known[groups]] = np.nan
        return pivots
