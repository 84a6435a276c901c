"""Normalized entropy, as the README defines it, against scipy on both code paths (float counts and
the small unsigned counts of bootstrap sums), with and without the Miller-Madow correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from biaskit.metrics.entropy import (
    check_correction, entropy_from_sums, n_log_n_table, normalized_entropy,
)

MM = "miller-madow"


def reference(counts, *, correction=None):
    """scipy's plug-in entropy (nats) / ln K, plus (m - 1) / 2N for Miller-Madow; NaN when empty."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total == 0:
        return math.nan
    nats = stats.entropy(counts)
    if correction == MM:
        nats += ((counts > 0).sum() - 1) / (2 * total)
    return nats / math.log(len(counts))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.uint8, np.uint16])
@pytest.mark.parametrize("correction", [None, MM])
def test_matches_scipy_on_random_counts_of_every_dtype(dtype, correction):
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 9, size=(40, 7)).astype(dtype)
    counts[3] = 0          # no known label
    counts[4] = [0, 6, 0, 0, 0, 0, 0]  # one category
    counts[5] = 4          # uniform
    got = normalized_entropy(counts, correction=correction)
    want = np.array([reference(row, correction=correction) for row in counts])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isnan(got[3]) and got[4] == 0.0
    assert got[5] == pytest.approx(1.0 if correction is None else 1 + 6 / (2 * 28) / math.log(7))


def test_integer_path_with_large_counts_and_leading_axes():
    counts = np.array([[[255, 1], [0, 0]], [[120, 130], [7, 0]]], dtype=np.uint8)
    got = normalized_entropy(counts)
    assert got.shape == (2, 2)
    want = [[reference([255, 1]), math.nan], [reference([120, 130]), 0.0]]
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    wide = np.array([[40000, 25000, 1]], dtype=np.uint16)
    assert normalized_entropy(wide)[0] == pytest.approx(reference(wide[0]), rel=1e-12)


def test_miller_madow_is_not_clipped_and_plugin_is():
    assert float(normalized_entropy(np.array([1, 1]), correction=MM)) == pytest.approx(
        (math.log(2) + 1 / 4) / math.log(2))  # 1.361, above 1
    assert float(normalized_entropy(np.array([1, 1]))) == 1.0
    # K counts empty categories: two labels of four possible
    assert float(normalized_entropy(np.array([3, 3, 0, 0]))) == pytest.approx(math.log(2) / math.log(4))


def test_entropy_from_sums_rounds_into_range_and_gives_nan_for_no_labels():
    total = np.array([4.0, 0.0, 4.0])
    # sum n ln n for [4] (one category) and [2, 2] (uniform of K = 2), with a rounding error each
    weighted = np.array([4 * math.log(4) + 1e-12, 0.0, 2 * 2 * math.log(2) - 1e-12])
    got = entropy_from_sums(total, weighted, k=2)
    assert got[0] == 0.0 and np.isnan(got[1]) and got[2] == 1.0
    corrected = entropy_from_sums(total, weighted, k=2, distinct=np.array([1, 0, 2]), correction=MM)
    assert corrected[0] == 0.0 and np.isnan(corrected[1])
    assert corrected[2] == pytest.approx(1 + (1 / 8) / math.log(2))


def test_n_log_n_table():
    np.testing.assert_allclose(n_log_n_table(4), [0.0, 0.0, 2 * math.log(2), 3 * math.log(3), 4 * math.log(4)])
    assert n_log_n_table(0).tolist() == [0.0]


def test_unknown_correction_is_named():
    assert check_correction(None) is None and check_correction(MM) == MM
    with pytest.raises(ValueError) as error:
        normalized_entropy(np.array([1, 2]), correction="jackknife")
    assert str(error.value) == "entropy_correction must be one of (None, 'miller-madow'), got 'jackknife'"
