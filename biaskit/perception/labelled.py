"""Labelled face folders (FairFace's CSV layout) shared by validation and probe training.

Each listed image is taken to show one face.  The face's box and landmarks
come from the detector (largest face) so that crops are aligned exactly as at
tagging time; when the detector finds nothing (tight crops, tiny images) the
whole image is the face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biaskit.perception.base import Face
from biaskit.perception.detect import Detector, make_detector
from biaskit import taxonomy
from biaskit.perception.images import ImageLoadError, load_image
from biaskit.tables import read_table, require_columns

FILE_COLUMN = "file"
DEFAULT_ATTRIBUTES = ("race", "gender", "age")
#: FairFace spellings that differ from the taxonomy.
LABEL_ALIASES = {"age": {"more than 70": "70+"}}
BAD_LABELS = "{path}: {problem}"


def labelled_faces(
    files: pd.Series, images: str | Path, *, detector: Detector | str | None = None
) -> tuple[list[Face | None], list[str]]:
    """One :class:`Face` per listed file (None where it cannot be read) and the errors."""
    images = Path(images)
    detector = make_detector(detector)
    faces: list[Face | None] = []
    errors: list[str] = []
    for name in files.astype(str):
        try:
            array = load_image(images / name).array
        except ImageLoadError as exc:
            errors.append(str(exc))
            faces.append(None)
            continue
        faces.append(_largest_face(array, detector))
    return faces, errors


def _largest_face(array: np.ndarray, detector: Detector) -> Face:
    found = detector.detect(array)
    if len(found) == 0:
        height, width = array.shape[:2]
        return Face(array, np.array([0, 0, width, height], np.float32), None)
    areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
    best = int(areas.argmax())
    landmarks = None if found.landmarks is None else found.landmarks[best]
    return Face(array, found.boxes[best], landmarks)


def read_labels(path: str | Path, *, attributes: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The labels table (FairFace layout), labels normalised and checked; and its attributes.

    Unknown attribute columns become user attributes (their values are the taxonomy).
    Built-in attributes must use taxonomy labels; a bad one is reported with its row.
    """
    path = Path(path)
    frame = read_table(path)
    require_columns(frame, (FILE_COLUMN,), name=str(path))
    if attributes is None:
        attributes = tuple(a for a in DEFAULT_ATTRIBUTES if a in frame.columns)
    missing = [a for a in attributes if a not in frame.columns]
    if missing or not attributes:
        raise ValueError(BAD_LABELS.format(path=path, problem=f"no label column(s) {missing or list(DEFAULT_ATTRIBUTES)}"))
    frame = frame.copy()
    for attribute in attributes:
        values = frame[attribute].astype(str).map(lambda v, a=attribute: taxonomy.normalize_label(a, v))
        values = values.replace(LABEL_ALIASES.get(attribute, {}))
        frame[attribute] = values
        if attribute not in taxonomy.attributes():
            taxonomy.register_attribute(attribute, sorted(values.unique()))
        known = set(taxonomy.labels(attribute))
        bad = frame.index[~values.isin(known)]
        if len(bad):
            row = bad[0]
            raise ValueError(BAD_LABELS.format(path=path, problem=(
                f"row {row + 2}, column {attribute!r}: {values[row]!r} is not one of {sorted(known)}")))
    return frame, tuple(attributes)
