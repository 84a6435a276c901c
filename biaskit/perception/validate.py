"""Validate any tagger on a labelled face folder (FairFace's CSV layout).

For each attribute: accuracy among the faces the tagger did not abstain on,
with a Wilson 95 % interval; the accuracy counting abstentions as errors; the
unclear rate; per-class recall (with intervals); and the confusion matrix as a
tidy table ``attribute, true, predicted, count`` (every pair, zeros included,
``predicted`` may be ``"unclear"``), which the metrics stage uses to correct
distributions for classifier error.  ``race4`` is validated too whenever the
labels have ``race`` and the tagger gives ``race4`` (true labels folded as
FairFace does).

Examples
--------
>>> result = validate(labels="val.csv", images="faces/", tagger="embedded", out="validation/")  # doctest: +SKIP
>>> result.summary[["attribute", "accuracy", "ci_low", "ci_high", "unclear_rate"]]           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from biaskit.accuracy import (CONFIDENCE_LEVEL, PREDICTION_COLUMNS, confusion_table, precision_table,
                              recall_table, summary_table, wilson_interval)
from biaskit.perception.labelled import FILE_COLUMN, labelled_faces, read_labels
from biaskit.perception.taggers import TaggerOptions, plan_taggers
from biaskit.store import write_json_atomic
from biaskit.tables import VALIDATION_SOURCE, write_table
from biaskit.taxonomy import RACE7_TO_RACE4

__all__ = ["validate", "ValidationResult", "wilson_interval", "CONFIDENCE_LEVEL", "VALIDATION_TABLES"]
VALIDATION_TABLES = ("summary", "recall", "precision", "confusion", "predictions", "errors")
NOTHING_TO_VALIDATE = "{labels}: none of the label columns {columns} is tagged by {taggers}"


@dataclass
class ValidationResult:
    """Tables of one validation: summary, recall, precision, confusion, predictions, errors.

    The same tables as ``biaskit annotate import`` writes (:mod:`biaskit.accuracy`).
    """

    summary: pd.DataFrame
    recall: pd.DataFrame
    precision: pd.DataFrame
    confusion: pd.DataFrame
    predictions: pd.DataFrame
    errors: pd.DataFrame
    source: dict = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        """Write every table as parquet and CSV into ``out``, and where the labels came from."""
        out = Path(out)
        for name in VALIDATION_TABLES:
            write_table(getattr(self, name), out / f"{name}.parquet", csv=True)
        write_json_atomic(out / VALIDATION_SOURCE, self.source)
        return out


def validate(
    *,
    labels: str | Path,
    images: str | Path,
    tagger=None,
    attributes=None,
    out: str | Path | None = None,
    detector=None,
    batch_size: int = 32,
    **tagger_options,
) -> ValidationResult:
    """Tag every labelled face and compare with the labels; save the tables in ``out``.

    ``tagger_options`` are those of :class:`~biaskit.perception.taggers.TaggerOptions`
    (thresholds, cautious, device, clip_prompts, clip_weights, ...).
    """
    frame, label_columns = read_labels(labels, attributes=attributes)
    if "race" in label_columns and "race4" not in frame.columns:
        frame["race4"] = frame["race"].map(RACE7_TO_RACE4)
        label_columns = label_columns + ("race4",)
    options = TaggerOptions(batch_size=batch_size, **tagger_options)
    wanted = label_columns if tagger is None else None
    plan = plan_taggers(attributes=wanted, tagger=tagger, options=options)
    plan = [(t, tuple(a for a in attrs if a in label_columns)) for t, attrs in plan]
    plan = [(t, attrs) for t, attrs in plan if attrs]
    if not plan:
        raise ValueError(NOTHING_TO_VALIDATE.format(labels=labels, columns=list(label_columns), taggers=tagger))
    faces, errors = labelled_faces(frame[FILE_COLUMN], images, detector=detector)
    ok = [i for i, face in enumerate(faces) if face is not None]
    predictions = _predict(frame.iloc[ok], [faces[i] for i in ok], plan, batch_size)
    result = ValidationResult(
        summary=summary_table(predictions).assign(skipped_files=len(errors)),
        recall=recall_table(predictions),
        precision=precision_table(predictions),
        confusion=confusion_table(predictions),
        predictions=predictions,
        errors=pd.DataFrame({"error": errors}),
        source={"source": "labelled faces", "labels": str(labels), "n_faces": len(ok)},
    )
    if out is not None:
        result.save(out)
    return result


def _predict(frame: pd.DataFrame, faces, plan, batch_size: int) -> pd.DataFrame:
    rows = []
    for start in range(0, len(faces), batch_size):
        part = faces[start : start + batch_size]
        files = frame[FILE_COLUMN].iloc[start : start + batch_size].tolist()
        for tagger, attributes in plan:
            output = tagger.tag(part, attributes=attributes)
            for attribute in attributes:
                truth = frame[attribute].iloc[start : start + batch_size].tolist()
                predicted, confidence = output[attribute]
                rows.extend(
                    dict(file=f, attribute=attribute, true=t, predicted=p, confidence=float(c),
                         tagger=tagger.name, weight=1.0)
                    for f, t, p, c in zip(files, truth, predicted, confidence)
                )
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
