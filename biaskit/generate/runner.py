"""The resampling runner: every prompt x sample x model, through the image store."""

from __future__ import annotations

import datetime as _dt
import logging
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from biaskit import store as _store  # module import: biaskit.store imports this package
from biaskit.generate.base import Generator, Request, Result, WRONG_RESULT_COUNT, as_result, redact
from biaskit.generate.seeds import derive_seed
from biaskit.generate.specs import make_generator
from biaskit.suite import Suite, load_suite
from biaskit.tables import RUN_CONFIG, STATUSES, read_run_config

log = logging.getLogger(__name__)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")
BAD_MODEL_NAME = "model name {name!r}: use letters, digits, '.', '_', '+' and '-' (at most 80)"
SEED_MISMATCH = ("{path}: this run was generated with seed {old}; resume it with --seed {old} "
                 "or write to a new --out directory")
NO_MODELS = "no models given; pass at least one NAME=SPEC"
BAD_SAMPLES = "samples must be a whole number of at least 1 (or None for the suite's), got {samples!r}"
FLUSH_EVERY_S = 60.0


def generate(suite: Suite | str | Path, models: Mapping[str, Any], *, out: str | Path,
             samples: int | None = None, seed: int = 0, concurrency: int = 8,
             progress: bool = True, retry_errors: bool = True, durable: bool = True) -> pd.DataFrame:
    """Generate ``samples`` resamples of every prompt with every model, into a run directory.

    Resumable: samples already stored as ``ok`` or ``refused`` are never generated
    again (``error`` ones are retried unless ``retry_errors`` is False), so the
    same call after a finish, a crash or a kill -9 completes what is missing.

    Parameters
    ----------
    suite : Suite or path
        The prompt suite.
    models : mapping
        Model name -> generator object, callable ``(prompt, seed) -> PIL.Image`` or
        spec string (``folder:PATH``, ``openai:MODEL``, ``diffusers:HUB_ID``,
        ``python:module:function``, ``run:PATH[#MODEL]``).
    out : path
        Run directory (created if needed).
    samples : int, optional
        Resamples per prompt; default the suite's.
    seed : int
        Base seed; each sample's seed is :func:`derive_seed` of it.
    concurrency : int
        Generator calls in flight at once (capped by a generator's ``max_concurrency``).
    progress : bool
        Show a progress bar with ok / refused / error counts.

    Returns
    -------
    pandas.DataFrame
        The run's images table (every model stored in ``out``).

    Examples
    --------
    >>> images = generate("prompts/smoke.yaml", {"mine": "folder:pregenerated"},
    ...                   out="runs/demo", samples=3)        # doctest: +SKIP
    >>> images.status.value_counts()                          # doctest: +SKIP
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    samples = suite.samples if samples is None else _whole_samples(samples)
    if not models:
        raise ValueError(NO_MODELS)
    for name in models:
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            raise ValueError(BAD_MODEL_NAME.format(name=name))
    store = _store.ImageStore(out, create=True, durable=durable)
    try:
        work = {name: _pending(store, name, suite, samples, seed, retry_errors) for name in models}
        # Every spec is checked (a folder: that does not exist, an unknown kind) before
        # anything is generated or recorded in run.json.
        generators = {name: make_generator(models[name]) for name, requests in work.items()
                      if requests}
        write_run_config(store.root, suite=suite, models=models, samples=samples, seed=seed)
        counts: Counter = Counter()
        total = sum(len(requests) for requests in work.values())
        # Nothing to do (a finished run resumed): no empty bar.
        with _progress_bar(total, enabled=progress and total > 0) as bar:
            for name, requests in work.items():
                if requests:
                    generator = generators[name]
                    if hasattr(generator, "prepare"):
                        generator.prepare()  # load weights once; a failure here is the run's
                    _run_model(name, generator, requests, store=store, bar=bar,
                               counts=counts, concurrency=concurrency)
    finally:
        store.close()
    images = store.images()
    _log_summary(images[images["model"].isin(list(models))])
    return images


def _whole_samples(samples) -> int:
    if isinstance(samples, bool) or not float(samples).is_integer() or samples < 1:
        raise ValueError(BAD_SAMPLES.format(samples=samples))
    return int(samples)


def _pending(store, model: str, suite: Suite, samples: int, seed: int,
             retry_errors: bool) -> list[Request]:
    done = store.done(model, retry_errors=retry_errors)
    return [Request(prompt.id, prompt.text, sample, derive_seed(seed, model, prompt.id, sample))
            for prompt in suite for sample in range(samples) if (prompt.id, sample) not in done]


def _run_model(name: str, generator: Generator, requests: Sequence[Request], *, store, bar,
               counts: Counter, concurrency: int) -> None:
    batch_size = max(1, int(getattr(generator, "batch_size", 1) or 1))
    workers = max(1, min(concurrency, getattr(generator, "max_concurrency", None) or concurrency))
    batches = [requests[i:i + batch_size] for i in range(0, len(requests), batch_size)]

    def work(batch: Sequence[Request]) -> list[dict]:
        results = _call(generator, batch)
        return [store.record(name, request, result) for request, result in zip(batch, results)]

    last_flush = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"biaskit-{name}")
    try:
        futures = [pool.submit(work, batch) for batch in batches]
        for future in as_completed(futures):
            rows = future.result()
            counts.update(row["status"] for row in rows)
            bar.update(len(rows))
            bar.set_postfix({status: counts[status] for status in STATUSES}, refresh=False)
            if time.monotonic() - last_flush > FLUSH_EVERY_S:
                store.flush()  # a fresh images.parquet for readers while a long run goes on
                last_flush = time.monotonic()
    finally:
        # On Ctrl-C: drop what has not started, let running calls store their results.
        pool.shutdown(wait=True, cancel_futures=True)


def _call(generator: Generator, batch: Sequence[Request]) -> list[Result]:
    """One result per request, whatever the generator does (raise, return too few...)."""
    try:
        results = list(generator.generate_batch(list(batch)))
    except Exception as exc:  # noqa: BLE001 - recorded on every sample of the batch
        return [Result.from_exception(exc) for _ in batch]
    if len(results) != len(batch):
        message = WRONG_RESULT_COUNT.format(got=len(results), expected=len(batch))
        return [Result.error(message) for _ in batch]
    return [as_result(result) for result in results]


def write_run_config(root: Path, *, suite: Suite, models: Mapping[str, Any], samples: int,
                     seed: int) -> Path:
    """Write (or update) ``RUN/run.json``: suite, samples, seed and model specs -- no secrets."""
    path = Path(root) / RUN_CONFIG
    config = read_run_config(root)
    if "seed" in config and int(config["seed"]) != int(seed):
        raise ValueError(SEED_MISMATCH.format(path=path, old=config["seed"]))
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    known = dict(config.get("models", {}))
    for name, spec in models.items():
        described = redact(describe_spec(spec))
        if name in known and known[name] != described:
            log.warning("%s: model %r was %r, now %r", path, name, known[name], described)
        known[name] = described
    config.update(
        suite=str(Path(suite.path).resolve()) if suite.path else None, suite_name=suite.name,
        samples=max(int(samples), int(config.get("samples", 0))), seed=int(seed),
        models=known, created=config.get("created", now), updated=now,
        biaskit_version=_version(),
    )
    return _store.write_json_atomic(path, config)


def describe_spec(spec: Any) -> str:
    """A stable text for run.json: the spec string, ``python:module:name`` or the repr."""
    if isinstance(spec, str):
        return spec
    if callable(spec) and not hasattr(spec, "generate_batch") and hasattr(spec, "__qualname__"):
        return f"python:{getattr(spec, '__module__', '?')}:{spec.__qualname__}"
    return repr(spec)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("biaskit")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return "unknown"


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


def _progress_bar(total: int, *, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generate", unit="img", dynamic_ncols=True)


def _log_summary(images: pd.DataFrame) -> None:
    for model, group in images.groupby("model"):
        status = group["status"].value_counts()
        log.info("%s: %d ok, %d refused, %d error", model,
                 status.get("ok", 0), status.get("refused", 0), status.get("error", 0))
