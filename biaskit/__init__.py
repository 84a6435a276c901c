"""biaskit: measure demographic bias in text-to-image models.

The pipeline, one module per stage (data flows one way)::

    suite -> generate -> store -> perception (detect, tag) -> metrics -> plots / report

The main entry points are importable from the top level; they load lazily so
that ``import biaskit`` does not pay for torch.

Examples
--------
>>> import biaskit
>>> suite = biaskit.load_suite("prompts/system_card.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_suite": "biaskit.suite",
    "Suite": "biaskit.suite",
    "Prompt": "biaskit.suite",
    "SuiteError": "biaskit.suite",
    "make_generator": "biaskit.generate",
    "ImageStore": "biaskit.store",
    "tag_run": "biaskit.perception",
    "tag_images": "biaskit.perception",
    "BiasFrame": "biaskit.metrics",
    "measure_run": "biaskit.metrics",
    "write_report": "biaskit.report",
    "run_pipeline": "biaskit.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'biaskit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
