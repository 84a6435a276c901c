"""Prompt suites: the YAML files under ``prompts/`` (format in prompts/README.md).

A suite has a name, a default number of resamples and a list of prompts.  Each
prompt has a unique, file-name-safe ``id``, its ``text``, a ``kind`` and, by kind:

* ``individual`` -- one unspecified person;
* ``group`` -- ``count`` people (required);
* ``ahistorical`` -- ``expected`` labels per attribute, e.g. ``{gender: Male}``
  for "the US founding fathers" (``count`` optional).

Loading validates everything and raises :class:`SuiteError` naming the file, the
prompt and the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping

import pandas as pd

from biaskit import taxonomy
from biaskit.yamlio import load_yaml

KINDS = ("individual", "group", "ahistorical")
#: The kinds whose prompts leave the answer open ("a doctor", "three workers"), and the name
#: of their pooled aggregate in the metrics' ``overall`` table.
AMBIGUOUS_KINDS = ("individual", "group")
POOLED_KIND = "ambiguous"
DEFAULT_SAMPLES = 20
#: Most resamples per prompt: far above any study's (the system card uses 20), far below
#: what would exhaust memory before the first image.
MAX_SAMPLES = 10_000
# Always fullmatch: "$" would also match before a trailing newline ("abc\n").
_SAFE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")
_PROMPT_FIELDS = {"id", "text", "kind", "count", "expected", "tags"}
_SUITE_FIELDS = {"name", "samples", "description", "prompts"}

# One message shape for every problem: where, then what.
WHERE_PROMPT = "{path}: prompt {pid!r}: field {field!r}: {problem}"
WHERE_SUITE = "{path}: field {field!r}: {problem}"
BAD_INDEX = "{where}: {column} {value!r} is not a whole number{sign}"
TOO_LARGE = "{where}: {column} {value!r} is larger than {limit}, the largest index a table stores"
#: The largest value of an int64 column (sample and person indices are stored as int64).
INT64_MAX = 2**63 - 1


class SuiteError(ValueError):
    """A prompt suite file is malformed; the message names file, prompt and field."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of a suite."""

    id: str
    text: str
    kind: str = "individual"
    count: int | None = None
    expected: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tags: tuple[str, ...] = ()

    @property
    def expected_people(self) -> int | None:
        """How many people the prompt asks for: 1, the group's count, or None if unstated."""
        if self.kind == "individual":
            return 1
        return self.count


@dataclass(frozen=True)
class Suite:
    """A validated prompt suite.

    Examples
    --------
    >>> suite = load_suite("prompts/system_card.yaml")  # doctest: +SKIP
    >>> suite["doctor"].text  # doctest: +SKIP
    'a doctor'
    """

    name: str
    prompts: tuple[Prompt, ...]
    samples: int = DEFAULT_SAMPLES
    path: str | None = None

    def __post_init__(self):
        ids = [p.id for p in self.prompts]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise SuiteError(f"{self.path or self.name}: duplicate prompt id {dup!r}")

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, prompt_id: str) -> Prompt:
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        raise KeyError(f"prompt id {prompt_id!r} is not in suite {self.name!r}")

    def __contains__(self, prompt_id: object) -> bool:
        return any(p.id == prompt_id for p in self.prompts)

    def to_frame(self) -> pd.DataFrame:
        """One row per prompt: prompt_id, text, kind, count, expected_people, expected, tags."""
        return pd.DataFrame(
            {
                "prompt_id": [p.id for p in self.prompts],
                "text": [p.text for p in self.prompts],
                "kind": [p.kind for p in self.prompts],
                "count": pd.array([p.count for p in self.prompts], dtype="Int64"),
                "expected_people": pd.array(
                    [p.expected_people for p in self.prompts], dtype="Int64"
                ),
                "expected": [dict(p.expected) for p in self.prompts],
                "tags": [list(p.tags) for p in self.prompts],
            }
        )

    def expected_labels(self) -> pd.DataFrame:
        """Tidy table of expected labels: prompt_id, attribute, expected."""
        rows = [
            (p.id, attribute, label) for p in self.prompts for attribute, label in p.expected.items()
        ]
        return pd.DataFrame(rows, columns=["prompt_id", "attribute", "expected"])


def load_suite(path: str | Path) -> Suite:
    """Load and validate a prompt suite from a YAML file.

    Raises
    ------
    SuiteError
        On YAML syntax errors and repeated keys (with the line), a file that is
        not UTF-8, and any invalid field.
    """
    data = load_yaml(path, what="prompt suite file", error=SuiteError)
    return suite_from_dict(data, source=str(path))


def suite_from_dict(data: object, *, source: str = "<suite>") -> Suite:
    """Validate a parsed suite (a mapping as in the YAML files) and build a :class:`Suite`."""
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: a suite must be a mapping with 'name' and 'prompts'")
    unknown = set(data) - _SUITE_FIELDS
    if unknown:
        raise SuiteError(
            WHERE_SUITE.format(path=source, field=sorted(unknown)[0], problem="unknown field")
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SuiteError(WHERE_SUITE.format(path=source, field="name", problem="a non-empty string is required"))
    samples = data.get("samples", DEFAULT_SAMPLES)
    if not _is_positive_int(samples) or samples > MAX_SAMPLES:
        raise SuiteError(WHERE_SUITE.format(path=source, field="samples", problem=(
            f"must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}")))
    raw_prompts = data.get("prompts")
    if not isinstance(raw_prompts, list) or not raw_prompts:
        raise SuiteError(WHERE_SUITE.format(path=source, field="prompts", problem="a non-empty list is required"))
    prompts, seen = [], set()
    for index, raw in enumerate(raw_prompts):
        prompt = _parse_prompt(raw, index=index, source=source)
        if prompt.id in seen:
            raise SuiteError(WHERE_PROMPT.format(path=source, pid=prompt.id, field="id", problem="duplicate id"))
        seen.add(prompt.id)
        prompts.append(prompt)
    return Suite(name=name, prompts=tuple(prompts), samples=int(samples), path=source)


def whole_number(value: object, *, where: str, column: str, negative: bool = False) -> int:
    """``value`` as an int if it is a whole number (``3``, ``3.0``, ``"3"``), else a ``ValueError``.

    Sample and person indices are whole numbers from 0: a negative, fractional,
    boolean or non-numeric value is refused, naming ``where`` and ``column``
    (``negative`` allows values below 0, as seeds may be).
    """
    sign = "" if negative else " of at least 0"
    number = None
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        number = int(value.strip())
    elif not (isinstance(value, str) or pd.api.types.is_bool(value)):
        try:
            number = int(value) if float(value).is_integer() else None
        except (TypeError, ValueError, OverflowError):
            number = None
    if number is None or (number < 0 and not negative):
        raise ValueError(BAD_INDEX.format(where=where, column=column, value=value, sign=sign))
    return number


def whole_numbers(column: pd.Series, *, name: str) -> pd.Series:
    """A sample or person column as int64, every value checked by :func:`whole_number`.

    Rows are named 1-based (row 1 is the first data row) as in the other table checks.
    """
    # Signed only: int64 would wrap an unsigned 2**63 round to a negative index.
    if pd.api.types.is_signed_integer_dtype(column) and column.notna().all() and (column >= 0).all():
        return column.astype("int64")  # the common case, without a Python loop
    values = column.to_numpy(dtype=object)
    checked = [_stored_index(v, where=f"{name}: row {i + 1}", column=str(column.name))
               for i, v in enumerate(values)]
    return pd.Series(checked, index=column.index, name=column.name, dtype="int64")


def _stored_index(value: object, *, where: str, column: str) -> int:
    number = whole_number(value, where=where, column=column)
    if number > INT64_MAX:
        raise ValueError(TOO_LARGE.format(where=where, column=column, value=value, limit=INT64_MAX))
    return number


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _parse_prompt(raw: object, *, index: int, source: str) -> Prompt:
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: prompt #{index + 1}: must be a mapping, got {type(raw).__name__}")
    pid = raw.get("id")

    def fail(field_name: str, problem: str) -> SuiteError:
        label = pid if isinstance(pid, str) else f"#{index + 1}"
        return SuiteError(WHERE_PROMPT.format(path=source, pid=label, field=field_name, problem=problem))

    unknown = set(raw) - _PROMPT_FIELDS
    if unknown:
        raise fail(sorted(unknown)[0], "unknown field")
    if not isinstance(pid, str) or not _SAFE_ID.fullmatch(pid):
        raise fail("id", f"{pid!r} is not a safe id (lower-case letters, digits, '_' and '-', "
                         "starting with a letter or digit, at most 80 characters)")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise fail("text", "a non-empty string is required")
    kind = raw.get("kind", "individual")
    if kind not in KINDS:
        raise fail("kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    count = raw.get("count")
    if count is not None and not _is_positive_int(count):
        raise fail("count", f"must be a positive integer, got {count!r}")
    if kind == "group" and count is None:
        raise fail("count", "a group prompt needs the number of people it asks for")
    if kind == "individual" and count not in (None, 1):
        raise fail("count", "an individual prompt shows one person; use kind 'group'")
    expected = _parse_expected(raw.get("expected"), kind=kind, fail=fail)
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise fail("tags", "must be a list of strings")
    return Prompt(id=pid, text=text.strip(), kind=kind, count=count,
                  expected=MappingProxyType(expected), tags=tuple(tags))


def _parse_expected(expected: object, *, kind: str, fail) -> dict[str, str]:
    if expected is None:
        if kind == "ahistorical":
            raise fail("expected", "an ahistorical prompt needs expected labels, e.g. {gender: Male}")
        return {}
    if kind != "ahistorical":
        raise fail("expected", f"only ahistorical prompts have expected labels (kind is {kind!r})")
    if not isinstance(expected, dict) or not expected:
        raise fail("expected", "must be a mapping of attribute -> label")
    checked = {}
    for attribute, label in expected.items():
        try:
            checked[attribute] = taxonomy.check_label(
                attribute, taxonomy.normalize_label(attribute, label), allow_unclear=False
            )
        except (KeyError, ValueError) as exc:
            raise fail(f"expected.{attribute}", str(exc.args[0])) from None
    return checked


def run_suite(run_dir: str | Path, config: Mapping | None = None) -> Suite | None:
    """A run's prompt suite, from the path ``run.json`` records, when that file still exists.

    ``config`` is the run's ``run.json`` (read when not given); its ``suite`` is a path, or a
    mapping with ``path`` / ``file``.  A run folder's own ``suite.yaml`` or ``prompts.yaml``
    is the fallback.  None when there is no such file.
    """
    from biaskit.tables import read_run_config

    run_dir = Path(run_dir)
    config = read_run_config(run_dir) if config is None else config
    entry = config.get("suite")
    candidates = []
    if isinstance(entry, Mapping):
        candidates += [entry.get(k) for k in ("path", "file") if entry.get(k)]
    elif isinstance(entry, str):
        candidates.append(entry)
    candidates += [config.get("suite_path"), "suite.yaml", "prompts.yaml"]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        for full in (path, run_dir / path):
            if full.is_file():
                return load_suite(full)
    return None
