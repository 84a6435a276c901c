"""Measure a run directory: RUN/observations.parquet (+ RUN/images.parquet) -> RUN/metrics/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biaskit.metrics.frame import BiasFrame
from biaskit.metrics.io import read_images
from biaskit.suite import Suite, load_suite
from biaskit.tables import (
    IMAGES_TABLE,
    METRICS_DIR,
    OBSERVATIONS_TABLE,
    read_table,
    record_correction,
    run_confusion,
)


def as_table(value: pd.DataFrame | str | Path | None) -> pd.DataFrame | None:
    """A DataFrame as is, a path read with :func:`biaskit.tables.read_table`, None as None."""
    if value is None or isinstance(value, pd.DataFrame):
        return value
    return read_table(value)


#: Per-model confusion tables (``biaskit annotate import --per-model``) beside the pooled one.
BY_MODEL_STEM = "confusion_by_model"


def confusion_table(value: pd.DataFrame | str | Path | None) -> pd.DataFrame | None:
    """The confusion table to correct with: :func:`as_table`, and for a table file named
    ``confusion.*`` with a ``confusion_by_model`` file of the same format beside it, that
    file's rows too (each model with rows of its own is corrected with them,
    :func:`biaskit.metrics.correction.validation_sources`)."""
    table = as_table(value)
    if isinstance(value, (str, Path)):
        by_model = Path(value).with_stem(BY_MODEL_STEM)
        if Path(value).stem == "confusion" and by_model.exists():
            table = pd.concat([table, read_table(by_model)], ignore_index=True)
    return table


def measure_run(run_dir: str | Path, *, suite: Suite | str | Path, baseline: str | None = None,
                out: str | Path | None = None, no_confusion: bool = False, **options) -> BiasFrame:
    """Measure the observations of a run and write its tables to ``RUN/metrics/``.

    Parameters
    ----------
    run_dir : path
        A run directory holding ``observations.parquet`` and, when present,
        ``images.parquet`` (used for no-person, refusal and error rates).
    suite : Suite or path of a suite YAML file
    baseline : str, optional
        Model to compare the others with (writes ``comparison``).
    out : path, optional
        Output folder (default ``RUN/metrics``).
    no_confusion : bool
        Do not correct with the run's own ``validation/confusion.parquet``.
    **options
        Passed to :class:`BiasFrame` (``n_boot``, ``seed``, ``confidence``,
        ``entropy_correction``, ``taxonomies``, ``attributes``, ``confusion``
        -- a DataFrame or a table path; default ``RUN/validation/confusion.parquet``
        when it exists, as ``biaskit validate --out RUN/validation`` and
        ``biaskit annotate import`` write it; see :func:`biaskit.tables.run_confusion`;
        a ``confusion_by_model`` table beside it is used too, see :func:`confusion_table`).

    Examples
    --------
    >>> bias = measure_run("runs/demo", suite="prompts/smoke.yaml", baseline="skewed")  # doctest: +SKIP
    >>> sorted(p.name for p in (Path("runs/demo") / "metrics").glob("*.parquet"))  # doctest: +SKIP
    ['comparison.parquet', 'distribution.parquet', 'overall.parquet', 'rates.parquet', 'summary.parquet']
    """
    run_dir = Path(run_dir)
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    observations_path = run_dir / OBSERVATIONS_TABLE
    images_path = run_dir / IMAGES_TABLE
    confusion = run_confusion(run_dir, given=options.get("confusion"), refuse=no_confusion)
    options["confusion"] = confusion_table(confusion)
    frame = BiasFrame(read_table(observations_path), suite=suite,
                      images=read_images(images_path, suite=suite) if images_path.exists() else None,
                      name=str(observations_path), **options)
    out = Path(out) if out is not None else run_dir / METRICS_DIR
    frame.save(out, baseline=baseline)
    record_correction(out, confusion)  # the report names the table the metrics were corrected with
    return frame
