"""The single-category test behind the corrected HOF and mean entropy's lower bound."""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import gammaln

from biaskit.metrics import BiasFrame
from biaskit.metrics.correction import (pure_log_likelihood, single_category_pvalue,
                                        single_category_statistic, smoothed)
from biaskit.suite import suite_from_dict

C2 = np.array([[0.92, 0.08], [0.12, 0.88]])
C3 = np.array([[0.8, 0.15, 0.05], [0.1, 0.85, 0.05], [0.05, 0.1, 0.85]])


def test_pure_log_likelihood_is_the_multinomial_kernel():
    counts = np.array([[7.0, 2.0, 1.0], [0.0, 4.0, 0.0]])
    got = pure_log_likelihood(counts, C3)
    for g, n in enumerate(counts):
        coefficient = gammaln(n.sum() + 1) - gammaln(n + 1).sum()
        expected = [stats.multinomial.logpmf(n, n.sum(), C3[c]) - coefficient for c in range(3)]
        assert got[g] == pytest.approx(expected)


def log_likelihood_ratio_by_search(n, matrix):
    """max over p in the simplex of l(C^T p) minus max over its vertices, by scipy's optimiser."""
    def negative(x):
        p = np.abs(x) / np.abs(x).sum()
        return -(n * np.log(p @ matrix)).sum()
    k = len(n)
    starts = [np.full(k, 1.0 / k)] + list(np.eye(k) + 1e-3)
    best = min(optimize.minimize(negative, s, method="Nelder-Mead",
                                 options={"xatol": 1e-10, "fatol": 1e-12}).fun for s in starts)
    vertices = max((n * np.log(matrix[c])).sum() for c in range(k))
    return max(0.0, -best - vertices)


@pytest.mark.parametrize("n", [[17, 3], [12, 8], [20, 0], [15, 5], [0, 20], [2, 18]])
def test_statistic_of_two_categories_is_the_likelihood_ratio(n):
    # With two categories the clipped inverse is the maximum-likelihood estimate on [0, 1].
    n = np.array(n, dtype=float)
    got = float(single_category_statistic(n, C2))
    assert got == pytest.approx(log_likelihood_ratio_by_search(n, C2), abs=1e-6)


def test_statistic_of_three_categories_is_at_most_the_likelihood_ratio_and_zero_when_pure():
    rng = np.random.default_rng(3)
    for _ in range(5):
        n = rng.multinomial(20, C3.T @ rng.dirichlet(np.ones(3))).astype(float)
        exact = log_likelihood_ratio_by_search(n, C3)
        assert 0.0 <= float(single_category_statistic(n, C3)) <= exact + 1e-6
    # Exactly a row of C: the best single category fits as well as any mixture.
    assert float(single_category_statistic(C3[1] * 40, C3)) == pytest.approx(0.0, abs=1e-9)
    assert float(single_category_statistic(np.zeros(3), C3)) == 0.0


def test_statistic_broadcasts_over_draws_of_the_matrix():
    counts = np.array([[15.0, 5.0], [10.0, 10.0]])
    matrices = np.stack([C2, np.eye(2), C2[::-1, ::-1]])
    got = single_category_statistic(counts[:, None, :], matrices[None])
    assert got.shape == (2, 3)
    for g in range(2):
        for b in range(3):
            assert got[g, b] == pytest.approx(float(single_category_statistic(counts[g], matrices[b])))


def test_smoothed_adds_the_prior_to_every_cell():
    assert smoothed(np.array([[9.0, 0.0], [1.0, 9.0]])).ravel() == pytest.approx(
        [9.5 / 10, 0.5 / 10, 1.5 / 11, 9.5 / 11])


def test_pvalue_compares_the_sums_over_prompts_draw_by_draw():
    observed = np.array([1.0, 2.0])  # sum 3
    null = np.array([[0.0, 2.0, 1.0, 4.0], [0.5, 1.0, 2.0, 0.0]])  # sums 0.5, 3, 3, 4
    assert single_category_pvalue(observed, null) == pytest.approx((1 + 3) / 5)
    assert single_category_pvalue(np.array([9.0]), null[:1]) == pytest.approx(1 / 5)


def test_pvalue_under_the_hypothesis_is_uniform_enough():
    # Every prompt a single category, a known tagger: P(p <= 0.05) stays near 0.05.
    rng = np.random.default_rng(0)
    scoring = np.broadcast_to(C2, (400, 2, 2))
    pvalues = []
    for _ in range(300):
        counts = rng.multinomial(20, C2[rng.integers(2, size=8)]).astype(float)
        best = pure_log_likelihood(counts, C2).argmax(axis=-1)
        null = rng.multinomial(20, np.broadcast_to(C2[best][:, None, :], (8, 400, 2)))
        pvalues.append(single_category_pvalue(single_category_statistic(counts, C2),
                                              single_category_statistic(null.astype(float),
                                                                        scoring[None])))
    rejected = np.mean(np.array(pvalues) <= 0.05)
    assert 0.01 <= rejected <= 0.08


def frame_of(truths, seed, n_boot=400):
    """8 individual prompts of 20 images with the given true Female shares, tagged through C2,
    and a confusion table from 250 validation faces per class."""
    rng = np.random.default_rng(seed)
    labels = np.array(["Male", "Female"], dtype=object)
    rows = []
    for g, share in enumerate(truths):
        true = (rng.random(20) < share).astype(int)
        tagged = (rng.random(20) < C2[true, 1]).astype(int)
        rows += [("m", f"p{g}", s, 0, "gender", labels[t]) for s, t in enumerate(tagged)]
    obs = pd.DataFrame(rows, columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    confusion = pd.DataFrame(
        [("gender", labels[i], labels[j], int(c)) for i in range(2)
         for j, c in enumerate(rng.multinomial(250, C2[i]))],
        columns=["attribute", "true", "predicted", "count"])
    suite = suite_from_dict({"name": "s", "prompts": [{"id": f"p{g}", "text": "a person"}
                                                      for g in range(len(truths))]})
    return BiasFrame(obs, suite=suite, n_boot=n_boot, seed=seed, confusion=confusion)


def test_single_category_prompts_get_a_corrected_lower_bound_of_zero():
    frame = frame_of([0.0] * 8, seed=1)
    row = frame.corrected_overall.iloc[0]
    assert row.hof > 0 and row.mean_entropy > 0  # the tagger's errors leave some heterogeneity
    assert row.hof_ci_low == 0.0 and row.mean_entropy_ci_low == 0.0
    assert row.hof <= row.hof_ci_high and row.mean_entropy <= row.mean_entropy_ci_high
    # Without draws (n_boot=0) there is no interval, not half of one.
    row = frame_of([0.0] * 8, seed=1, n_boot=0).corrected_overall.iloc[0]
    assert np.isnan([row.hof_ci_low, row.hof_ci_high, row.mean_entropy_ci_low]).all()


def test_mixed_prompts_reject_the_single_category_hypothesis():
    row = frame_of([0.5] * 8, seed=2).corrected_overall.iloc[0]
    assert row.hof_ci_low > 0.5 and row.mean_entropy_ci_low > 0.5
    assert row.hof_ci_low <= row.hof <= row.hof_ci_high


def test_a_validation_set_with_alike_rows_gives_a_statistic_not_an_error():
    # Two faces per class, each tagged once right and once wrong: a singular confusion matrix.
    alike = smoothed(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert np.linalg.matrix_rank(alike) == 1
    assert float(single_category_statistic(np.array([15.0, 5.0]), alike)) == pytest.approx(0.0)
