"""Bias metrics (DESIGN.md §4): distributions, HOF, entropy, ahistorical match, vs baseline.

Main entry points: :class:`BiasFrame` (all tables of one measurement) and
:func:`measure_run` (a run directory in, RUN/metrics/ out).
"""

from biaskit.metrics.compare import COMPARISON_COLUMNS
from biaskit.metrics.correction import CORRECTED_COLUMNS, CORRECTED_ENTROPY_COLUMNS, unmix
from biaskit.metrics.entropy import normalized_entropy
from biaskit.metrics.frame import (
    DISTRIBUTION_COLUMNS,
    OVERALL_COLUMNS,
    RATES_COLUMNS,
    SUMMARY_COLUMNS,
    BiasFrame,
)
from biaskit.metrics.io import read_images, read_observations
from biaskit.metrics.run import measure_run
from biaskit.metrics.stats import benjamini_hochberg, equal_distribution_test

__all__ = [
    "BiasFrame",
    "measure_run",
    "read_observations",
    "read_images",
    "normalized_entropy",
    "equal_distribution_test",
    "benjamini_hochberg",
    "unmix",
    "DISTRIBUTION_COLUMNS",
    "SUMMARY_COLUMNS",
    "OVERALL_COLUMNS",
    "RATES_COLUMNS",
    "COMPARISON_COLUMNS",
    "CORRECTED_COLUMNS",
    "CORRECTED_ENTROPY_COLUMNS",
]
