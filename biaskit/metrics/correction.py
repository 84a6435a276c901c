"""Correcting label shares for classifier error, with a confusion matrix.

A tagger that confuses categories distorts shares: with ``C[i, j] = P(predicted
j | true i)`` (rows of a validation confusion table, "unclear" predictions
dropped and each row renormalised), the expected observed shares are
``q = C^T p`` for true shares ``p``.  :func:`unmix` estimates ``p`` from observed
``q`` on the probability simplex: the exact inverse ``p = C^-T q`` when it lies
on the simplex (then it is the maximum-likelihood estimate), otherwise the
maximum-likelihood estimate by EM (``p_i <- p_i sum_j q_j C_ij / sum_k p_k
C_kj``), which keeps every share in [0, 1] and summing to 1.

Intervals (:func:`corrected_tables`) are percentile intervals over
replicates that resample both the images (as every other interval) and the
validation set (each true-label row of the confusion table redrawn from its
multinomial), so they carry the uncertainty of ``C`` too.  The corrected
normalized entropy of each prompt is that of its corrected shares (plug-in),
with intervals from the same replicates.

Examples
--------
>>> C = np.array([[0.9, 0.1], [0.2, 0.8]])
>>> unmix(np.array([0.55, 0.45]), C).round(3).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.metrics.entropy import normalized_entropy
from biaskit.metrics.io import BAD_LABEL
from biaskit.tables import concat_rows, require_columns

CONFUSION_COLUMNS = ("attribute", "true", "predicted", "count")
CORRECTED_COLUMNS = ("model", "prompt_id", "attribute", "label", "observed_share", "share",
                     "ci_low", "ci_high")
CORRECTED_ENTROPY_COLUMNS = ("model", "prompt_id", "attribute", "observed_entropy", "entropy",
                             "ci_low", "ci_high")
NO_VALIDATION_ROW = ("confusion: attribute {attribute!r}: no validation example with true label "
                     "{label!r}; assuming it is always predicted correctly")
MAX_EM_ITERATIONS = 20000
EM_TOLERANCE = 1e-10


def confusion_counts(confusion: pd.DataFrame, *, attribute: str, labels) -> np.ndarray:
    """K x K counts (true x predicted) of ``attribute``; "unclear" predictions dropped.

    Raises ``ValueError`` naming the row for a label outside ``labels``.
    """
    require_columns(confusion, CONFUSION_COLUMNS, name="confusion")
    rows = confusion[confusion["attribute"] == attribute]
    counts = np.zeros((len(labels), len(labels)))
    for row, (true, predicted, count) in zip(rows.index, rows[["true", "predicted", "count"]]
                                             .itertuples(index=False)):
        true = taxonomy.normalize_label(attribute, true)
        predicted = taxonomy.normalize_label(attribute, predicted)
        if predicted == taxonomy.UNCLEAR:
            continue
        for label in (true, predicted):
            if label not in labels:
                raise ValueError(BAD_LABEL.format(name="confusion", row=int(row) + 1, label=label,
                                                  attribute=attribute, labels=tuple(labels),
                                                  unclear=taxonomy.UNCLEAR))
        counts[labels.index(true), labels.index(predicted)] += float(count)
    return counts


def row_stochastic(counts: np.ndarray, *, attribute: str = "", labels=()) -> np.ndarray:
    """Rows normalised to sum 1; a row with no example becomes the identity row (warned)."""
    counts = np.array(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    empty = totals[..., 0] == 0
    for i in np.flatnonzero(empty) if counts.ndim == 2 else ():
        warnings.warn(NO_VALIDATION_ROW.format(attribute=attribute, label=labels[i] if len(labels)
                                               else i), stacklevel=3)
    eye = np.broadcast_to(np.eye(counts.shape[-1]), counts.shape)
    return np.where(empty[..., None], eye, counts / np.where(totals > 0, totals, 1.0))


def unmix(observed: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Estimate true shares ``p`` (..., K) from observed shares (or counts) ``q = C^T p``.

    ``matrix`` is row-stochastic (K, K) or a stack broadcastable against
    ``observed``.  Rows of ``observed`` summing to 0 give NaN.
    """
    q = np.asarray(observed, dtype=np.float64)
    total = q.sum(axis=-1, keepdims=True)
    q = q / np.where(total > 0, total, 1.0)
    # Invert the (few) distinct matrices before broadcasting them to every row.
    inverse = np.linalg.pinv(np.swapaxes(matrix, -1, -2))
    p = np.einsum("...ij,...j->...i", inverse, q)
    matrix = np.broadcast_to(matrix, q.shape[:-1] + matrix.shape[-2:])
    outside = (p.min(axis=-1) < -1e-12) & (total[..., 0] > 0)
    if outside.any():
        start = np.clip(p[outside], 0.0, None)
        start = 0.5 * start / start.sum(axis=-1, keepdims=True) + 0.5 / q.shape[-1]
        p[outside] = _em(q[outside], matrix[outside], start)
    p = np.clip(p, 0.0, None)
    p = p / np.where(p.sum(axis=-1, keepdims=True) > 0, p.sum(axis=-1, keepdims=True), 1.0)
    return np.where(total > 0, p, np.nan)


def _em(q: np.ndarray, matrix: np.ndarray, p: np.ndarray) -> np.ndarray:
    """EM for mixture weights with known components, rows (N, K); stops rows as they converge."""
    p = p.copy()
    active = np.arange(len(p))
    for _ in range(MAX_EM_ITERATIONS):
        C, current = matrix[active], p[active]
        predicted = np.einsum("nk,nkj->nj", current, C)
        weight = np.where(q[active] > 0, q[active] / np.where(predicted > 0, predicted, 1.0), 0.0)
        updated = current * np.einsum("nij,nj->ni", C, weight)
        updated /= updated.sum(axis=-1, keepdims=True)
        p[active] = updated
        moving = np.abs(updated - current).max(axis=-1) > EM_TOLERANCE
        active = active[moving]
        if not len(active):
            break
    return p


def resampled_matrices(counts: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` row-stochastic matrices, each true-label row redrawn from its multinomial."""
    stochastic = row_stochastic(counts)
    draws = np.empty((n_boot,) + counts.shape)
    for i, total in enumerate(counts.sum(axis=1).astype(np.int64)):
        draws[:, i] = rng.multinomial(total, stochastic[i], size=n_boot) if total else np.eye(
            len(counts))[i]
    return row_stochastic(draws)


def corrected_tables(frame, confusion: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Corrected shares and entropy per model x prompt x attribute (attributes in ``confusion`` only).

    Returns
    -------
    shares : DataFrame
        model, prompt_id, attribute, label, observed_share (as in the
        distribution table), share (corrected), ci_low, ci_high.
    entropy : DataFrame
        model, prompt_id, attribute, observed_entropy (plug-in, of the
        observed shares), entropy (of the corrected shares), ci_low, ci_high.
    """
    rng = np.random.default_rng([frame.seed, 1])
    parts = [_corrected_attribute(frame, attribute, confusion, rng) for attribute in frame.attributes
             if (confusion["attribute"] == attribute).any()]
    return (concat_rows([shares for shares, _ in parts], CORRECTED_COLUMNS),
            concat_rows([entropy for _, entropy in parts], CORRECTED_ENTROPY_COLUMNS))


def _corrected_attribute(frame, attribute: str, confusion: pd.DataFrame, rng: np.random.Generator
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`corrected_tables`' two parts for one attribute."""
    labels = frame.taxonomies[attribute]
    counts = confusion_counts(confusion, attribute=attribute, labels=labels)
    matrix = row_stochastic(counts, attribute=attribute, labels=labels)
    point = frame.point_metrics(attribute)
    shares = unmix(point.counts, matrix)
    matrices = resampled_matrices(counts, n_boot=frame.n_boot, rng=rng)

    def shares_then_entropy(reps):  # one unmixing per replicate gives both intervals
        replicate_shares = unmix(reps.counts, matrices)
        return np.concatenate([replicate_shares, normalized_entropy(replicate_shares)[..., None]], axis=-1)

    low, high = frame.replicate_intervals(attribute, shares_then_entropy)
    k = len(labels)
    corrected_shares = pd.DataFrame({
        **frame.index_columns(repeat=k), "attribute": attribute,
        "label": np.tile(np.array(labels, dtype=object), len(shares)),
        "observed_share": point.shares.ravel(), "share": shares.ravel(),
        "ci_low": low[:, :k].ravel(), "ci_high": high[:, :k].ravel()})
    corrected_entropy = pd.DataFrame({
        **frame.index_columns(), "attribute": attribute,
        "observed_entropy": normalized_entropy(point.counts), "entropy": normalized_entropy(shares),
        "ci_low": low[:, k], "ci_high": high[:, k]})
    return corrected_shares, corrected_entropy
