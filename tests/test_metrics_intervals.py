"""Posterior draws and entropy intervals against closed forms (Dirichlet entropy, delta method)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma

from biaskit.metrics import BiasFrame
from biaskit.metrics.posterior import AttributeDraws, design_sums
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
    counts = np.array([[1, 0], [0, 0]])
    draws = AttributeDraws(counts, one_person_per_image(counts), expected=np.array([0, 0]),
                           n_draws=500, rng=np.random.default_rng(0))
    assert np.isfinite(draws.entropy[0]).all() and np.isfinite(draws.match[0]).all()
    assert np.isnan(draws.entropy[1]).all() and np.isnan(draws.match[1]).all()


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
