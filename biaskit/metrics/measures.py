"""The metrics of DESIGN.md §4 as functions of per-group column sums.

Each function takes sums of the packed per-image counts
(:mod:`biaskit.metrics.counts`) of shape (groups, width) for point estimates or
(groups, replicates, width) for bootstrap replicates, and returns arrays of the
leading shape.  Counting unit: the person; "unclear" labels are left out of the
shares and reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biaskit.metrics.counts import AttributeBlock, Layout
from biaskit.metrics.entropy import normalized_entropy


@dataclass(frozen=True)
class AttributeMetrics:
    """One attribute's metrics per group (and replicate)."""

    counts: np.ndarray  # (..., K) persons per known label
    known: np.ndarray  # persons with a known label
    unclear: np.ndarray  # persons labelled "unclear"
    shares: np.ndarray  # (..., K) share_c = n_c / sum(n); NaN when no known label
    entropy: np.ndarray  # normalized entropy; NaN when no known label
    heterogeneous: np.ndarray  # 1.0 if > 1 distinct known label, 0.0 if one, NaN if none
    match_rate: np.ndarray  # share of known labels equal to the expected one; NaN if none
    within_image: np.ndarray  # share of images with >= 2 known persons whose labels differ

    @property
    def people(self) -> np.ndarray:
        return self.known + self.unclear


def ratio(numerator, denominator) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is not positive."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def attribute_metrics(sums: np.ndarray, block: AttributeBlock, *, expected: np.ndarray,
                      correction: str | None = None) -> AttributeMetrics:
    """Metrics of one attribute from group sums.

    Parameters
    ----------
    sums : array (G, width) or (G, B, width)
    block : the attribute's columns
    expected : int array (G,)
        Index of each group's expected label in ``block.labels``, -1 where none.
    correction : entropy bias correction (see :mod:`biaskit.metrics.entropy`)
    """
    counts = sums[..., block.label_columns]
    known = counts.sum(axis=-1)
    expected = expected.reshape(expected.shape + (1,) * (known.ndim - 1))
    hit = np.take_along_axis(counts, np.broadcast_to(np.maximum(expected, 0), known.shape)[..., None],
                             axis=-1)[..., 0]
    distinct = (counts > 0).sum(axis=-1)
    return AttributeMetrics(
        counts=counts,
        known=known,
        unclear=sums[..., block.unclear],
        shares=ratio(counts, known[..., None]),
        entropy=normalized_entropy(counts, correction=correction),
        heterogeneous=np.where(known > 0, (distinct > 1).astype(np.float64), np.nan),
        match_rate=np.where(expected >= 0, ratio(hit, known), np.nan),
        within_image=ratio(sums[..., block.mixed], sums[..., block.eligible]),
    )


def image_metrics(sums: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """n_images, no-person share and count accuracy per group.

    count accuracy is NaN here only for groups without images; the caller
    blanks it where the prompt states no person count.
    """
    images = sums[..., layout.image]
    return {
        "n_images": images,
        "no_person_share": ratio(sums[..., layout.no_person], images),
        "count_accuracy": ratio(sums[..., layout.count_match], images),
    }
