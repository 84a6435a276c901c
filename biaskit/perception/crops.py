"""Face crops for the neural taggers: aligned from five landmarks, as FairFace does.

FairFace's classifiers were trained on faces aligned with dlib's
``get_face_chip(..., padding=0.25)``: eyes level, face centred, a quarter of
the face width as margin.  :func:`aligned_crop` reproduces that geometry from
any five landmarks (least-squares similarity transform to a canonical
five-point template); without landmarks, :func:`box_crop` cuts a square
around the box with the same margin.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from biaskit.perception.base import Face

# ArcFace's canonical 5-point layout in a tight 112x112 face (eyes, nose, mouth corners).
_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
DEFAULT_PADDING = 0.25


def template(size: int, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """Landmark target positions in a ``size``-pixel crop with ``padding`` margin."""
    unit = _TEMPLATE_112 / 112.0
    return (unit + padding) / (1 + 2 * padding) * size


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 matrix of the least-squares similarity mapping ``source`` points onto ``target``.

    Umeyama (1991): rotation, uniform scale and translation, no shear.
    """
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src.var(axis=0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, *, size: int, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """``[size, size, 3]`` uint8 face crop with the landmarks moved onto the template."""
    forward = similarity_transform(np.asarray(landmarks, float), template(size, padding))
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]  # PIL maps output -> input
    warped = Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, data=tuple(inverse.ravel()), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped)


def box_crop(image: np.ndarray, box, *, size: int, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """``[size, size, 3]`` square crop around ``box`` with ``padding`` margin.

    The square is shifted (and if need be shrunk) to stay inside the image, so a
    face that fills the whole image (an already-cropped face) is used as it is.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    height, width = image.shape[:2]
    side = min(max(x1 - x0, y1 - y0) * (1 + 2 * padding), width, height)
    left = min(max((x0 + x1) / 2 - side / 2, 0.0), width - side)
    top = min(max((y0 + y1) / 2 - side / 2, 0.0), height - side)
    region = (left, top, left + side, top + side)
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR, box=region)
    return np.asarray(resized)


def face_crop(face: Face, *, size: int, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """Aligned crop when the face has landmarks, else a padded box crop."""
    if face.landmarks is not None and np.all(np.isfinite(face.landmarks)):
        return aligned_crop(face.image, face.landmarks, size=size, padding=padding)
    return box_crop(face.image, face.box, size=size, padding=padding)
