"""Column names of the pipeline's tables and the layout of a run directory.

Every stage reads and writes plain tables (DESIGN.md §2), so that any stage can
be fed from outside.  This module is the single place their names are spelled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

IMAGES_COLUMNS = (
    "model",
    "prompt_id",
    "sample",
    "seed",
    "status",
    "error",
    "revised_prompt",
    "path",
    "sha256",
    "width",
    "height",
)
#: ``size_image``: face size (square root of the box area) over the image's;
#: ``size_largest``: over the largest face's in the same image (1 for the largest).
PEOPLE_COLUMNS = ("sha256", "person", "x0", "y0", "x1", "y1", "score", "size_image", "size_largest")
OBSERVATION_COLUMNS = (
    "model",
    "prompt_id",
    "sample",
    "person",
    "attribute",
    "label",
    "confidence",
    "tagger",
)
#: The columns a user-supplied observations file must have (the rest are optional).
REQUIRED_OBSERVATION_COLUMNS = OBSERVATION_COLUMNS[:6]

STATUS_OK = "ok"
STATUS_REFUSED = "refused"
STATUS_ERROR = "error"
STATUSES = (STATUS_OK, STATUS_REFUSED, STATUS_ERROR)

# Layout of a run directory.
IMAGES_DIR = "images"
IMAGES_TABLE = "images.parquet"
PEOPLE_TABLE = "people.parquet"
OBSERVATIONS_TABLE = "observations.parquet"
METRICS_DIR = "metrics"
RUN_CONFIG = "run.json"

_PANDAS3 = int(pd.__version__.split(".")[0]) >= 3

RUN_CONFIG_UNREADABLE = "{path}: not valid JSON ({problem})"
MISSING_COLUMNS = "{name}: missing column(s) {missing}; expected at least {expected}"


def require_columns(frame: pd.DataFrame, columns, *, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` and every missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            MISSING_COLUMNS.format(name=name, missing=missing, expected=list(columns))
        )


def concat_rows(parts: list[pd.DataFrame], columns) -> pd.DataFrame:
    """``parts`` stacked, with exactly ``columns`` in that order (an empty table of them if none)."""
    if not parts:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(parts, ignore_index=True).loc[:, list(columns)]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a parquet or CSV table, chosen by the file's suffix."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", keep_default_na=False,
                           na_values=[""])
    raise ValueError(f"{path}: unsupported table format {path.suffix!r} (use .parquet or .csv)")


def write_table(frame: pd.DataFrame, path: str | Path, *, csv: bool = False,
                durable: bool = False) -> Path:
    """Write ``frame`` as parquet atomically (and a CSV beside it when ``csv``).

    ``durable`` fsyncs the parquet file and its folder (see :func:`write_atomic`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False), durable=durable)
    if csv:
        write_atomic(path.with_suffix(".csv"), lambda tmp: frame.to_csv(tmp, index=False))
    return path


def write_atomic(path: str | Path, write: Callable[[Path], object], *,
                 durable: bool = False) -> Path:
    """Create ``path`` through ``write(tmp)`` on a hidden temporary file, then a rename.

    Readers see the old file or the complete new one, never a partial one.  With
    ``durable`` the file and its folder are also fsync'd, so the new file survives
    a power loss, not only a killed process.

    Examples
    --------
    >>> write_atomic("run/notes.txt", lambda tmp: tmp.write_text("hello"))  # doctest: +SKIP
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    if durable:
        _fsync_path(tmp)
    os.replace(tmp, path)
    if durable:
        _fsync_path(path.parent)
    return path


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def text_column(column: pd.Series) -> pd.Series:
    """Text with missing values, typed as a parquet round trip gives it back.

    pandas >= 3 reads text as its ``str`` dtype (missing values stay missing);
    older pandas reads ``object`` with ``None``, and ``astype(str)`` there would
    turn ``None`` into the text ``"None"``.
    """
    if _PANDAS3:
        return column.astype("str")
    return column.astype(object).where(column.notna(), None)


def text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`text_column` applied to every ``object`` column of ``frame`` (in place)."""
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = text_column(frame[column])
    return frame


def read_run_config(run_dir: str | Path) -> dict:
    """``RUN/run.json`` as a dict ({} when the run has none); a corrupt file is named."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(RUN_CONFIG_UNREADABLE.format(path=path, problem=exc)) from None
