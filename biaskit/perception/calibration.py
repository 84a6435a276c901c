"""Choosing abstention thresholds from labelled faces, and accuracy-coverage curves.

A tagger keeps a label when its confidence reaches the threshold and calls the
face ``unclear`` otherwise.  Raising the threshold trades coverage (the share
of faces labelled) for accuracy (the share of kept labels that are right).
:func:`threshold_for_accuracy` picks the lowest threshold whose kept labels
reach a target accuracy on a tuning set; :func:`accuracy_coverage` gives the
whole trade-off, for reporting it on a set not used for tuning.

Examples
--------
>>> import numpy as np
>>> confidence = np.array([0.99, 0.9, 0.8, 0.7, 0.6])
>>> correct = np.array([True, True, True, False, True])
>>> threshold_for_accuracy(confidence, correct, target=0.95)
0.8
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def threshold_for_accuracy(confidence, correct, *, target: float, min_kept: int = 1) -> float:
    """Lowest threshold whose kept labels (confidence ≥ it) are right at least at ``target``.

    Every observed confidence is a candidate; the lowest one that keeps at
    least ``min_kept`` labels at accuracy ≥ ``target`` wins (most coverage).
    When none does, the threshold is above every confidence (keep nothing).

    Parameters
    ----------
    confidence : array-like
        The tagger's confidence per face.
    correct : array-like of bool
        Whether its top label is the true one.
    target : float
        Accuracy the kept labels must reach.
    min_kept : int
        Fewest kept labels a threshold may rest on.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    order = np.argsort(-confidence, kind="stable")
    ranked, hits = confidence[order], np.cumsum(correct[order])
    kept = np.arange(1, len(ranked) + 1)
    # a threshold keeps every tie of its confidence: only the last of a run of ties is a cut
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    ok = last_of_tie & (kept >= min_kept) & (hits / kept >= target)
    if not ok.any():
        return float(np.nextafter(ranked[0], np.inf)) if len(ranked) else 1.0
    return float(ranked[np.flatnonzero(ok)[-1]])


def accuracy_coverage(confidence, correct, *, coverages=(1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)) -> pd.DataFrame:
    """Accuracy of the most confident labels at each coverage.

    Returns a frame with columns coverage (asked), kept (labels kept: the
    ``round(coverage * n)`` most confident), threshold (the confidence of the
    last one kept), accuracy (share of kept labels that are right).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    order = np.argsort(-confidence, kind="stable")
    rows = []
    for coverage in coverages:
        kept = int(round(coverage * len(order)))
        top = order[:kept]
        rows.append({"coverage": coverage, "kept": kept,
                     "threshold": float(confidence[top[-1]]) if kept else np.nan,
                     "accuracy": float(correct[top].mean()) if kept else np.nan})
    return pd.DataFrame(rows)
