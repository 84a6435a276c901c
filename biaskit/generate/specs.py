"""Model specs: the ``KIND:TARGET`` strings of ``--model NAME=SPEC``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from biaskit.generate.base import Generator

SPEC_KINDS = "folder:PATH, openai:MODEL, diffusers:HUB_ID, python:module:function, run:PATH[#MODEL]"
BAD_SPEC = "model spec {spec!r}: {problem}; expected one of " + SPEC_KINDS
BAD_PYTHON_SPEC = "model spec {spec!r}: {problem}"


def make_generator(spec: str | Generator | Any) -> Generator:
    """Build a generator from a spec string (objects and callables pass through).

    ``openai:`` and ``diffusers:`` specs take options after ``?``, passed on to
    the adapter: ``openai:gpt-image-1?size=1024x1024&quality=low``,
    ``diffusers:stabilityai/sdxl-turbo?batch_size=4&num_inference_steps=1``.

    Examples
    --------
    >>> make_generator("folder:pregenerated/")               # doctest: +SKIP
    FolderGenerator('pregenerated')
    >>> make_generator("python:mypackage.models:draw")       # doctest: +SKIP
    """
    if not isinstance(spec, str):
        return _from_object(spec, spec=repr(spec))
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ValueError(BAD_SPEC.format(spec=spec, problem="missing KIND:TARGET"))
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ValueError(BAD_SPEC.format(spec=spec, problem=f"unknown kind {kind!r}"))
    return builder(target, spec)


def _folder(target: str, spec: str) -> Generator:
    from biaskit.generate.adapters.folder import FolderGenerator

    return FolderGenerator(target)


def _openai(target: str, spec: str) -> Generator:
    from biaskit.generate.adapters.openai import OpenAIGenerator

    model, options = _split_options(target)
    return OpenAIGenerator(model, **options)


def _diffusers(target: str, spec: str) -> Generator:
    from biaskit.generate.adapters.diffusers import DiffusersGenerator

    hub_id, options = _split_options(target)
    return DiffusersGenerator(hub_id, **options)


def _run(target: str, spec: str) -> Generator:
    from biaskit.generate.adapters.run import RunGenerator

    path, _, model = target.partition("#")
    return RunGenerator(Path(path), model=model or None)


def _python(target: str, spec: str) -> Generator:
    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(BAD_PYTHON_SPEC.format(spec=spec, problem="use python:module:function"))
    module = _import(module_name, spec=spec)
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise ValueError(BAD_PYTHON_SPEC.format(
            spec=spec, problem=f"module {module_name!r} has no attribute {attribute!r}")) from None
    return _from_object(obj, spec=spec)


def _import(module_name: str, *, spec: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or str(Path.cwd()) in sys.path:
            raise ValueError(BAD_PYTHON_SPEC.format(spec=spec, problem=str(exc))) from None
    # A console script does not put the working directory on sys.path; `python -m` does.
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(BAD_PYTHON_SPEC.format(spec=spec, problem=str(exc))) from None


def _from_object(obj: Any, *, spec: str) -> Generator:
    from biaskit.generate.adapters.callable import CallableGenerator

    if hasattr(obj, "generate_batch"):
        return obj
    if callable(obj):
        return CallableGenerator(obj)
    raise ValueError(BAD_PYTHON_SPEC.format(
        spec=spec, problem=f"{type(obj).__name__} is neither a generator nor a callable (prompt, seed)"))


def _split_options(target: str) -> tuple[str, dict[str, Any]]:
    name, _, query = target.partition("?")
    return name, {key: _parse_value(value) for key, value in parse_qsl(query, keep_blank_values=True)}


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


_BUILDERS = {"folder": _folder, "openai": _openai, "diffusers": _diffusers,
             "python": _python, "run": _run}
