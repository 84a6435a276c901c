"""Entropy, tests, q-values and the bootstrap against independent computations (scipy, by hand)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import comb

from biaskit.metrics import benjamini_hochberg, equal_distribution_test, normalized_entropy
from biaskit.metrics.stats import equal_distribution_tests
from biaskit.metrics.bootstrap import group_sums, percentile_interval


def test_entropy_matches_scipy_on_random_counts():
    rng = np.random.default_rng(0)
    for k in (2, 4, 7, 10):
        counts = rng.integers(0, 6, size=(50, k))
        counts[0] = 0
        counts[1] = 0
        counts[1, 0] = 9  # a single category
        ours = normalized_entropy(counts)
        for row, value in zip(counts, ours):
            if row.sum() == 0:
                assert math.isnan(value)
            else:
                assert value == pytest.approx(stats.entropy(row) / math.log(k))
        assert ours[1] == 0.0


def test_entropy_counts_empty_categories_in_k():
    # Two of ten skin tones, evenly: ln 2 / ln 10, not 1.
    counts = np.zeros(10)
    counts[[2, 5]] = 4
    assert normalized_entropy(counts) == pytest.approx(math.log(2) / math.log(10))


def test_miller_madow_by_hand():
    counts = np.array([3, 1, 0])
    plugin = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert normalized_entropy(counts, correction="miller-madow") == pytest.approx(
        (plugin + (2 - 1) / (2 * 4)) / math.log(3))
    with pytest.raises(ValueError, match="entropy_correction"):
        normalized_entropy(counts, correction="grassberger")


def test_chi_square_path_matches_scipy():
    a, b = np.array([40, 25, 35]), np.array([20, 45, 35])
    result = equal_distribution_test(a, b)
    assert result.method == "chi-square"
    assert result.p_value == pytest.approx(
        stats.chi2_contingency(np.stack([a, b]), correction=False).pvalue)


def test_vectorised_tests_match_scipy_and_the_single_test():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 40, size=(60, 5))
    b = rng.integers(0, 40, size=(60, 5))
    a[:5, 2:] = 0  # small / sparse tables take the exact paths
    b[:5, 2:] = 0
    a[5:10] //= 10
    b[5:10, 0] = 0
    b[10] = 0  # an empty side: NaN
    p = equal_distribution_tests(a, b, rng=np.random.default_rng(1))
    for t in range(60):
        single = equal_distribution_test(a[t], b[t], rng=np.random.default_rng(1))
        if single.method == "chi-square":
            table = np.stack([a[t], b[t]])
            table = table[:, table.sum(0) > 0]
            assert p[t] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
        elif single.method == "permutation":
            assert p[t] == pytest.approx(single.p_value, abs=0.03)
        else:
            assert p[t] == pytest.approx(single.p_value, nan_ok=True)
    assert math.isnan(p[10])


def test_empty_category_columns_are_dropped_before_the_test():
    a, b = np.array([40, 0, 35]), np.array([20, 0, 55])
    assert equal_distribution_test(a, b).p_value == pytest.approx(
        stats.chi2_contingency([[40, 35], [20, 55]], correction=False).pvalue)


def exact_conditional_p(table):
    """Fisher-Freeman-Halton style p by full enumeration: chi-square statistic as the order."""
    table = np.asarray(table)
    cols, n1, total = table.sum(0), table[0].sum(), table.sum()

    def chi2(first):
        rows = np.array([n1, total - n1])
        expected = np.outer(rows, cols) / total
        full = np.stack([first, cols - first])
        return ((full - expected) ** 2 / expected).sum()

    observed = chi2(table[0])
    p = 0.0
    for first in itertools.product(*[range(c + 1) for c in cols]):
        if sum(first) != n1:
            continue
        prob = np.prod([comb(c, x) for c, x in zip(cols, first)]) / comb(total, n1)
        if chi2(np.array(first)) >= observed - 1e-9:
            p += prob
    return p


def test_permutation_path_matches_full_enumeration():
    a, b = np.array([4, 1, 0]), np.array([1, 2, 3])
    result = equal_distribution_test(a, b, rng=np.random.default_rng(0), n_permutations=40000)
    assert result.method == "permutation"
    assert result.p_value == pytest.approx(exact_conditional_p([a, b]), abs=0.01)


def test_fisher_path_for_small_two_by_two():
    result = equal_distribution_test(np.array([1, 1]), np.array([3, 0]))
    assert result.method == "fisher" and result.p_value == pytest.approx(0.4)


def test_degenerate_tables():
    assert math.isnan(equal_distribution_test(np.array([0, 0]), np.array([3, 1])).p_value)
    assert equal_distribution_test(np.array([5, 0]), np.array([2, 0])).p_value == 1.0
    with pytest.raises(ValueError, match="same length"):
        equal_distribution_test(np.array([1, 2]), np.array([1, 2, 3]))


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(1).uniform(size=40) ** 2
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh"))
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    q = benjamini_hochberg(with_nan)
    assert math.isnan(q[1])
    assert q[[0, 2, 3]] == pytest.approx(stats.false_discovery_control([0.01, 0.04, 0.03]))


def test_group_sums_by_hand():
    matrix = np.column_stack([np.arange(7.0), np.ones(7)])  # value, image count
    group = np.array([0, 0, 0, 2, 2, 2, 2])  # group 1 empty
    assert group_sums(matrix, group, n_groups=3).tolist() == [[3, 3], [0, 0], [18, 4]]


def test_percentile_interval_matches_numpy_and_ignores_nan():
    reps = np.random.default_rng(3).normal(size=(4, 999))
    reps[1, :100] = np.nan
    low, high = percentile_interval(reps, confidence=0.9)
    assert low == pytest.approx(np.nanpercentile(reps, 5, axis=1))
    assert high == pytest.approx(np.nanpercentile(reps, 95, axis=1))
    all_nan = percentile_interval(np.full((2, 10), np.nan))
    assert np.isnan(all_nan[0]).all()
    constant = percentile_interval(np.full((1, 10), 0.25))
    assert constant[0][0] == constant[1][0] == 0.25


# ---------------------------------------------------------------- batched Monte-Carlo tests
from biaskit.metrics.conditional import chi_square_from_s, monte_carlo_p_values  # noqa: E402


def numpy_conditional_p(table, *, rng, n_draws):
    """Independent reference: one table at a time with Generator.multivariate_hypergeometric."""
    table = np.asarray(table)[:, np.asarray(table).sum(0) > 0]
    cols, rows = table.sum(0), table.sum(1)
    draws = rng.multivariate_hypergeometric(cols, int(rows[0]), size=n_draws)
    observed = stats.chi2_contingency(table, correction=False).statistic
    expected = np.outer(rows, cols) / table.sum()
    full = np.stack([draws, cols - draws], axis=1)
    simulated = ((full - expected) ** 2 / expected).sum(axis=(1, 2))
    return (1 + np.count_nonzero(simulated >= observed - 1e-9 * max(observed, 1.0))) / (1 + n_draws)


def test_statistic_from_s_matches_scipy():
    table = np.array([[4, 1, 0, 7], [1, 2, 3, 2]])
    s_stat = (table[0] ** 2 / table.sum(0)).sum()
    n1, n2 = table.sum(1)
    assert chi_square_from_s(s_stat, n1=n1, n2=n2, total=table.sum()) == pytest.approx(
        stats.chi2_contingency(table, correction=False).statistic)


def test_batched_conditional_test_matches_full_enumeration():
    tables = np.array([[[4, 1, 0, 0], [1, 2, 3, 0]],
                       [[3, 0, 2, 1], [0, 4, 1, 2]],
                       [[0, 2, 3, 0], [6, 1, 1, 0]],  # an empty column, a column empty in row 1
                       [[1, 1, 1, 1], [1, 1, 1, 1]]])  # p = 1
    p = monte_carlo_p_values(tables, rng=np.random.default_rng(5), n_draws=40000)
    for table, value in zip(tables, p):
        exact = exact_conditional_p(table[:, table.sum(0) > 0])
        # Monte-Carlo standard error <= 0.0025 at 40,000 draws.
        assert value == pytest.approx(exact, abs=0.01)
    assert p[3] == 1.0


def test_batched_conditional_test_agrees_with_one_table_at_a_time():
    rng = np.random.default_rng(11)
    tables = np.stack([rng.multinomial(n, p) for n, p in
                       zip(rng.integers(8, 40, size=60),
                           rng.dirichlet(np.ones(7), size=60))]).reshape(30, 2, 7)
    tables = tables[(tables.sum(2) > 0).all(1) & ((tables.sum(1) > 0).sum(1) >= 3)]
    batched = monte_carlo_p_values(tables, rng=np.random.default_rng(0), n_draws=4000)
    reference = np.array([numpy_conditional_p(t, rng=np.random.default_rng(1), n_draws=4000)
                          for t in tables])
    # Two independent estimates, each with standard error <= 0.008.
    assert np.abs(batched - reference).max() < 0.045
    assert np.abs(batched - reference).mean() < 0.012
    # Seeded: the same generator state gives the same p-values.
    again = monte_carlo_p_values(tables, rng=np.random.default_rng(0), n_draws=4000)
    assert np.array_equal(batched, again)


def test_batched_conditional_p_values_are_uniform_under_the_null():
    # Tables drawn under equal distributions: P(p <= 0.1) ~ 0.1 (slightly less: discreteness).
    rng = np.random.default_rng(3)
    shares = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    tables = np.stack([rng.multinomial(12, shares, size=2) for _ in range(600)])
    tables = tables[(tables.sum(1) > 0).sum(1) >= 3]
    p = monte_carlo_p_values(tables, rng=rng, n_draws=499)
    assert 0.05 < np.mean(p <= 0.1) <= 0.13


def test_vectorised_fisher_matches_scipy():
    from biaskit.metrics.conditional import fisher_p_values

    rng = np.random.default_rng(0)
    tables = rng.integers(0, 12, size=(400, 2, 2))
    tables = tables[(tables.sum(1) > 0).all(1) & (tables.sum(2) > 0).all(1)]
    tables = np.concatenate([tables, [[[5, 5], [5, 5]], [[20, 0], [0, 20]], [[1, 0], [0, 1]]]])
    expected = [stats.fisher_exact(t).pvalue for t in tables]
    assert fisher_p_values(tables) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_large_tables_are_drawn_one_at_a_time_and_match_enumeration():
    from biaskit.metrics.conditional import MAX_TABULATED_PERSONS

    tables = np.array([[[200, 2, 0], [150, 0, 1]],  # > MAX_TABULATED_PERSONS persons
                       [[4, 1, 0], [1, 2, 3]]])  # tabulated, in the same call
    assert tables[0].sum() > MAX_TABULATED_PERSONS >= tables[1].sum()
    p = monte_carlo_p_values(tables, rng=np.random.default_rng(2), n_draws=40000)
    for table, value in zip(tables, p):
        assert value == pytest.approx(exact_conditional_p(table), abs=0.01)


def test_percentile_interval_keeps_its_input_unless_told():
    reps = np.random.default_rng(4).normal(size=(6, 501))
    kept = reps.copy()
    low, high = percentile_interval(reps, confidence=0.8)
    assert np.array_equal(reps, kept)
    assert low == pytest.approx(np.percentile(kept, 10, axis=1))
    low2, high2 = percentile_interval(reps, confidence=0.8, overwrite=True)
    assert np.array_equal(low, low2) and np.array_equal(high, high2)
    assert np.array_equal(np.sort(reps, axis=1), np.sort(kept, axis=1))  # reordered, not changed


def test_percentile_interval_of_float32_draws_matches_numpy():
    # Float32 draws are ordered as float32; the result is numpy's percentile of the same values.
    reps = np.random.default_rng(5).normal(size=(5, 1000)).astype(np.float32)
    reps[2, :7] = np.nan
    low, high = percentile_interval(reps, confidence=0.95)
    assert low.dtype == high.dtype == np.float64
    assert low == pytest.approx(np.nanpercentile(reps.astype(np.float64), 2.5, axis=1), rel=1e-12)
    assert high == pytest.approx(np.nanpercentile(reps.astype(np.float64), 97.5, axis=1), rel=1e-12)
