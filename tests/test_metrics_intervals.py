"""Posterior draws and entropy intervals against closed forms (Dirichlet entropy, delta method)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma

from biaskit.metrics import BiasFrame
from biaskit.metrics.posterior import AttributeDraws, design_sums, effective_counts, entropy_interval, pivot_interval
from biaskit.suite import suite_from_dict


def one_person_per_image(counts):
    """Group sums of the design for images holding one known person each."""
    counts = np.asarray(counts)
    k = counts.shape[1]
    return np.stack([design_sums(np.repeat(np.eye(k, dtype=np.int64), row, axis=0)).sum(axis=0)
                     for row in counts])


def dirichlet_mean_entropy(alpha):
    """E[H(p)] in nats for p ~ Dirichlet(alpha): psi(A + 1) - sum alpha_i / A psi(alpha_i + 1)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    total = alpha.sum()
    return digamma(total + 1) - (alpha / total * digamma(alpha + 1)).sum()


@pytest.mark.parametrize("k, n_groups", [(2, 3), (10, 40)])
def test_posterior_entropy_is_that_of_dirichlet_n_plus_one_over_k(k, n_groups):
    # Perks' prior, 1/K a category (Jeffreys' 1/2 for K = 2): with 0 of 20 the posterior mean
    # entropy (normalized) is 0.137 under it and 0.239 under a prior of 2/K.  Forty groups of ten categories
    # make enough draws for the pooled gamma variates; a few groups take the direct draws.
    rng = np.random.default_rng(k)
    counts = rng.multinomial(12, rng.dirichlet(np.ones(k) / 2, size=n_groups))
    counts[0] = 0
    counts[0, 0] = 20
    draws = AttributeDraws(counts, one_person_per_image(counts), expected=np.full(n_groups, -1),
                           n_draws=4000, rng=np.random.default_rng(0))
    posterior = draws.posterior_entropy.astype(np.float64)
    assert np.isfinite(posterior).all() and (posterior >= 0).all() and (posterior <= 1).all()
    assert np.isfinite(draws.entropy).all()
    for g, row in enumerate(counts):
        expected = dirichlet_mean_entropy(row + 1 / k) / math.log(k)
        assert posterior[g].mean() == pytest.approx(expected, abs=0.012), (g, row)


def test_one_known_person_is_a_distribution_with_an_interval():
    # groups: one image of one Male; no known person (an expected label all the same);
    # one image of a Male and a Female, whose effective counts (1/2, 1/2) round to nothing
    # and which keeps one effective person
    counts = np.array([[1, 0], [0, 0], [1, 1]])
    design = np.stack([design_sums(np.array(images)).sum(axis=0) for images in ([[1, 0]], [[0, 0]], [[1, 1]])])
    draws = AttributeDraws(counts, design, expected=np.array([0, 0, -1]), n_draws=500,
                           rng=np.random.default_rng(0))
    for g in (0, 2):
        # a new sample of one person has entropy 0: the pivot is -H(p*), draw by draw
        assert np.isfinite(draws.entropy[g]).all() and (draws.posterior_entropy[g] > 0).all()
        np.testing.assert_allclose(draws.entropy[g], -draws.posterior_entropy[g], atol=1e-6)
    assert np.isfinite(draws.match[0]).all() and set(np.unique(np.abs(draws.match[0]) > 0)) == {True}
    assert np.isnan(draws.entropy[1]).all() and np.isnan(draws.match[1]).all()
    single = AttributeDraws(counts[:1], design[:1], expected=np.array([0]), n_draws=1,
                            rng=np.random.default_rng(0))
    assert single.entropy.shape == (1, 1) and np.isfinite(single.entropy).all()


def test_match_pivots_of_each_group_have_the_binomial_variance():
    # E[n**/N - p*] = 0 and Var = E[p*(1 - p*)] / N with p* ~ Beta(x + 1/2, N - x + 1/2)
    counts = np.array([[18, 2], [5, 15], [10, 10]])
    draws = AttributeDraws(counts, one_person_per_image(counts), expected=np.array([0, 0, 1]),
                           n_draws=8000, rng=np.random.default_rng(4))
    for g, (x, y) in enumerate(counts):
        if g == 2:
            x, y = y, x  # expected label 1
        a, b = x + 0.5, y + 0.5
        variance = a * b / ((a + b) * (a + b + 1)) / 20
        assert draws.match[g].mean() == pytest.approx(0.0, abs=0.005)
        assert draws.match[g].var() == pytest.approx(variance, rel=0.1), g


def test_miller_madow_pivots_lose_the_plug_ins_first_order_bias():
    # 10 of 20: the plug-in entropy's bias is about -(K - 1) / (2 N ln 2) = -0.036;
    # Miller-Madow adds (m - 1) / (2 N) back, so its pivot averages near 0.
    counts = np.array([[10, 10]])
    pivots = {correction: AttributeDraws(counts, one_person_per_image(counts), expected=np.array([-1]),
                                         n_draws=8000, rng=np.random.default_rng(5),
                                         correction=correction).entropy.mean()
              for correction in (None, "miller-madow")}
    assert pivots[None] == pytest.approx(-1 / (40 * math.log(2)), abs=0.008)
    assert abs(pivots["miller-madow"]) < 0.01


def test_entropy_interval_at_another_confidence_is_the_delta_method_interval():
    # 600 images, 3/4 Male: sd of the normalized entropy by the delta method 0.0280;
    # at 50 % the interval is about +-0.674 sd (at 95 % it would be +-1.96 sd).
    suite = suite_from_dict({"name": "c", "prompts": [{"id": "p", "text": "p"}]})
    labels = ["Male"] * 450 + ["Female"] * 150
    obs = pd.DataFrame([("m", "p", s, 0, "gender", label) for s, label in enumerate(labels)],
                       columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    summary = BiasFrame(obs, suite=suite, n_boot=4000, seed=1, confidence=0.5).summary.iloc[0]
    shares = np.array([0.75, 0.25])
    nats = -(shares * np.log(shares)).sum()
    sd = math.sqrt(((shares * np.log(shares) ** 2).sum() - nats**2) / 600) / math.log(2)
    assert summary.entropy == pytest.approx(nats / math.log(2))
    assert summary.entropy_ci_high - summary.entropy_ci_low == pytest.approx(2 * 0.674 * sd, abs=0.006)


@pytest.mark.parametrize("images, expected", [
    # every image mixed, one of each: persons within an image anti-correlated; the design
    # effect (0 by the ratio estimator's variance) is kept at 1, so the counts stay
    ([[1, 1], [1, 1]], [2, 2]),
    # two persons alike per image and an image with nobody known: the empty image is no unit,
    # deff = 2 persons per known image (by the variance: 2 / 1 x 4 / 16 / (0.5 / 4) = 4, capped)
    ([[2, 0], [0, 0], [0, 2]], [1, 1]),
])
def test_effective_counts_by_hand_with_mixed_and_empty_images(images, expected):
    images = np.array(images)
    design = design_sums(images).sum(axis=0, keepdims=True)
    assert effective_counts(images.sum(axis=0, keepdims=True), design)[0] == pytest.approx(expected)


def test_entropy_interval_is_at_95_percent_by_default():
    counts = np.array([[14, 6]])
    draws = AttributeDraws(counts, one_person_per_image(counts), expected=np.array([-1]), n_draws=2000,
                           rng=np.random.default_rng(6))
    point = np.array([0.881])
    default, explicit = entropy_interval(point, draws), entropy_interval(point, draws, confidence=0.95)
    assert np.allclose(default, explicit) and default[0][0] < point[0] < default[1][0]


def test_pivot_interval_is_nan_where_the_point_or_every_pivot_is():
    pivots = np.array([np.linspace(-0.1, 0.1, 41)] * 2 + [[np.nan] * 41])
    low, high = pivot_interval(np.array([np.nan, 0.5, 0.5]), pivots)
    assert np.isnan([low[0], high[0], low[2], high[2]]).all()
    assert (low[1], high[1]) == pytest.approx((0.5 - 0.095, 0.5 + 0.095))
