"""Cross-checks of an observations table against the images table it describes.

Each table is valid on its own (see :mod:`biaskit.metrics.io`), yet the two
can still disagree, and every disagreement changes the numbers silently: an
observed sample the images table marks ``refused`` is counted twice (once
refused, once generated), observations of samples the images table lacks add
images nobody generated, and a ``sample`` column stored as text in one file
and as integers in the other matches nothing, so every image counts twice.
So the join is checked before anything is counted:

* the ``sample`` columns are made comparable: both become integers when every
  value of both is a whole number (``3``, ``3.0``, ``"3"``), the one
  unambiguous coercion; otherwise both must be text;
* every observed (model, prompt_id, sample) is a row of the images table, and
  that row's status is ``ok``.

Each failure is one ``ValueError`` naming both files, the first offending row
(1-based data row) and its key.

Examples
--------
>>> observations, images = check_join(observations, images,
...                                   observations_name="obs.csv",
...                                   images_name="runs/a/images.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from biaskit.metrics.io import plain, table_name, validate_images
from biaskit.suite import Suite
from biaskit.tables import STATUS_OK

IMAGE_KEY = ("model", "prompt_id", "sample")
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")

SAMPLE_TYPES_DIFFER = ("{observations} and {images}: the 'sample' columns cannot be matched: "
                       "{name} row {row} holds {value!r}, not a whole number, while the other "
                       "file's samples are numbers")
NOT_IN_IMAGES = ("{observations}: row {row}: {key} is not in {images}; the two files must describe "
                 "the same images (tag the run again, or pass the images table it was tagged from)")
NOT_OK = ("{observations}: row {row}: {key} is observed, but {images} marks it {status!r}; an "
          "observed sample must be an 'ok' image")
NOTHING_TO_MEASURE = ("{observations}: no observation rows, and no images table to count images "
                      "without a person; nothing to measure")


def check_tables(observations: pd.DataFrame, images: pd.DataFrame | None, *, suite: Suite,
                 name: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Validate ``images`` (when given) and its join with the validated ``observations``.

    ``name`` names the observations file; the images table's name is the file it
    was read from (see :func:`biaskit.metrics.io.table_name`).  Without an images
    table, observations with no row are refused: there would be nothing to count.
    """
    if images is None:
        if observations.empty:
            raise ValueError(NOTHING_TO_MEASURE.format(observations=name))
        return observations, None
    images = validate_images(images, suite=suite)
    return check_join(observations, images, observations_name=name,
                      images_name=table_name(images, default="images"))


def check_join(observations: pd.DataFrame, images: pd.DataFrame, *, observations_name: str,
               images_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make the two ``sample`` columns comparable and check every observed image is ``ok``.

    Parameters
    ----------
    observations, images : DataFrame
        Validated tables (model, prompt_id, sample, ... and model, prompt_id,
        sample, status).
    observations_name, images_name : str
        The files' names, for the messages.

    Returns
    -------
    (DataFrame, DataFrame)
        Copies of both tables whose ``sample`` columns have one type.

    Raises
    ------
    ValueError
        Samples of different kinds, an observed sample missing from the images
        table or not ``ok`` there; the message names both files and the row.
    """
    names = {"observations": observations_name, "images": images_name}
    observations, images = _comparable_samples(observations, images, names=names)
    observed = observations.loc[:, list(IMAGE_KEY)].drop_duplicates()
    status = images.loc[:, [*IMAGE_KEY, "status"]]
    joined = observed.reset_index().merge(status, on=list(IMAGE_KEY), how="left")
    missing = joined["status"].isna().to_numpy()
    if missing.any():
        raise ValueError(NOT_IN_IMAGES.format(**names, **_where(joined, missing)))
    not_ok = (joined["status"] != STATUS_OK).to_numpy()
    if not_ok.any():
        raise ValueError(NOT_OK.format(**names, **_where(joined, not_ok),
                                       status=joined["status"].to_numpy()[not_ok][0]))
    return observations, images


def _where(joined: pd.DataFrame, bad: np.ndarray) -> dict:
    """The first bad row (1-based, in the observations' order) and its key, for a message."""
    first = joined.loc[bad].sort_values("index").iloc[0]
    key = ", ".join(f"{column} {plain(first[column])!r}" for column in IMAGE_KEY)
    return {"row": int(first["index"]) + 1, "key": key}


def _comparable_samples(observations: pd.DataFrame, images: pd.DataFrame, *,
                        names: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    whole = {"observations": _whole_numbers(observations["sample"]),
             "images": _whole_numbers(images["sample"])}
    if all(isinstance(column, pd.Series) for column in whole.values()):
        return (observations.assign(sample=whole["observations"]),
                images.assign(sample=whole["images"]))
    if not any(isinstance(column, pd.Series) for column in whole.values()):
        return (observations.assign(sample=observations["sample"].astype(str)),
                images.assign(sample=images["sample"].astype(str)))
    table = "observations" if isinstance(whole["images"], pd.Series) else "images"
    row, value = whole[table]
    raise ValueError(SAMPLE_TYPES_DIFFER.format(**names, name=names[table], row=row, value=value))


def _whole_numbers(column: pd.Series) -> pd.Series | tuple[int, object]:
    """``column`` as int64 when every value is a whole number, else the first other (row, value)."""
    if pd.api.types.is_bool_dtype(column):
        return 1, plain(column.iloc[0])
    if pd.api.types.is_integer_dtype(column):
        return column.astype(np.int64)
    if pd.api.types.is_float_dtype(column):
        values = column.to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            return row + 1, plain(column.iloc[row])
        return column.astype(np.int64)
    uniques, codes = _distinct_text(column)
    whole = np.array([bool(_WHOLE_NUMBER.fullmatch(u)) for u in uniques])
    if not whole.all():
        row = int(np.flatnonzero(~whole[codes])[0])
        return row + 1, plain(column.iloc[row])
    return pd.Series(np.array([int(u) for u in uniques], dtype=np.int64)[codes], index=column.index)


def _distinct_text(column: pd.Series) -> tuple[list[str], np.ndarray]:
    codes, uniques = pd.factorize(column)
    return [str(u).strip() for u in uniques], codes

