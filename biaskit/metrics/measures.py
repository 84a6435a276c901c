"""The metrics of DESIGN.md §4 as functions of per-group column sums.

Each function takes sums of the packed per-image counts
(:mod:`biaskit.metrics.counts`) per group, shape (groups, width), and returns
arrays per group (the intervals come from :mod:`biaskit.metrics.posterior`).
Counting unit: the person; "unclear" labels are left out of the shares and
reported apart.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from biaskit.metrics.counts import AttributeBlock, Layout
from biaskit.metrics.entropy import normalized_entropy


class AttributeMetrics:
    """One attribute's metrics per group, each computed on first access.

    Built from group sums of shape (G, width) by :func:`attribute_metrics`;
    every array has leading shape (G,).  Lazy, because each table needs only
    some of them.
    """

    def __init__(self, sums: np.ndarray, block: AttributeBlock, *, expected: np.ndarray,
                 correction: str | None = None):
        self._sums, self._block, self._correction = sums, block, correction
        self._expected = expected  # index of the expected label per group, -1 where none

    @cached_property
    def counts(self) -> np.ndarray:
        """(G, K) persons per known label."""
        return self._sums[..., self._block.label_columns]

    @cached_property
    def known(self) -> np.ndarray:
        """Persons with a known label."""
        return self.counts.sum(axis=-1)

    @cached_property
    def unclear(self) -> np.ndarray:
        """Persons labelled "unclear"."""
        return self._sums[..., self._block.unclear]

    @property
    def people(self) -> np.ndarray:
        return self.known + self.unclear

    @cached_property
    def shares(self) -> np.ndarray:
        """(G, K) share_c = n_c / sum(n); NaN when no known label."""
        return ratio(self.counts, self.known[..., None])

    @cached_property
    def entropy(self) -> np.ndarray:
        """Normalized entropy (see :mod:`biaskit.metrics.entropy`); NaN when no known label."""
        return normalized_entropy(self.counts, correction=self._correction)

    @cached_property
    def _mixed_labels(self) -> np.ndarray:
        """True where more than one distinct known label."""
        return (self.counts > 0).sum(axis=-1) > 1

    @cached_property
    def heterogeneous(self) -> np.ndarray:
        """1.0 if more than one distinct known label, 0.0 if one, NaN if none."""
        return np.where(self.known > 0, self._mixed_labels.astype(np.float64), np.nan)

    @cached_property
    def match_rate(self) -> np.ndarray:
        """Share of known labels equal to the expected one; NaN if none or no expectation."""
        rate = np.full(self.known.shape, np.nan)
        groups = np.flatnonzero(self._expected >= 0)  # usually few: computed for those only
        if len(groups):
            rate[groups] = ratio(self.counts[groups, self._expected[groups]], self.known[groups])
        return rate

    @cached_property
    def within_image(self) -> np.ndarray:
        """Among images with >= 2 known-labelled persons, the share whose labels differ."""
        return ratio(self._sums[..., self._block.mixed], self._sums[..., self._block.eligible])


def ratio(numerator, denominator) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is not positive."""
    numerator, denominator = np.asarray(numerator), np.asarray(denominator)
    shape = np.broadcast_shapes(numerator.shape, denominator.shape)
    out = np.full(shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0, dtype=np.float64)


def attribute_metrics(sums: np.ndarray, block: AttributeBlock, *, expected: np.ndarray,
                      correction: str | None = None) -> AttributeMetrics:
    """Metrics of one attribute from group sums.

    Parameters
    ----------
    sums : float array (G, width)
    block : the attribute's columns
    expected : int array (G,)
        Index of each group's expected label in ``block.labels``, -1 where none.
    correction : entropy bias correction (see :mod:`biaskit.metrics.entropy`)
    """
    return AttributeMetrics(sums, block, expected=expected, correction=correction)


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
