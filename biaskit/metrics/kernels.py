"""Compiled loops of the metrics' Monte-Carlo draws: the posterior-predictive pivots
(:mod:`biaskit.metrics.posterior`) and the exact conditional tests
(:mod:`biaskit.metrics.conditional`).

Each draw of a prompt's pivot needs K gamma variates, a multinomial redraw of
its ~20-40 persons and two entropies.  In numpy every step is a pass over a
(prompts x draws x K) array and ``Generator.multinomial`` costs ~65 ns per
category (a binomial with its set-up per call): the system-card layout
(~9,800 distinct count vectors x 1000 draws x 7-10 categories) took ~13 s of
CPU.  Here one loop does a draw at a time in registers (numba, compiled once
and cached next to this file).

Random numbers: SplitMix64 (Steele, Lea & Flood 2014; passes BigCrush), one
stream per count vector (per table for the tests), seeded from its index and a
seed the caller draws from its numpy Generator -- so results depend on the
seed only, not on chunking or threads.

The multinomial ``n** ~ Multinomial(N, G / S)`` is drawn exactly: for small
``N`` person by person (a uniform against the cumulative gammas, counted
without branches), for larger ``N`` as a chain of
binomials ``n_c ~ Binomial(N - n_1 - ... - n_{c-1}, G_c / (S - G_1 - ... -
G_{c-1}))``, each by inversion (from 0 for small means, else from the mode
outwards: a few steps either way).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Largest N drawn person by person; larger ones as a chain of binomials.
PERSON_BY_PERSON = 64
#: Binomials whose smaller tail has a mean below this are inverted from 0, others from the mode.
FROM_ZERO = 15.0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
_TO_UNIT_32 = 1.0 / 4294967296.0  # 2**-32
_LOW_32 = np.uint64(0xFFFFFFFF)


@njit(inline="always")
def _next(state):
    """SplitMix64: the next 64 random bits of ``state`` (a uint64 array of one)."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _uniform(state):
    """A uniform double in [0, 1) (53 random bits)."""
    return np.float64(np.int64(_next(state) >> np.uint64(11))) * _TO_UNIT


@njit(inline="always")
def _seed(state, seed, stream):
    """Start ``state`` for stream ``stream`` of ``seed``: the seed xor the stream index times an
    odd constant, so streams start at unrelated points of SplitMix64's sequence."""
    state[0] = np.uint64(seed) ^ (np.uint64(stream) * _MIX_1)
    _next(state)


@njit(inline="always")
def _below(width, state):
    """A uniform integer in [0, width), width < 2**32 (Lemire's multiply-shift, no division)."""
    return np.int64(((_next(state) >> np.uint64(32)) * width) >> np.uint64(32))


@njit
def _binomial(trials, p, state, log_factorial):
    """Binomial(trials, p), exactly, by inversion over an order of the support.

    With a small mean of the smaller tail (``trials min(p, 1 - p) <
    FROM_ZERO``): from 0 up.  Otherwise from the mode outwards (mode, +1,
    -1, +2, -2, ...; any fixed order of the support is an exact inversion),
    about a standard deviation of steps, the mode's probability from
    ``log_factorial`` (``ln n!`` for n up to ``trials`` at least).
    """
    if trials <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return trials
    flip = p > 0.5
    q = 1.0 - p if flip else p
    ratio = q / (1.0 - q)
    u = _uniform(state)
    if trials * q < FROM_ZERO:
        mass = (1.0 - q) ** trials
        x = 0
        while u > mass and x < trials:
            u -= mass
            x += 1
            mass *= (trials - x + 1) * ratio / x
    else:
        x = int((trials + 1) * q)
        mass = math.exp(log_factorial[trials] - log_factorial[x] - log_factorial[trials - x]
                        + x * math.log(q) + (trials - x) * math.log1p(-q))
        low, high, p_low, p_high = x, x, mass, mass
        u -= mass
        while u >= 0.0 and (low > 0 or high < trials):
            if high < trials:
                p_high *= (trials - high) * ratio / (high + 1)
                high += 1
                u -= p_high
                if u < 0.0:
                    x = high
                    break
            if low > 0:
                p_low *= low / ((trials - low + 1) * ratio)
                low -= 1
                u -= p_low
                if u < 0.0:
                    x = low
                    break
    return trials - x if flip else x


@njit(inline="always")
def _category(cumulative, target):
    """Index of the first cumulative sum above ``target`` (branch-free: no mispredictions)."""
    c = 0
    for j in range(len(cumulative) - 1):
        c += cumulative[j] <= target
    return c


@njit
def _redraw(n, gammas, cumulative, counts, state, log_factorial):
    """counts <- Multinomial(n, gammas / S), ``cumulative`` the running sums of ``gammas``
    (categories largest first; ``S = cumulative[-1]``)."""
    k = len(gammas)
    total = cumulative[k - 1]
    counts[:] = 0
    if n <= PERSON_BY_PERSON:
        # Two persons per 64 random bits: 32-bit uniforms miss a share by at most 2**-32.
        scale = total * _TO_UNIT_32
        for person in range(0, n, 2):
            bits = _next(state)
            counts[_category(cumulative, np.float64(np.int64(bits >> np.uint64(32))) * scale)] += 1
            if person + 1 < n:
                counts[_category(cumulative, np.float64(np.int64(bits & _LOW_32)) * scale)] += 1
        return
    left, rest = n, total
    for c in range(k - 1):
        if left == 0:
            return
        x = _binomial(left, gammas[c] / rest, state, log_factorial) if rest > 0.0 else left
        counts[c] = x
        left -= x
        rest -= gammas[c]
    counts[k - 1] = left


@njit(nogil=True, cache=True)
def label_pivots(keys, rows, table, g_log_g, pick, n_log_n, log_factorial, seed, first,
                 miller_madow, slot, entropy, posterior, shares):
    """Posterior-predictive pivots of every count vector (``keys``, (U, K), largest first).

    Draw ``b`` of vector ``u``: gammas ``G_c = table[rows[u, c], i]`` with ``i``
    uniform over the columns (``pick``: a pool, see
    :class:`biaskit.metrics.posterior.GammaPool`) or ``i = b`` (pre-drawn
    gammas), ``S = sum G``; ``H(p*) = ln S - sum G ln G / S`` over ``ln K``;
    ``n** ~ Multinomial(N, G / S)``; writes ``posterior[u, b] = H(p*)``,
    ``entropy[u, b] = H(n** / N) - H(p*)`` (NaN when ``N = 0``; Miller-Madow
    corrected if asked) and, where ``slot[u] >= 0``, ``shares[slot[u], b] =
    n** / N - G / S``.  ``first`` is the index of ``keys[0]`` among all the
    vectors (its random stream).
    """
    n_keys, k = keys.shape
    n_draws = entropy.shape[1]
    width = np.uint64(table.shape[1])
    log_k = math.log(k)
    gammas = np.empty(k)
    cumulative = np.empty(k)
    counts = np.empty(k, dtype=np.int64)
    state = np.empty(1, dtype=np.uint64)
    for u in range(n_keys):
        _seed(state, seed, first + u)
        n = 0
        for c in range(k):
            n += keys[u, c]
        log_n = math.log(n) if n > 0 else 0.0
        for b in range(n_draws):
            total, weighted = 0.0, 0.0
            for c in range(k):
                i = _below(width, state) if pick else b
                g = np.float64(table[rows[u, c], i])
                gammas[c] = g
                total += g
                cumulative[c] = total
                weighted += g_log_g[rows[u, c], i]
            true = min(max(math.log(total) - weighted / total, 0.0), log_k) / log_k
            posterior[u, b] = true
            if n == 0:
                entropy[u, b] = np.nan
                continue
            _redraw(n, gammas, cumulative, counts, state, log_factorial)
            weighted, distinct = 0.0, 0
            for c in range(k):
                weighted += n_log_n[counts[c]]
                if counts[c] > 0:
                    distinct += 1
            nats = min(max(log_n - weighted / n, 0.0), log_k)
            if miller_madow:
                nats += (distinct - 1) / (2.0 * n)
            entropy[u, b] = nats / log_k - true
            if slot[u] >= 0:
                for c in range(k):
                    shares[slot[u], b, c] = counts[c] / n - gammas[c] / total


@njit(nogil=True, cache=True)
def spread(per_key, key, shift, known, out):
    """``out[g, b] = per_key[key[g], (b + shift[g]) % B]`` where ``known[g]``, else NaN.

    Each group gets its count vector's draws in its own cyclic order, so the
    draws of groups sharing a vector are not aligned draw by draw.
    """
    n_groups, n_draws = out.shape
    for g in range(n_groups):
        if not known[g]:
            out[g, :] = np.nan
            continue
        row, start = key[g], shift[g]
        for b in range(n_draws):
            j = b + start
            out[g, b] = per_key[row, j - n_draws if j >= n_draws else j]


@njit(nogil=True, cache=True)
def conditional_p_values(columns, first_row, n_draws, seed, tie_tolerance, log_choose, out):
    """Monte-Carlo exact conditional p-values of 2 x K tables (see :mod:`biaskit.metrics.conditional`).

    ``columns`` (T, K): column totals in ascending order, at least two
    non-empty; ``first_row`` (T, K): the drawn row's counts in the same order.
    Each draw places the first row's ``n1`` persons column by column, ``x_j ~
    Hypergeometric(c_j, R_j - c_j, s)`` (``s`` persons left, ``R_j`` persons in
    columns ``j..K-1``) by inversion of its CDF, tabulated per table, column
    and ``s``; the last column takes what is left.  ``out[t] = (1 + #{draws
    with X2 >= observed X2, up to ties}) / (1 + n_draws)``; table ``t`` draws
    from stream ``t`` of ``seed``.
    """
    n_tables, k = columns.shape
    state = np.empty(1, dtype=np.uint64)
    for t in range(n_tables):
        _seed(state, seed, t)
        n1, total, widest = 0, 0, 0
        observed = 0.0
        for j in range(k):
            n1 += first_row[t, j]
            total += columns[t, j]
            widest = max(widest, columns[t, j])
            if columns[t, j] > 0:
                observed += first_row[t, j] ** 2 / columns[t, j]
        n2 = total - n1
        scale = total * total / (n1 * n2)
        chi_observed = scale * (observed - n1 * n1 / total)
        threshold = chi_observed - tie_tolerance * max(chi_observed, 1.0)
        cdf = _hypergeometric_cdfs(columns[t], n1, widest, log_choose)
        inverse = np.zeros(k)  # 1 / c_j: a multiplication per draw rather than a division
        for j in range(k):
            if columns[t, j] > 0:
                inverse[j] = 1.0 / columns[t, j]
        # X2 >= threshold  <=>  S >= this (X2 = scale (S - n1**2 / N), scale > 0)
        s_threshold = threshold / scale + n1 * n1 / total
        extreme = 0
        for _ in range(n_draws):
            left, rest, s_stat = n1, total, 0.0
            for j in range(k - 1):
                c = columns[t, j]
                if c == 0:
                    continue
                u = _uniform(state)
                x = max(0, left - (rest - c))
                top = min(c, left)
                while x < top and cdf[j, left, x] <= u:
                    x += 1
                s_stat += x * x * inverse[j]
                left -= x
                rest -= c
            s_stat += left * left * inverse[k - 1]
            if s_stat >= s_threshold:
                extreme += 1
        out[t] = (1.0 + extreme) / (1.0 + n_draws)


@njit
def _hypergeometric_cdfs(columns, n1, widest, log_choose):
    """cdf[j, s, x] = P(x_j <= x) with ``s`` of the first row's persons left for columns j..K-1."""
    k = len(columns)
    cdf = np.ones((k, n1 + 1, widest + 1))
    rest = 0
    for j in range(k):
        rest += columns[j]
    for j in range(k - 1):
        c = columns[j]
        for s in range(min(n1, rest) + 1):
            running = 0.0
            for x in range(max(0, s - (rest - c)), min(c, s) + 1):
                running += math.exp(log_choose[c, x] + log_choose[rest - c, s - x]
                                    - log_choose[rest, s])
                cdf[j, s, x] = running
        rest -= c
    return cdf
