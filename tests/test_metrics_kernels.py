"""The compiled kernels of biaskit.metrics.kernels against independent computations (issue 15).

mutmut skips decorated functions, so these numba kernels get their own mutation engine
(``benchmarks/mutation.py kernels``); these tests pin what its mutants broke: SplitMix64's
reference digits, the hypergeometric CDFs against scipy, the seeded conditional p-values
against a plain-Python replay of the documented sampler, and every output of ``label_pivots``
and ``spread`` against values computed by hand from its own draws.
"""

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln

from biaskit.metrics import kernels

MASK = (1 << 64) - 1


def splitmix64(state):
    """Steele, Lea & Flood's SplitMix64 in plain Python: (next state, 64 output bits)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


class Stream:
    """The kernels' stream ``stream`` of ``seed``, replayed in plain Python."""

    def __init__(self, seed, stream):
        self.state, _ = splitmix64(seed ^ ((stream * 0xBF58476D1CE4E5B9) & MASK))

    def bits(self):
        self.state, out = splitmix64(self.state)
        return out

    def uniform(self):
        return (self.bits() >> 11) * 2.0**-53


def test_splitmix64_gives_the_reference_digits():
    # The first outputs of SplitMix64 seeded 1234567 (Vigna's splitmix64.c test vector).
    state = np.array([1234567], dtype=np.uint64)
    assert [int(kernels._next(state)) for _ in range(5)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
        16408922859458223821]


@pytest.mark.parametrize("seed, stream", [(0, 0), (7, 1), (2**63 - 5, 12345)])
def test_seeded_uniforms_and_integers_match_the_plain_stream(seed, stream):
    state = np.empty(1, dtype=np.uint64)
    kernels._seed(state, seed, stream)
    reference = Stream(seed, stream)
    assert int(state[0]) == reference.state
    for _ in range(20):
        assert kernels._uniform(state) == reference.uniform()
    for width in (1, 2, 7, 1000, 2**31 + 11):
        value = kernels._below(width, state)
        assert value == ((reference.bits() >> 32) * width) >> 32 and 0 <= value < width


def _binomial_fit(n, p, draws):
    """Chi-square p-value of the draws against Binomial(n, p) (cells of expected count >= 5 pooled)."""
    support = np.arange(n + 1)
    expected = stats.binom.pmf(support, n, p) * len(draws)
    observed = np.bincount(draws, minlength=n + 1)
    keep = expected >= 5
    observed = np.append(observed[keep], observed[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    if expected[-1] < 5:  # the pooled tails: too rare to test alone
        observed, expected = observed[:-1], expected[:-1] * observed[:-1].sum() / expected[:-1].sum()
    return stats.chisquare(observed, expected).pvalue


@pytest.mark.parametrize("n, p", [(1, 0.3), (5, 0.97), (29, 0.5), (31, 0.5), (60, 0.75), (400, 0.0625)])
def test_binomial_at_the_edges_of_its_two_inversions(n, p):
    # n min(p, 1 - p) just below and above FROM_ZERO = 15, p = 1/2 (no flip), exactly 15 (the
    # mode path), and a single trial.
    state = np.empty(1, dtype=np.uint64)
    kernels._seed(state, n, 3)
    log_factorial = gammaln(np.arange(n + 1) + 1.0)
    draws = np.array([kernels._binomial(n, p, state, log_factorial) for _ in range(20000)])
    assert draws.min() >= 0 and draws.max() <= n
    assert _binomial_fit(n, p, draws) > 1e-3


def _unshift(value, shift):
    """The inverse of ``value ^ (value >> shift)`` on 64 bits."""
    out = value
    for _ in range(64 // shift + 1):
        out = value ^ (out >> shift)
    return out


def state_for(u):
    """A SplitMix64 state whose next uniform is ``u`` (to 2**-53): the output mix is a bijection."""
    z = int(u * 2.0**53) << 11
    z = _unshift(z, 31) * pow(0x94D049BB133111EB, -1, 1 << 64) & MASK
    z = _unshift(z, 27) * pow(0xBF58476D1CE4E5B9, -1, 1 << 64) & MASK
    return np.array([(_unshift(z, 30) - 0x9E3779B97F4A7C15) & MASK], dtype=np.uint64)


def documented_order(n, p):
    """The order in which ``_binomial`` inverts Binomial(n, p), as its docstring states it: with
    q = min(p, 1 - p) (n - x drawn for p > 1/2), from 0 up where n q < 15, else from the mode
    int((n + 1) q) outwards, +1 before -1."""
    q = 1 - p if p > 0.5 else p
    if n * q < 15:
        order = list(range(n + 1))
    else:
        mode = int((n + 1) * q)
        order = [mode] + [x for step in range(1, n + 1) for x in (mode + step, mode - step) if 0 <= x <= n]
    return [n - x if p > 0.5 else x for x in order]


@pytest.mark.parametrize("n, p", [(2, 0.3), (29, 0.5), (30, 0.5), (31, 0.5), (40, 0.97), (60, 0.75),
                                  (1500, 0.01)])
def test_binomial_inverts_every_value_in_the_documented_order(n, p):
    # The uniform in the middle of each value's slot draws that value: every value of the support
    # is reachable, the far tails too (the mode path of Binomial(1500, 0.01) meets 0 after 15
    # steps and still has P(X > 30) ~ 1e-4 above), and the slots have their binomial widths.
    assert [int(kernels._next(state_for(u))) >> 11 for u in (0.0, 0.3, 1 - 2**-53)] == [0, int(0.3 * 2**53),
                                                                                           2**53 - 1]
    log_factorial = gammaln(np.arange(n + 1) + 1.0)
    order = documented_order(n, p)
    mass = stats.binom.pmf(order, n, p)
    middles = np.cumsum(mass) - mass / 2
    reachable = mass > 1e-12  # wider than the rounding of the running sums
    drawn = [kernels._binomial(n, p, state_for(u), log_factorial) for u in middles[reachable]]
    assert drawn == np.array(order)[reachable].tolist()


def test_degenerate_binomials():
    state = np.empty(1, dtype=np.uint64)
    kernels._seed(state, 1, 1)
    log_factorial = gammaln(np.arange(11) + 1.0)
    assert kernels._binomial(0, 0.5, state, log_factorial) == 0
    assert kernels._binomial(10, 0.0, state, log_factorial) == 0
    assert kernels._binomial(10, 1.0, state, log_factorial) == 10


@pytest.mark.parametrize("n, gammas", [(n, [3.0, 1.0, 0.5, 0.5]) for n in (1, 2, 21, 63, 64, 65, 101)]
                         + [(65, [60.0, 1.0, 1.0, 1.0])])
def test_redraw_places_every_person_once(n, gammas):
    # Odd and even N person by person (two persons per 64 bits), and the binomial chain, where a
    # dominant first category often leaves a single person for the last ones.
    gammas = np.array(gammas)
    state, counts = np.empty(1, dtype=np.uint64), np.empty(4, dtype=np.int64)
    kernels._seed(state, n, 0)
    total = np.zeros(4)
    for _ in range(2000):
        kernels._redraw(n, gammas, np.cumsum(gammas), counts, state, gammaln(np.arange(n + 1) + 1.0))
        assert counts.sum() == n and counts.min() >= 0
        total += counts
    p = gammas / gammas.sum()
    standard_error = np.sqrt(n * p * (1 - p) / 2000)
    assert (np.abs(total / 2000 - n * p) < 5 * standard_error).all()


def test_spread_by_hand():
    per_key = np.arange(15.0).reshape(3, 5)
    key, shift, known = np.array([2, 0, 2, 1]), np.array([0, 4, 1, 3]), np.array([True, True, False, True])
    out = np.zeros((4, 5))
    kernels.spread(per_key, key, shift, known, out)
    expected = per_key[key[:, None], (np.arange(5)[None, :] + shift[:, None]) % 5]
    expected[~known] = np.nan
    np.testing.assert_array_equal(out, expected)


def _log_choose(n_max):
    n, k = np.arange(n_max + 1)[:, None], np.arange(n_max + 1)[None, :]
    with np.errstate(invalid="ignore"):
        table = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(np.abs(n - k) + 1.0)
    return np.where(k <= n, table, -np.inf)


def test_hypergeometric_cdfs_match_scipy():
    columns, n1 = np.array([0, 2, 3, 5, 6]), 7
    cdf = kernels._hypergeometric_cdfs(columns, n1, columns.max(), _log_choose(columns.sum()))
    checked = 0
    for j, c in enumerate(columns[:-1]):
        rest = columns[j:].sum()
        for s in range(min(n1, rest) + 1):
            support = np.arange(max(0, s - (rest - c)), min(c, s) + 1)
            np.testing.assert_allclose(cdf[j, s, support], stats.hypergeom.cdf(support, rest, c, s), atol=1e-12)
            checked += len(support)
    assert checked > 40


def _replayed_p_value(columns, first_row, n_draws, seed, t):
    """The documented sampler in plain Python: column by column, x_j by inversion of scipy's
    hypergeometric CDF against the stream's next uniform; the statistic by scipy."""
    stream = Stream(seed, t)
    n1, total = first_row.sum(), columns.sum()
    keep = columns > 0
    observed = stats.chi2_contingency(np.stack([first_row, columns - first_row])[:, keep],
                                      correction=False).statistic
    extreme = 0
    for _ in range(n_draws):
        left, rest, drawn = n1, total, np.zeros(len(columns), dtype=int)
        for j, c in enumerate(columns[:-1]):
            if c == 0:
                continue
            u = stream.uniform()
            support = np.arange(max(0, left - (rest - c)), min(c, left) + 1)
            below = np.flatnonzero(stats.hypergeom.cdf(support, rest, c, left) > u)
            drawn[j] = support[below[0]] if len(below) else support[-1]
            left, rest = left - drawn[j], rest - c
        drawn[-1] = left
        table = np.stack([drawn, columns - drawn])[:, keep]
        expected = np.outer(table.sum(1), table.sum(0)) / total
        statistic = ((table - expected) ** 2 / expected).sum()
        extreme += statistic >= observed - 1e-9 * max(observed, 1.0)
    return (1 + extreme) / (1 + n_draws)


def test_conditional_p_values_replay_the_documented_sampler():
    # Columns in ascending order (an empty one first), as monte_carlo_p_values passes them;
    # the last table has every column proportional: X2 = 0, every draw ties, p = 1.
    columns = np.array([[0, 2, 3, 5], [1, 2, 4, 6], [3, 3, 4, 4], [2, 2, 4, 4]])
    first_row = np.array([[0, 1, 0, 4], [1, 0, 3, 1], [2, 1, 0, 4], [1, 1, 2, 2]])
    n_draws, seed = 300, 2**40 + 3
    out = np.zeros(len(columns))
    kernels.conditional_p_values(columns, first_row, n_draws, seed, 1e-9, _log_choose(columns.sum(1).max()), out)
    expected = [_replayed_p_value(c, r, n_draws, seed, t) for t, (c, r) in enumerate(zip(columns, first_row))]
    assert out.tolist() == expected
    assert expected[3] == 1.0 and min(expected) < 0.5  # some tables are not all ties


def _pivot_inputs(keys, *, seed=12345, first=3, miller_madow=False, n_draws=40, table=None):
    """label_pivots with pre-drawn gammas (``pick`` False; rows ``table[u k + c]``), every key's
    share pivots kept."""
    keys = np.asarray(keys, dtype=np.int64)
    u, k = keys.shape
    table = np.random.default_rng(0).gamma(0.7, size=(u * k, n_draws)) if table is None else table
    n_max = int(keys.sum(1).max())
    counts = np.arange(n_max + 1.0)
    n_log_n = np.where(counts > 0, counts * np.log(np.maximum(counts, 1)), 0.0)
    out = {"entropy": np.zeros((u, n_draws)), "posterior": np.zeros((u, n_draws)),
           "shares": np.zeros((u, n_draws, k))}
    kernels.label_pivots(keys, np.arange(u * k).reshape(u, k), table, table * np.log(table), False, n_log_n,
                         gammaln(counts + 1.0), seed, first, miller_madow, np.arange(u), out["entropy"],
                         out["posterior"], out["shares"])
    return table, out


@pytest.mark.parametrize("miller_madow", [False, True])
def test_label_pivots_by_hand_from_their_own_draws(miller_madow):
    # Person by person (N = 10, 8), the binomial chain (N = 100), and nobody known (N = 0).
    keys = np.array([[5, 3, 2], [4, 4, 0], [0, 0, 0], [70, 20, 10]])
    table, out = _pivot_inputs(keys, miller_madow=miller_madow)
    gammas = table.reshape(len(keys), 3, -1).transpose(0, 2, 1)  # (keys, draws, categories)
    shares = gammas / gammas.sum(axis=2, keepdims=True)
    truth = stats.entropy(shares, axis=2) / np.log(3)
    np.testing.assert_allclose(out["posterior"], truth, rtol=1e-12)
    for u, n in enumerate(keys.sum(1)):
        if n == 0:
            assert np.isnan(out["entropy"][u]).all() and (out["shares"][u] == 0).all()
            continue
        redrawn = (out["shares"][u] + shares[u]) * n
        counts = np.rint(redrawn)
        np.testing.assert_allclose(redrawn, counts, atol=1e-9)
        assert (counts.sum(1) == n).all() and counts.min() >= 0
        nats = stats.entropy(counts, axis=1)
        if miller_madow:
            nats += ((counts > 0).sum(1) - 1) / (2 * n)
        np.testing.assert_allclose(out["entropy"][u], nats / np.log(3) - truth[u], atol=1e-12)


def test_label_pivots_draw_each_vector_from_its_own_stream():
    keys = np.array([[5, 3, 2], [4, 4, 0], [9, 1, 0]])
    table, whole = _pivot_inputs(keys, first=3)
    _, alone = _pivot_inputs(keys[2:], first=5, table=table[6:])  # the same vector, gammas and stream
    np.testing.assert_array_equal(alone["shares"][0], whole["shares"][2])
    _, shifted = _pivot_inputs(keys[2:], first=4, table=table[6:])
    _, reseeded = _pivot_inputs(keys[2:], first=5, seed=12346, table=table[6:])
    for other in (shifted, reseeded):
        assert not np.array_equal(other["shares"][0], whole["shares"][2])


def test_label_pivots_pick_pool_columns_uniformly():
    # A pool of 8 columns: category 0's gammas all 1, category 1's 2**i, so H(p*) names the column.
    n_draws, width = 8000, 8
    table = np.vstack([np.ones(width), 2.0 ** np.arange(width)])
    entropy, posterior = np.zeros((1, n_draws)), np.zeros((1, n_draws))
    kernels.label_pivots(np.array([[3, 2]]), np.array([[0, 1]]), table, table * np.log(table), True,
                         np.arange(6) * np.log(np.maximum(np.arange(6), 1)), gammaln(np.arange(6) + 1.0),
                         99, 0, False, np.array([-1]), entropy, posterior, np.zeros((0, n_draws, 2)))
    levels = stats.entropy(np.vstack([np.ones(width), 2.0 ** np.arange(width)]), axis=0) / np.log(2)
    column = np.abs(posterior[0][:, None] - levels[None, :]).argmin(axis=1)
    np.testing.assert_allclose(posterior[0], levels[column], rtol=1e-12)
    assert stats.chisquare(np.bincount(column, minlength=width)).pvalue > 1e-3
    assert np.isfinite(entropy).all()
