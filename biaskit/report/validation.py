"""The report's validation section: how well the taggers did on faces people labelled.

Reads ``RUN/validation/`` as ``biaskit annotate import`` (the run's own faces)
or ``biaskit validate`` (a labelled face folder) wrote it: who annotated how
many faces, their agreement, the tagger's accuracy per attribute and per
predicted label, the detector's false positives ("no person"), and which
confusion table -- if any -- the metrics were corrected with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from biaskit import tables
from biaskit.report.render import DASH, number, percent, table, with_interval

STATISTIC_NAMES = {"krippendorff_alpha": "Krippendorff's α", "cohen_kappa": "Cohen's κ"}


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / f"{name}.parquet"
    return tables.read_table(path) if path.exists() else pd.DataFrame()


def _source(folder: Path) -> dict:
    path = folder / tables.VALIDATION_SOURCE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def describe_source(source: dict) -> str:
    """One sentence: where the validation labels come from."""
    if source.get("source") == "annotation":
        return (f"People labelled {source.get('n_faces_answered', '?')} of the "
                f"{source.get('n_faces_sampled', '?')} faces sampled from this run "
                f"({source.get('n_annotators', '?')} annotator(s), export {source.get('export_id', '?')}; "
                "`biaskit annotate`). Figures are weighted by the sampling design, so they estimate "
                "the tagger's accuracy on all of this run's detected faces.")
    if source:
        return f"Labelled faces outside this run ({source.get('labels', 'biaskit validate')})."
    return "Labelled faces (`biaskit validate`); their origin is not recorded."


def correction_note(run_dir: Path, source: dict) -> str:
    """Which confusion table the metrics were corrected with (as measure recorded it), or that none was."""
    used = tables.read_correction(run_dir / tables.METRICS_DIR)
    corrected = (run_dir / tables.METRICS_DIR / "corrected.parquet").exists()
    if not used and not corrected:
        return ("The metrics are not corrected for tagger error: no confusion table was used when "
                "they were measured (`biaskit measure` picks up validation/confusion.parquet).")
    own = (run_dir / tables.VALIDATION_DIR / tables.CONFUSION_TABLE).resolve()
    # recorded relative to the run (biaskit run) or as given on the command line
    in_run = used is not None and any(p.exists() and p.resolve() == own for p in (Path(used), run_dir / used))
    if not in_run:
        origin = "not this run's validation table"
    elif source.get("source") == "annotation":
        origin = "in-domain: this run's own faces, labelled by people"
    else:
        origin = "from labelled faces outside this run"
    table_name = used or "a confusion table whose origin was not recorded"
    return (f"Every figure corrected for tagger error (metrics/corrected, metrics/corrected_entropy and "
            f"the corrected figures of this report) uses {table_name} ({origin}).")


def _accuracy(summary: pd.DataFrame, by_model: pd.DataFrame) -> dict:
    """Per attribute (all models), then per model where ``--per-model`` gave enough faces."""
    frame = pd.concat([summary.assign(model="all"), by_model], ignore_index=True)
    rows = [[r.get("attribute"), r.get("model"), r.get("tagger", DASH), r.get("n", DASH),
             with_interval(r.get("accuracy"), r.get("ci_low"), r.get("ci_high"), 3),
             percent(r.get("unclear_rate")), number(r.get("n_effective"), 1)]
            for r in frame.to_dict("records")]
    return table(["attribute", "model", "tagger", "faces", "accuracy [95% CI]", "tagger unclear",
                  "effective n"], rows)


def _precision(precision: pd.DataFrame) -> dict:
    shown = precision[precision["n"] > 0] if "n" in precision else precision
    rows = [[r["attribute"], r["predicted"], r["n"], with_interval(r["precision"], r["ci_low"],
                                                                   r["ci_high"], 3)]
            for r in shown.to_dict("records")]
    return table(["attribute", "tagger's label", "faces", "confirmed by people [95% CI]"], rows)


def _annotators(annotators: pd.DataFrame) -> dict:
    rows = [[r["annotator"], r["n_faces"], r["n_answers"], r["n_unclear"], r["n_no_person"]]
            for r in annotators.to_dict("records")]
    return table(["annotator", "faces", "answers", "unclear", "no person"], rows)


def _agreement(agreement: pd.DataFrame) -> dict:
    rows = [[r["attribute"], STATISTIC_NAMES.get(r["statistic"], r["statistic"]),
             " – ".join(x for x in (r["annotator_a"], r["annotator_b"]) if x) or "all",
             r["n_faces"], with_interval(r["value"], r["ci_low"], r["ci_high"])]
            for r in agreement.to_dict("records")]
    return table(["attribute", "statistic", "annotators", "faces", "value [95% CI]"], rows)


def _detector(detector: pd.DataFrame) -> dict:
    rows = [[r["model"], r["n_faces"], r["n_no_person"],
             with_interval(r["false_detection_share"], r["ci_low"], r["ci_high"], 3),
             number(r["estimated_false_detections"], 1)]
            for r in detector.to_dict("records")]
    return table(["model", "faces answered", "no person", "false-detection share [95% CI]",
                  "estimated false detections in the run"], rows)


def validation_section(run_dir: str | Path) -> dict | None:
    """The section's text and tables, or None when the run has no validation."""
    folder = Path(run_dir) / tables.VALIDATION_DIR
    summary = _read(folder, "summary")
    if summary.empty:
        return None
    source = _source(folder)
    parts = {name: _read(folder, name) for name in ("precision", "annotators", "agreement", "detector",
                                                     "summary_by_model")}
    return {
        "source": describe_source(source),
        "correction": correction_note(Path(run_dir), source),
        "accuracy": _accuracy(summary, parts["summary_by_model"]),
        "precision": _precision(parts["precision"]) if not parts["precision"].empty else None,
        "annotators": _annotators(parts["annotators"]) if not parts["annotators"].empty else None,
        "agreement": _agreement(parts["agreement"]) if not parts["agreement"].empty else None,
        "detector": _detector(parts["detector"]) if not parts["detector"].empty else None,
    }
