"""``annotate import``: people's answers -> majority labels, agreement, the tagger's accuracy.

Writes ``RUN/validation/`` -- the same tables as ``biaskit validate`` (summary,
recall, precision, confusion, predictions, errors; :mod:`biaskit.accuracy`)
plus labels (every annotator's answers), majority, agreement, annotators,
detector and ``source.json``; with ``--per-model``, ``summary_by_model`` and
``confusion_by_model`` for the models with enough labelled faces.

Reference label of a face and attribute: the answer most annotators gave
(``unclear`` included as an answer; a tie gives no reference), among the
annotators who did not call the crop "no person".  A face is a **false
detection** when more than half of the annotators who answered it said "no
person": it leaves the attribute tables and counts as a detector false
positive in ``detector`` (with a design-weighted Wilson interval and the
estimated number of false detections in the run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit import accuracy, tables, taxonomy
from biaskit.annotate.agreement import N_BOOT, agreement_table
from biaskit.annotate.answers import read_answers
from biaskit.annotate.export import (ANNOTATION_DIR, CHOICE_EXTRAS, EXPORT_JSON, NO_PERSON,
                                     PREDICTIONS_TABLE, SAMPLE_TABLE)
from biaskit.store import write_json_atomic

#: Labelled faces a model needs (per attribute) for a confusion table of its own.
MIN_PER_MODEL = 50
NOT_EXPORTED = "{path}: no annotation sample in this run; run `biaskit annotate export` first"
NO_ANSWERS = "no valid answers to import; {n_errors} problem(s):\n{errors}"
MAJORITY_COLUMNS = ("face_id", "model", "attribute", "label", "status", "n_answers", "n_agree")
DETECTOR_COLUMNS = ("model", "n_faces", "n_no_person", "false_detection_share", "ci_low", "ci_high",
                    "estimated_false_detections")
ANNOTATOR_COLUMNS = ("annotator", "n_faces", "n_answers", "n_unclear", "n_no_person", "files")


@dataclass
class ImportResult:
    """The tables written to ``RUN/validation/`` and the error lines of bad rows."""

    tables: dict[str, pd.DataFrame]
    errors: list[str]
    out: Path
    source: dict = field(default_factory=dict)


def import_annotations(inputs, *, run: str | Path, n_boot: int = N_BOOT, seed: int = 0,
                       min_per_model: int = MIN_PER_MODEL) -> ImportResult:
    """Read answer files, check them against the run's sample and write ``RUN/validation/``.

    Parameters
    ----------
    inputs : sequence of path
        The page's CSV exports and Label Studio JSON exports, or folders of them.
    run : path
        The run whose ``annotation/`` sample the answers belong to.
    n_boot, seed :
        Bootstrap replicates and seed of the agreement intervals.
    min_per_model : int
        Labelled faces per model and attribute needed for a per-model table.

    Returns
    -------
    ImportResult
    """
    run = Path(run)
    annotation = run / ANNOTATION_DIR
    if not (annotation / EXPORT_JSON).exists():
        raise FileNotFoundError(NOT_EXPORTED.format(path=annotation))
    settings = json.loads((annotation / EXPORT_JSON).read_text(encoding="utf-8"))
    sample = tables.read_table(annotation / SAMPLE_TABLE)
    predicted = tables.read_table(annotation / PREDICTIONS_TABLE)
    choices = {a: list(taxonomy.labels(a)) + list(CHOICE_EXTRAS) + [NO_PERSON] for a in settings["attributes"]}
    answers, errors = read_answers(inputs, sample=sample, export_id=settings["export_id"], choices=choices)
    if answers.empty:
        raise ValueError(NO_ANSWERS.format(n_errors=len(errors), errors="\n".join(errors)))
    false_faces = false_detections(answers)
    majority = majority_labels(answers, sample, false_faces)
    predictions = reference_predictions(majority, predicted, sample)
    out = run / tables.VALIDATION_DIR
    result = {
        "labels": answers,
        "majority": majority,
        "agreement": agreement_table(answers, {a: list(taxonomy.labels(a)) for a in settings["attributes"]},
                                     n_boot=n_boot, seed=seed),
        "annotators": annotator_table(answers),
        "detector": detector_table(answers, sample, false_faces),
        "summary": accuracy.summary_table(predictions).assign(
            skipped_files=len(sample) - predictions["file"].nunique()),
        "recall": accuracy.recall_table(predictions),
        "precision": accuracy.precision_table(predictions),
        "confusion": accuracy.confusion_table(predictions),
        "predictions": predictions,
        "errors": pd.DataFrame({"error": errors}, dtype=object),
    }
    if settings.get("per_model"):
        result.update(_per_model(predictions, min_per_model))
    for name, frame in result.items():
        tables.write_table(frame, out / f"{name}.parquet", csv=True)
    source = {"source": "annotation", "export_id": settings["export_id"],
              "n_faces_sampled": len(sample), "n_faces_answered": int(answers["face_id"].nunique()),
              "n_annotators": int(answers["annotator"].nunique()), "per_model": bool(settings.get("per_model")),
              "models_with_own_confusion": sorted(set(result.get("confusion_by_model", pd.DataFrame(
                  columns=["model"]))["model"]))}
    write_json_atomic(out / tables.VALIDATION_SOURCE, source)
    return ImportResult(tables=result, errors=errors, out=out, source=source)


def false_detections(answers: pd.DataFrame) -> set:
    """Faces more than half of whose annotators said "no person"."""
    said = answers.assign(none=answers["label"] == NO_PERSON).groupby(["face_id", "annotator"])["none"].any()
    share = said.groupby("face_id").mean()
    return set(share.index[share > 0.5])


def majority_labels(answers: pd.DataFrame, sample: pd.DataFrame, false_faces: set) -> pd.DataFrame:
    """One row per answered face and attribute: the reference label and how it was reached.

    ``status``: ``label`` (a taxonomy label won), ``unclear`` (``unclear`` won),
    ``tie`` (no single most frequent answer), ``no person`` (a false detection).
    """
    model_of = sample.set_index("face_id")["model"]
    rows = []
    for (face, attribute), group in answers.groupby(["face_id", "attribute"], sort=False):
        votes = group.loc[group["label"] != NO_PERSON, "label"].value_counts()
        if face in false_faces:
            label, status, agree = NO_PERSON, NO_PERSON, int((group["label"] == NO_PERSON).sum())
        elif votes.empty:
            continue  # only "no person" answers from a minority: no reference for this face
        elif len(votes) > 1 and votes.iloc[0] == votes.iloc[1]:
            label, status, agree = taxonomy.UNCLEAR, "tie", int(votes.iloc[0])
        else:
            label, agree = votes.index[0], int(votes.iloc[0])
            status = "unclear" if label == taxonomy.UNCLEAR else "label"
        rows.append((face, model_of[face], attribute, label, status, len(group), agree))
    return pd.DataFrame(rows, columns=list(MAJORITY_COLUMNS))


def reference_predictions(majority: pd.DataFrame, predicted: pd.DataFrame, sample: pd.DataFrame
                          ) -> pd.DataFrame:
    """The predictions table of :mod:`biaskit.accuracy`: the tagger's label vs the majority's."""
    labelled = majority[majority["status"] == "label"]
    merged = (labelled[["face_id", "model", "attribute", "label"]].rename(columns={"label": "true"})
              .merge(predicted[["face_id", "attribute", "label", "confidence", "tagger"]]
                     .rename(columns={"label": "predicted"}), on=["face_id", "attribute"], how="left")
              .merge(sample[["face_id", "weight"]], on="face_id"))
    merged["predicted"] = merged["predicted"].fillna(taxonomy.UNCLEAR)  # the tagger gave no label
    merged["tagger"] = merged["tagger"].fillna("none")
    return merged.rename(columns={"face_id": "file"})[[*accuracy.PREDICTION_COLUMNS, "model"]]


def detector_table(answers: pd.DataFrame, sample: pd.DataFrame, false_faces: set) -> pd.DataFrame:
    """Per model and pooled: the share of answered faces that are no person, design-weighted."""
    answered = sample[sample["face_id"].isin(set(answers["face_id"]))]
    hits = answered["face_id"].isin(false_faces).to_numpy()
    rows = []
    for model in [*sorted(answered["model"].unique()), "all"]:
        mask = np.ones(len(answered), bool) if model == "all" else (answered["model"] == model).to_numpy()
        weights = answered["weight"].to_numpy(float)[mask]
        share, low, high, _ = accuracy.weighted_share(hits[mask], weights)
        rows.append((model, int(mask.sum()), int(hits[mask].sum()), share, low, high,
                     float(weights[hits[mask]].sum())))
    return pd.DataFrame(rows, columns=list(DETECTOR_COLUMNS))


def annotator_table(answers: pd.DataFrame) -> pd.DataFrame:
    """Who answered how many faces and questions, and from which files."""
    grouped = answers.groupby("annotator", sort=True)
    return pd.DataFrame({
        "n_faces": grouped["face_id"].nunique(),
        "n_answers": grouped.size(),
        "n_unclear": grouped["label"].apply(lambda s: int((s == taxonomy.UNCLEAR).sum())),
        "n_no_person": grouped.apply(lambda g: g.loc[g["label"] == NO_PERSON, "face_id"].nunique(),
                                     include_groups=False),
        "files": grouped["source"].apply(lambda s: ", ".join(sorted({v.split(":")[0] for v in s}))),
    }).reset_index()[list(ANNOTATOR_COLUMNS)]


def _per_model(predictions: pd.DataFrame, min_per_model: int) -> dict[str, pd.DataFrame]:
    summaries, confusions = [], []
    for (model, attribute), group in predictions.groupby(["model", "attribute"], sort=True):
        if len(group) < min_per_model:
            continue
        summaries.append(accuracy.summary_table(group).assign(model=model))
        confusions.append(accuracy.confusion_table(group).assign(model=model))
    return {"summary_by_model": tables.concat_rows(summaries, ("model", *accuracy.SUMMARY_COLUMNS)),
            "confusion_by_model": tables.concat_rows(confusions, ("model", *accuracy.CONFUSION_COLUMNS))}
