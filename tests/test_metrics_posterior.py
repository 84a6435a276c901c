"""Intervals of biaskit.metrics.posterior against independent computations (scipy, enumeration,
plain Python); their coverage is measured by benchmarks/bench_coverage.py."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import gammaln

from biaskit.metrics import BiasFrame
from biaskit.metrics.correction import expected_heterogeneity
from biaskit.metrics.entropy import normalized_entropy
from biaskit.metrics.posterior import (
    AttributeDraws,
    GammaPool,
    design_sums,
    effective_counts,
    jeffreys_interval,
    mover_interval,
    pivot_interval,
)
from biaskit.suite import suite_from_dict


def test_jeffreys_interval_matches_scipy_beta_quantiles():
    for n in (1, 5, 20, 57):
        for x in range(n + 1):
            low, high = jeffreys_interval(x, n)
            a, b = x + 0.5, n - x + 0.5
            assert low == pytest.approx(0.0 if x == 0 else stats.beta.ppf(0.025, a, b))
            assert high == pytest.approx(1.0 if x == n else stats.beta.ppf(0.975, a, b))
            assert low <= x / n <= high and high > low  # never collapses to a point
    low, high = jeffreys_interval(np.array([3.0]), np.array([0.0]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    # 0 of 20: the interval reaches the shares (1-10 %) that give 0 of 20 most of the time.
    assert jeffreys_interval(0, 20)[1] > 0.1


def test_effective_counts_by_hand():
    # One person per image: the design effect is 1, counts stay.
    singles = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], dtype=float)
    design = design_sums(singles).sum(axis=0, keepdims=True)
    assert effective_counts(singles.sum(axis=0, keepdims=True), design)[0] == pytest.approx([3, 1])
    # Persons of an image always alike: each image counts once (deff = 3 persons per image).
    alike = np.array([[3, 0], [0, 3], [3, 0], [3, 0]], dtype=float)
    design = design_sums(alike).sum(axis=0, keepdims=True)
    assert effective_counts(alike.sum(axis=0, keepdims=True), design)[0] == pytest.approx([3, 1])
    # Only one label seen: nothing tells the correlation, so each image is one unit.
    one_label = np.array([[2, 0], [3, 0]], dtype=float)
    design = design_sums(one_label).sum(axis=0, keepdims=True)
    assert effective_counts(one_label.sum(axis=0, keepdims=True), design)[0] == pytest.approx([2, 0])


def test_pivot_interval_by_hand():
    pivots = np.linspace(-0.3, 0.1, 401)[None, :]
    q_low, q_high = np.percentile(pivots, [2.5, 97.5])
    low, high = pivot_interval(np.array([0.5]), pivots)
    assert low[0] == pytest.approx(0.5 - q_high) and high[0] == pytest.approx(0.5 - q_low)
    # Clipped to [0, 1], and always holding the point.
    low, high = pivot_interval(np.array([0.95]), pivots)
    assert high[0] == 1.0
    low, high = pivot_interval(np.array([0.0]), np.full((1, 50), -0.2))
    assert low[0] == 0.0 and high[0] == pytest.approx(0.2)
    low, high = pivot_interval(np.array([0.4]), np.full((1, 50), 0.3))
    assert low[0] <= 0.4 <= high[0]


def test_mover_interval_is_newcombes_formula():
    # Two proportions 12/20 and 5/20 with Jeffreys intervals, by hand (Newcombe 1998).
    (l1, u1), (l2, u2) = jeffreys_interval(12, 20), jeffreys_interval(5, 20)
    low, high = mover_interval(0.6, (l1, u1), 0.25, (l2, u2))
    assert low == pytest.approx(0.35 - math.sqrt((0.6 - l1) ** 2 + (u2 - 0.25) ** 2))
    assert high == pytest.approx(0.35 + math.sqrt((u1 - 0.6) ** 2 + (0.25 - l2) ** 2))


def test_gamma_pool_rows_are_gamma_variates_with_their_g_log_g():
    pool = GammaPool(6, 1 / 3, np.random.default_rng(0), size=4096)
    for v in (0, 2, 6):
        # Row v holds Gamma(v + 1/3) variates (Kolmogorov-Smirnov against scipy).
        assert stats.kstest(pool.table[v], stats.gamma(v + 1 / 3).cdf).pvalue > 1e-3
    table = pool.table.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(table > 0, table * np.log(table), 0.0)
    assert pool.g_log_g == pytest.approx(expected, rel=1e-6, abs=1e-7)  # float32


def test_entropy_pivots_match_a_plain_python_simulation():
    # One prompt of 20 images, 17 Male and 3 Female: the pivot H(n** / N) - H(p*), with
    # p* ~ Beta(17.5, 3.5) and n** ~ Binomial(20, p*), simulated independently with scipy.
    counts = np.array([[17, 3]])
    design = design_sums(np.repeat([[1, 0], [0, 1]], [17, 3], axis=0)).sum(axis=0, keepdims=True)
    draws = AttributeDraws(counts, design, expected=np.array([0]), n_draws=20000,
                           rng=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    p = stats.beta.rvs(17.5, 3.5, size=20000, random_state=rng)
    redrawn = rng.binomial(20, p)

    def h(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(-(x * np.log(x) + (1 - x) * np.log(1 - x)) / math.log(2))

    plain = h(redrawn / 20) - h(p)
    for q in (2.5, 50, 97.5):
        assert np.percentile(draws.entropy[0], q) == pytest.approx(np.percentile(plain, q), abs=0.02)
    match = redrawn / 20 - p  # the expected label's share (Male) pivot
    assert np.percentile(draws.match[0], 97.5) == pytest.approx(np.percentile(match, 97.5), abs=0.01)


def test_expected_heterogeneity_by_exact_enumeration():
    p = np.array([0.6, 0.3, 0.1])
    for n in (1, 2, 4):
        mixed = sum(math.prod(p[list(seq)]) for seq in itertools.product(range(3), repeat=n)
                    if len(set(seq)) > 1)
        assert expected_heterogeneity(p, n) == pytest.approx(mixed)


def test_zero_of_twenty_never_collapses_and_estimates_sit_inside():
    suite = suite_from_dict({"name": "z", "prompts": [{"id": f"p{i}", "text": "a"} for i in range(3)]})
    obs = pd.DataFrame([("m", f"p{i}", s, 0, "gender", "Male") for i in range(3) for s in range(20)],
                       columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    bias = BiasFrame(obs, suite=suite, n_boot=500, seed=0)
    female = bias.distribution[bias.distribution.label == "Female"]
    assert (female.ci_low == 0).all() and (female.ci_high > 0.1).all()
    assert (bias.summary.entropy_ci_low == 0).all() and (bias.summary.entropy_ci_high > 0.1).all()
    overall = bias.overall.iloc[0]
    assert overall.hof == 0 and overall.hof_ci_low == 0 and overall.hof_ci_high > 0.3
    assert overall.mean_entropy_ci_low == 0 and overall.mean_entropy_ci_high > 0


def test_corrected_overall_holds_the_observed_and_corrected_headline():
    rng = np.random.default_rng(3)
    suite = suite_from_dict({"name": "c", "prompts": [{"id": f"p{i}", "text": "a"} for i in range(4)]})
    # A one-gender model seen through a tagger that errs on 10 % of faces.
    labels = np.where(rng.random(80) < 0.1, "Female", "Male")
    obs = pd.DataFrame({"model": "m", "prompt_id": np.repeat([f"p{i}" for i in range(4)], 20),
                        "sample": np.tile(np.arange(20), 4), "person": 0, "attribute": "gender",
                        "label": labels})
    confusion = pd.DataFrame([("gender", "Male", "Male", 225), ("gender", "Male", "Female", 25),
                              ("gender", "Female", "Female", 225), ("gender", "Female", "Male", 25)],
                             columns=["attribute", "true", "predicted", "count"])
    bias = BiasFrame(obs, suite=suite, n_boot=400, seed=0, confusion=confusion)
    row = bias.corrected_overall.iloc[0]
    assert row.n_validation == 500 and row.validation_accuracy == pytest.approx(0.9)
    assert row.observed_hof == bias.overall.iloc[0].hof
    assert row.hof_ci_low <= row.hof <= row.hof_ci_high
    assert row.mean_entropy_ci_low <= row.mean_entropy <= row.mean_entropy_ci_high
    assert row.hof < row.observed_hof  # most of the heterogeneity was the tagger's
    assert row.hof_ci_low == 0.0  # a one-gender truth stays inside


# ---------------------------------------------------------------- compiled draws (kernels)
from biaskit.metrics import kernels, posterior  # noqa: E402


def _state(seed):
    state = np.empty(1, dtype=np.uint64)
    kernels._seed(state, seed, 0)
    return state


@pytest.mark.parametrize("n, p", [(40, 0.3), (150, 0.8), (2500, 0.45), (3000, 0.999)])
def test_binomial_matches_scipy(n, p):
    # Inversion from 0 (a small mean of the smaller tail) or from the mode outwards; p > 1/2 flips.
    state = _state(n)
    log_factorial = gammaln(np.arange(n + 1) + 1.0)
    draws = np.array([kernels._binomial(n, p, state, log_factorial) for _ in range(20000)])
    low, high = stats.binom.ppf([0.001, 0.999], n, p).astype(int)
    edges = np.arange(low, high + 2)
    observed = np.histogram(np.clip(draws, low, high), bins=edges)[0]
    cdf = stats.binom.cdf(edges[1:-1] - 1, n, p)
    expected = np.diff(np.concatenate([[0.0], cdf, [1.0]])) * len(draws)
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("n", [20, 300])  # person by person, and the chain of binomials
def test_multinomial_redraw_matches_the_multinomial(n):
    gammas = np.array([2.5, 1.5, 0.75, 0.25])
    p = gammas / gammas.sum()
    state, counts = _state(n), np.empty(4, dtype=np.int64)
    draws = np.empty((20000, 4))
    for i in range(len(draws)):
        kernels._redraw(n, gammas, np.cumsum(gammas), counts, state, gammaln(np.arange(n + 1) + 1.0))
        draws[i] = counts
    assert (draws.sum(axis=1) == n).all()
    covariance = n * (np.diag(p) - np.outer(p, p))
    standard_error = np.sqrt(np.diag(covariance) / len(draws))
    assert (np.abs(draws.mean(axis=0) - n * p) < 4 * standard_error).all()
    variance = np.diag(covariance)  # a covariance estimate's standard error is below this
    tolerance = 5 * np.sqrt(2 * np.outer(variance, variance) / len(draws))
    assert (np.abs(np.cov(draws.T) - covariance) < tolerance).all()
    # The smallest category's count: its binomial marginal, by a chi-square fit.
    values, observed = np.unique(draws[:, 3], return_counts=True)
    expected = stats.binom.pmf(values, n, p[3]) * len(draws)
    keep = expected > 5
    assert stats.chisquare(observed[keep], expected[keep] * observed[keep].sum()
                           / expected[keep].sum()).pvalue > 1e-3


def _plain_pivots(key, n_draws, rng):
    """H(n** / N) - H(p*), p* ~ Dirichlet(key + 1/K) by scipy, n** ~ Multinomial(N, p*) by numpy."""
    k = len(key)
    p = stats.dirichlet.rvs(np.asarray(key) + 1 / k, size=n_draws, random_state=rng)
    redrawn = rng.multinomial(sum(key), p)
    return normalized_entropy(redrawn) - normalized_entropy(p), normalized_entropy(p)


@pytest.mark.parametrize("pool_size", [posterior.POOL_SIZE, 1 << 22])
def test_pivots_of_several_vectors_match_a_plain_simulation(monkeypatch, pool_size):
    # Four small vectors (K = 3): the default pool is smaller than the draws it replaces, so
    # they come from it; a pool of 2**22 per shape never pays off, so gammas are drawn directly,
    # and then a vector of 200 persons (the binomial chain) joins them.
    monkeypatch.setattr(posterior, "POOL_SIZE", pool_size)
    keys = [[12, 3, 0], [10, 5, 0], [8, 7, 0], [15, 0, 0]]
    if pool_size > posterior.POOL_SIZE * 2:
        keys.append([150, 40, 10])
    counts = np.array(keys, dtype=float)
    design = np.hstack([counts, counts, counts.sum(axis=1, keepdims=True),
                        counts.sum(axis=1, keepdims=True)])  # one person per image: deff 1
    draws = AttributeDraws(counts, design, expected=np.full(len(keys), -1), n_draws=20000,
                           rng=np.random.default_rng(7))
    rng = np.random.default_rng(8)
    for row, key in enumerate(keys):
        pivots, truth = _plain_pivots(key, 20000, rng)
        for q in (2.5, 50, 97.5):
            assert np.percentile(draws.entropy[row], q) == pytest.approx(np.percentile(pivots, q),
                                                                          abs=0.02)
            assert np.percentile(draws.posterior_entropy[row], q) == pytest.approx(
                np.percentile(truth, q), abs=0.02)
