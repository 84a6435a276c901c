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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.perception.labelled import FILE_COLUMN, labelled_faces, read_labels
from biaskit.perception.taggers import TaggerOptions, plan_taggers
from biaskit.tables import write_table
from biaskit.taxonomy import RACE7_TO_RACE4, UNCLEAR

CONFIDENCE_LEVEL = 0.95
NOTHING_TO_VALIDATE = "{labels}: none of the label columns {columns} is tagged by {taggers}"


@dataclass
class ValidationResult:
    """Tables of one validation: summary, recall, confusion, predictions, errors."""

    summary: pd.DataFrame
    recall: pd.DataFrame
    confusion: pd.DataFrame
    predictions: pd.DataFrame
    errors: pd.DataFrame

    def save(self, out: str | Path) -> Path:
        """Write every table as parquet and CSV into ``out``."""
        out = Path(out)
        for name in ("summary", "recall", "confusion", "predictions", "errors"):
            write_table(getattr(self, name), out / f"{name}.parquet", csv=True)
        return out


def wilson_interval(successes, trials, *, level: float = CONFIDENCE_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions (NaN where ``trials`` is 0)."""
    from scipy.stats import norm

    k, n = np.asarray(successes, float), np.asarray(trials, float)
    z = norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.where(n > 0, centre - half, np.nan), np.where(n > 0, centre + half, np.nan)


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
        summary=_summary(predictions, skipped=len(errors)),
        recall=_recall(predictions),
        confusion=_confusion(predictions),
        predictions=predictions,
        errors=pd.DataFrame({"error": errors}),
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
                    dict(file=f, attribute=attribute, true=t, predicted=p, confidence=float(c), tagger=tagger.name)
                    for f, t, p, c in zip(files, truth, predicted, confidence)
                )
    return pd.DataFrame(rows, columns=["file", "attribute", "true", "predicted", "confidence", "tagger"])


def _summary(predictions: pd.DataFrame, *, skipped: int) -> pd.DataFrame:
    rows = []
    for (attribute, tagger), group in predictions.groupby(["attribute", "tagger"], sort=False):
        n = len(group)
        unclear = int((group["predicted"] == UNCLEAR).sum())
        correct = int((group["predicted"] == group["true"]).sum())
        rows.append(dict(attribute=attribute, tagger=tagger, n=n, n_unclear=unclear, n_correct=correct,
                         skipped_files=skipped))
    summary = pd.DataFrame(rows, columns=["attribute", "tagger", "n", "n_unclear", "n_correct", "skipped_files"])
    known = summary["n"] - summary["n_unclear"]
    summary["accuracy"] = summary["n_correct"] / known.where(known > 0)
    summary["ci_low"], summary["ci_high"] = wilson_interval(summary["n_correct"], known)
    summary["accuracy_all"] = summary["n_correct"] / summary["n"]
    summary["unclear_rate"] = summary["n_unclear"] / summary["n"]
    return summary


def _recall(predictions: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for attribute, group in predictions.groupby("attribute", sort=False):
        for label in taxonomy.labels(attribute):
            of_class = group[group["true"] == label]
            rows.append(dict(attribute=attribute, true=label, n=len(of_class),
                             n_correct=int((of_class["predicted"] == label).sum()),
                             n_unclear=int((of_class["predicted"] == UNCLEAR).sum())))
    recall = pd.DataFrame(rows, columns=["attribute", "true", "n", "n_correct", "n_unclear"])
    recall["recall"] = recall["n_correct"] / recall["n"].where(recall["n"] > 0)
    recall["ci_low"], recall["ci_high"] = wilson_interval(recall["n_correct"], recall["n"])
    recall["unclear_rate"] = recall["n_unclear"] / recall["n"].where(recall["n"] > 0)
    return recall


def _confusion(predictions: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for attribute, group in predictions.groupby("attribute", sort=False):
        categories = list(taxonomy.labels(attribute))
        counts = pd.crosstab(group["true"], group["predicted"]).reindex(
            index=categories, columns=categories + [UNCLEAR], fill_value=0)
        tidy = counts.rename_axis(index="true", columns="predicted").stack().rename("count").reset_index()
        frames.append(tidy.assign(attribute=attribute))
    if not frames:
        return pd.DataFrame(columns=["attribute", "true", "predicted", "count"])
    confusion = pd.concat(frames, ignore_index=True)[["attribute", "true", "predicted", "count"]]
    confusion["count"] = confusion["count"].astype("int64")
    return confusion
