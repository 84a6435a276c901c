"""images -> people -> observations: detect every face, tag it, write the tables.

:func:`tag_images` works on any images table (columns of
:data:`biaskit.tables.IMAGES_COLUMNS`; rows with status ``ok``); :func:`tag_run`
reads ``RUN/images.parquet`` and writes ``RUN/people.parquet``,
``RUN/observations.parquet`` and ``RUN/perception_errors.parquet``.

Work is done per distinct image file (sha256), in batches: a pool of
threads decodes and detects image by image while this thread aligns the
faces of the batch before and runs the taggers' models (see
:func:`_tagged_batches` for the schedule), faces of a whole batch go through
each tagger in one call, and results go into the tag cache so that a second
run over the same images runs no model at all.  A face smaller than
``min_face`` pixels is kept in the people table but every attribute is
``unclear`` (confidence NaN).  An image that cannot be read, or that the
detector fails on, gets a row in the errors table; the others carry on.

Every face found is a row of the people table, with its size relative to the
image and to the largest face (:mod:`biaskit.perception.subjects`); the
observations hold the faces that the face policy counts (by default the main
subject(s) of an individual prompt, every face but distant ones in a group).

Examples
--------
>>> from biaskit.perception import tag_run
>>> observations = tag_run("runs/demo")                                   # doctest: +SKIP
>>> observations = tag_run("runs/demo", attributes=["race"], tagger="clip")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from biaskit import tables
from biaskit.paths import MAX_IMAGE_BYTES, read_verified, resolve_inside
from biaskit.perception.base import Face, Tagger, available_cores
from biaskit.perception.cache import DONE_COLUMNS, LABEL_COLUMNS, TagCache, settings_key
from biaskit.perception.detect import Detector, Faces, make_detector
from biaskit.perception.images import DEFAULT_MAX_SIDE, LoadedImage, load_image
from biaskit.perception.subjects import FacePolicy, face_sizes, make_policy
from biaskit.perception.taggers import TaggerOptions, plan_taggers
from biaskit.taxonomy import UNCLEAR

#: Faces whose shorter box side is under this many pixels are tagged ``unclear``.
DEFAULT_MIN_FACE = 24
ERRORS_TABLE = "perception_errors.parquet"
CACHE_DIR = Path("cache") / "perception"
ERROR_COLUMNS = ("model", "prompt_id", "sample", "sha256", "path", "error")
DETECTION_FAILED = "{path}: face detection failed: {error}"
BAD_MIN_FACE = "min_face (--min-face) must be a whole number of pixels >= 0, got {value!r}"
THRESHOLD_NOT_TAGGED = ("threshold {attribute}={value} (--threshold): no tagger here tags "
                        "{attribute!r}; tagged: {tagged}")
NO_SUITE = ("%s: prompt kinds unknown (%s); the face policy treats every prompt as a group prompt; "
            "pass suite= (biaskit tag --suite) to count only the main subject(s) of individual prompts")
#: Key of ``RUN/run.json`` that records the face policy of the observations.
POLICY_KEY = "face_policy"
_KEY_COLUMNS = ("model", "prompt_id", "sample")
_MISSING = "missing:"

log = logging.getLogger(__name__)


@dataclass
class TagResult:
    """The three tables a tagging pass produces."""

    people: pd.DataFrame
    observations: pd.DataFrame
    errors: pd.DataFrame


def tag_run(
    run_dir: str | Path,
    *,
    attributes=None,
    tagger=None,
    device: str | None = None,
    progress: bool = True,
    cache: bool = True,
    suite=None,
    faces: str | FacePolicy | None = None,
    **options,
) -> pd.DataFrame:
    """Tag every ok image of a run; write people, observations and errors; return observations.

    ``suite`` (a :class:`~biaskit.suite.Suite` or its YAML path; default the
    suite named in ``RUN/run.json``) gives each prompt's kind to the face
    policy ``faces`` (recorded in ``RUN/run.json``).  Other keyword arguments
    are those of :func:`tag_images`.
    """
    run_dir = Path(run_dir)
    images = tables.read_table(run_dir / tables.IMAGES_TABLE)
    policy = make_policy(faces)
    kinds = _prompt_kinds(run_dir, suite) if policy.name != "all" else {}  # "all" needs no kinds
    result = tag_images(
        images, root=run_dir, attributes=attributes, tagger=tagger, device=device, progress=progress,
        cache=run_dir / CACHE_DIR if cache else None, image_dir=run_dir / tables.IMAGES_DIR,
        faces=policy, kinds=kinds, **options,
    )
    _record_policy(run_dir, policy)
    tables.write_table(result.people, run_dir / tables.PEOPLE_TABLE)
    tables.write_table(result.observations, run_dir / tables.OBSERVATIONS_TABLE)
    tables.write_table(result.errors, run_dir / ERRORS_TABLE, csv=True)
    if len(result.errors):
        log.warning("%d image(s) could not be tagged; see %s", len(result.errors), run_dir / ERRORS_TABLE)
    return result.observations


def _prompt_kinds(run_dir: Path, suite) -> dict[str, str]:
    """Prompt id -> kind, from ``suite`` or the suite ``run.json`` names ({} if none can be read)."""
    from biaskit.suite import Suite, SuiteError, load_suite, run_suite

    try:
        suite = run_suite(run_dir) if suite is None else suite
        suite = suite if suite is None or isinstance(suite, Suite) else load_suite(suite)
    except (OSError, SuiteError) as exc:
        log.warning(NO_SUITE, run_dir, exc)
        return {}
    if suite is None:
        log.warning(NO_SUITE, run_dir, "run.json names no suite file that exists")
        return {}
    return {prompt.id: prompt.kind for prompt in suite.prompts}


def _record_policy(run_dir: Path, policy: FacePolicy) -> None:
    """Write the face policy into ``RUN/run.json``, keeping every other key."""
    from biaskit.store import write_json_atomic

    config = tables.read_run_config(run_dir)
    config[POLICY_KEY] = policy.describe()
    write_json_atomic(run_dir / tables.RUN_CONFIG, config)


def tag_images(
    images: pd.DataFrame,
    *,
    root: str | Path,
    attributes=None,
    tagger=None,
    detector: Detector | str | None = None,
    device: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    cautious: bool = True,
    min_face: int = DEFAULT_MIN_FACE,
    max_side: int = DEFAULT_MAX_SIDE,
    batch_size: int = 16,
    cache: str | Path | None = None,
    clip_prompts=None,
    clip_weights: str | None = None,
    clip_cache: str | None = None,
    allow_random_weights: bool = False,
    faces: str | FacePolicy | None = None,
    kinds: Mapping[str, str] | None = None,
    progress: bool = True,
    image_dir: str | Path | None = None,
) -> TagResult:
    """Detect and tag the people in the ok rows of an images table.

    Parameters
    ----------
    images : DataFrame
        Images table; ``path`` relative to ``root``.
    attributes : list of str, optional
        Attributes to tag (default: those of the taggers given, else
        gender, age, age_group, skin_tone).
    tagger : str, Tagger or list of them, optional
        See :mod:`biaskit.perception.taggers` for spec strings.
    thresholds : mapping, optional
        Minimum confidence per attribute (recorded in the ``tagger`` column).
    min_face : int
        Faces with a shorter side (pixels) are tagged ``unclear``.
    cache : path, optional
        Tag-cache folder; None disables caching.
    image_dir : path, optional
        The folder every image must resolve into (default ``root``; a run's
        ``images/`` for :func:`tag_run`).  A path leading elsewhere, or a file
        whose bytes do not match the table's sha256, is an errors-table row.
    faces : {"subjects", "all"} or FacePolicy, optional
        Which faces' labels are observations (default ``subjects``, see
        :mod:`biaskit.perception.subjects`); the people table has every face.
    kinds : mapping, optional
        Prompt id -> kind (``individual``, ``group``, ...) for the face
        policy; a prompt missing from it is treated as a group prompt.

    Returns
    -------
    TagResult
        ``people`` (PEOPLE_COLUMNS), ``observations`` (OBSERVATION_COLUMNS), ``errors``.
    """
    tables.require_columns(images, ("model", "prompt_id", "sample", "status", "path"), name="images table")
    root = Path(root)
    batch_size = max(batch_size, 1)  # for the batches below as for the taggers
    options = TaggerOptions(thresholds=thresholds, cautious=cautious, device=device, batch_size=batch_size,
                            clip_prompts=clip_prompts, clip_weights=clip_weights, clip_cache=clip_cache,
                            allow_random_weights=allow_random_weights)
    if isinstance(min_face, bool) or not isinstance(min_face, (int, np.integer)) or min_face < 0:
        raise ValueError(BAD_MIN_FACE.format(value=min_face))
    plan = plan_taggers(attributes=attributes, tagger=tagger, options=options)
    _check_thresholds(thresholds, plan)
    detector = make_detector(detector)
    rows = images[images["status"] == tables.STATUS_OK].copy()
    image_dir = Path(root if image_dir is None else image_dir)
    rows["sha256"] = _hashes(rows, root, image_dir)
    settings = {"detector": detector.name, "max_side": max_side, "min_face": min_face,
                "taggers": [[t.name, list(attrs)] for t, attrs in plan]}
    store = TagCache(cache, key=settings_key(settings)) if cache is not None else None
    unique = rows.drop_duplicates("sha256")
    cached = [h for h in unique["sha256"] if store is not None and store.done(h)]
    todo = unique[~unique["sha256"].isin(cached)]
    worker = _Worker(detector=detector, plan=plan, min_face=min_face)
    fresh = []
    try:
        for result in _tagged_batches(todo, root=root, image_dir=image_dir, max_side=max_side,
                                      batch_size=batch_size, worker=worker, progress=progress):
            fresh.append(result)
            if store is not None:
                store.put(**{name: t[~t["sha256"].str.startswith(_MISSING)] for name, t in result.items()})
    finally:
        if store is not None:
            store.save()
    parts = _combine([store.get(cached)] if store is not None else [], fresh)
    return _tables_for(rows, parts, policy=make_policy(faces), kinds=kinds)


def _check_thresholds(thresholds: Mapping[str, float] | None, plan) -> None:
    """A threshold for an attribute no tagger tags is a typo, never silently ignored."""
    tagged = [a for _, attrs in plan for a in attrs]
    for attribute, value in (thresholds or {}).items():
        if attribute not in tagged:
            raise ValueError(THRESHOLD_NOT_TAGGED.format(attribute=attribute, value=value,
                                                         tagged=", ".join(tagged)))


def _hashes(rows: pd.DataFrame, root: Path, image_dir: Path) -> list[str]:
    """sha256 per row: the table's value, else the file's digest (or a path marker if unreadable)."""
    given = rows["sha256"] if "sha256" in rows.columns else pd.Series([None] * len(rows), index=rows.index)
    hashes = []
    for value, path in zip(given, rows["path"]):
        if isinstance(value, str) and value:
            hashes.append(value)
            continue
        try:
            file = resolve_inside(image_dir, str(path), root=root)
            data = read_verified(file, sha256=None, max_bytes=MAX_IMAGE_BYTES)
            hashes.append(hashlib.sha256(data).hexdigest())
        except (OSError, ValueError):
            hashes.append(f"{_MISSING}{path}")  # reported when loading fails; never cached
    return hashes


def _tagged_batches(todo: pd.DataFrame, *, root: Path, image_dir: Path, max_side: int, batch_size: int,
                    worker: "_Worker", progress: bool) -> Iterator[dict[str, pd.DataFrame]]:
    """Result tables of each batch of ``todo`` (:func:`batch_slices`), in order.

    Image tasks, one image each, run on a pool of one thread per core but one:
    decoding, the detector's input and, for a detector whose calls use one
    core each (``one_image_per_core``: CenterFace on a CPU), the detection
    itself.  They run up to two batches ahead.  This thread, the last core's,
    takes a batch once its images are done (running queued image tasks itself
    while it waits, see :class:`_Ahead`); then it runs the detection of a
    detector that batches (a GPU session), aligns the faces and runs the taggers.

    Every task holds one core (the embedded networks are single-threaded), so
    exactly one thread per core is busy: no thread pool spins waiting for a
    core, and no task loses its caches to time slicing, which costs a
    memory-bound network such as CenterFace about a tenth of its speed.
    """
    items = list(zip(todo["sha256"], todo["path"].astype(str)))
    batches = [items[part] for part in batch_slices(len(items), batch_size)]
    bar = _progress(len(items), progress)
    loader = _Loader(root=root, max_side=max_side, detector=worker.detector, spare_max=2 * batch_size,
                     image_dir=image_dir)
    with ThreadPoolExecutor(max_workers=max(available_cores() - 1, 1), thread_name_prefix="biaskit-images") as pool:
        ahead = _Ahead(pool=pool, load=loader.load, batches=batches)
        for index in range(len(batches)):
            batch = ahead.take(index)
            worker.detect(batch)
            loader.recycle(batch)
            result = worker.tag(batch)
            if bar is not None:
                bar.update(len(result["done"]))
            yield result
    if bar is not None:
        bar.close()


def batch_slices(count: int, batch_size: int) -> list[slice]:
    """Slices of ``count`` items into batches: ``batch_size`` each, the last batch's worth halving.

    The last batch is tagged after every image task has ended, with the other
    cores idle; so the last ``batch_size`` items come in batches of half the
    rest (8, 4, 2, 1, 1 for 16), each tagged while the next ones are detected,
    leaving one image's tagging alone at the end.
    """
    tapered = max(count - batch_size, 0)
    bounds = list(range(0, tapered, batch_size))
    start = tapered
    while start < count:
        bounds.append(start)
        start += max((count - start) // 2, 1)
    return [slice(a, b) for a, b in zip(bounds, bounds[1:] + [count])]


@dataclass
class _Ahead:
    """Image tasks of the coming batches on a pool; the thread that takes a batch helps.

    While a batch it takes is unfinished, the taking thread runs queued tasks
    itself instead of waiting: that batch's, last first (the pool starts from
    the front), then the next batches'.  It waits only when every task is
    running, so no core idles while the last images of a batch finish.
    """

    pool: ThreadPoolExecutor
    load: Callable
    batches: list[list]
    #: Batches queued ahead of the one being taken.
    depth: int = 2
    _futures: dict[int, list[Future]] = field(default_factory=dict)

    def __post_init__(self):
        for index in range(min(self.depth, len(self.batches))):
            self._submit(index)

    def take(self, index: int) -> list:
        """The results of batch ``index``, in order (batches are taken in order)."""
        futures = self._futures.pop(index)
        if index + self.depth < len(self.batches):
            self._submit(index + self.depth)
        queued = [(futures, self.batches[index])] + [(self._futures[k], self.batches[k]) for k in sorted(self._futures)]
        while not all(future.done() for future in futures):
            if not self._run_one(queued):
                wait([future for future in futures if not future.done()], return_when=FIRST_COMPLETED)
        return [future.result() for future in futures]

    def _submit(self, index: int) -> None:
        self._futures[index] = [self.pool.submit(self.load, item) for item in self.batches[index]]

    def _run_one(self, queued: list[tuple[list[Future], list]]) -> bool:
        """Run the first unstarted task found (each batch from its back) here; False if none is left."""
        for futures, items in queued:
            for position in reversed(range(len(futures))):
                if futures[position].cancel():
                    finished: Future = Future()
                    finished.set_result(self.load(items[position]))
                    futures[position] = finished
                    return True
        return False


@dataclass
class _Item:
    """One image file as an image task leaves it, then as detection leaves it."""

    sha256: str
    file: Path
    image: LoadedImage | None = None
    error: str | None = None
    prepared: np.ndarray | None = None  # the detector's input, when detection is left to the batch
    faces: Faces | None = None

    def detection_failed(self, exc: Exception) -> "_Item":
        """Turn this item into an error row: one image the detector fails on must not end the run."""
        log.error("face detection failed on %s: %s", self.file, exc)
        self.image = self.faces = self.prepared = None
        self.error = DETECTION_FAILED.format(path=self.file, error=exc)
        return self


@dataclass
class _Loader:
    """The image task: decode one (sha256, path) item, make the detector's input, maybe detect.

    A detector may offer ``prepare(image, *, out=None)`` (its network input)
    and ``detect_many(images, *, prepared=...)``.  One whose calls use one core
    each (``one_image_per_core``) detects here, image by image, on the pool's
    threads; the others get the prepared input at batch time.  Inputs are
    refilled for later images of the same size (a fresh 3 MB array costs more
    in page faults than filling one), and given back by :meth:`recycle` or
    right after a detection here.
    """

    root: Path
    max_side: int
    detector: object = None
    #: Images up to this many pixels get their detector input made here
    #: (a 1 MP image's is 12 MB); larger ones get it at detection time.
    prepare_max_pixels: int = 1 << 20
    #: Most recycled inputs kept (two batches' worth are in flight at most).
    spare_max: int = 32
    #: The folder every image must resolve into (default ``root``).
    image_dir: Path | None = None
    _spare: list = field(default_factory=list)  # (image shape, input), oldest first
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, item: tuple[str, str]) -> _Item:
        sha, path = item
        file = self.root / path
        try:  # inside the image folder only, and the bytes must match the table's sha256
            file = resolve_inside(self.image_dir or self.root, path, root=self.root)
            image = load_image(file, max_side=self.max_side, sha256=None if sha.startswith(_MISSING) else sha)
        except ValueError as exc:  # ImageLoadError is one
            return _Item(sha, file, error=str(exc))
        loaded = _Item(sha, file, image=image, prepared=self._prepare(image.array))
        if getattr(self.detector, "one_image_per_core", False):
            prepared = None if loaded.prepared is None else [loaded.prepared]
            try:
                (loaded.faces,) = self.detector.detect_many([image.array], prepared=prepared)
            except Exception as exc:  # noqa: BLE001 -- whatever the runtime raises, the run goes on
                loaded.detection_failed(exc)
            self.recycle([loaded])
        return loaded

    def _prepare(self, array: np.ndarray):
        prepare = getattr(self.detector, "prepare", None)
        if prepare is None or array.shape[0] * array.shape[1] > self.prepare_max_pixels:
            return None
        with self._lock:
            match = next((k for k, (shape, _) in enumerate(self._spare) if shape == array.shape), None)
            out = self._spare.pop(match)[1] if match is not None else None
        return prepare(array, out=out)

    def recycle(self, batch: list[_Item]) -> None:
        """Keep the detector inputs of images whose faces have been found, for reuse."""
        with self._lock:
            for item in batch:
                if item.prepared is not None:
                    self._spare.append((item.image.array.shape, item.prepared))
                    item.prepared = None
            del self._spare[: max(0, len(self._spare) - self.spare_max)]


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="tagging", unit="img")


class _Worker:
    """Detects and tags one batch of loaded images."""

    def __init__(self, *, detector: Detector, plan: list[tuple[Tagger, tuple[str, ...]]], min_face: int):
        self.detector, self.plan, self.min_face = detector, plan, min_face

    def detect(self, batch: list[_Item]) -> None:
        """Find the faces of the batch's decoded images that the image tasks left undetected.

        One call for all of them (a GPU session stacks images); if it fails,
        image by image, so that only the images it fails on become error rows.
        """
        todo = [item for item in batch if item.image is not None and item.faces is None]
        if not todo:
            return
        try:
            found = self._detect(todo)
        except Exception:  # noqa: BLE001 -- find the culprits below
            found = []
            for item in todo:
                try:
                    found.append(self._detect([item])[0])
                except Exception as exc:  # noqa: BLE001
                    found.append(item.detection_failed(exc).faces)
        for item, faces in zip(todo, found):
            item.faces = faces

    def _detect(self, items: list[_Item]) -> list[Faces]:
        arrays = [item.image.array for item in items]
        prepared = [item.prepared for item in items]
        if any(p is not None for p in prepared):
            return self.detector.detect_many(arrays, prepared=prepared)
        if hasattr(self.detector, "detect_many"):
            return self.detector.detect_many(arrays)
        return [self.detector.detect(a) for a in arrays]

    def tag(self, batch: list[_Item]) -> dict[str, pd.DataFrame]:
        """Tables of a detected batch: people rows, and every tagger on the batch's faces at once."""
        people, faces, keys, small = [], [], [], []
        for item in batch:
            if item.faces is None:
                continue
            sha, image, detections = item.sha256, item.image, item.faces
            width, height = image.original_size
            size_image, size_largest = face_sizes(detections.boxes / image.scale, width=width, height=height)
            for person in range(len(detections)):
                box = detections.boxes[person]
                people.append(dict(sha256=sha, person=person, **_box(box / image.scale),
                                   score=float(detections.scores[person]), size_image=float(size_image[person]),
                                   size_largest=float(size_largest[person])))
                if min(box[2] - box[0], box[3] - box[1]) < self.min_face:
                    small.append((sha, person))
                    continue
                landmarks = None if detections.landmarks is None else detections.landmarks[person]
                faces.append(Face(image.array, box, landmarks))
                keys.append((sha, person))
        return {
            "people": pd.DataFrame(people, columns=list(tables.PEOPLE_COLUMNS)),
            "labels": pd.DataFrame(self._labels(faces, keys) + self._unclear(small), columns=list(LABEL_COLUMNS)),
            "done": pd.DataFrame([{"sha256": item.sha256, "error": item.error} for item in batch],
                                 columns=list(DONE_COLUMNS)),
        }

    def _labels(self, faces: list[Face], keys: list[tuple[str, int]]) -> list[dict]:
        rows = []
        if not faces:
            return rows
        for tagger, attributes in self.plan:
            output = tagger.tag(faces, attributes=attributes)
            for attribute in attributes:
                labels, confidences = output[attribute]
                rows.extend(
                    dict(sha256=sha, person=person, attribute=attribute, label=label,
                         confidence=float(conf), tagger=tagger.name)
                    for (sha, person), label, conf in zip(keys, labels, confidences)
                )
        return rows

    def _unclear(self, keys) -> list[dict]:
        return [
            dict(sha256=sha, person=person, attribute=attribute, label=UNCLEAR, confidence=np.nan, tagger=tagger.name)
            for sha, person in keys for tagger, attributes in self.plan for attribute in attributes
        ]


def _box(box) -> dict:
    return {name: float(v) for name, v in zip(("x0", "y0", "x1", "y1"), box)}


def _combine(*groups: list[dict]) -> dict[str, pd.DataFrame]:
    parts = [part for group in groups for part in group]
    return {
        name: tables.concat_rows([p[name] for p in parts if len(p[name])], columns)
        for name, columns in (("people", tables.PEOPLE_COLUMNS), ("labels", LABEL_COLUMNS), ("done", DONE_COLUMNS))
    }


def _tables_for(rows: pd.DataFrame, parts: dict[str, pd.DataFrame], *, policy: FacePolicy,
                kinds: Mapping[str, str] | None) -> TagResult:
    """Join per-image results to the images rows (one image file may serve several rows).

    The observations are those of the faces ``policy`` counts.
    """
    keys = rows[list(_KEY_COLUMNS) + ["sha256", "path"]]
    people = parts["people"].sort_values(["sha256", "person"]).reset_index(drop=True)
    # With no rows, concat_rows gives object columns: give numbers
    # their dtype, or text_columns below would turn the boxes into text.
    people = people.astype({"person": "int64", **{c: "float64" for c in tables.PEOPLE_COLUMNS[2:]}})
    labels = policy.select(parts["labels"].merge(keys, on="sha256"), people, kinds=kinds)
    observations = labels[list(tables.OBSERVATION_COLUMNS)]
    attribute_order = {a: i for i, a in enumerate(dict.fromkeys(observations["attribute"]))}
    observations = observations.assign(_order=observations["attribute"].map(attribute_order)).sort_values(
        [*_KEY_COLUMNS, "person", "_order"]).drop(columns="_order").reset_index(drop=True)
    observations["person"] = observations["person"].astype("int64")
    observations["confidence"] = observations["confidence"].astype("float64")
    failed = parts["done"][parts["done"]["error"].notna()]
    errors = failed.merge(keys, on="sha256")[list(ERROR_COLUMNS)].reset_index(drop=True)
    errors["sha256"] = errors["sha256"].where(~errors["sha256"].astype(str).str.startswith(_MISSING), None)
    # Text as it reads back from parquet, so fresh and cached results compare equal.
    return TagResult(people=tables.text_columns(people), observations=tables.text_columns(observations),
                     errors=tables.text_columns(errors))

