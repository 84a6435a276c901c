"""Normalized Shannon entropy of category counts (DESIGN.md §4).

``H = -sum_c share_c ln share_c / ln K`` with ``K`` the size of the taxonomy
(empty categories count in ``K``): 0 when every person has the same label, 1
when the labels are uniform over the taxonomy; NaN when no person has a known
label.

The plug-in estimate is biased low for small samples.  The optional
Miller-Madow correction adds ``(m - 1) / (2 N)`` nats before normalising, where
``m`` is the number of non-empty categories and ``N`` the number of known
labels: ``H_MM = (H_plugin + (m - 1) / (2 N)) / ln K``.  It can exceed 1 for
small, near-uniform samples; it is not clipped (clipping would bias it again).
"""

from __future__ import annotations

import numpy as np

CORRECTIONS = (None, "miller-madow")
UNKNOWN_CORRECTION = "entropy_correction must be one of {known}, got {value!r}"


def check_correction(correction: str | None) -> str | None:
    """Return ``correction`` if known, else raise ``ValueError``."""
    if correction not in CORRECTIONS:
        raise ValueError(UNKNOWN_CORRECTION.format(known=CORRECTIONS, value=correction))
    return correction


def normalized_entropy(counts: np.ndarray, *, correction: str | None = None) -> np.ndarray:
    """Normalized entropy of count vectors along the last axis (size ``K`` of the taxonomy).

    Parameters
    ----------
    counts : array (..., K)
        Non-negative counts (or shares) of each category.
    correction : {None, "miller-madow"}
        Bias correction; see the module docstring.

    Returns
    -------
    array (...)
        Entropy in [0, 1] (plug-in), NaN where the counts sum to zero.

    Examples
    --------
    >>> float(normalized_entropy(np.array([5, 5])))
    1.0
    >>> float(normalized_entropy(np.array([3, 0, 0])))
    0.0
    >>> round(float(normalized_entropy(np.array([1, 1]), correction="miller-madow")), 3)
    1.361
    """
    check_correction(correction)
    counts = np.asarray(counts)
    if counts.dtype.kind == "u" and counts.dtype.itemsize <= 2:
        # Small integer counts (posterior-predictive redraws): H = ln N - sum n_c ln n_c / N,
        # with n ln n looked up in a table rather than taking a logarithm per cell.
        total = counts.sum(axis=-1, dtype=np.int64)
        weighted = n_log_n_table(int(counts.max(initial=0)))[counts].sum(axis=-1)
    else:
        counts = counts.astype(np.float64)
        total = counts.sum(axis=-1)
        weighted = (counts * np.log(np.where(counts > 0, counts, 1.0))).sum(axis=-1)
    distinct = (counts > 0).sum(axis=-1) if correction == "miller-madow" else None
    return entropy_from_sums(total, weighted, k=counts.shape[-1], distinct=distinct,
                             correction=correction)


def entropy_from_sums(total, weighted, *, k: int, distinct=None,
                      correction: str | None = None) -> np.ndarray:
    """Normalized entropy from ``N = sum n_c``, ``sum n_c ln n_c`` and the taxonomy size ``k``.

    ``distinct`` (the number of non-empty categories) is needed for the
    Miller-Madow correction only.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(total > 0, total, 1)
        nats = np.log(safe) - weighted / safe
        # Keep rounding (ln N - ...) inside [0, ln K]: one category gives 0, uniform gives 1.
        nats = np.clip(nats, 0.0, np.log(k))
        if correction == "miller-madow":
            nats = nats + (distinct - 1) / (2.0 * total)
    return np.where(total > 0, nats / np.log(k), np.nan)


def n_log_n_table(largest: int) -> np.ndarray:
    """``n ln n`` for n = 0..largest (0 ln 0 = 0)."""
    n = np.arange(largest + 1, dtype=np.float64)
    return n * np.log(np.where(n > 0, n, 1.0))
