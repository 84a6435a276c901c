"""The corrected HOF's upper bound by test inversion, against exact binomial enumeration."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biaskit.metrics import BiasFrame
from biaskit.metrics import correction
from biaskit.metrics.correction import heterogeneity_path, heterogeneity_upper_bound
from biaskit.suite import suite_from_dict


def test_upper_bound_interpolates_between_the_last_kept_and_the_first_rejected_truth():
    heterogeneity = np.array([[0.2, 0.5, 0.8]])
    simulated = np.ones((1, 3, 100))  # every estimate above the point 0.4 ...
    simulated[0, 0, :50] = 0.3        # ... but half at the first truth,
    simulated[0, 1, :5] = 0.3         # 5 % at the second (kept: > 2.5 %), none at the third
    # rejected at the third; the 2.5 % level lies half-way between 5 % and 0 %: 0.5 + 0.5 x 0.3
    assert heterogeneity_upper_bound(0.4, heterogeneity, simulated, confidence=0.95) == pytest.approx(0.65)
    # 90 %: the second truth is rejected too (5 % <= 5 %), half of 0.5's level away from the first
    assert heterogeneity_upper_bound(0.4, heterogeneity, simulated, confidence=0.9) == pytest.approx(0.5)


def test_upper_bound_is_the_path_end_when_nothing_is_rejected_and_its_start_when_all_is():
    heterogeneity = np.array([[0.1, 0.4, 0.9], [0.3, 0.6, 0.7]])  # the kind's HOF: 0.2, 0.5, 0.8
    low = np.zeros((2, 3, 40))
    assert heterogeneity_upper_bound(0.5, heterogeneity, low, confidence=0.95) == pytest.approx(0.8)
    assert heterogeneity_upper_bound(0.5, heterogeneity, low + 1, confidence=0.95) == pytest.approx(0.2)


def test_upper_bound_rejects_no_truth_beyond_one_it_kept_and_skips_unestimated_prompts():
    heterogeneity = np.array([[0.2, 0.5, 0.8], [np.nan] * 3])
    simulated = np.ones((2, 3, 100))
    simulated[0, 0, :1] = 0.0   # the first truth rejected by chance (1 % below) ...
    simulated[0, 1, :30] = 0.0  # ... the second kept (30 %): a test that rejected a truth keeps
    #                             it rejected further along the path, so the first rejection counts
    assert heterogeneity_upper_bound(0.4, heterogeneity, simulated, confidence=0.95) == pytest.approx(0.2)
    assert np.isnan(heterogeneity_upper_bound(0.4, heterogeneity[1:], simulated[1:], confidence=0.95))


def _exact_bound(x, n, confidence):
    """The same test inverted along the same path by exact binomial enumeration (perfect tagger,
    one prompt of n one-person images, x of them the second category)."""
    h = lambda s: 1 - s**n - (1 - s) ** n  # noqa: E731
    share = (1 - correction.PATH_WEIGHTS) * x / n + correction.PATH_WEIGHTS / 2
    support = h(np.arange(n + 1) / n)
    below = np.array([stats.binom.pmf(np.arange(n + 1), n, s)[support <= h(x / n) + 1e-12].sum()
                      for s in share])
    return _invert(h(share), np.minimum.accumulate(below), confidence)


def _invert(truth, below, confidence):
    alpha = (1 - confidence) / 2
    rejected = np.flatnonzero(below <= alpha)
    if not len(rejected):
        return truth[-1]
    i = rejected[0]
    if i == 0:
        return truth[0]
    return truth[i - 1] + (below[i - 1] - alpha) / (below[i - 1] - below[i]) * (truth[i] - truth[i - 1])


@pytest.mark.parametrize("x", [0, 1, 3])
def test_perfect_tagger_bound_matches_exact_binomial_enumeration(monkeypatch, x):
    monkeypatch.setattr(correction, "PATH_DRAWS", 20000)
    n = 20
    eye = np.broadcast_to(np.eye(2), (20000, 2, 2))
    shares = np.array([[1 - x / n, x / n]])
    heterogeneity, simulated = heterogeneity_path(shares, [n], [n], eye, eye,
                                                  rng=np.random.default_rng(x))
    share = (1 - correction.PATH_WEIGHTS) * x / n + correction.PATH_WEIGHTS / 2
    np.testing.assert_allclose(heterogeneity[0], 1 - share**n - (1 - share) ** n)
    # each simulated estimate is h(X / n) for X ~ Binomial(n, share): its mean, exactly
    support = 1 - (np.arange(n + 1) / n) ** n - (1 - np.arange(n + 1) / n) ** n
    exact_mean = np.array([stats.binom.pmf(np.arange(n + 1), n, s) @ support for s in share])
    np.testing.assert_allclose(simulated[0].mean(axis=-1), exact_mean, atol=0.01)
    point = 1 - (1 - x / n) ** n - (x / n) ** n
    bound = heterogeneity_upper_bound(point, heterogeneity, simulated, confidence=0.95)
    assert bound == pytest.approx(_exact_bound(x, n, 0.95), abs=0.02)
    assert bound >= point


TAGGER = np.array([[0.92, 0.08], [0.12, 0.88]])  # P(tagged | true): Male, Female
LABELS = ["Male", "Female"]


def _skewed_models(n_models, rng):
    """Models of 16 one-person prompts, 20 images each, a 5 % minority (either gender), read
    through TAGGER; each model with its own validation set of 250 faces per gender."""
    suite = suite_from_dict({"name": "s", "prompts": [{"id": f"p{i}", "text": f"person {i}"}
                                                       for i in range(16)]})
    obs, confusion = [], []
    for m in range(n_models):
        for i in range(16):
            p = np.array([0.95, 0.05])[rng.permutation(2)]
            for sample in range(20):
                true = rng.choice(2, p=p)
                obs.append((f"m{m}", f"p{i}", sample, 0, "gender", LABELS[rng.choice(2, p=TAGGER[true])]))
        for t in range(2):
            counts = rng.multinomial(250, TAGGER[t])
            confusion += [(f"m{m}", "gender", LABELS[t], LABELS[j], int(c)) for j, c in enumerate(counts)]
    return (suite, pd.DataFrame(obs, columns=["model", "prompt_id", "sample", "person", "attribute", "label"]),
            pd.DataFrame(confusion, columns=["model", "attribute", "true", "predicted", "count"]))


@pytest.mark.slow  # 24 corrected models: ~7 s
def test_corrected_hof_of_a_rare_minority_through_a_noisy_tagger_covers():
    # The case the inversion is for: the corrected estimate reads far low (a minority share
    # unmixed to 0 a third of the time). On these seeds the pivots' upper bound alone (the
    # inversion switched off) covered 14 of 24 models, 0.58; with it 22 of 24.
    suite, obs, confusion = _skewed_models(24, np.random.default_rng(5))
    truth = 1 - 0.95**20 - 0.05**20
    overall = BiasFrame(obs, suite=suite, n_boot=300, seed=1, confusion=confusion).corrected_overall
    rows = overall[overall["kind"] == "individual"]
    assert ((rows["hof_ci_low"] <= rows["hof"]) & (rows["hof"] <= rows["hof_ci_high"])).all()
    assert ((rows["hof_ci_low"] <= truth) & (truth <= rows["hof_ci_high"])).mean() >= 0.85
