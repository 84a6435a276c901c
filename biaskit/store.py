"""The image store of a run directory: content-addressed files plus the images table.

Layout (names from :mod:`biaskit.tables`)::

    RUN/images/<sha256>.<ext>    the image files, original bytes, named by content
    RUN/images.journal.jsonl     append-only log, one JSON line per finished sample
    RUN/images.parquet           the images table (DESIGN.md §2), compacted from the log
    RUN/run.json                 the run's configuration (never any secret)

One writer at a time: a writer takes an exclusive lock on ``RUN/.biaskit.lock``
*before* it reads the table, so a second process is refused before it reads a
stale table or calls a generator (see :class:`ImageStore`, ``lock``).  Paths
read back from the table resolve inside ``RUN/images/`` only (see
:mod:`biaskit.paths`), and :meth:`ImageStore.read_image` checks the bytes
against their sha256.

Crash safety (kill -9 at any moment): an image file appears only through an
atomic rename of a complete temporary file, so a partial file is never counted.
A sample's journal line is written *before* its image file; on loading, an ``ok``
line whose file does not exist is ignored (the crash fell between the two) and
that sample is generated again; every other line is final.  The parquet table is
a snapshot: it is written atomically, and only then is the journal emptied, so a
crash between the two replays rows that are already there (idempotent).

Examples
--------
>>> store = ImageStore("runs/demo")            # doctest: +SKIP
>>> store.images().query("status == 'ok'")     # doctest: +SKIP
>>> Image.open(store.path_of(row))             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from biaskit.generate.base import Request, Result, describe_exception, redact
from biaskit.paths import MAX_IMAGE_BYTES, read_verified, resolve_inside
from biaskit.suite import whole_number
from biaskit.tables import (
    WRITE_PREFIX,
    IMAGES_COLUMNS,
    IMAGES_CORE_COLUMNS,
    IMAGES_DIR,
    IMAGES_TABLE,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_REFUSED,
    STATUSES,
    read_table,
    require_columns,
    text_column,
    write_atomic,
    write_table,
)

try:  # advisory lock against two writers on one run (absent on Windows)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger(__name__)

JOURNAL = "images.journal.jsonl"
LOCK_FILE = ".biaskit.lock"
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}

RUN_NOT_FOUND = "{path}: no such run directory"
NOT_A_RUN = "{path}: is a file, not a run directory"
RUN_LOCKED = ("{path}: another biaskit process is writing to this run{pid}; wait for it to end "
              "or use another --out (lock file {lock})")
RUN_NOT_WRITABLE = "cannot write in the run directory: {reason}"
NOT_IN_STORE = "{key}: no stored image in run {path}"
UNREADABLE_IMAGE = "generator returned bytes that are not a readable image: {reason}"
BAD_ROW = "{where}: column {column!r} holds {value!r}"
BAD_JOURNAL_LINE = "%s; line ignored, its sample is generated again"
WRITE_FAILED = "could not write the image file {path}: {reason}"

Key = tuple[str, str, int]


class ImageStore:
    """Images and images table of one run directory.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    create : bool
        Create the directory if missing (else a missing one is a ``FileNotFoundError``).
    durable : bool
        ``fsync`` every image file before its rename, so that after a power loss a
        file that exists is complete.  Journal lines are handed to the kernel at
        once (enough for kill -9) and fsync'd at each compaction: a power loss can
        only lose recent lines, whose samples are then generated again.
    lock : bool
        Take the run's writer lock now, before reading anything (a writer's
        way: :func:`biaskit.generate.generate` opens its store so).  Without
        it the lock is taken at the first write, and the table is read again
        then, so that no stale row is ever written back.

    Raises
    ------
    RuntimeError
        ``lock`` and another process (or store) holds the run's lock, or the
        run directory cannot be written.

    Examples
    --------
    >>> store = ImageStore("runs/demo")                  # doctest: +SKIP
    >>> row = store.images().iloc[0]                     # doctest: +SKIP
    >>> store.path_of(row).exists()                      # doctest: +SKIP
    True
    """

    def __init__(self, run_dir: str | Path, *, create: bool = False, durable: bool = True,
                 lock: bool = False):
        self.root = Path(run_dir)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(NOT_A_RUN.format(path=self.root))
        if not self.root.is_dir():
            if not create:
                raise FileNotFoundError(RUN_NOT_FOUND.format(path=self.root))
            _writable(lambda: self.root.mkdir(parents=True, exist_ok=True), self.root)
        self.durable = durable
        self._rows: dict[Key, dict[str, Any]] = {}
        self._mutex = threading.RLock()  # images() is called under it by flush()
        self._journal = None
        self._lock_fd = None
        if lock:
            self._acquire_lock()
        try:
            self._load()
        except BaseException:
            self.close()  # a table that cannot be read must not keep the run locked
            raise

    # -- reading ---------------------------------------------------------------
    def _load(self) -> None:
        self._rows.clear()
        table = self.root / IMAGES_TABLE
        if table.exists():
            frame = read_table(table)
            require_columns(frame, IMAGES_CORE_COLUMNS, name=str(table))
            for number, row in enumerate(frame.to_dict("records"), start=1):
                self._accept(_clean_row(row, where=f"{table}: row {number}"))
        for row in _read_journal(self.root / JOURNAL):
            self._accept(row)

    def _accept(self, row: dict[str, Any]) -> None:
        # An ok row without its file is the trace of a crash before the rename.  A path
        # leading out of the store is kept: reading it is refused, as an error row.
        if row["status"] == STATUS_OK and self._missing(row["path"]):
            return
        self._rows[(row["model"], row["prompt_id"], int(row["sample"]))] = row

    def _missing(self, path: str | None) -> bool:
        if not path:
            return True
        try:
            return not resolve_inside(self.root / IMAGES_DIR, path, root=self.root).is_file()
        except ValueError:
            return False

    def images(self) -> pd.DataFrame:
        """The images table: one row per (model, prompt_id, sample), columns of DESIGN.md §2."""
        with self._mutex:
            rows = [self._rows[key] for key in sorted(self._rows)]
        frame = pd.DataFrame(rows, columns=list(IMAGES_COLUMNS))
        for column in ("sample", "seed"):
            frame[column] = frame[column].astype("int64")
        for column in ("width", "height"):
            frame[column] = pd.array(frame[column], dtype="Int64")
        for column in ("model", "prompt_id", "status", "error", "revised_prompt", "path", "sha256",
                       "prompt_text", "model_spec"):
            frame[column] = text_column(frame[column])
        return frame

    def done(self, model: str, *, retry_errors: bool = True) -> set[tuple[str, int]]:
        """``(prompt_id, sample)`` of the samples of ``model`` not to generate again.

        ``ok`` and ``refused`` are final; ``error`` is retried unless ``retry_errors`` is False.
        """
        final = {STATUS_OK, STATUS_REFUSED} | (set() if retry_errors else {STATUS_ERROR})
        with self._mutex:
            return {(p, s) for (m, p, s), row in self._rows.items()
                    if m == model and row["status"] in final}

    def path_of(self, row_or_sha: Mapping[str, Any] | str) -> Path:
        """Absolute path of an image, from an images-table row or a sha256 hex digest.

        Raises ``ValueError`` for a path leading out of ``RUN/images/``.
        """
        if isinstance(row_or_sha, str):
            sha = row_or_sha
            with self._mutex:
                path = next((r["path"] for r in self._rows.values() if r["sha256"] == sha), None)
        else:
            sha, path = row_or_sha.get("sha256"), row_or_sha.get("path")
        if not isinstance(path, str) or not path:  # None, or NaN from a table row (pandas >= 3)
            raise KeyError(NOT_IN_STORE.format(key=sha, path=self.root))
        return resolve_inside(self.root / IMAGES_DIR, path, root=self.root)

    def read_image(self, row: Mapping[str, Any]) -> bytes:
        """The stored bytes of an ok row, checked against its sha256.

        Raises ``ValueError`` (path outside the store, bytes not matching, file
        too large) or ``OSError`` (file unreadable), naming the file.
        """
        return read_verified(self.path_of(row), sha256=row.get("sha256"), max_bytes=MAX_IMAGE_BYTES)

    # -- writing ---------------------------------------------------------------
    def record(self, model: str, request: Request, result: Result, *,
               spec: str | None = None) -> dict[str, Any]:
        """Store one sample's result (image file + journal line) and return its row.

        The row records the prompt text the sample was generated from and the
        model's ``spec``, so that a later run can tell when either changed.
        Thread-safe: image encoding and file writes run outside the lock.
        """
        row = {
            "model": model, "prompt_id": request.prompt_id, "sample": int(request.sample),
            "seed": int(request.seed if result.seed is None else result.seed),
            "status": result.status, "error": _unicode(redact(result.message)),
            "revised_prompt": _unicode(redact(result.revised_prompt)),
            "path": None, "sha256": None, "width": None, "height": None,
            "prompt_text": request.text, "model_spec": redact(spec),
        }
        if result.status == STATUS_OK:
            row = self._record_image(row, result)
        else:
            self._append(row)
        return row

    def _record_image(self, row: dict[str, Any], result: Result) -> dict[str, Any]:
        try:
            blob, ext, (width, height) = encode_image(result)
        except Exception as exc:  # noqa: BLE001 - a bad image is this sample's error
            return self._append(_as_error(row, UNREADABLE_IMAGE.format(reason=describe_exception(exc))))
        sha = hashlib.sha256(blob).hexdigest()
        path = f"{IMAGES_DIR}/{sha}.{ext}"
        row.update(path=path, sha256=sha, width=int(width), height=int(height), error=None)
        self._append(row)  # journal first; see the module docstring
        try:
            self._write_image(self.root / path, blob)
        except OSError as exc:
            reason = describe_exception(exc)
            return self._append(_as_error(row, WRITE_FAILED.format(path=path, reason=reason)))
        return row

    def _write_image(self, final: Path, blob: bytes) -> None:
        if final.is_file():
            return  # content-addressed: same name, same bytes
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(blob)
                if self.durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _append(self, row: dict[str, Any]) -> dict[str, Any]:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._mutex:  # journal line and in-memory row change together (see flush)
            if self._journal is None:
                self._open_for_writing()
            _writable(lambda: (self._journal.write(line), self._journal.flush()),  # in the kernel now:
                      self.root / JOURNAL)                                       # kill -9 cannot lose it
            self._rows[(row["model"], row["prompt_id"], int(row["sample"]))] = row
        return row

    def _open_for_writing(self) -> None:
        self._hold_lock()
        path = self.root / JOURNAL
        _truncate_partial_line(path)
        for stale in (self.root / IMAGES_DIR).glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # left by a killed writer; we hold the lock
        self._journal = _writable(lambda: open(path, "a", encoding="utf-8"), path)

    def _hold_lock(self) -> None:
        """Take the lock if this store does not hold it yet, and read the table again then:
        what was read before the lock may be stale by now."""
        if fcntl is not None and self._lock_fd is None:
            self._acquire_lock()
            self._load()

    def _acquire_lock(self) -> None:
        if fcntl is None or self._lock_fd is not None:
            return
        lock = self.root / LOCK_FILE
        fd = _writable(lambda: os.open(lock, os.O_RDWR | os.O_CREAT, 0o644), lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise RuntimeError(RUN_LOCKED.format(path=self.root, pid=pid, lock=lock)) from None
        # The holder's pid, for the message a refused process prints (best effort).
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        self._lock_fd = fd

    def flush(self) -> Path:
        """Compact: write ``images.parquet`` atomically and durably, then empty the journal.

        The snapshot and the truncation happen under one lock, so no journal line
        written meanwhile can be dropped.  An ``ok`` row whose file is still being
        written may enter the snapshot; loading ignores it if the file never appears.
        """
        path = self.root / IMAGES_TABLE
        with self._mutex:
            self._hold_lock()
            _writable(lambda: write_table(self.images(), path, durable=True), path)
            if self._journal is not None:
                self._journal.seek(0)
                self._journal.truncate()
                self._journal.flush()
                os.fsync(self._journal.fileno())
            elif (self.root / JOURNAL).exists():
                (self.root / JOURNAL).write_text("")
        return path

    def close(self) -> None:
        """Compact the table if anything was written, then release the lock."""
        if self._journal is not None:
            self.flush()
            self._journal.close()
            self._journal = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ImageStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def encode_image(result: Result) -> tuple[bytes, str, tuple[int, int]]:
    """Bytes to store, file extension and size of an ok result.

    Encoded bytes are kept as they are (their sha256 matches the source file);
    a PIL image is saved as PNG.
    """
    from PIL import Image

    if result.data is not None:
        with Image.open(io.BytesIO(result.data)) as image:
            fmt, size = image.format, image.size
            image.verify()  # checksums and structure, without a full decode
        return result.data, _EXTENSIONS.get(fmt, str(fmt).lower()), size
    image = result.image
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "png", image.size


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON through a temporary file and a rename."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return _writable(lambda: write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8")), path)



def remove_empty_run(run_dir: str | Path) -> None:
    """Remove a run directory that holds nothing but its lock file (a run that failed to start)."""
    root = Path(run_dir)
    with contextlib.suppress(OSError):
        if {p.name for p in root.iterdir()} <= {LOCK_FILE}:
            (root / LOCK_FILE).unlink(missing_ok=True)
            root.rmdir()


def _as_error(row: dict[str, Any], message: str) -> dict[str, Any]:
    return {**row, "status": STATUS_ERROR, "error": _unicode(redact(message)),
            "path": None, "sha256": None, "width": None, "height": None}


def _unicode(text: Any) -> Any:
    """``text`` with each lone surrogate (an API's stray ``\\ud800``, a file name's undecodable
    byte in an exception) replaced by ``?``: the journal and the table hold UTF-8 only, and
    a row that cannot be written would end the run and lose its image."""
    return text.encode("utf-8", "replace").decode("utf-8") if isinstance(text, str) else text


def _clean_row(row: dict[str, Any], *, where: str) -> dict[str, Any]:
    """A stored row as plain Python values (NaN/NA -> None); a bad sample or seed is named."""
    clean = {}
    for column in IMAGES_COLUMNS:
        value = row.get(column)
        clean[column] = None if value is None or pd.isna(value) else value
    for column in ("model", "prompt_id", "status"):
        if not isinstance(clean[column], str) or not clean[column]:
            raise ValueError(BAD_ROW.format(where=where, column=column, value=clean[column]))
    if clean["status"] not in STATUSES:
        raise ValueError(BAD_ROW.format(where=where, column="status", value=clean["status"]))
    clean["sample"] = whole_number(clean["sample"], where=where, column="sample")
    clean["seed"] = whole_number(clean["seed"], where=where, column="seed", negative=True)
    return clean


def _writable(action, path: Path):
    """``action()``; an OSError (read-only folder, full disk) names ``path`` and keeps its errno.

    The errno stays so that the CLI tells a refusal by the system (exit 3) from bad input.
    """
    try:
        return action()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).removeprefix(WRITE_PREFIX)
        raise OSError(exc.errno, RUN_NOT_WRITABLE.format(reason=reason), str(path)) from None


def _read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # a line cut short by a kill: never counted
            where = f"{path}: line {number}"
            try:
                row = json.loads(raw)
                if not isinstance(row, dict):
                    raise ValueError(f"{where}: not a JSON object")
                rows.append(_clean_row(row, where=where))
            except json.JSONDecodeError:
                log.warning(BAD_JOURNAL_LINE, f"{where}: not valid JSON")
            except ValueError as exc:
                # Its sample is generated again: a line is never a finished image without its row.
                log.warning(BAD_JOURNAL_LINE, exc)
    return rows


def _truncate_partial_line(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
