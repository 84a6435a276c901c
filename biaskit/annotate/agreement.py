"""Inter-annotator agreement per attribute: Krippendorff's alpha and pairwise Cohen's kappa.

Both treat a category as nominal and only taxonomy labels as values:
``unclear``, ``no person`` and skipped questions are missing (they say the
annotator could not or did not label the face, not that they disagreed).

* **Krippendorff's alpha** (nominal), from the ``krippendorff`` package, over
  every annotator and face: ``1 - D_o / D_e``, observed over expected
  disagreement of pairable values.  Estimand: the agreement of this pool of
  annotators on faces like the run's.
* **Cohen's kappa** for each pair of annotators, over the faces both gave a
  label: ``(p_o - p_e) / (1 - p_e)``, ``p_e = sum_k a_k b_k`` from each one's
  own label shares.

Intervals are percentile bootstraps over faces (the face is the unit; all of
its answers move together), seeded, with the point estimate inside (an
interval that misses it -- possible with few faces -- is widened to it).
Statistics are NaN where undefined (fewer than two pairable values, or no
variation: ``D_e = 0`` or ``p_e = 1``).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

AGREEMENT_COLUMNS = ("attribute", "statistic", "annotator_a", "annotator_b", "n_faces", "value",
                     "ci_low", "ci_high")
N_BOOT = 1000
CONFIDENCE = 0.95


def krippendorff_alpha(matrix: np.ndarray, *, n_values: int) -> float:
    """Nominal alpha of an annotators x units matrix of value codes (NaN = missing)."""
    import krippendorff

    matrix = np.asarray(matrix, float)
    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    if pairable.sum() == 0 or len(np.unique(matrix[:, pairable][~np.isnan(matrix[:, pairable])])) < 2:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(krippendorff.alpha(reliability_data=matrix[:, pairable],
                                        level_of_measurement="nominal",
                                        value_domain=list(range(n_values))))


def cohen_kappa(a, b, *, n_values: int) -> float:
    """Cohen's kappa of two equal-length arrays of value codes (both known)."""
    a, b = np.asarray(a, int), np.asarray(b, int)
    if len(a) == 0:
        return np.nan
    observed = float(np.mean(a == b))
    expected = float(np.dot(np.bincount(a, minlength=n_values), np.bincount(b, minlength=n_values))
                     / len(a) ** 2)
    return np.nan if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def _interval(point: float, replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    replicates = replicates[np.isfinite(replicates)]
    if not np.isfinite(point) or len(replicates) == 0:
        return np.nan, np.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(min(low, point)), float(max(high, point))


def agreement_table(answers: pd.DataFrame, choices: dict[str, list[str]], *, n_boot: int = N_BOOT,
                    seed: int = 0, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Alpha and every pair's kappa per attribute, with bootstrap intervals.

    ``answers``: annotator, face_id, attribute, label; ``choices``: attribute ->
    its taxonomy labels (other answers count as missing).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for attribute, labels in choices.items():
        codes = {label: i for i, label in enumerate(labels)}
        rows_of = answers[(answers["attribute"] == attribute) & answers["label"].isin(list(codes))]
        matrix = (rows_of.assign(code=rows_of["label"].map(codes))
                  .pivot_table(index="annotator", columns="face_id", values="code", aggfunc="first"))
        if matrix.shape[1] == 0:
            continue
        values = matrix.to_numpy(float)
        draws = rng.integers(0, values.shape[1], size=(n_boot, values.shape[1]))
        point = krippendorff_alpha(values, n_values=len(labels))
        reps = np.array([krippendorff_alpha(values[:, d], n_values=len(labels)) for d in draws])
        n_faces = int(((~np.isnan(values)).sum(axis=0) >= 2).sum())
        rows.append((attribute, "krippendorff_alpha", "", "", n_faces, point, *_interval(point, reps, confidence)))
        for (a, row_a), (b, row_b) in itertools.combinations(zip(matrix.index, values), 2):
            both = ~np.isnan(row_a) & ~np.isnan(row_b)
            x, y = row_a[both].astype(int), row_b[both].astype(int)
            point = cohen_kappa(x, y, n_values=len(labels))
            picks = rng.integers(0, len(x), size=(n_boot, len(x))) if len(x) else np.zeros((0, 0), int)
            reps = np.array([cohen_kappa(x[p], y[p], n_values=len(labels)) for p in picks])
            rows.append((attribute, "cohen_kappa", a, b, int(both.sum()), point,
                         *_interval(point, reps, confidence)))
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
