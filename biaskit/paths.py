"""Safe file names from user strings, and reading image files a table points at.

Two rules keep a run self-contained (nothing read or written outside it):

* a file name built from a user string (model, prompt id, attribute, label)
  goes through :func:`slug`, which keeps it inside its folder and tells
  different strings apart;
* a path read from a table (``images.parquet``'s ``path``) goes through
  :func:`resolve_inside`, which refuses absolute paths, ``..`` and symbolic
  links leading out of the image folder, and the bytes read through
  :func:`read_verified` must match the table's sha256.

Examples
--------
>>> slug("sdxl-turbo")
'sdxl-turbo'
>>> slug("stabilityai/sdxl-turbo")
'stabilityai-sdxl-turbo-acae94ca55'
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: Characters a slug keeps; everything else becomes ``-``.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
#: A plain string that already ends like a hashed slug is hashed too, so no two strings meet.
_LOOKS_HASHED = re.compile(r".*-[0-9a-f]{10}")
_HASH_CHARS = 10
#: Largest image file biaskit reads (from a generator, a folder, an API or a run's store);
#: a larger one is refused by its size, before it is read.
MAX_IMAGE_BYTES = 256 * 2**20
_STEM_CHARS = 60

OUTSIDE = "{path}: refused, the path leads outside {folder}"
NOT_RELATIVE = "{path}: refused, an image path must be relative to the run (e.g. images/<sha256>.png)"
HASH_MISMATCH = "{path}: the file's bytes do not match its recorded sha256 {sha256}"
TOO_BIG = "{path}: {size} bytes, more than the {limit}-byte limit for an image file"


def slug(text: object) -> str:
    """A file-name-safe form of ``text``, the same string always, different strings never alike.

    A plain string (letters, digits, ``_`` and ``-``, at most 80, not starting
    with ``-``) is kept as it is; any other gets its unsafe runs replaced by
    ``-`` and a hash of the whole string appended.  The result never contains
    ``/``, ``\\``, ``..`` or a leading ``.`` or ``-``.
    """
    text = str(text)
    if _PLAIN.fullmatch(text) and not _LOOKS_HASHED.fullmatch(text):
        return text
    stem = _UNSAFE.sub("-", text).strip("-")[:_STEM_CHARS].strip("-")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{stem or 'x'}-{digest}"


def resolve_inside(folder: str | Path, path: str | Path, *, root: str | Path | None = None) -> Path:
    """``root / path`` resolved (symbolic links followed), refused unless it lies in ``folder``.

    Parameters
    ----------
    folder : path
        The folder the file must be in (a run's ``images/``).
    path : str or path
        The relative path a table gives.
    root : path, optional
        What ``path`` is relative to (default: ``folder``'s parent).

    Raises
    ------
    ValueError
        For an absolute path or one leading out of ``folder``.
    """
    folder = Path(folder)
    root = folder.parent if root is None else Path(root)
    if Path(path).is_absolute() or not str(path).strip():
        raise ValueError(NOT_RELATIVE.format(path=path))
    full = (root / path).resolve()
    if not full.is_relative_to(folder.resolve()):
        raise ValueError(OUTSIDE.format(path=path, folder=folder))
    return full


def read_verified(path: Path, *, sha256: str | None, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``; a ``ValueError`` unless they hash to ``sha256`` (when given).

    ``max_bytes`` refuses a larger file by its size, before reading it.
    """
    if max_bytes is not None:
        check_size(path, max_bytes=max_bytes)
    data = path.read_bytes()
    if isinstance(sha256, str) and sha256 and hashlib.sha256(data).hexdigest() != str(sha256).lower():
        raise ValueError(HASH_MISMATCH.format(path=path, sha256=sha256))
    return data


def check_size(path: Path, *, max_bytes: int) -> None:
    """Refuse a file larger than ``max_bytes`` by its size on disk, without reading it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(TOO_BIG.format(path=path, size=size, limit=max_bytes))
