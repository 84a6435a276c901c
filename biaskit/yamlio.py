"""Reading the YAML files users write (prompt suites, CLIP prompt files).

``yaml.safe_load`` keeps the last of two equal keys silently, so a suite with
``samples`` given twice, or a prompt written twice under one id in a mapping,
would be measured with values the author did not mean.  :func:`load_yaml`
refuses a repeated key, names the file, line and key, and also names the file
of a text that is not UTF-8 or not YAML.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DUPLICATE_KEY = "{path}: line {line}: key {key!r} is given twice (first at line {first})"
SYNTAX_ERROR = "{path}: YAML syntax error{where}: {problem}"
NOT_UTF8 = "{path}: not UTF-8 text (byte {byte:#04x} at position {position}); save it as UTF-8"
NOT_FOUND = "{path}: {what} not found"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of the document repeats a key."""

    def __init__(self, key, *, line: int, first: int):
        super().__init__(f"key {key!r} is given twice")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a mapping with a repeated key."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, line=line, first=seen[key])
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path, *, what: str = "file", error: type[Exception] = ValueError):
    """The parsed YAML document of ``path``, refusing repeated keys.

    Parameters
    ----------
    path : path
        The file (UTF-8).
    what : str
        What the file is, for the not-found message ("prompt suite file").
    error : exception type
        Raised (with one line naming the file) for a repeated key, a syntax
        error or a file that is not UTF-8.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(NOT_FOUND.format(path=path, what=what)) from None
    except UnicodeDecodeError as exc:
        raise error(NOT_UTF8.format(path=path, byte=exc.object[exc.start],
                                    position=exc.start)) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise error(DUPLICATE_KEY.format(path=path, line=exc.line, key=exc.key,
                                         first=exc.first)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(SYNTAX_ERROR.format(path=path, where=where, problem=problem)) from None
