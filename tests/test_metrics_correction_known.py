"""The correction's parts against known answers: Dirichlet means, the likelihood's maximum
found by brute force, a perfect tagger's expected heterogeneity by hand."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from biaskit.metrics import BiasFrame, unmix
from biaskit.metrics.correction import posterior_matrices
from biaskit.suite import suite_from_dict

COLUMNS = ["model", "prompt_id", "sample", "person", "attribute", "label"]


def test_posterior_matrices_are_row_dirichlets_of_counts_plus_one_over_k():
    counts = np.array([[30.0, 0.0, 2.0], [5.0, 5.0, 0.0], [0.0, 1.0, 9.0]])
    draws = posterior_matrices(counts, n_draws=20000, rng=np.random.default_rng(0))
    np.testing.assert_allclose(draws.sum(axis=-1), 1.0)
    mean = (counts + 1 / 3) / (counts.sum(axis=1, keepdims=True) + 1)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.005)


def test_unmix_off_the_simplex_is_the_maximum_likelihood_estimate():
    # The inverse leaves the simplex; a label never observed (q_3 = 0) must weigh nothing.
    matrix = np.array([[0.8, 0.2, 0.0], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])
    observed = np.array([0.6, 0.4, 0.0])  # on the edge p_3 = 0 the maximum is at p_1 = 0.66, by hand
    assert (np.linalg.solve(matrix.T, observed) < 0).any()
    grid = np.linspace(0, 1, 401)
    best, best_p = -np.inf, None
    for a, b in itertools.product(grid, grid):
        if a + b <= 1:
            p = np.array([a, b, 1 - a - b])
            with np.errstate(divide="ignore", invalid="ignore"):  # 0 x ln 0 of the unseen label
                value = np.nansum(observed * np.log(p @ matrix))
            if value > best:
                best, best_p = value, p
    assert best_p == pytest.approx([0.66, 0.34, 0.0], abs=0.005)
    assert unmix(observed, matrix) == pytest.approx([0.66, 0.34, 0.0], abs=1e-6)


def frame(obs, suite, confusion, **options):
    return BiasFrame(obs, suite=suite, n_boot=400, seed=3, confusion=confusion, **options)


SUITE = suite_from_dict({"name": "k", "prompts": [
    {"id": "crowd", "text": "a crowd", "kind": "group", "count": 2},
    {"id": "one", "text": "a person"},
    {"id": "nobody", "text": "a person"}]})
# crowd: 3 images of two persons (Male+Male, Male+Female, Female+Female); one: one Male;
# nobody: one image whose only person is unclear
OBS = pd.DataFrame([("m", "crowd", 0, 0, "gender", "Male"), ("m", "crowd", 0, 1, "gender", "Male"),
                    ("m", "crowd", 1, 0, "gender", "Male"), ("m", "crowd", 1, 1, "gender", "Female"),
                    ("m", "crowd", 2, 0, "gender", "Female"), ("m", "crowd", 2, 1, "gender", "Female"),
                    ("m", "one", 0, 0, "gender", "Male"), ("m", "nobody", 0, 0, "gender", "unclear")],
                   columns=COLUMNS)
PERFECT = pd.DataFrame([("gender", "Male", "Male", 500), ("gender", "Female", "Female", 500)],
                       columns=["attribute", "true", "predicted", "count"])


def test_a_perfect_taggers_correction_changes_nothing_and_uses_images_for_hof():
    bias = frame(OBS, SUITE, PERFECT)
    entropy = bias.corrected_entropy.set_index("prompt_id")
    assert entropy.loc["crowd", "entropy"] == pytest.approx(1.0)
    assert entropy.loc["one", "entropy"] == 0.0 and math.isnan(entropy.loc["nobody", "entropy"])
    overall = bias.corrected_overall.set_index("kind")
    # group prompts: shares (1/2, 1/2) over N = 3 images with a known label -> 1 - 2 / 2**3
    assert overall.loc["group", "hof"] == pytest.approx(1 - 2 * 0.5**3)
    assert overall.loc["individual", "hof"] == pytest.approx(0.0)  # one prompt, one image


def test_an_empty_validation_row_is_named_in_the_warning():
    only_male = PERFECT.iloc[:1]
    with pytest.warns(UserWarning, match="attribute 'gender': no validation example with true label 'Female'"):
        frame(OBS, SUITE, only_male).corrected_entropy


def test_corrected_tables_are_seeded_and_follow_the_confidence():
    def crowd_interval(**options):
        row = frame(OBS, SUITE, PERFECT, **options).corrected_entropy.set_index("prompt_id").loc["crowd"]
        return row.ci_low, row.ci_high

    first = crowd_interval()
    assert first == crowd_interval()
    low, high = crowd_interval(confidence=0.5)
    assert high - low < 0.8 * (first[1] - first[0])


def test_unmix_of_a_stack_leaves_an_empty_row_nan():
    matrix = np.array([[0.9, 0.1], [0.2, 0.8]])
    shares = unmix(np.array([[11.0, 9.0], [0.0, 0.0]]), matrix)
    assert shares[0] == pytest.approx([0.5, 0.5]) and np.isnan(shares[1]).all()


def test_row_stochastic_by_hand_in_two_and_three_dimensions():
    import warnings

    from biaskit.metrics.correction import row_stochastic

    # no labels given: the row's number, as a plain integer
    empty_row = r"attribute '': no validation example with true label 1; assuming"
    with pytest.warns(UserWarning, match=empty_row):
        rates = row_stochastic(np.array([[3.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rates, [[0.75, 0.25], [0.0, 1.0]])
    stack = np.array([[[3.0, 1.0], [1.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # redrawn validation sets: an empty row is no news
        rates = row_stochastic(stack)
    np.testing.assert_allclose(rates, [[[0.75, 0.25], [0.2, 0.8]], [[1.0, 0.0], [0.5, 0.5]]])


def test_confusion_counts_sum_repeated_rows_and_name_what_is_wrong():
    from biaskit.metrics.correction import confusion_counts

    table = pd.DataFrame([("skin_tone", "1", "MST1", 4), ("skin_tone", "MST1", "1", 2),
                          ("skin_tone", "MST2", "MST1", 3), ("skin_tone", "MST2", "unclear", 9)],
                         columns=["attribute", "true", "predicted", "count"])
    counts = confusion_counts(table, attribute="skin_tone", labels=("MST1", "MST2"))
    np.testing.assert_allclose(counts, [[6, 0], [3, 0]])  # "1" is MST1; unclear dropped
    bad = table.assign(predicted=["MST1", "MST1", "MST9", "MST1"])
    with pytest.raises(ValueError, match=r"row 3: label 'MST9' .*\('MST1', 'MST2'\) \(nor 'unclear'\)"):
        confusion_counts(bad, attribute="skin_tone", labels=("MST1", "MST2"))
    with pytest.raises(ValueError, match="^confusion"):
        confusion_counts(table.drop(columns="count"), attribute="skin_tone", labels=("MST1", "MST2"))
