"""Cross-checks of an observations table against the images table it describes.

Each table is valid on its own (see :mod:`biaskit.metrics.io`), yet the two
can still disagree, and every disagreement changes the numbers silently: an
observed sample the images table marks ``refused`` is counted twice (once
refused, once generated), observations of samples the images table lacks add
images nobody generated, and a ``sample`` column stored as text in one file
and as integers in the other matches nothing, so every image counts twice.
So the join is checked before anything is counted:

* the ``sample`` columns are comparable: validation made both whole numbers
  (``3``, ``3.0`` and ``"3"`` are read as 3; anything else is refused there);
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

import numpy as np
import pandas as pd

from biaskit.metrics.io import plain, table_name, validate_images
from biaskit.suite import Suite
from biaskit.tables import STATUS_OK

IMAGE_KEY = ("model", "prompt_id", "sample")

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
    """Check that every observed image is an ``ok`` row of the images table.

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
        Both tables, unchanged.

    Raises
    ------
    ValueError
        An observed sample missing from the images table or not ``ok`` there;
        the message names both files and the row.
    """
    names = {"observations": observations_name, "images": images_name}
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
