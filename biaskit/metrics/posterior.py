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
independent.  The draws run in compiled loops (:mod:`biaskit.metrics.kernels`:
on the system-card layout, ~9,800 count vectors x 1000 draws x 7-10
categories per attribute, numpy's per-category multinomial alone took ~8 s);
each vector has its own random stream of one seed drawn from the caller's
generator, so seeded results do not depend on chunks or threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import betaincinv, gammaln

from biaskit.metrics import kernels
from biaskit.metrics.bootstrap import percentile_interval
from biaskit.metrics.entropy import n_log_n_table

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


#: Gamma variates kept per shape (see :class:`GammaPool`).
POOL_SIZE = 1 << 14
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
    (0.0, 0.1166)
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    valid = n > 0
    safe_n = np.where(valid, n, 1.0)
    x = np.clip(x, 0.0, safe_n)
    tail = (1.0 - confidence) / 2.0
    x, safe_n = np.broadcast_arrays(x, safe_n)
    # The incomplete beta inverse is the cost: computed only where the bound is not 0 or 1.
    low = _beta_quantile(x, safe_n, tail, where=x > 0, otherwise=0.0)
    high = _beta_quantile(x, safe_n, 1.0 - tail, where=x < safe_n, otherwise=1.0)
    point = x / safe_n
    low, high = np.minimum(low, point), np.maximum(high, point)
    return np.where(valid, low, np.nan), np.where(valid, high, np.nan)


def _beta_quantile(x, n, q, *, where, otherwise):
    """Quantile ``q`` of Beta(x + 1/2, n - x + 1/2) where ``where``, else ``otherwise``."""
    out = np.full(x.shape, otherwise, dtype=np.float64)
    out[where] = betaincinv(x[where] + PRIOR, n[where] - x[where] + PRIOR, q)
    return out


def entropy_interval(point, draws: "AttributeDraws", *, confidence: float = 0.95):
    """A prompt's entropy interval: the hull of its pivot interval and its posterior interval.

    The pivot interval reflects the estimator's error distribution, which is
    skewed where the entropy is steep (a minority share of 8-25 % with 2
    categories): there alone it covers 74-89 % at nominal 95 % (20 samples);
    the posterior (credible) interval of H(p*) covers those but sits below
    near-uniform truths with many categories, where the pivot interval covers.
    The hull of two intervals holds the truth whenever either does.
    """
    low, high = pivot_interval(point, draws.entropy, confidence=confidence)
    credible_low, credible_high = percentile_interval(draws.posterior_entropy, confidence=confidence)
    return np.fmin(low, credible_low), np.fmax(high, credible_high)


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


def _gammas(alpha: np.ndarray, n_draws: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Gamma(alpha) variates (U K, B) for each row of alpha (U, K), row ``u K + c`` for
    category ``c`` of row ``u``, as float32, and their ``G ln G``."""
    gammas = rng.standard_gamma(np.broadcast_to(alpha.reshape(-1, 1), (alpha.size, n_draws)))
    return gammas.astype(np.float32), _g_log_g(gammas)


def _g_log_g(gammas: np.ndarray) -> np.ndarray:
    # G ln G -> 0 as G -> 0 (a float32 gamma of a small shape can underflow to 0).
    gammas = gammas.astype(np.float64)
    return (gammas * np.log(np.where(gammas > 0, gammas, 1.0))).astype(np.float32)


class GammaPool:
    """Gamma(v + a) variates for integer v, drawn by looking up a pool of independent draws.

    A Dirichlet draw needs a gamma variate per category, and a gamma variate
    costs ~20 times a table look-up; the shapes here are always an integer
    count plus the prior ``a``, so :data:`POOL_SIZE` variates per shape are
    drawn once and each use picks one at random
    (:func:`biaskit.metrics.kernels.label_pivots`).  Two uses share a variate
    with probability 1 / POOL_SIZE: the draws are independent up to that.

    Attributes
    ----------
    table : (largest + 1, size) float32
        Row ``v``: Gamma(v + a) variates.
    g_log_g : (largest + 1, size) float32
        ``G ln G`` of each variate (0 for G = 0), so an entropy needs no logarithm per share.
    """

    def __init__(self, largest: int, prior: float, rng, size: int = 0):
        self.size = size or POOL_SIZE
        shapes = np.arange(largest + 1, dtype=np.float64) + prior
        self.table = rng.standard_gamma(np.broadcast_to(shapes[:, None], (len(shapes), self.size))
                                        ).astype(np.float32)
        self.g_log_g = _g_log_g(self.table)


class AttributeDraws:
    """Posterior-predictive pivots of one attribute for every group (model x prompt).

    Parameters
    ----------
    counts : array (G, K)
        Known-label person counts per group.
    design : array (G, 2K + 2)
        Group sums of :func:`design_sums`.
    expected : int array (G,)
        Index of each group's expected label, -1 where none.
    n_draws : int
    rng : numpy Generator
    correction : entropy estimator (see :mod:`biaskit.metrics.entropy`)

    Attributes
    ----------
    entropy : (G, B) float32
        Pivot of the (corrected or plug-in) entropy estimator; NaN rows where no known label.
    posterior_entropy : (G, B) float32
        The entropy H(p*) of the posterior draws.
    match : (G, B) float32
        Pivot of the expected label's share; NaN rows where no known label or no expectation.
    """

    def __init__(self, counts, design, *, expected, n_draws: int, rng,
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
        rank = np.argsort(order, axis=1)  # position of each category in its key
        keys, key = np.unique(ordered, axis=0, return_inverse=True)
        key = key.ravel()
        shift = rng.integers(0, max(n_draws, 1), size=g)
        with_expected = known & (expected >= 0)
        # Key position of each expected label: its share pivots are the only ones kept.
        wanted = np.full(len(keys), False)
        wanted[key[with_expected]] = True
        entropy, posterior, shares = self._label_pivots(keys, wanted=wanted, rng=rng,
                                                        correction=correction)
        self.entropy = np.empty((g, n_draws), dtype=np.float32)
        self.posterior_entropy = np.empty((g, n_draws), dtype=np.float32)
        kernels.spread(entropy, key, shift, known, self.entropy)
        kernels.spread(posterior, key, shift, known, self.posterior_entropy)
        self.match = np.full((g, n_draws), np.nan, dtype=np.float32)
        rows = np.flatnonzero(with_expected)
        if len(rows):
            slot = np.searchsorted(np.flatnonzero(wanted), key[rows])
            column = rank[rows, expected[rows]]
            index = (np.arange(n_draws)[None, :] + shift[rows, None]) % n_draws
            self.match[rows] = shares[slot[:, None], index, column[:, None]]

    def _label_pivots(self, keys, *, wanted, rng, correction):
        """Per key: entropy pivots and H(p*) (U, B); share pivots (W, B, K) of the ``wanted`` keys.

        The draws run in :func:`biaskit.metrics.kernels.label_pivots`; each key
        has its own random stream of one seed drawn from ``rng``.
        """
        u, k = keys.shape
        b = self.n_draws
        entropy = np.empty((u, b), dtype=np.float32)
        posterior = np.empty((u, b), dtype=np.float32)
        shares = np.zeros((int(wanted.sum()), b, k), dtype=np.float32)
        slot = np.where(wanted, np.cumsum(wanted) - 1, -1)
        seed = int(rng.integers(0, 2**63))
        largest_total = int(keys.sum(axis=1).max(initial=0))
        n_log_n = n_log_n_table(largest_total)
        log_factorial = gammaln(np.arange(largest_total + 1) + 1.0)
        largest = int(keys.max(initial=0))

        def draw(rows, order, table, g_log_g, pick):
            kernels.label_pivots(keys[rows], order, table, g_log_g, pick, n_log_n, log_factorial,
                                 seed, rows.start, correction == "miller-madow", slot[rows],
                                 entropy[rows], posterior[rows], shares)

        # A pool pays off when it is smaller than the draws it replaces.
        if (largest + 1) * POOL_SIZE < u * b * k:
            pool = GammaPool(largest, dirichlet_prior(k), rng)
            # Halves of the keys in two threads (the kernel releases the GIL; streams are per key).
            halves = (slice(0, u // 2), slice(u // 2, u))
            with ThreadPoolExecutor(max_workers=len(halves)) as threads:
                list(threads.map(lambda rows: draw(rows, keys[rows], pool.table, pool.g_log_g,
                                                   True), halves))
        else:
            for rows in _chunks(u, b * k):
                table, g_log_g = _gammas(keys[rows] + dirichlet_prior(k), b, rng)
                draw(rows, np.arange(table.shape[0]).reshape(-1, k), table, g_log_g, False)
        return entropy, posterior, shares
