"""Reading and validating the tables the metrics are computed from.

The observations table (DESIGN.md §2) may come from biaskit's own tagger, from
human raters or from any other classifier, so every row is checked before it is
counted: required columns present, no empty field, sample and person whole
numbers from 0 (``"3"`` is read as 3), every attribute known, every label in
its attribute's taxonomy (or ``"unclear"``), every prompt id in the suite.  Each problem raises a :class:`ValueError` naming the table, the first
offending row (1-based data row: row 1 is the first line after a CSV header)
and the field.

Examples
--------
>>> from biaskit.metrics.io import read_observations
>>> obs = read_observations("labels.csv", suite=suite)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.suite import Suite, whole_numbers
from biaskit.tables import (
    REQUIRED_OBSERVATION_COLUMNS,
    SOURCE,
    STATUSES,
    read_table,
    require_columns,
)

#: Columns of the images table the metrics read (see tables.IMAGES_COLUMNS).
REQUIRED_IMAGE_COLUMNS = ("model", "prompt_id", "sample", "status")
IMAGE_KEY = ("model", "prompt_id", "sample")
OBSERVATION_KEY = ("model", "prompt_id", "sample", "person", "attribute")

# One message shape: "<table>: row <n>: <what is wrong>".
EMPTY_FIELD = "{name}: row {row}: column {column!r} is empty"
UNKNOWN_ATTRIBUTE = "{name}: row {row}: unknown attribute {attribute!r}; known attributes: {known}"
BAD_LABEL = ("{name}: row {row}: label {label!r} is not in the {attribute!r} taxonomy "
             "{labels} (nor {unclear!r})")
UNKNOWN_PROMPT = "{name}: row {row}: prompt_id {prompt_id!r} is not in suite {suite!r}"
BAD_STATUS = "{name}: row {row}: status {status!r} is not one of {statuses}"
DUPLICATE_ROW = "{name}: row {row}: duplicate row for {key}"
BAD_TAXONOMY = "taxonomies[{attribute!r}]: {problem}"


def read_observations(path: str | Path, *, suite: Suite,
                      taxonomies: Mapping[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Read an observations CSV/parquet file and validate it (see :func:`validate_observations`)."""
    return validate_observations(read_table(path), suite=suite, taxonomies=taxonomies,
                                 name=str(path))


def read_images(path: str | Path, *, suite: Suite) -> pd.DataFrame:
    """Read an images CSV/parquet file and validate it (see :func:`validate_images`)."""
    return validate_images(read_table(path), suite=suite, name=str(path))


def resolve_taxonomies(attributes, overrides: Mapping[str, tuple[str, ...]] | None = None
                       ) -> dict[str, tuple[str, ...]]:
    """Label sets of ``attributes``: ``overrides`` first, then :func:`biaskit.taxonomy.labels`.

    Raises ``KeyError`` for an attribute found in neither, ``ValueError`` for an
    override with fewer than two distinct labels or containing ``"unclear"``.
    """
    overrides = dict(overrides or {})
    for attribute, labels in overrides.items():
        labels = tuple(str(label) for label in labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(BAD_TAXONOMY.format(attribute=attribute,
                                                 problem="needs at least two distinct labels"))
        if taxonomy.UNCLEAR in labels:
            raise ValueError(BAD_TAXONOMY.format(attribute=attribute,
                                                 problem=f"{taxonomy.UNCLEAR!r} is reserved"))
        overrides[attribute] = labels
    return {a: overrides[a] if a in overrides else taxonomy.labels(a) for a in attributes}


def validate_observations(frame: pd.DataFrame, *, suite: Suite,
                          taxonomies: Mapping[str, tuple[str, ...]] | None = None,
                          name: str = "observations") -> pd.DataFrame:
    """Check an observations table and return its six required columns, labels normalised.

    Labels are normalised with :func:`biaskit.taxonomy.normalize_label` (so a
    rater's skin tone ``3`` becomes ``"MST3"``).  Duplicate person x attribute
    rows are detected later, when the rows are packed into counts.

    Raises
    ------
    ValueError
        Missing column, empty field, label outside the taxonomy, prompt id not in
        ``suite``; the message names the table, the first bad row and the value.
    KeyError
        Unknown attribute (neither built in, registered, nor in ``taxonomies``).
    """
    require_columns(frame, REQUIRED_OBSERVATION_COLUMNS, name=name)
    obs = frame.loc[:, list(REQUIRED_OBSERVATION_COLUMNS)].reset_index(drop=True)
    _check_not_empty(obs, name=name)
    _check_prompts(obs, suite=suite, name=name)
    for column in ("sample", "person"):  # whole numbers from 0 ("3" is read as 3)
        obs[column] = whole_numbers(obs[column], name=name)
    obs["attribute"] = obs["attribute"].astype(str)
    obs["label"] = _normalised_labels(obs, taxonomies=taxonomies, name=name)
    return obs


def validate_images(frame: pd.DataFrame, *, suite: Suite, name: str | None = None) -> pd.DataFrame:
    """Check an images table (model, prompt_id, sample, status) and return those columns.

    ``name`` (default: the file the table was read from, else ``"images"``)
    names the table in messages, and stays with the returned table.

    Raises ``ValueError`` naming the row for an empty field, an unknown status,
    a prompt id not in the suite or a duplicate (model, prompt_id, sample).
    """
    name = name or table_name(frame, default="images")
    require_columns(frame, REQUIRED_IMAGE_COLUMNS, name=name)
    images = frame.loc[:, list(REQUIRED_IMAGE_COLUMNS)].reset_index(drop=True)
    _check_not_empty(images, name=name)
    _check_prompts(images, suite=suite, name=name)
    images["sample"] = whole_numbers(images["sample"], name=name)
    bad = ~images["status"].isin(STATUSES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(BAD_STATUS.format(name=name, row=row + 1, status=images["status"][row],
                                           statuses=", ".join(STATUSES)))
    duplicated = images.duplicated(subset=list(IMAGE_KEY))
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        key = ", ".join(f"{c} {plain(images[c][row])!r}" for c in IMAGE_KEY)
        raise ValueError(DUPLICATE_ROW.format(name=name, row=row + 1, key=key))
    images.attrs[SOURCE] = name
    return images


def table_name(frame: pd.DataFrame, *, default: str) -> str:
    """The file ``frame`` was read from (:func:`biaskit.tables.read_table` records it), else ``default``."""
    return str(frame.attrs.get(SOURCE) or default)


def plain(value):
    """A numpy scalar as the Python value (so messages read ``1``, not ``np.int64(1)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_not_empty(frame: pd.DataFrame, *, name: str) -> None:
    empty = frame.isna().to_numpy()
    if empty.any():
        row, col = np.argwhere(empty)[0]
        raise ValueError(EMPTY_FIELD.format(name=name, row=int(row) + 1, column=frame.columns[col]))


def _check_prompts(frame: pd.DataFrame, *, suite: Suite, name: str) -> None:
    codes, uniques = pd.factorize(frame["prompt_id"])
    known = {p.id for p in suite}
    for code, prompt_id in enumerate(uniques):
        if prompt_id not in known:
            row = int(np.argmax(codes == code))
            raise ValueError(UNKNOWN_PROMPT.format(name=name, row=row + 1, prompt_id=prompt_id,
                                                   suite=suite.name))


def _normalised_labels(obs: pd.DataFrame, *, taxonomies, name: str) -> np.ndarray:
    """Check every distinct (attribute, label) pair once; return the normalised labels."""
    attr_codes, attributes = pd.factorize(obs["attribute"])
    label_codes, raw_labels = pd.factorize(obs["label"])
    pair = attr_codes.astype(np.int64) * len(raw_labels) + label_codes
    pairs, first_rows, inverse = np.unique(pair, return_index=True, return_inverse=True)
    known = dict(taxonomies or {})
    normalised = []
    for value, row in zip(pairs, first_rows):
        attribute = attributes[value // len(raw_labels)]
        if attribute not in known:
            try:
                known.update(resolve_taxonomies([attribute]))
            except KeyError:
                raise KeyError(UNKNOWN_ATTRIBUTE.format(
                    name=name, row=int(row) + 1, attribute=attribute,
                    known=", ".join(sorted(set(taxonomy.attributes()) | set(known))))) from None
        label = taxonomy.normalize_label(attribute, raw_labels[value % len(raw_labels)])
        if label != taxonomy.UNCLEAR and label not in known[attribute]:
            raise ValueError(BAD_LABEL.format(name=name, row=int(row) + 1, label=label,
                                              attribute=attribute, labels=known[attribute],
                                              unclear=taxonomy.UNCLEAR))
        normalised.append(label)
    return np.asarray(normalised, dtype=object)[inverse.ravel()]
