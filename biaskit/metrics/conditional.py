"""Exact conditional tests of many 2 x K tables at once: Monte-Carlo, and Fisher's for 2 x 2.

Under equal distributions and given both margins, the first row of a 2 x K
table follows the multivariate hypergeometric distribution.  The Monte-Carlo
p-value of a table is the share of draws from it, counting the observed table,
whose chi-square statistic is at least the observed one
(:func:`biaskit.metrics.stats.equal_distribution_test`).

Drawing tables one at a time (``Generator.multivariate_hypergeometric``) costs
a Python call per table and ~n draws of the urn per table draw.  Here every
draw of every table is made in one compiled loop
(:func:`biaskit.metrics.kernels.conditional_p_values`), column by column, as a
chain of univariate hypergeometric draws: with columns in ascending order of
size and ``s`` persons of the first row still to place among the columns
``j..K-1`` (``R_j`` persons), ``x_j | s ~ Hypergeometric(c_j, R_j - c_j, s)``,
and the last column takes what is left.  Each univariate draw is an inversion
of its exact CDF, tabulated once per (table, column, s).  The result has the
same distribution as the one-table-at-a-time draws (an exact sampler, up to
the rounding of the tabulated probabilities).  Tables of more than
:data:`MAX_TABULATED_PERSONS` persons (whose CDF tables would be large; they
rarely need this test) are still drawn one at a time.

Fisher's exact test of 2 x 2 tables (:func:`fisher_p_values`) is computed for
all tables at once too.

Because the chi-square statistic of a 2 x K table with fixed margins is an
increasing function of ``S = sum_j x_j**2 / c_j`` (``X2 = N**2 / (n1 n2) (S -
n1**2 / N)``), a draw only needs ``S``, accumulated column by column.

Examples
--------
>>> import numpy as np
>>> tables = np.array([[[4, 1, 0], [1, 2, 3]]])
>>> p = monte_carlo_p_values(tables, rng=np.random.default_rng(0), n_draws=999)
>>> bool(0.05 < p[0] < 0.2)
True
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from biaskit.metrics import kernels

#: Largest table (persons) drawn through tabulated CDFs, whose size grows as persons**2;
#: larger tables, which rarely need this test, are drawn one at a time.
MAX_TABULATED_PERSONS = 300
#: Relative tolerance under which a simulated statistic ties with the observed one.
TIE_TOLERANCE = 1e-9
#: Relative tolerance of Fisher's test on equal probabilities (scipy's choice).
FISHER_GAMMA = 1.0 + 1e-14


def monte_carlo_p_values(tables: np.ndarray, *, rng: np.random.Generator,
                         n_draws: int) -> np.ndarray:
    """Monte-Carlo exact conditional p-values of 2 x K tables (T, 2, K), chi-square order.

    Columns empty in both rows are ignored.  Every table needs persons in both
    rows and at least two non-empty columns (the caller tests the others
    otherwise).  ``p = (1 + #{draws with X2 >= observed X2}) / (1 + n_draws)``.
    """
    tables = np.asarray(tables, dtype=np.int64)
    # Draw the row with fewer persons (the statistic is symmetric in the rows): smaller CDF tables.
    swap = tables[:, 0].sum(axis=1) > tables[:, 1].sum(axis=1)
    tables = np.where(swap[:, None, None], tables[:, ::-1], tables)
    totals = tables.sum(axis=(1, 2))
    tabulated = np.flatnonzero(totals <= MAX_TABULATED_PERSONS)
    p_values = np.empty(len(tables))
    if len(tabulated):
        small = tables[tabulated]
        order = np.argsort(small.sum(axis=1), axis=1, kind="stable")  # empty columns first
        columns = np.take_along_axis(small.sum(axis=1), order, axis=1)
        first_row = np.take_along_axis(small[:, 0], order, axis=1)
        found = np.empty(len(tabulated))
        kernels.conditional_p_values(columns, first_row, n_draws, int(rng.integers(0, 2**63)),
                                     TIE_TOLERANCE, log_binomial_table(int(totals[tabulated].max())),
                                     found)
        p_values[tabulated] = found
    for t in np.flatnonzero(totals > MAX_TABULATED_PERSONS):
        p_values[t] = _large_table_p_value(tables[t], rng=rng, n_draws=n_draws)
    return p_values


def _large_table_p_value(table: np.ndarray, *, rng, n_draws: int) -> float:
    """One large table: numpy's multivariate hypergeometric draws (a univariate draw per column)."""
    table = table[:, table.sum(axis=0) > 0]
    columns = table.sum(axis=0)
    draws = rng.multivariate_hypergeometric(columns, int(table[0].sum()), size=n_draws,
                                            method="marginals")
    return float(_p_values(observed_s=np.array([(table[0] ** 2 / columns).sum()]),
                           simulated_s=(draws**2 / columns).sum(axis=1)[None],
                           n1=np.array([table[0].sum()]), total=np.array([table.sum()]))[0])


def _p_values(*, observed_s, simulated_s, n1, total) -> np.ndarray:
    """(1 + #{draws with X2 >= observed X2, up to ties}) / (1 + draws), per table (row)."""
    n2 = total - n1
    chi_obs = chi_square_from_s(observed_s, n1=n1, n2=n2, total=total)
    chi_sim = chi_square_from_s(simulated_s, n1=n1[:, None], n2=n2[:, None], total=total[:, None])
    threshold = chi_obs - TIE_TOLERANCE * np.maximum(chi_obs, 1.0)
    extreme = np.count_nonzero(chi_sim >= threshold[:, None], axis=1)
    return (1.0 + extreme) / (1.0 + simulated_s.shape[1])


def fisher_p_values(tables: np.ndarray) -> np.ndarray:
    """Two-sided Fisher exact p-values of 2 x 2 tables (T, 2, 2), every margin positive.

    ``p = sum of P(k)`` over the first cells ``k`` (margins fixed) with
    ``P(k) <= P(observed) (1 + 1e-14)``, and 1 when the observed table is the
    mode: the definition ``scipy.stats.fisher_exact`` computes, for all tables at once.
    """
    tables = np.asarray(tables, dtype=np.int64)
    first = tables[:, 0, 0]
    n1, total = tables[:, 0].sum(axis=1), tables.sum(axis=(1, 2))
    column = tables[:, :, 0].sum(axis=1)
    log_choose = log_binomial_table(int(total.max(initial=0)))

    def pmf(k):
        with np.errstate(invalid="ignore"):
            return np.exp(log_choose[column[:, None], k] + log_choose[(total - column)[:, None],
                                                                        np.maximum(n1[:, None] - k, 0)]
                          - log_choose[total, n1][:, None]) * (n1[:, None] >= k)

    k = np.arange(int(column.max(initial=0)) + 1)[None, :]
    every = np.where(k <= column[:, None], pmf(k), 0.0)
    observed = pmf(first[:, None])[:, 0]
    mode = ((column + 1) * (n1 + 1) // (total + 2))
    at_mode = pmf(mode[:, None])[:, 0]
    p_values = np.minimum(np.where(every <= observed[:, None] * FISHER_GAMMA, every, 0.0).sum(axis=1),
                          1.0)
    is_mode = np.abs(observed - at_mode) / np.maximum(observed, at_mode) <= FISHER_GAMMA - 1.0
    return np.where(is_mode, 1.0, p_values)


def log_binomial_table(n_max: int) -> np.ndarray:
    """``log C(n, k)`` for 0 <= n, k <= n_max, ``-inf`` where k > n."""
    log_factorial = gammaln(np.arange(n_max + 1, dtype=np.float64) + 1.0)
    n, k = np.arange(n_max + 1)[:, None], np.arange(n_max + 1)[None, :]
    with np.errstate(invalid="ignore"):
        table = log_factorial[n] - log_factorial[k] - log_factorial[np.abs(n - k)]
    return np.where(k <= n, table, -np.inf)


def chi_square_from_s(s_stat, *, n1, n2, total):
    """Pearson X2 of 2 x K tables from ``S = sum x_j**2 / c_j`` and the margins."""
    return total**2 / (n1 * n2) * (s_stat - n1**2 / total)
