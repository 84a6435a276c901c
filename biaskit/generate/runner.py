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
from biaskit.suite import MAX_SAMPLES, Suite, load_suite
from biaskit.tables import RUN_CONFIG, STATUS_OK, STATUS_REFUSED, STATUSES, read_run_config

log = logging.getLogger(__name__)

# Always fullmatch: "$" would also match before a trailing newline.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}")
BAD_MODEL_NAME = "model name {name!r}: use letters, digits, '.', '_', '+' and '-' (at most 80)"
SEED_MISMATCH = ("{path}: this run was generated with seed {old}; resume it with --seed {old} "
                 "or write to a new --out directory")
NO_MODELS = "no models given; pass at least one NAME=SPEC"
BAD_SAMPLES = ("samples must be a whole number from 1 to {most} (or None for the suite's), "
               "got {samples!r}")
PROMPT_CHANGED = ("{path}: prompt {prompt_id!r} of model {model!r} was generated from {old!r}; the "
                  "suite now says {new!r}. Write to a new --out directory, or pass --allow-changed "
                  "(allow_changed=True) to keep the stored images")
MODEL_CHANGED = ("{path}: model {model!r} was generated with {old!r}, now {new!r}. Write to a new "
                 "--out directory, or pass --allow-changed (allow_changed=True) to keep the stored "
                 "images")
FLUSH_EVERY_S = 60.0


def generate(suite: Suite | str | Path, models: Mapping[str, Any], *, out: str | Path,
             samples: int | None = None, seed: int = 0, concurrency: int = 8,
             progress: bool = True, retry_errors: bool = True, durable: bool = True,
             allow_changed: bool = False) -> pd.DataFrame:
    """Generate ``samples`` resamples of every prompt with every model, into a run directory.

    Resumable: samples already stored as ``ok`` or ``refused`` are never generated
    again (``error`` ones are retried unless ``retry_errors`` is False), so the
    same call after a finish, a crash or a kill -9 completes what is missing.

    One process at a time: the run's lock is taken before anything is read or
    generated, so a second ``generate`` on the same ``out`` is refused (a
    ``RuntimeError``) without calling any generator.  Arguments, stored prompt
    texts and model specs are all checked before any generator is built and
    before ``run.json`` is written.

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
    allow_changed : bool
        Keep stored samples whose prompt text or model spec differs from the
        current one (by default that is an error naming the prompt or model).

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
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise ValueError(BAD_MODEL_NAME.format(name=name))
    specs = {name: redact(describe_spec(spec)) for name, spec in models.items()}
    created = not Path(out).exists()
    # The lock comes first: nothing is read before it, nothing generated without it.
    store = _store.ImageStore(out, create=True, durable=durable, lock=True)
    try:
        config = read_run_config(store.root)
        check_seed(store.root, config, seed=seed)
        if not allow_changed:
            check_unchanged(store, config, suite=suite, specs=specs)
        work = {name: _pending(store, name, suite, samples, seed, retry_errors) for name in models}
        generators = {name: make_generator(models[name]) for name in models if work[name]}
        write_run_config(store.root, suite=suite, models=models, samples=samples, seed=seed)
        created = False  # the run holds something now: never removed below
        _run_models(generators, work, store=store, specs=specs, concurrency=concurrency,
                    progress=progress)
    finally:
        store.close()
        if created:
            _store.remove_empty_run(store.root)
    images = store.images()
    _log_summary(images[images["model"].isin(list(models))])
    return images


def _whole_samples(samples) -> int:
    try:
        whole = not isinstance(samples, bool) and float(samples).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(BAD_SAMPLES.format(samples=samples, most=MAX_SAMPLES))
    return int(samples)


def check_seed(root: Path, config: Mapping[str, Any], *, seed: int) -> None:
    """A resumed run keeps its base seed (else its samples would not be reproducible)."""
    if "seed" in config and int(config["seed"]) != int(seed):
        raise ValueError(SEED_MISMATCH.format(path=Path(root) / RUN_CONFIG, old=config["seed"]))


def check_unchanged(store, config: Mapping[str, Any], *, suite: Suite,
                    specs: Mapping[str, str]) -> None:
    """Refuse to reuse stored samples made from another prompt text or model spec.

    The spec is compared with run.json's and with each stored row's, the text
    with each row's (rows written before biaskit 0.2 have neither: not checked).
    """
    path = store.root / RUN_CONFIG
    known = dict(config.get("models") or {})
    images = store.images()
    final = images[images["status"].isin([STATUS_OK, STATUS_REFUSED])]
    for name, spec in specs.items():
        mine = final[final["model"] == name]
        old = {known.get(name), *mine["model_spec"].dropna()} - {None, spec}
        if old:
            raise ValueError(MODEL_CHANGED.format(path=path, model=name, old=sorted(old)[0], new=spec))
        texts = mine.dropna(subset=["prompt_text"])
        for prompt_id, old_text in zip(texts["prompt_id"], texts["prompt_text"]):
            if prompt_id in suite and suite[prompt_id].text != old_text:
                raise ValueError(PROMPT_CHANGED.format(path=store.root, prompt_id=prompt_id, model=name,
                                                       old=old_text, new=suite[prompt_id].text))


def _pending(store, model: str, suite: Suite, samples: int, seed: int,
             retry_errors: bool) -> list[Request]:
    done = store.done(model, retry_errors=retry_errors)
    return [Request(prompt.id, prompt.text, sample, derive_seed(seed, model, prompt.id, sample))
            for prompt in suite for sample in range(samples) if (prompt.id, sample) not in done]


def _run_models(generators: Mapping[str, Generator], work: Mapping[str, list[Request]], *, store,
                specs: Mapping[str, str], concurrency: int, progress: bool) -> None:
    """Every model's pending requests, one model after the other, under one progress bar."""
    counts: Counter = Counter()
    total = sum(len(work[name]) for name in generators)
    with _progress_bar(total, enabled=progress) as bar:
        for name, generator in generators.items():
            if hasattr(generator, "prepare"):
                generator.prepare()  # load weights once; a failure here is the run's
            _run_model(name, generator, work[name], store=store, bar=bar, counts=counts,
                       concurrency=concurrency, spec=specs[name])


def _run_model(name: str, generator: Generator, requests: Sequence[Request], *, store, bar,
               counts: Counter, concurrency: int, spec: str) -> None:
    batch_size = max(1, int(getattr(generator, "batch_size", 1) or 1))
    workers = max(1, min(concurrency, getattr(generator, "max_concurrency", None) or concurrency))
    batches = [requests[i:i + batch_size] for i in range(0, len(requests), batch_size)]

    def work(batch: Sequence[Request]) -> list[dict]:
        results = _call(generator, batch)
        return [store.record(name, request, result, spec=spec)
                for request, result in zip(batch, results)]

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
    """Write (or update) ``RUN/run.json``: suite, samples, seed and model specs -- no secrets.

    A changed spec is recorded (with a warning); :func:`generate` refuses one
    before getting here unless ``allow_changed``.
    """
    path = Path(root) / RUN_CONFIG
    config = read_run_config(root)
    check_seed(root, config, seed=seed)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    known = dict(config.get("models") or {})
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
    """A stable text for run.json: the spec string, ``python:module:name`` or the repr.

    An object without a repr of its own is named by its class (the default repr
    holds a memory address, different at every call).
    """
    if isinstance(spec, str):
        return spec
    if callable(spec) and not hasattr(spec, "generate_batch") and hasattr(spec, "__qualname__"):
        return f"python:{getattr(spec, '__module__', '?')}:{spec.__qualname__}"
    if type(spec).__repr__ is object.__repr__:
        return f"python:{type(spec).__module__}:{type(spec).__qualname__}"
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
    if not enabled or total == 0:  # a finished run resumed: no empty "0img" bar
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generate", unit="img", dynamic_ncols=True)


def _log_summary(images: pd.DataFrame) -> None:
    for model, group in images.groupby("model"):
        status = group["status"].value_counts()
        log.info("%s: %d ok, %d refused, %d error", model,
                 status.get("ok", 0), status.get("refused", 0), status.get("error", 0))
