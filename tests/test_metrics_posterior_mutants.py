"""Promises of biaskit.metrics.posterior that its surviving mutants broke (issue 15): seeded draws
independent of how they are chunked, float32 storage of the documented shapes, share pivots only
where a group expects a label, no groups at all, and no numpy warnings on degenerate groups."""

import tracemalloc
import warnings

import numpy as np
import pytest

from biaskit.metrics import posterior
from biaskit.metrics.posterior import AttributeDraws, GammaPool, design_sums, effective_counts, jeffreys_interval


def _one_person_per_image(counts):
    """Group sums of :func:`design_sums` for images of one known person each (deff 1)."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.hstack([counts, counts, totals, totals]).astype(np.float64)


def _draws(counts, expected, *, n_draws, seed=0):
    counts = np.asarray(counts, dtype=np.float64)
    return AttributeDraws(counts, _one_person_per_image(counts), expected=np.asarray(expected),
                          n_draws=n_draws, rng=np.random.default_rng(seed))


#: six distinct count vectors of three categories and a group with nobody known: few enough
#: draws that the gamma variates are drawn directly (no pool), in chunks of MAX_DRAW_CELLS
KEYS = [[12, 3, 0], [10, 5, 0], [8, 7, 0], [15, 0, 0], [2, 9, 4], [0, 1, 0], [0, 0, 0]]
EXPECTED = [0, 1, -1, 0, 2, 1, 0]


@pytest.mark.parametrize("rows_per_chunk", [1, 2])
def test_seeded_draws_do_not_depend_on_the_chunks(monkeypatch, rows_per_chunk):
    # The module's promise: each vector's stream comes from one seed, and the direct gammas are
    # drawn row after row, so one chunk or a chunk per vector gives the same digits.
    n_draws, k = 200, 3
    assert (max(map(max, KEYS)) + 1) * posterior.POOL_SIZE >= len(KEYS) * n_draws * k  # no pool
    whole = _draws(KEYS, EXPECTED, n_draws=n_draws)
    monkeypatch.setattr(posterior, "MAX_DRAW_CELLS", rows_per_chunk * n_draws * k)
    chunked = _draws(KEYS, EXPECTED, n_draws=n_draws)
    for name in ("entropy", "posterior_entropy", "match"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)
    expects = np.array(EXPECTED)[:6] >= 0
    assert np.isfinite(whole.match[:6][expects]).all() and np.isnan(whole.match[:6][~expects]).all()
    assert np.isnan(whole.entropy[6]).all()


def test_draws_and_the_gamma_pool_are_float32_of_their_documented_shapes():
    # float32 halves the memory of the (groups x draws) pivots: ~9,800 groups x 1000 draws
    # per attribute on the system-card layout.
    draws = _draws(KEYS, EXPECTED, n_draws=50)
    for name in ("entropy", "posterior_entropy", "match"):
        values = getattr(draws, name)
        assert values.dtype == np.float32 and values.shape == (len(KEYS), 50), name
    pool = GammaPool(6, 1 / 3, np.random.default_rng(0), size=64)
    for values in (pool.table, pool.g_log_g):
        assert values.dtype == np.float32 and values.shape == (7, 64)  # (largest + 1, size)


def test_no_groups_give_empty_pivots():
    draws = AttributeDraws(np.zeros((0, 3)), np.zeros((0, 8)), expected=np.zeros(0, dtype=np.int64),
                           n_draws=40, rng=np.random.default_rng(0))
    for name in ("entropy", "posterior_entropy", "match"):
        assert getattr(draws, name).shape == (0, 40), name


def test_degenerate_groups_raise_no_numpy_warning():
    # A group with nobody known (0 / 0), one image of a Male and a Female (one image: 1 / 0 in
    # the ratio estimator's variance), and 0 trials: answers by hand, and nothing on stderr.
    images = ([[0, 0]], [[1, 1]], [[1, 0], [0, 1]])
    counts = np.array([np.sum(group, axis=0) for group in images], dtype=np.float64)
    design = np.stack([design_sums(np.array(group)).sum(axis=0) for group in images])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        effective = effective_counts(counts, design)
        low, high = jeffreys_interval(np.array([0.0, 0.0, 3.0]), np.array([0.0, -1.0, 0.0]))
    # one image is one unit (deff = its 2 persons); two single images keep their counts
    np.testing.assert_allclose(effective, [[0, 0], [0.5, 0.5], [1, 1]])
    assert np.isnan(low).all() and np.isnan(high).all()


def test_share_pivots_are_kept_only_for_groups_that_expect_a_label():
    # (keys x draws x categories) share pivots would be ~400 MB on the system-card layout; with
    # no expected label none is kept, and the memory is that of the entropy pivots.
    rng = np.random.default_rng(5)
    k, n_draws = 10, 1000
    counts = rng.multinomial(20, rng.dirichlet(np.ones(k), size=300)).astype(np.float64)
    share_bytes = len(np.unique(counts, axis=0)) * n_draws * k * 4
    _draws(counts[:2], [-1, -1], n_draws=n_draws)  # compiled kernels, outside the measure
    tracemalloc.start()
    try:
        draws = _draws(counts, np.full(len(counts), -1), n_draws=n_draws)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isnan(draws.match).all() and np.isfinite(draws.entropy).all()
    assert peak < share_bytes, (peak, share_bytes)  # ~2/3 of it here, ~5/3 with them all kept
