"""Column names of the pipeline's tables and the layout of a run directory.

Every stage reads and writes plain tables (DESIGN.md §2), so that any stage can
be fed from outside.  This module is the single place their names are spelled.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from biaskit.errors import one_line

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
    "prompt_text",
    "model_spec",
)
#: The columns an images table must have; ``prompt_text`` and ``model_spec`` (what each
#: sample was generated from) are absent from tables written before biaskit 0.2.
IMAGES_CORE_COLUMNS = IMAGES_COLUMNS[:11]
#: ``size_image``: face size (square root of the box area) over the image's;
#: ``size_largest``: over the largest face's in the same image (1 for the largest).
PEOPLE_COLUMNS = ("sha256", "person", "x0", "y0", "x1", "y1", "score", "size_image", "size_largest")
#: A tagger's confusion table (``biaskit validate``, ``annotate import``; ``measure --confusion``).
CONFUSION_COLUMNS = ("attribute", "true", "predicted", "count")
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
#: biaskit validate --out RUN/validation or biaskit annotate import: the tagger's validation.
VALIDATION_DIR = "validation"
CONFUSION_TABLE = "confusion.parquet"
VALIDATION_SOURCE = "source.json"  # where its reference labels came from
RUN_CONFIG = "run.json"

_PANDAS3 = int(pd.__version__.split(".")[0]) >= 3

#: Key of ``DataFrame.attrs`` holding the file a table was read from.
SOURCE = "source"

UNREADABLE_TABLE = "{path}: cannot be read as a table: {problem}"
#: How a failed write's reason starts (the store replaces it with its own wording).
WRITE_PREFIX = "cannot write: "
RUN_CONFIG_UNREADABLE = "{path}: not valid JSON ({problem})"
RUN_CONFIG_NOT_OBJECT = "{path}: expected a JSON object (key: value), got a {kind}"
RUN_CONFIG_BAD_KEY = "{path}: key {key!r} must be {expected}, got {value!r}"
# The keys of run.json that stages read back, and the type each must have.
_RUN_CONFIG_TYPES = {
    "seed": (int, "an integer"), "samples": (int, "an integer"),
    "models": (dict, "an object model -> spec"), "baseline": ((str, dict), "a model name"),
    "suite": ((str, dict), "a file path"), "tagging": (dict, "an object"), "metrics": (dict, "an object"),
}
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
    """Read a parquet or CSV table, chosen by the file's suffix.

    The path is kept in ``frame.attrs[SOURCE]`` so that later checks can name the
    file.  A file that cannot be read as a table (empty, not UTF-8, not parquet)
    raises one ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix not in (".parquet", ".csv", ".tsv"):
        raise ValueError(f"{path}: unsupported table format {path.suffix!r} (use .parquet or .csv)")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",",
                                keep_default_na=False, na_values=[""])
    except UnicodeDecodeError as exc:
        raise ValueError(UNREADABLE_TABLE.format(path=path, problem=f"not UTF-8 text ({exc.reason} "
                                                 f"at byte {exc.start})")) from None
    except (ValueError, OSError) as exc:  # pandas' and pyarrow's parse errors
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the system's (permission, ...): not a problem of the file's content
        raise ValueError(UNREADABLE_TABLE.format(path=path, problem=one_line(exc))) from None
    frame.attrs[SOURCE] = str(path)
    return frame


def write_table(frame: pd.DataFrame, path: str | Path, *, csv: bool = False,
                durable: bool = False) -> Path:
    """Write ``frame`` as parquet atomically (and a CSV beside it when ``csv``).

    ``durable`` fsyncs the parquet file and its folder (see :func:`write_atomic`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False), durable=durable)
    if csv:
        write_csv(frame, path.with_suffix(".csv"))
    return path


#: First characters that make a spreadsheet read a cell as a formula (or a hidden one).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as CSV atomically, every text cell made safe to open in a spreadsheet.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return gets a leading ``'`` (OWASP's advice against formula injection);
    numbers are written as they are.  Column names are treated the same way.
    Every CSV biaskit writes goes through here; the parquet tables stay exact.
    """
    safe = frame.copy()
    safe.columns = [safe_cell(c) for c in safe.columns]
    for column in safe.columns:
        if not (pd.api.types.is_numeric_dtype(safe[column]) or pd.api.types.is_bool_dtype(safe[column])):
            safe[column] = safe[column].map(safe_cell)
    return write_atomic(path, lambda tmp: safe.to_csv(tmp, index=False))


def safe_cell(value):
    """``value`` with a ``'`` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


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
    try:
        write(tmp)
        if durable:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        # No partial temporary file is left behind (a full disk leaves a 0-byte one),
        # and the error names the file the caller meant, whatever library wrote it
        # (pyarrow's messages name the temporary file, or none).
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = os.strerror(exc.errno) if exc.errno else one_line(exc)
        raise OSError(exc.errno, f"{WRITE_PREFIX}{reason}", str(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):  # Ctrl-C mid-write: no partial file either
            tmp.unlink(missing_ok=True)
        raise
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
    """``RUN/run.json`` as a dict ({} when the run has none).

    A file that is not JSON, not an object, or whose known keys have the wrong
    type (``seed: "abc"``, ``models`` as a list) raises one ``ValueError``
    naming the file and the key.
    """
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(RUN_CONFIG_UNREADABLE.format(path=path, problem=one_line(exc))) from None
    if not isinstance(config, dict):
        raise ValueError(RUN_CONFIG_NOT_OBJECT.format(path=path, kind=type(config).__name__))
    for key, (types, expected) in _RUN_CONFIG_TYPES.items():
        value = config.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise ValueError(RUN_CONFIG_BAD_KEY.format(path=path, key=key, expected=expected,
                                                       value=value))
    return config


def run_confusion(run_dir: str | Path, *, given=None, refuse: bool = False):
    """The confusion table metrics correct with: ``given`` when there is one, else the run's
    own ``RUN/validation/confusion.parquet`` (unless ``refuse``), else None."""
    if given is not None or refuse:
        return given
    path = Path(run_dir) / VALIDATION_DIR / CONFUSION_TABLE
    return path if path.exists() else None


CORRECTION_RECORD = "correction.json"  # in a metrics folder: the confusion table it was corrected with


def record_correction(metrics_dir: str | Path, confusion: str | Path | None) -> Path:
    """Write which confusion table (or none) the metrics in ``metrics_dir`` were corrected with."""
    path = Path(metrics_dir) / CORRECTION_RECORD
    # A table handed over in Python has no file to name.
    name = confusion if confusion is None or isinstance(confusion, (str, Path)) else "a table given in Python"
    text = json.dumps({"confusion": None if name is None else str(name)})
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_correction(metrics_dir: str | Path) -> str | None:
    """The confusion table :func:`record_correction` recorded, None when none (or no record)."""
    try:
        return json.loads((Path(metrics_dir) / CORRECTION_RECORD).read_text(encoding="utf-8"))["confusion"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
