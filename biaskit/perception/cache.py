"""Tag cache: results per image, keyed by the image's sha256 and the tagger settings.

Re-tagging a run with the same detector, taggers and thresholds reads every
result back instead of running any model; changing any setting changes the
key, so stale labels are never reused.  One folder per settings key holds
three parquet tables (people, labels, images done with their error, if any).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from biaskit.tables import PEOPLE_COLUMNS, write_table

CACHE_VERSION = 2  # 2: people rows carry the face sizes
LABEL_COLUMNS = ("sha256", "person", "attribute", "label", "confidence", "tagger")
DONE_COLUMNS = ("sha256", "error")
_TABLES = {"people": PEOPLE_COLUMNS, "labels": LABEL_COLUMNS, "done": DONE_COLUMNS}


def settings_key(settings: dict) -> str:
    """Stable short hash of JSON-able tagger settings."""
    text = json.dumps({"version": CACHE_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TagCache:
    """Per-image perception results for one settings key, in ``root/<key>/``.

    Examples
    --------
    >>> cache = TagCache("run/cache/perception", key=settings_key({"detector": "centerface"}))  # doctest: +SKIP
    >>> cache.done("ab12...")                                                                   # doctest: +SKIP
    False
    """

    def __init__(self, root: str | Path, *, key: str):
        self.folder = Path(root) / key
        self._tables = {name: self._read(name, columns) for name, columns in _TABLES.items()}
        self._new: dict[str, list[pd.DataFrame]] = {name: [] for name in _TABLES}
        self._done = set(self._tables["done"]["sha256"])

    def _read(self, name: str, columns) -> pd.DataFrame:
        path = self.folder / f"{name}.parquet"
        if path.exists():
            return pd.read_parquet(path)
        return pd.DataFrame(columns=list(columns))

    def done(self, sha256: str) -> bool:
        return sha256 in self._done

    def __len__(self) -> int:
        return len(self._done)

    def get(self, hashes) -> dict[str, pd.DataFrame]:
        """The cached ``people``, ``labels`` and ``done`` rows of ``hashes``."""
        self._merge()
        wanted = set(hashes)
        return {name: t[t["sha256"].isin(wanted)] for name, t in self._tables.items()}

    def put(self, *, people: pd.DataFrame, labels: pd.DataFrame, done: pd.DataFrame) -> None:
        """Record the results of newly tagged images (saved by :meth:`save`)."""
        for name, frame in (("people", people), ("labels", labels), ("done", done)):
            if len(frame):
                self._new[name].append(frame[list(_TABLES[name])])
        self._done.update(done["sha256"])

    def _merge(self) -> None:
        for name, parts in self._new.items():
            if parts:
                frames = [t for t in [self._tables[name], *parts] if len(t)]
                merged = pd.concat(frames, ignore_index=True) if frames else self._tables[name]
                self._tables[name] = merged.drop_duplicates(
                    subset=[c for c in ("sha256", "person", "attribute") if c in merged.columns], keep="last"
                )
                self._new[name] = []

    def save(self) -> None:
        """Write the cache tables (atomically) if anything was added."""
        if not any(self._new.values()):
            return
        self._merge()
        for name, table in self._tables.items():
            write_table(table.reset_index(drop=True), self.folder / f"{name}.parquet")
