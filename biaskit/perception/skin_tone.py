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

from dataclasses import dataclass

import numpy as np
from PIL import Image

from biaskit.perception.base import Face, TagOutput, check_attributes, settings_name
from biaskit.perception.color import ciede2000, hex_to_rgb, srgb_to_lab
from biaskit.taxonomy import MST_SWATCHES, SKIN_TONE, UNCLEAR

SWATCH_LAB = srgb_to_lab(np.array([hex_to_rgb(code) for code in MST_SWATCHES.values()]))
LIGHTNESS_WEIGHT = 2.0  # CIEDE2000 k_L
#: Faces are reduced to about this many pixels on the short side before analysis.
ANALYSIS_SIDE = 32
#: Typical landmark positions in box-relative units (CenterFace-sized box).
DEFAULT_LANDMARKS = np.array([[0.28, 0.38], [0.72, 0.38], [0.5, 0.56], [0.32, 0.74], [0.68, 0.74]])


@dataclass(frozen=True)
class SkinTone:
    """Result for one face: label, confidence, median skin colour and pixel count."""

    label: str
    confidence: float
    lab: tuple[float, float, float]
    pixels: int


def nearest_tone(lab: np.ndarray) -> np.ndarray:
    """Index (0 = MST1) of the nearest swatch for each ``[..., 3]`` Lab colour."""
    distances = ciede2000(np.asarray(lab)[..., None, :], SWATCH_LAB, k_l=LIGHTNESS_WEIGHT)
    return distances.argmin(axis=-1)


def skin_tone(
    image: np.ndarray,
    box,
    landmarks: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    min_pixels: int = 30,
) -> SkinTone:
    """Monk Skin Tone of the face at ``box`` (x0, y0, x1, y1) in an RGB uint8 ``image``."""
    crop, points = _face_crop(image, np.asarray(box, dtype=float), landmarks)
    lab = srgb_to_lab(crop)
    skin = _robust_skin(lab, _region_mask(crop.shape[:2], points))
    pixels = lab[skin]
    if len(pixels) < min_pixels:
        return SkinTone(UNCLEAR, 0.0, (np.nan, np.nan, np.nan), int(len(pixels)))
    colour = np.median(pixels, axis=0)
    tone = int(nearest_tone(colour))
    votes = nearest_tone(pixels)
    confidence = float(np.mean(np.abs(votes - tone) <= 1))
    label = SKIN_TONE[tone] if confidence >= threshold else UNCLEAR
    return SkinTone(label, confidence, tuple(float(v) for v in colour), int(len(pixels)))


def _face_crop(image, box, landmarks):
    """The box's pixels, reduced to ~ANALYSIS_SIDE px, and landmarks in crop-relative units."""
    height, width = image.shape[:2]
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(width, np.ceil(box[2]))), int(min(height, np.ceil(box[3])))
    crop = image[y0:y1, x0:x1]
    shrink = ANALYSIS_SIDE / min(crop.shape[:2]) if crop.size else 1.0
    if shrink < 1.0:
        # box-filter averaging: same mean colour, far fewer pixels to classify
        size = (max(1, round(crop.shape[1] * shrink)), max(1, round(crop.shape[0] * shrink)))
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.BOX))
    if landmarks is None or x1 <= x0 or y1 <= y0:
        points = DEFAULT_LANDMARKS
    else:
        points = (np.asarray(landmarks, float) - [x0, y0]) / [x1 - x0, y1 - y0]
    return crop, points


def _region_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Inner face ellipse minus eyes+brows and mouth (boolean ``[h, w]``)."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w]
    u, v = (u + 0.5) / max(w, 1), (v + 0.5) / max(h, 1)
    centre_u = points[2, 0]
    mask = ((u - centre_u) / 0.40) ** 2 + ((v - 0.52) / 0.46) ** 2 <= 1.0
    eye_half_width = max(0.12, 0.3 * abs(points[1, 0] - points[0, 0]))
    for eye in points[:2]:
        # brows sit above the eye, about as far as the eye is wide
        mask &= ~((np.abs(u - eye[0]) < eye_half_width) & (v > eye[1] - 0.17) & (v < eye[1] + 0.07))
    mouth = points[3:].mean(axis=0)
    mouth_half_width = abs(points[4, 0] - points[3, 0]) / 2 + 0.06
    mask &= ~((np.abs(u - mouth[0]) < mouth_half_width) & (np.abs(v - mouth[1]) < 0.08))
    return mask


def _robust_skin(lab: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Region pixels that are skin: no highlights, shadows, hair or stray colours."""
    keep = region.copy()
    if keep.sum() == 0:
        return keep
    lightness = lab[..., 0]
    centre = np.median(lightness[keep])
    spread = max(1.4826 * np.median(np.abs(lightness[keep] - centre)), 2.0)
    keep &= np.abs(lightness - centre) <= 3.0 * spread
    for _ in range(2):
        if keep.sum() == 0:
            break
        centre = np.median(lab[keep], axis=0)
        distance = np.linalg.norm(lab - centre, axis=-1)
        limit = max(2.5 * 1.4826 * np.median(distance[keep]), 6.0)
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
        results = [
            skin_tone(f.image, f.box, f.landmarks, threshold=self.threshold, min_pixels=self.min_pixels)
            for f in faces
        ]
        return {"skin_tone": ([r.label for r in results], np.array([r.confidence for r in results]))}
