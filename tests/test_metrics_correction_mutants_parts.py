"""Promises of the correction's parts that its surviving mutants broke (issue 15): the unmixing is
the maximum-likelihood estimate however far outside the simplex the inverse lies and for
degenerate validation sets, no numpy warnings on degenerate rows, prompts without an estimate
left out (not the others with them), per-prompt bias terms, float32 ties counted, and the
test-inversion and p-value boundaries as documented."""

import warnings

import numpy as np
import pytest
from scipy import optimize

from biaskit.metrics import correction
from biaskit.metrics.correction import (_finite_mean, bias_aware_interval, heterogeneity_path,
                                        heterogeneity_upper_bound, point_entropy_pivots,
                                        pure_log_likelihood, row_stochastic,
                                        single_category_pvalue, single_category_statistic, smoothed,
                                        unmix)
from test_metrics_correction import _binary_entropy, _closed_form_unmix
from test_metrics_single_category import C2, log_likelihood_ratio_by_search


def _no_warnings(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call(*args, **kwargs)


def maximum_likelihood(q, matrix):
    """argmax over the simplex of ``sum_j q_j log (C^T p)_j`` (scipy, softmax parameters)."""
    k = len(q)

    def negative(x):
        p = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        fitted = p @ matrix
        return -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, fitted, 1.0)), 0.0))

    starts = [np.zeros(k)] + [3 * np.eye(k)[i] for i in range(k)]
    best = min((optimize.minimize(negative, s, method="Nelder-Mead",
                                  options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 40000})
                for s in starts), key=lambda r: r.fun)
    return np.exp(best.x - best.x.max()) / np.exp(best.x - best.x.max()).sum(), -best.fun


# A noisy tagger and an inverse far outside the simplex (-1.65 and -0.64): EM started from the
# unclipped inverse keeps those shares negative, though the estimate's fourth share is 0.21.
FAR_C = row_stochastic(np.array([[0.48, 0.34, 0.04, 0.14], [0.19, 0.39, 0.01, 0.41],
                                 [0.42, 0.02, 0.41, 0.15], [0.29, 0.25, 0.04, 0.42]]))
FAR_Q = np.array([0.0, 0.01, 0.53, 0.46])
# Three categories, a share of -0.45 in the inverse: a start of 0.5 p / sum + 0.5 / K, not minus.
NEAR_C = row_stochastic(np.array([[0.747, 0.241, 0.012], [0.12, 0.667, 0.213], [0.009, 0.271, 0.72]]))
NEAR_Q = np.array([0.776, 0.06, 0.164])


@pytest.mark.parametrize("q, matrix", [(FAR_Q, FAR_C), (NEAR_Q, NEAR_C)], ids=["far", "near"])
def test_unmix_far_outside_the_simplex_is_the_maximum_likelihood_estimate(q, matrix):
    assert np.linalg.solve(matrix.T, q).min() < -0.4
    expected, best = maximum_likelihood(q, matrix)
    got = unmix(q, matrix)
    fitted = got @ matrix
    assert np.sum(q[q > 0] * np.log(fitted[q > 0])) == pytest.approx(best, abs=1e-9)
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_unmix_with_a_label_the_validation_set_never_predicts():
    # No validation face was tagged "c" (a zero column, a singular matrix), nor was any in the
    # run: the EM divides by a zero prediction of "c" nowhere, and reaches the likelihood's maximum.
    matrix = row_stochastic(np.array([[8.0, 2.0, 0.0], [3.0, 7.0, 0.0], [5.0, 5.0, 0.0]]))
    q = np.array([0.95, 0.05, 0.0])
    assert (np.linalg.pinv(matrix.T) @ q).min() < 0  # the EM runs
    got = _no_warnings(unmix, q, matrix)
    expected, best = maximum_likelihood(q, matrix)
    assert np.sum(q[:2] * np.log((got @ matrix)[:2])) == pytest.approx(best, abs=1e-9)
    assert got.sum() == pytest.approx(1.0) and (got >= 0).all()


def test_unmix_of_a_singular_matrix_is_on_the_simplex():
    # Two validation faces per class tagged alike (rows 0.75 / 0.25): every p fits as well, the
    # pseudo-inverse's p = (0.4, 0.4) sums to 0.8, and the estimate is its projection (0.5, 0.5).
    matrix = row_stochastic(np.array([[3.0, 1.0], [3.0, 1.0]]))
    assert (np.linalg.pinv(matrix.T) @ [0.5, 0.5]).sum() == pytest.approx(0.8)
    np.testing.assert_allclose(unmix(np.array([10.0, 10.0]), matrix), [0.5, 0.5])


def test_unmix_of_a_stack_with_an_empty_row_raises_no_warning():
    # Rows inside the simplex, outside it (the EM) and empty (NaN), unmixed at once.
    matrix = np.array([[0.9, 0.1], [0.2, 0.8]])
    observed = np.array([[11.0, 9.0], [0.0, 0.0], [20.0, 0.0]])
    got = _no_warnings(unmix, observed, matrix)
    np.testing.assert_allclose(got[[0, 2]], [[0.5, 0.5], [1.0, 0.0]], atol=1e-8)
    assert np.isnan(got[1]).all()


def test_row_stochastic_normalises_fractional_rows():
    np.testing.assert_allclose(row_stochastic(np.array([[0.3, 0.1], [0.5, 0.5]])),
                               [[0.75, 0.25], [0.5, 0.5]])


def test_finite_mean_counts_only_the_finite_values():
    values = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [np.nan, 5.0, np.nan]])
    got = _no_warnings(_finite_mean, values, axis=1)
    assert got[0] == 2.0 and got[2] == 5.0 and np.isnan(got[1])
    assert _finite_mean(values, axis=(0, 1)) == pytest.approx(3.0)


def test_pure_log_likelihood_takes_0_log_0_as_0_without_warnings():
    counts = np.array([[3.0, 0.0], [0.0, 2.0]])
    got = _no_warnings(pure_log_likelihood, counts, np.eye(2))
    np.testing.assert_array_equal(got, [[0.0, -np.inf], [-np.inf, 0.0]])


def test_single_category_statistic_of_a_stack_with_nobody_known_raises_no_warning():
    got = _no_warnings(single_category_statistic, np.array([[15.0, 5.0], [0.0, 0.0]]), C2)
    assert got[1] == 0.0
    assert got[0] == pytest.approx(log_likelihood_ratio_by_search(np.array([15.0, 5.0]), C2), abs=1e-6)


def test_single_category_statistic_of_a_perfect_tagger_and_two_labels_is_infinite():
    # No single category makes two labels through a perfect tagger: the ratio is +inf, and an
    # unseen third label (0 log 0) changes nothing.
    got = _no_warnings(single_category_statistic, np.array([10.0, 10.0, 0.0]), np.eye(3))
    assert got == np.inf


def test_single_category_statistic_with_alike_validation_rows_is_the_likelihood_ratio():
    # A tiny validation set: two classes tagged alike (a singular matrix), whose pseudo-inverse
    # clipped to the simplex sums to less than 1 and is renormalised.
    matrix = smoothed(np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0], [1.0, 3.0, 0.0]]))
    n = np.array([4.0, 2.0, 3.0])
    expected = log_likelihood_ratio_by_search(n, matrix)
    assert expected > 0.02
    assert float(single_category_statistic(n, matrix)) == pytest.approx(expected, abs=1e-5)


def test_pvalue_sums_float32_statistics_of_many_prompts_in_float64():
    # One prompt's statistic 1 and 200 prompts' 3e-8 each (below float32's half-step at 1):
    # summed in float32 the draw would read 1.0 and miss its tie with the observed 1 + 6e-6.
    null = np.full((201, 3), 3e-8, dtype=np.float32)
    null[0] = 1.0
    null[0, 1:] = 0.5
    observed = null[:, 0].astype(np.float64)
    assert np.float32(1.0) + np.float32(3e-8) == np.float32(1.0)
    assert single_category_pvalue(observed, null) == pytest.approx(2 / 4)


def test_pvalue_ties_are_within_a_relative_one_in_a_million():
    # Statistics stored as float32 differ from their float64 sums by ~1e-7 relative: a tie.
    observed = np.array([57.3, 42.1])
    null = np.stack([observed, observed / 2]).T.astype(np.float32)
    gap = observed.sum() - np.sum(null[:, 0], dtype=np.float64)  # float32 rounds this draw down
    assert 1e-8 < gap < 1e-4
    assert single_category_pvalue(observed, null) == pytest.approx(2 / 3)
    # at total 1: exactly 1e-6 below still ties, 1.5e-6 below does not
    total = np.array([1.0])
    assert single_category_pvalue(total, np.array([[1.0 - 1e-6 * 1.0]])) == pytest.approx(1.0)
    assert single_category_pvalue(total, np.array([[1.0 - 1.5e-6]])) == pytest.approx(0.5)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_bias_aware_interval_uses_the_confidence_and_leaves_an_unbiased_interval(confidence):
    pivots = np.random.default_rng(0).normal(-0.05, 0.02, 4000)
    low, high = bias_aware_interval(0.8, (0.78, 0.82), pivots, confidence=confidence)
    alpha = (1 - confidence) / 2
    assert (low, high) == (0.78, pytest.approx(0.8 - np.quantile(pivots, alpha)))
    centred = np.concatenate([pivots, -pivots])  # a mean of exactly 0: no bias to extend for
    assert np.nanmean(centred) == 0.0
    assert bias_aware_interval(0.8, (0.78, 0.82), centred, confidence=confidence) == (0.78, 0.82)


def test_upper_bound_counts_float32_ties_with_the_point():
    # Three prompts whose simulated HOF estimates (float32, as stored) equal their point estimates
    # at every weight: every estimate ties with the point, nothing is rejected, the bound is the
    # path's end.  Summed in float32 their mean reads above the point.
    values = np.array([0.1, 0.2, 0.7], dtype=np.float32)
    assert values.mean(dtype=np.float32) > values.astype(np.float64).mean() + 1e-12
    heterogeneity = np.array([[0.1, 0.5, 0.9]] * 3)
    simulated = np.broadcast_to(values[:, None, None], (3, 3, 40))
    point = values.astype(np.float64).mean()
    assert heterogeneity_upper_bound(point, heterogeneity, simulated, confidence=0.95) == pytest.approx(0.9)
    # "at or below" within 1e-12: exactly 1e-12 above is a tie too
    at = np.full((1, 3, 4), 0.5 + 1e-12)
    assert heterogeneity_upper_bound(0.5, heterogeneity[:1], at, confidence=0.95) == pytest.approx(0.9)


def test_upper_bound_rejects_at_exactly_the_level_and_interpolates_with_both_rates():
    # confidence 0.5: alpha = 0.25 exactly; the second truth's rate is exactly 0.25 -> rejected.
    heterogeneity = np.array([[0.2, 0.4, 0.6, 0.8]])
    simulated = np.ones((1, 4, 100))
    simulated[0, 0, :50] = 0.0
    simulated[0, 1:3, :25] = 0.0
    assert heterogeneity_upper_bound(0.5, heterogeneity, simulated, confidence=0.5) == pytest.approx(0.4)
    # rates 0.5 then 0.01 around alpha 0.025: 0.2 + (0.5 - 0.025) / (0.5 - 0.01) x 0.2
    simulated = np.ones((1, 2, 100))
    simulated[0, 0, :50] = 0.0
    simulated[0, 1, :1] = 0.0
    got = heterogeneity_upper_bound(0.5, heterogeneity[:, :2], simulated, confidence=0.95)
    assert got == pytest.approx(0.2 + 0.475 / 0.49 * 0.2)


SHARES_WITH_GAPS = np.array([[0.8, 0.2], [np.nan, np.nan], [0.0, 0.0]])  # a degenerate unmixing: NaN, zeros


def test_heterogeneity_path_leaves_out_only_the_prompts_without_an_estimate():
    eye = np.broadcast_to(np.eye(2), (40, 2, 2))
    heterogeneity, simulated = heterogeneity_path(SHARES_WITH_GAPS, [20, 20, 20], [20, 20, 20], eye, eye,
                                                  rng=np.random.default_rng(0))
    share = (1 - correction.PATH_WEIGHTS) * 0.2 + correction.PATH_WEIGHTS / 2
    np.testing.assert_allclose(heterogeneity[0], 1 - share**20 - (1 - share) ** 20)
    assert np.isfinite(simulated[0]).all()
    assert np.isnan(heterogeneity[1:]).all() and np.isnan(simulated[1:]).all()


def test_point_entropy_pivots_leave_out_only_the_prompts_without_an_estimate(monkeypatch):
    outer = []
    inner_bias = correction.inner_bias

    def spy(estimate, *args, **kwargs):
        outer.append(estimate.shape[1])
        return inner_bias(estimate, *args, **kwargs)

    monkeypatch.setattr(correction, "inner_bias", spy)
    matrix = np.array([[0.9, 0.1], [0.2, 0.8]])
    matrices = np.broadcast_to(matrix, (80, 2, 2))
    pivots = point_entropy_pivots(SHARES_WITH_GAPS, np.full(3, 20), matrices, matrices,
                                  np.full(2, 10**6), rng=np.random.default_rng(0))
    assert pivots.shape == (3, 80) and np.isfinite(pivots[0]).all() and np.isnan(pivots[1:]).all()
    assert outer == [correction.DOUBLE_OUTER]  # the double bootstrap's cost: 50 outer draws of 80


def test_double_bootstrap_bias_is_each_prompts_own():
    """Two kinds of prompt (true shares 0.5 and 0.95): each prompt's mean pivot is its own
    ``2 b(p) - E b(p**)``, enumerated exactly over binomial outcomes, not the pooled one."""
    from scipy.stats import binom

    C = np.array([[0.9, 0.1], [0.2, 0.8]])
    n, b = 12, 4000
    xs = np.arange(n + 1)

    def bias(share):
        weights = binom.pmf(xs, n, share * C[0, 0] + (1 - share) * C[1, 0])
        return weights @ _binary_entropy(_closed_form_unmix(xs, n, C)) - _binary_entropy(share)[0]

    def expected(p):
        outer = binom.pmf(xs, n, p * C[0, 0] + (1 - p) * C[1, 0])
        return 2 * bias(p) - outer @ np.array([bias(s) for s in _closed_form_unmix(xs, n, C)])

    shares = np.array([[0.5, 0.5]] * 16 + [[0.95, 0.05]] * 16)
    matrices = np.broadcast_to(C, (b, 2, 2))
    pivots = point_entropy_pivots(shares, np.full(32, n), matrices, matrices, np.full(2, 10**9),
                                  rng=np.random.default_rng(3))
    first, second = expected(0.5), expected(0.95)
    assert abs(first - second) > 0.05
    assert pivots[:16].mean() == pytest.approx(first, abs=0.01)
    assert pivots[16:].mean() == pytest.approx(second, abs=0.01)


def test_finite_mean_leaves_infinities_out_as_it_says():
    from biaskit.metrics.correction import _finite_mean

    values = np.array([[1.0, np.inf, np.nan, 3.0], [-np.inf, np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(_finite_mean(values, axis=1), [2.0, np.nan])
