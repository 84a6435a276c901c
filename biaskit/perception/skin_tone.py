"""Monk Skin Tone by colorimetry: skin pixels of a face -> CIELAB -> nearest MST swatch.

No weights: the face box (and landmarks, when the detector gives them) select a
skin region, a robust colour filter removes what is not skin, and the median
skin colour is matched to the ten MST swatches of :data:`biaskit.taxonomy.MST_SWATCHES`.

1. **Region.** An ellipse inside the face box (drops background and hair at
   the corners), minus rectangles over the eyes *and* brows and over the mouth,
   placed from the landmarks (or from a typical frontal layout without them).
2. **Robust colour filter** (in CIELAB).  Specular highlights (L* far above
   the region's median) and shadows / hair / nostrils (far below) are dropped
   by a median-absolute-deviation rule; then, twice, pixels farther than 2.5
   robust standard deviations (min 6 Delta E) from the median colour are dropped.
3. **Match.** The median L*a*b* of the remaining pixels is compared to the
   swatches by **CIEDE2000 with k_L = 2**: lightness differences count half, as
   in textile colour matching, because exposure and shading shift L* far more
   than they shift hue and chroma.  With k_L = 1 a face lit 15 % brighter (in
   linear light) is two tones off for MST 3; with k_L = 2 every tone stays
   within one.
4. **Confidence.** The share of skin pixels whose own nearest swatch lies
   within one tone of the chosen one; ``unclear`` when under the threshold or
   when fewer than ``min_pixels`` skin pixels remain.

Everything is vectorised numpy; a face costs well under a millisecond.

Examples
--------
>>> from skimage.data import astronaut
>>> from biaskit.perception.skin_tone import skin_tone
>>> skin_tone(astronaut(), box=(181, 58, 270, 178)).label     # doctest: +SKIP
'MST4'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from biaskit.perception.base import Face, TagOutput, check_attributes, settings_name
from biaskit.perception.color import ciede2000, hex_to_rgb, srgb_to_lab
from biaskit.taxonomy import MST_SWATCHES, SKIN_TONE, UNCLEAR

SWATCH_LAB = srgb_to_lab(np.array([hex_to_rgb(code) for code in MST_SWATCHES.values()]))
LIGHTNESS_WEIGHT = 2.0  # CIEDE2000 k_L
#: Faces are reduced to a square patch of this side before analysis.
ANALYSIS_SIDE = 24
#: Typical landmark positions in box-relative units (CenterFace-sized box).
DEFAULT_LANDMARKS = np.array([[0.28, 0.38], [0.72, 0.38], [0.5, 0.56], [0.32, 0.74], [0.68, 0.74]])


@dataclass(frozen=True)
class SkinTone:
    """Result for one face: label, confidence, median skin colour and pixel count."""

    label: str
    confidence: float
    lab: tuple[float, float, float]
    pixels: int


@functools.lru_cache(maxsize=1)
def _tone_lut() -> np.ndarray:
    """Nearest tone of every RGB colour quantised to 5 bits a channel (built once, ~30 ms).

    Used only for the per-pixel votes behind the confidence; the label itself
    comes from the exact median colour.
    """
    levels = (np.arange(32) * 8 + 4).astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return nearest_tone(srgb_to_lab(grid)).astype(np.int8).reshape(32, 32, 32)


def pixel_tones(rgb: np.ndarray) -> np.ndarray:
    """Nearest tone index of each ``[..., 3]`` uint8 pixel (5-bit lookup table)."""
    q = np.asarray(rgb, dtype=np.uint8) >> 3
    return _tone_lut()[q[..., 0], q[..., 1], q[..., 2]]


def nearest_tone(lab: np.ndarray) -> np.ndarray:
    """Index (0 = MST1) of the nearest swatch for each ``[..., 3]`` Lab colour."""
    distances = ciede2000(np.asarray(lab)[..., None, :], SWATCH_LAB, k_l=LIGHTNESS_WEIGHT)
    return distances.argmin(axis=-1)


def skin_tone(image: np.ndarray, box, landmarks: np.ndarray | None = None, *,
              threshold: float = 0.5, min_pixels: int = 30) -> SkinTone:
    """Monk Skin Tone of the face at ``box`` (x0, y0, x1, y1) in an RGB uint8 ``image``."""
    return skin_tones([(image, box, landmarks)], threshold=threshold, min_pixels=min_pixels)[0]


def skin_tones(faces, *, threshold: float = 0.5, min_pixels: int = 30) -> list[SkinTone]:
    """:func:`skin_tone` of many ``(image, box, landmarks)`` faces in one vectorised pass.

    Every face is reduced to an ``ANALYSIS_SIDE`` square patch; masks, robust
    filtering, medians and swatch matching then run on the ``[n, pixels]``
    stack at once, so the per-face cost is little more than cutting the patch.
    """
    if not faces:
        return []
    patches, points = zip(*(_face_patch(image, np.asarray(box, float), lm) for image, box, lm in faces))
    rgb = np.stack(patches).reshape(len(faces), -1, 3)
    lab = srgb_to_lab(rgb).astype(np.float32)  # float32: the sorts behind the medians run faster
    skin = _robust_skin(lab, _region_masks(np.stack(points)))
    counts = skin.sum(axis=1)
    colour = np.stack([masked_median(lab[..., c], skin) for c in range(3)], axis=1).astype(np.float64)
    tone = nearest_tone(np.nan_to_num(colour))
    near = np.abs(pixel_tones(rgb) - tone[:, None]) <= 1
    confidence = (near & skin).sum(axis=1) / np.maximum(counts, 1)
    results = []
    for k in range(len(faces)):
        if counts[k] < min_pixels:
            results.append(SkinTone(UNCLEAR, 0.0, (np.nan, np.nan, np.nan), int(counts[k])))
            continue
        label = SKIN_TONE[tone[k]] if confidence[k] >= threshold else UNCLEAR
        results.append(SkinTone(label, float(confidence[k]), tuple(float(v) for v in colour[k]), int(counts[k])))
    return results


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise median of ``values[mask]`` for ``[n, p]`` arrays (NaN for an empty row)."""
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    count = mask.sum(axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.clip((count - 1) // 2, 0, None)]
    high = ordered[rows, np.clip(count // 2, 0, values.shape[1] - 1)]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (low + high) / 2, np.nan)


def _face_patch(image, box, landmarks):
    """The box's pixels as an ANALYSIS_SIDE square patch, and landmarks in box units."""
    height, width = image.shape[:2]
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(width, max(np.ceil(box[2]), x0 + 1))), int(min(height, max(np.ceil(box[3]), y0 + 1)))
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    # box-filter averaging keeps the mean colour while cutting the pixels to classify
    patch = np.asarray(Image.fromarray(crop).resize((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BOX))
    if landmarks is None:
        return patch, DEFAULT_LANDMARKS
    return patch, (np.asarray(landmarks, float) - [x0, y0]) / [max(x1 - x0, 1), max(y1 - y0, 1)]


@functools.lru_cache(maxsize=1)
def _unit_grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of the analysis patch in box units, flattened."""
    v, u = np.mgrid[0:ANALYSIS_SIDE, 0:ANALYSIS_SIDE]
    return ((u + 0.5) / ANALYSIS_SIDE).ravel(), ((v + 0.5) / ANALYSIS_SIDE).ravel()


def _region_masks(points: np.ndarray) -> np.ndarray:
    """Inner face ellipse minus eyes+brows and mouth: boolean ``[n, pixels]``."""
    u, v = _unit_grid()
    col = lambda values: np.asarray(values)[:, None]  # noqa: E731  (per-face parameter -> column)
    mask = ((u - col(points[:, 2, 0])) / 0.40) ** 2 + ((v - 0.52) / 0.46) ** 2 <= 1.0
    eye_half_width = col(np.maximum(0.12, 0.3 * np.abs(points[:, 1, 0] - points[:, 0, 0])))
    for eye in (0, 1):
        # brows sit above the eye, about as far as the eye is wide
        eye_u, eye_v = col(points[:, eye, 0]), col(points[:, eye, 1])
        mask &= ~((np.abs(u - eye_u) < eye_half_width) & (v > eye_v - 0.17) & (v < eye_v + 0.07))
    mouth = points[:, 3:].mean(axis=1)
    mouth_half_width = col(np.abs(points[:, 4, 0] - points[:, 3, 0]) / 2 + 0.06)
    mask &= ~((np.abs(u - col(mouth[:, 0])) < mouth_half_width) & (np.abs(v - col(mouth[:, 1])) < 0.08))
    return mask


def _robust_skin(lab: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Region pixels that are skin: no highlights, shadows, hair or stray colours (``[n, p]``)."""
    keep = region.copy()
    lightness = lab[..., 0]
    centre = masked_median(lightness, keep)[:, None]
    spread = np.maximum(1.4826 * masked_median(np.abs(lightness - centre), keep), 2.0)[:, None]
    keep &= np.abs(lightness - centre) <= 3.0 * spread
    for _ in range(2):
        centre = np.stack([masked_median(lab[..., c], keep) for c in range(3)], axis=1)[:, None, :]
        distance = np.linalg.norm(lab - centre, axis=-1)
        limit = np.maximum(2.5 * 1.4826 * masked_median(distance, keep), 6.0)[:, None]
        keep &= distance <= limit
    return keep


class SkinToneTagger:
    """The ``skin_tone`` attribute by colorimetry (see the module docstring).

    Parameters
    ----------
    threshold : float
        Minimum share of skin pixels within one tone of the label.
    min_pixels : int
        Fewer skin pixels than this (after reduction) -> ``unclear``.
    """

    attributes = ("skin_tone",)

    def __init__(self, *, threshold: float = 0.5, min_pixels: int = 30):
        self.threshold = float(threshold)
        self.min_pixels = int(min_pixels)
        self.name = settings_name(
            "mst-colorimetry", threshold=self.threshold, min_pixels=self.min_pixels, de="ciede2000_kL2"
        )
        self.calls = 0

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] = ("skin_tone",)) -> TagOutput:
        check_attributes(self.name, attributes, self.attributes)
        self.calls += 1
        results = skin_tones([(f.image, f.box, f.landmarks) for f in faces],
                             threshold=self.threshold, min_pixels=self.min_pixels)
        return {"skin_tone": ([r.label for r in results], np.array([r.confidence for r in results]))}
