"""Is a face good enough to tag?  Size, sharpness and head turn, measured per face.

A tagger's confidence alone does not know when its input is poor: a 20 px
face, a motion-blurred one or a head in profile can get a confident wrong
label.  :func:`face_quality` measures three things on every face and
:meth:`QualityLimits.passes` says which faces a tagger should call
``unclear`` regardless of its confidence:

- **size**: the shorter side of the detector's box, in pixels of the image
  the detector saw;
- **sharpness**: the variance of the 4-neighbour Laplacian of the face's
  aligned grey chip (64 px, as the age network sees it) divided by the
  chip's own grey-level variance, so that a dim or low-contrast face is not
  taken for a blurred one.  Blurring a face lowers it; seven in eight faces
  of the shared validation sets score 0.2-1.9;
- **turn** (yaw): where the nose lies between the eyes, from five landmarks.
  The nose is projected onto the line through the eye centres; 0 = midway
  (frontal), 1 = in front of one eye, above 1 = beyond it (profile).  The
  measure does not depend on the landmark order, on mirroring or on the
  head's roll.

Examples
--------
>>> import numpy as np
>>> frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)
>>> round(turn(frontal), 2)
0.0
>>> profile = frontal.copy(); profile[2, 0] = 75
>>> turn(profile) > 1
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QualityLimits:
    """Faces outside these limits are tagged ``unclear``.

    Attributes
    ----------
    min_size : float
        Minimum shorter box side, pixels.
    min_sharpness : float
        Minimum :func:`sharpness` of the aligned chip.
    max_turn : float
        Maximum :func:`turn` (nose offset in half eye-distances).
    """

    min_size: float
    min_sharpness: float
    max_turn: float

    def passes(self, size: np.ndarray, sharp: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """Boolean mask of the faces within every limit (an unknown turn, NaN, passes)."""
        size, sharp, yaw = (np.asarray(v, dtype=np.float64) for v in (size, sharp, yaw))
        return (size >= self.min_size) & (sharp >= self.min_sharpness) & ~(yaw > self.max_turn)

    def settings(self) -> dict:
        """The limits as the short keys written into a tagger's name."""
        return {"min_px": self.min_size, "min_sharp": self.min_sharpness, "max_turn": self.max_turn}


#: No limit at all (every face passes): for measuring a tagger's raw behaviour.
NO_LIMITS = QualityLimits(min_size=0.0, min_sharpness=0.0, max_turn=np.inf)


def box_size(box) -> float:
    """Shorter side of an ``x0, y0, x1, y1`` box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return min(x1 - x0, y1 - y0)


def sharpness(chip: np.ndarray) -> float:
    """Laplacian variance of a face chip over its grey-level variance (0 for a flat chip)."""
    chip = np.asarray(chip)
    # the channel sum, not the mean: the ratio does not care about the scale, and it is faster
    grey = (chip.sum(axis=2, dtype=np.float64) if chip.ndim == 3 else chip.astype(np.float64))
    laplacian = grey[1:-1, 2:] + grey[1:-1, :-2] + grey[2:, 1:-1] + grey[:-2, 1:-1] - 4 * grey[1:-1, 1:-1]
    spread = grey.var()
    return float(laplacian.var() / spread) if spread > 1e-9 else 0.0


def turn(landmarks: np.ndarray | None) -> float:
    """Head turn from five landmarks (two eyes, nose, two mouth corners); NaN when unknown.

    Eyes are points 0 and 1, the nose point 2 (CenterFace's and FairFace's layout).
    """
    if landmarks is None:
        return float("nan")
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if points.shape[0] < 3 or not np.all(np.isfinite(points[:3])):
        return float("nan")
    return _turn(points[0], points[1], points[2])


def dlib_turn(points: np.ndarray) -> float:
    """:func:`turn` from dlib's five-point shape (two corners per eye, then the nose base)."""
    points = np.asarray(points, dtype=np.float64).reshape(5, 2)
    return _turn(points[:2].mean(axis=0), points[2:4].mean(axis=0), points[4])


def _turn(eye_a: np.ndarray, eye_b: np.ndarray, nose: np.ndarray) -> float:
    axis = eye_b - eye_a
    half = np.linalg.norm(axis) / 2
    if half < 1e-9:
        return float("inf")  # both eyes on one point: the face is seen edge-on
    offset = np.dot(nose - (eye_a + eye_b) / 2, axis / (2 * half))
    return float(abs(offset) / half)
