"""Read annotators' answers (the page's CSVs, Label Studio JSON exports) and check every row.

Every row is checked against the exported sample: the export id, the face, the
attribute, the label (the taxonomy's, ``unclear`` or ``no person``) and that
an annotator answers a question once (a later file's answer replaces an
earlier identical one; a different answer is an error).  A bad row costs one
error line naming its file and row, never the import.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biaskit import taxonomy
from biaskit.annotate import labelstudio

ANSWER_COLUMNS = ("annotator", "face_id", "attribute", "label", "source")
CSV_COLUMNS = ("export_id", "annotator", "face_id", "attribute", "label")
NO_FILES = "{path}: no .csv or .json answer files there"
MISSING = "{path}: not found"
NOT_ANSWERS = "{path}: not an answer file (a .csv from the annotation page or a Label Studio .json export)"
BAD_CSV_COLUMNS = "{path}: missing column(s) {missing}; the page's CSV has {expected}"
WRONG_EXPORT = ("answers to another sample (export {got!r}); this run's sample is export {want!r} "
                "-- exported again since?")
UNKNOWN_FACE = "face {face!r} is not in this run's annotation sample"
UNKNOWN_ATTRIBUTE = "attribute {attribute!r} was not asked (asked: {asked})"
BAD_LABEL = "label {label!r} is not an answer to {attribute!r} (answers: {labels})"
NO_ANNOTATOR = "no annotator id"
CONFLICT = ("{annotator} answered {face}/{attribute} twice, differently ({first!r} in {first_source}, "
            "then {label!r}); the later answer is kept")


def answer_files(inputs) -> tuple[list[Path], list[str]]:
    """The answer files named by ``inputs`` (files, or folders of .csv and .json files)."""
    files, errors = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in (".csv", ".json")
                           and p.name != labelstudio.TASKS_FILE)
            files += found
            if not found:
                errors.append(NO_FILES.format(path=item))
        elif item.is_file() and item.suffix.lower() in (".csv", ".json"):
            files.append(item)
        elif item.is_file():
            errors.append(NOT_ANSWERS.format(path=item))
        else:
            errors.append(MISSING.format(path=item))
    return files, errors


def _csv_rows(path: Path) -> tuple[list[dict], list[str]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return [], [f"{path}: cannot read it as CSV ({exc})"]
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        return [], [BAD_CSV_COLUMNS.format(path=path, missing=missing, expected=list(CSV_COLUMNS))]
    rows = frame[list(CSV_COLUMNS)].to_dict("records")
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        row["where"] = f"row {line}"
    return rows, []


def read_answers(inputs, *, sample: pd.DataFrame, export_id: str, choices: dict[str, list[str]]
                 ) -> tuple[pd.DataFrame, list[str]]:
    """Checked answers (:data:`ANSWER_COLUMNS`) and one error line per bad row or file.

    ``choices`` maps each asked attribute to its accepted answers.
    """
    files, errors = answer_files(inputs)
    faces = set(sample["face_id"])
    kept: dict[tuple, dict] = {}
    for path in files:
        rows, problems = (labelstudio.read_export(path) if path.suffix.lower() == ".json"
                          else _csv_rows(path))
        errors += problems
        for row in rows:
            problem = _check(row, faces=faces, export_id=export_id, choices=choices)
            if problem:
                errors.append(f"{path}: {row['where']}: {problem}")
                continue
            row = {"annotator": str(row["annotator"]).strip(), "face_id": row["face_id"],
                   "attribute": row["attribute"],
                   "label": taxonomy.normalize_label(row["attribute"], row["label"]),
                   "source": f"{path.name}:{row['where']}"}
            key = (row["annotator"], row["face_id"], row["attribute"])
            first = kept.get(key)
            if first is not None and first["label"] != row["label"]:
                errors.append(f"{path}: {row['source'].split(':', 1)[1]}: " + CONFLICT.format(
                    annotator=key[0], face=key[1], attribute=key[2], first=first["label"],
                    first_source=first["source"], label=row["label"]))
            kept[key] = row
    answers = pd.DataFrame(list(kept.values()), columns=list(ANSWER_COLUMNS))
    return answers, errors


def _check(row: dict, *, faces: set, export_id: str, choices) -> str | None:
    if str(row.get("export_id")) != export_id:
        return WRONG_EXPORT.format(got=row.get("export_id"), want=export_id)
    if not str(row.get("annotator") or "").strip():
        return NO_ANNOTATOR
    if row.get("face_id") not in faces:
        return UNKNOWN_FACE.format(face=row.get("face_id"))
    attribute = row.get("attribute")
    if attribute not in choices:
        return UNKNOWN_ATTRIBUTE.format(attribute=attribute, asked=list(choices))
    if taxonomy.normalize_label(attribute, row.get("label")) not in choices[attribute]:
        return BAD_LABEL.format(label=row.get("label"), attribute=attribute, labels=choices[attribute])
    return None
