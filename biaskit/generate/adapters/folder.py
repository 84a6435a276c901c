"""Pre-generated images brought in from a folder laid out ``ROOT/<prompt_id>/*``."""

from __future__ import annotations

import io
import logging
import re
import threading
from pathlib import Path

from biaskit.generate.base import BaseGenerator, Request, Result, describe_exception
from biaskit.paths import MAX_IMAGE_BYTES, check_size

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ROOT_NOT_FOUND = "{root}: image folder not found"
NO_PROMPT_FOLDER = "no folder {folder} for prompt {prompt_id!r}"
NO_IMAGE = "no image for sample {sample} in {folder} (it holds {count} image(s))"
SHORT_FOLDER = "%s: %d image(s) for prompt %r; samples %d and up are recorded as errors"
BAD_IMAGE = "{path}: not a readable image: {reason}"


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FolderGenerator(BaseGenerator):
    """Sample ``i`` of a prompt is the ``i``-th image of ``ROOT/<prompt_id>/``.

    Files are ordered by name with numbers compared as numbers (``2.png`` before
    ``10.png``); suffixes ``.png .jpg .jpeg .webp``.  The original bytes are stored
    (not re-encoded), so the stored sha256 is the source file's.  A missing image,
    an unreadable file or one over :data:`~biaskit.paths.MAX_IMAGE_BYTES`
    (refused by its size, before reading) is that sample's error, naming the
    folder or file, and the run goes on.

    Examples
    --------
    >>> gen = FolderGenerator("pregenerated/")                 # doctest: +SKIP
    >>> gen.generate_batch([Request("doctor", "a doctor", 0, 1)])  # doctest: +SKIP
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(ROOT_NOT_FOUND.format(root=self.root))
        self._listings: dict[str, list[Path]] = {}
        self._warned: set[str] = set()
        self._mutex = threading.Lock()

    def files(self, prompt_id: str) -> list[Path] | None:
        """The images of a prompt in sample order, or None without a folder."""
        with self._mutex:
            if prompt_id not in self._listings:
                folder = self.root / prompt_id
                self._listings[prompt_id] = sorted(
                    (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda p: natural_key(p.name),
                ) if folder.is_dir() else None
            return self._listings[prompt_id]

    def generate_one(self, request: Request) -> Result:
        folder = self.root / request.prompt_id
        files = self.files(request.prompt_id)
        if files is None:
            return Result.error(NO_PROMPT_FOLDER.format(folder=folder, prompt_id=request.prompt_id))
        if request.sample >= len(files):
            self._warn_short(request.prompt_id, len(files))
            return Result.error(NO_IMAGE.format(sample=request.sample, folder=folder, count=len(files)))
        return _read_image(files[request.sample])

    def _warn_short(self, prompt_id: str, count: int) -> None:
        with self._mutex:
            if prompt_id in self._warned:
                return
            self._warned.add(prompt_id)
        log.warning(SHORT_FOLDER, self.root / prompt_id, count, prompt_id, count)

    def __repr__(self) -> str:
        return f"FolderGenerator({str(self.root)!r})"


def _read_image(path: Path) -> Result:
    from PIL import Image

    try:
        check_size(path, max_bytes=MAX_IMAGE_BYTES)  # a 3 GB "1.png" is refused unread
        data = path.read_bytes()
        # verify() checks structure and checksums (a lost IEND chunk), load() decodes
        # the pixels (a cut IDAT): bad files fail here, naming the file, not in tagging.
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as exc:  # noqa: BLE001 - named in the sample's error row
        return Result.error(BAD_IMAGE.format(path=path, reason=describe_exception(exc)))
    return Result.ok(data=data)
