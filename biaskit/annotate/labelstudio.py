"""Label Studio: tasks to import, the labelling config, and reading its JSON export.

Tasks are Label Studio's JSON import format (a list of ``{"data": {...}}``):
``data.face_id`` identifies the face, ``data.face`` and ``data.image`` hold
the crop and the whole image as data URIs (no file server needed), and
``data.export_id`` ties the task to the sample it came from.  The config asks
one single-choice question per attribute (``Choices`` named after it) with the
taxonomy's labels, ``unclear`` and ``no person``.

An export ("JSON" in Label Studio's export dialog) is the list of tasks with
their ``annotations``; each annotation has ``completed_by`` (a user id, or an
object with ``id``/``email``), ``was_cancelled`` (a skipped task) and
``result``: ``{"from_name": ATTRIBUTE, "type": "choices", "value":
{"choices": [LABEL]}}`` per answered question.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

from biaskit.tables import write_atomic

TASKS_FILE = "labelstudio_tasks.json"
CONFIG_FILE = "labelstudio_config.xml"
NOT_AN_EXPORT = "{path}: not a Label Studio JSON export (a list of tasks with 'data' and 'annotations')"
BAD_TASK = "{path}: task {task}: {problem}"


def labelling_config(choices: dict[str, list[str]], *, no_person: str) -> str:
    """The labelling config XML: the crop, the whole image on demand, one question per attribute."""
    lines = ['<View>',
             '  <Image name="face" value="$face" width="320px"/>',
             '  <Collapse>',
             '    <Panel value="Whole image">',
             '      <Image name="image" value="$image"/>',
             '    </Panel>',
             '  </Collapse>']
    for attribute, labels in choices.items():
        lines.append(f'  <Header value={quoteattr(attribute)}/>')
        lines.append(f'  <Choices name={quoteattr(attribute)} toName="face" choice="single" '
                     'showInline="true" required="false">')
        lines += [f'    <Choice value={quoteattr(label)}/>' for label in [*labels, no_person]]
        lines.append('  </Choices>')
    lines.append('</View>')
    return "\n".join(lines) + "\n"


def write_project(out: Path, *, export_id: str, sample, crops, wholes, choices, no_person: str
                  ) -> tuple[Path, Path]:
    """Write ``labelstudio_tasks.json`` and ``labelstudio_config.xml`` into ``out``."""
    tasks = [{"data": {"face_id": fid, "export_id": export_id, "face": crops[fid], "image": wholes[fid]}}
             for fid in sample["face_id"]]
    tasks_path = write_atomic(out / TASKS_FILE, lambda tmp: tmp.write_text(json.dumps(tasks),
                                                                          encoding="utf-8"))
    config = labelling_config(choices, no_person=no_person)
    config_path = write_atomic(out / CONFIG_FILE, lambda tmp: tmp.write_text(config, encoding="utf-8"))
    return tasks_path, config_path


def annotator_of(annotation: dict) -> str:
    """``completed_by`` as an annotator id: the e-mail when exported, else ``labelstudio-<id>``."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or f"labelstudio-{who.get('id')}")
    return f"labelstudio-{who}"


def read_export(path: Path) -> tuple[list[dict], list[str]]:
    """Answer rows and error lines of a Label Studio JSON export.

    Each row: export_id, annotator, face_id, attribute, label, where (a
    location for error messages: ``task N, annotation M``).  Cancelled
    annotations (skipped tasks) give no row.
    """
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], [f"{path}: cannot read it as JSON ({exc})"]
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "data" in t for t in tasks):
        return [], [NOT_AN_EXPORT.format(path=path)]
    rows, errors = [], []
    for number, task in enumerate(tasks, start=1):
        data = task.get("data") or {}
        for index, annotation in enumerate(task.get("annotations") or [], start=1):
            where = f"task {number}, annotation {index}"
            if annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result") or []:
                chosen = (result.get("value") or {}).get("choices") or []
                if result.get("type") != "choices" or len(chosen) != 1:
                    errors.append(BAD_TASK.format(path=path, task=number,
                                                  problem=f"annotation {index}: a result that is not "
                                                          f"one choice ({result.get('from_name')!r})"))
                    continue
                rows.append({"export_id": data.get("export_id"), "annotator": annotator_of(annotation),
                             "face_id": data.get("face_id"), "attribute": result.get("from_name"),
                             "label": chosen[0], "where": where})
    return rows, errors
