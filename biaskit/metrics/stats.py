"""Tests of equal label distributions, and Benjamini-Hochberg q-values.

:func:`equal_distribution_test` compares two models' known-label counts for one
prompt and attribute, as a 2 x K contingency table (categories empty in both
rows dropped):

* every expected count >= 5: Pearson's chi-square test
  (``scipy.stats.chi2_contingency`` without continuity correction);
* otherwise, for a 2 x 2 table: Fisher's exact test (two-sided);
* otherwise: a Monte-Carlo exact conditional (permutation) test -- tables with
  the observed margins are drawn from the multivariate hypergeometric
  distribution (the distribution of the first row under equal distributions
  given the margins), and the p-value is the share of draws, counting the
  observed table, with a chi-square statistic at least the observed one
  (1,999 draws by default: p-values resolve to 1/2000).  The draws of all the
  small tables are made together (:mod:`biaskit.metrics.conditional`).

Like all tests on person counts, these treat persons as independent; the
bootstrap intervals of the deltas, which resample images, do not.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from biaskit.metrics.conditional import fisher_p_values, monte_carlo_p_values

MIN_EXPECTED = 5.0
N_PERMUTATIONS = 1999
TEST_TABLE_SHAPE = "equal_distribution_test: expected two count vectors of the same length, got {a} and {b}"


class DistributionTest(NamedTuple):
    """A test's p-value and the method used (``chi-square``, ``fisher``, ``permutation``, ``none``)."""

    p_value: float
    method: str


def equal_distribution_test(counts: np.ndarray, baseline_counts: np.ndarray, *,
                            rng: np.random.Generator | None = None,
                            n_permutations: int = N_PERMUTATIONS) -> DistributionTest:
    """Test that two count vectors come from the same category distribution.

    Returns a NaN p-value when either vector is empty, and 1.0 when both put
    every person in the same single category (nothing to tell apart).

    Examples
    --------
    >>> equal_distribution_test(np.array([30, 10]), np.array([10, 30])).method
    'chi-square'
    """
    a = np.asarray(counts, dtype=np.int64)
    b = np.asarray(baseline_counts, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(TEST_TABLE_SHAPE.format(a=a.shape, b=b.shape))
    table = np.stack([a, b])
    table = table[:, table.sum(axis=0) > 0]
    if a.sum() == 0 or b.sum() == 0:
        return DistributionTest(float("nan"), "none")
    if table.shape[1] < 2:
        return DistributionTest(1.0, "none")
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() >= MIN_EXPECTED:
        return DistributionTest(float(stats.chi2_contingency(table, correction=False).pvalue), "chi-square")
    if table.shape[1] == 2:
        return DistributionTest(float(fisher_p_values(table[None])[0]), "fisher")
    rng = np.random.default_rng(0) if rng is None else rng
    p_value = monte_carlo_p_values(table[None], rng=rng, n_draws=n_permutations)[0]
    return DistributionTest(float(p_value), "permutation")


def equal_distribution_tests(counts: np.ndarray, baseline_counts: np.ndarray, *,
                             rng: np.random.Generator | None = None,
                             n_permutations: int = N_PERMUTATIONS) -> np.ndarray:
    """p-values of :func:`equal_distribution_test` for many pairs of count vectors (T, K).

    The chi-square tests, usually most of them, are computed in one vectorised
    step (the same statistic and degrees of freedom as ``chi2_contingency``);
    the Monte-Carlo tests of all small tables with three or more categories are
    drawn together (:func:`biaskit.metrics.conditional.monte_carlo_p_values`),
    and the Fisher tests of all small 2 x 2 tables computed together; the
    degenerate rest goes through :func:`equal_distribution_test`.
    """
    a = np.asarray(counts, dtype=np.float64)
    b = np.asarray(baseline_counts, dtype=np.float64)
    column = a + b
    n_a, n_b = a.sum(axis=1), b.sum(axis=1)
    total = np.where(n_a + n_b > 0, n_a + n_b, 1.0)
    present = column > 0
    expected_a = n_a[:, None] * column / total[:, None]
    expected_b = n_b[:, None] * column / total[:, None]
    smallest = np.where(present, np.minimum(expected_a, expected_b), np.inf).min(axis=1)
    dof = present.sum(axis=1) - 1
    large = (n_a > 0) & (n_b > 0) & (dof >= 1) & (smallest >= MIN_EXPECTED)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (a - expected_a) ** 2 / expected_a + (b - expected_b) ** 2 / expected_b
    statistic = np.where(present, terms, 0.0).sum(axis=1)
    p_values = np.full(len(a), np.nan)
    p_values[large] = stats.chi2.sf(statistic[large], dof[large])
    rng = np.random.default_rng(0) if rng is None else rng
    monte_carlo = (~large) & (n_a > 0) & (n_b > 0) & (dof >= 2)
    if monte_carlo.any():
        tables = np.stack([a[monte_carlo], b[monte_carlo]], axis=1).astype(np.int64)
        p_values[monte_carlo] = monte_carlo_p_values(tables, rng=rng, n_draws=n_permutations)
    fisher = (~large) & (n_a > 0) & (n_b > 0) & (dof == 1)
    if fisher.any():
        # The two non-empty columns of each table (empty ones sorted last).
        columns = np.argsort(~present[fisher], axis=1, kind="stable")[:, :2]
        tables = np.stack([np.take_along_axis(a[fisher], columns, axis=1),
                           np.take_along_axis(b[fisher], columns, axis=1)], axis=1)
        p_values[fisher] = fisher_p_values(tables.astype(np.int64))
    for t in np.flatnonzero(~large & ~monte_carlo & ~fisher):
        p_values[t] = equal_distribution_test(a[t], b[t], rng=rng,
                                              n_permutations=n_permutations).p_value
    return p_values


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN entries stay NaN and do not count.

    ``q_(i) = min_{j >= i} m p_(j) / j`` over the ``m`` non-NaN p-values sorted
    ascending, capped at 1 (the same as ``scipy.stats.false_discovery_control``).

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, np.nan, 0.03]).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if len(valid) == 0:
        return q
    order = valid[np.argsort(p[valid], kind="stable")]
    ranks = np.arange(1, len(order) + 1)
    scaled = p[order] * len(order) / ranks
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q
