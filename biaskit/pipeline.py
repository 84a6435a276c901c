"""One call for the whole evaluation: generate -> tag -> measure -> report.

Every stage is resumable on its own (the image store never regenerates a stored
sample; the tagger's cache makes re-tagging instant), so running the same
pipeline again after a crash, a kill or a finished run completes what is
missing and rewrites the metrics and the report.

Examples
--------
>>> from biaskit.pipeline import run_pipeline
>>> result = run_pipeline("prompts/smoke.yaml",
...                       models={"mixed": "python:biaskit.demo:mixed",
...                               "skewed": "python:biaskit.demo:skewed"},
...                       baseline="skewed", out="runs/demo")   # doctest: +SKIP
>>> result.report["html"]                                        # doctest: +SKIP
PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from biaskit.suite import Suite, load_suite
from biaskit.tables import RUN_CONFIG, read_run_config, run_confusion

log = logging.getLogger(__name__)

BASELINE_NOT_A_MODEL = "baseline {baseline!r} is not one of the models {models}"
BASELINE_CHANGED = ("{path}: this run's baseline is {old!r}; pass --baseline {old}=... or write "
                    "to a new --out directory")


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` made: the run directory, its tables and the report's paths."""

    run_dir: Path
    images: pd.DataFrame
    observations: pd.DataFrame
    bias: Any  # biaskit.metrics.BiasFrame
    report: dict[str, Path]


def run_pipeline(suite: Suite | str | Path, *, models: Mapping[str, Any], baseline: str,
                 out: str | Path, samples: int | None = None, seed: int = 0,
                 attributes: Sequence[str] | None = None, tagger: Any = None,
                 device: str | None = None, faces: str | None = None,
                 concurrency: int = 8, thumbnails: int = 8,
                 progress: bool = True, tagging: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None) -> PipelineResult:
    """Generate, tag, measure and report a candidate model (or several) against a baseline.

    Parameters
    ----------
    suite : Suite or path
        The prompt suite.
    models : mapping
        Model name -> generator spec (``folder:PATH``, ``openai:MODEL``,
        ``diffusers:HUB_ID``, ``python:module:function``, ``run:PATH[#MODEL]``)
        or object; must include the baseline.
    baseline : str
        Name of the baseline model in ``models``; recorded in ``RUN/run.json``.
    out : path
        The run directory (created, or resumed when it exists).
    samples, seed, concurrency :
        As for :func:`biaskit.generate.generate`; ``seed`` also seeds the bootstrap.
    attributes, tagger, device, faces :
        As for :func:`biaskit.perception.tag_run` (which gets the suite's prompt kinds).
    thumbnails : int
        Gallery thumbnails per prompt and model in the report.
    progress : bool
        Progress bars for generation and tagging.
    tagging : mapping, optional
        More keyword arguments of :func:`biaskit.perception.tag_run`
        (``thresholds``, ``detector``, ``min_face``, ``clip_weights``,
        ``clip_cache``, ``clip_prompts``, ``cautious``, ``batch_size``, ``cache``).
    metrics : mapping, optional
        Keyword arguments of :class:`biaskit.metrics.BiasFrame` (``n_boot``,
        ``confidence``, ``entropy_correction``, ``confusion``).

    Returns
    -------
    PipelineResult
    """
    from biaskit.generate import generate
    from biaskit.metrics import measure_run
    from biaskit.perception import tag_run
    from biaskit.report import write_report

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if baseline not in models:
        raise ValueError(BASELINE_NOT_A_MODEL.format(baseline=baseline, models=list(models)))
    tagging = {"attributes": attributes, "tagger": tagger, "device": device, "faces": faces,
               **(tagging or {})}
    metrics = {"seed": seed, **(metrics or {})}
    run_dir = Path(out)
    _check_baseline(run_dir, baseline=baseline)
    log.info("pipeline: generating %s into %s", ", ".join(models), run_dir)
    images = generate(suite, models, out=run_dir, samples=samples, seed=seed,
                      concurrency=concurrency, progress=progress)
    record_run_settings(run_dir, baseline=baseline, tagging=_tagging_settings(tagging))
    log.info("pipeline: tagging")
    observations = tag_run(run_dir, suite=suite, progress=progress, **tagging)
    log.info("pipeline: measuring")
    confusion = run_confusion(run_dir, given=metrics.pop("confusion", None),
                              refuse=metrics.pop("no_confusion", False))
    # The table chosen here (or none: --no-confusion) is the one measured with.
    bias = measure_run(run_dir, suite=suite, baseline=baseline, confusion=confusion,
                       no_confusion=confusion is None, **metrics)
    record_run_settings(run_dir, metrics={"n_boot": bias.n_boot, "bootstrap_seed": bias.seed,
                                          "confidence": bias.confidence,
                                          "entropy_correction": bias.entropy_correction,
                                          "confusion": confusion is not None})
    log.info("pipeline: writing the report")
    report = write_report(run_dir, suite=suite, baseline=baseline, thumbnails=thumbnails,
                          confusion=confusion)
    return PipelineResult(run_dir=run_dir, images=images, observations=observations, bias=bias,
                          report=report)


def _check_baseline(run_dir: Path, *, baseline: str) -> None:
    """A resumed run keeps its baseline: switching it silently would mislabel the report."""
    old = read_run_config(run_dir).get("baseline")
    if old is not None and old != baseline:
        raise ValueError(BASELINE_CHANGED.format(path=run_dir / RUN_CONFIG, old=old))


def _tagging_settings(tagging: Mapping[str, Any]) -> dict:
    """The tagging options as run.json records them (objects by their class name)."""
    from biaskit.perception.detect import DEFAULT_DETECTOR
    from biaskit.perception.pipeline import DEFAULT_MIN_FACE

    def describe(one):  # spec strings and paths as given; objects by their name (else class)
        if one is None or isinstance(one, (str, int, float, bool)):
            return one
        if isinstance(one, Path):
            return str(one)
        if isinstance(one, (list, tuple)):
            return [describe(item) for item in one]
        if isinstance(one, Mapping):
            return {str(k): describe(v) for k, v in one.items()}
        name = getattr(one, "name", None)
        return name if isinstance(name, str) else type(one).__name__

    settings = {key: describe(value) for key, value in tagging.items() if value is not None}
    settings["attributes"] = describe(list(tagging["attributes"])) if tagging.get("attributes") \
        else "default"
    settings.setdefault("tagger", None)
    settings["detector"] = describe(tagging.get("detector")) or DEFAULT_DETECTOR
    settings["min_face_px"] = settings.pop("min_face", DEFAULT_MIN_FACE)
    return settings


def record_run_settings(run_dir: str | Path, *, baseline: str | None = None,
                        tagging: Mapping[str, Any] | None = None,
                        metrics: Mapping[str, Any] | None = None) -> Path:
    """Add the pipeline's keys to ``RUN/run.json``, keeping every key the stages wrote.

    ``baseline`` is the model the report compares against; ``tagging`` and
    ``metrics`` hold the settings of those stages (thresholds are also in each
    observation's ``tagger`` text).  Keys left as None are not touched.
    """
    from biaskit.store import write_json_atomic

    path = Path(run_dir) / RUN_CONFIG
    config = read_run_config(Path(run_dir))
    for key, value in (("baseline", baseline), ("tagging", tagging), ("metrics", metrics)):
        if value is not None:
            config[key] = dict(value) if isinstance(value, Mapping) else value
    return write_json_atomic(path, config)
