"""Monk Skin Tone from the perceived lightness of a face's skin, calibrated on real photographs.

No weights.  The landmarks (or, without them, the face box) select the skin,
the face's own highlights set the exposure, and a calibrated curve maps the
exposure-normalised skin lightness to the ten Monk steps.

1. **Region.** A frame around the face set by the landmarks' own geometry
   (:func:`face_frame`: the same face reads the same at any size in pixels,
   which a detector's box, whose margins change with the face's size, does
   not give), or the box without landmarks.  An ellipse inside it (drops
   background and hair at the corners), minus rectangles over the eyes *and*
   brows and over the mouth, placed from the landmarks (or from a typical
   frontal layout without them).
2. **Robust colour filter** (in CIELAB, on the frame area-averaged to a 24 px
   square).
   Specular highlights (L* far above the region's median) and shadows / hair /
   nostrils (far below) are dropped by a median-absolute-deviation rule; then,
   twice, pixels farther than 2.5 robust standard deviations (min 6 Delta E)
   from the median colour are dropped.  The skin colour is the median of what
   remains.
3. **Exposure.** The face's highlight luminance ``H`` (99.8th percentile of the
   frame area-averaged to 48 px) tells how the photograph was exposed:
   speculars, eye whites and teeth reflect about as much light whatever the
   skin.  The skin luminance ``Y`` becomes ``Y / H ** 0.75`` (L* of that is the
   *normalised lightness*).  A face whose highlights reach white is taken at
   face value; a dark photograph is lifted.  The power is partial because a
   face need not show a highlight: with 1.0 a face without one (and a dark
   face, whose brightest skin is its highlight) would be lifted too far.
   Only lightness is used: the Monk scale runs mostly along lightness, and
   hue and chroma move with colour casts (a 15 % red/blue cast shifts b* by
   6 but L* by 1).
4. **Tone curve.** A monotone piecewise-linear curve from normalised lightness
   to a continuous Monk score (:data:`TONE_CURVE`); the label is the nearest
   step.  UTKFace has no Monk labels, so the curve is anchored, not fitted:
   at the light and dark ends by the swatches themselves (a face painted in
   swatch *k* reads within one step of *k*), in the middle by the median
   normalised lightness of White (-> MST4) and Black (-> MST7) adults on the
   calibration half of UTKFace (``benchmarks/bench_skin_tone.py --calibrate``).
   Photographs render light skin darker and dark skin lighter than the printed
   swatches (shading, tone curves, auto-exposure), which is why the middle of
   the curve is steeper than the swatches' own lightness.  The result is the
   skin tone *as the photograph shows it*: a face in deep shade or lit by a
   dark exposure still reads darker, beyond what its highlights correct.
5. **Abstention** (``unclear``, confidence 0): a grayscale or toned (sepia)
   image, whose chromaticity hardly varies within the frame; fewer than ``min_pixels`` skin
   pixels; clipped or near-black skin (extreme exposure); a skin colour too
   grey to be skin (low chroma) or with a hue no skin has under roughly white
   light (a strong colour cast).
6. **Confidence.** The probability that the label is the step the score
   falls in when the measured lightness is uncertain by the skin pixels' own
   robust spread (uneven light, make-up, stubble) times ``SPREAD_WEIGHT``:
   ``Phi((k + 0.5 - t) / s) - Phi((k - 0.5 - t) / s)`` with ``s`` that spread
   carried through the curve.  Faces near a step boundary, on a steep part of
   the curve or unevenly lit score low; ``threshold`` drops them.

Everything is vectorised numpy; a face costs well under a millisecond.

Examples
--------
>>> from skimage.data import astronaut
>>> from biaskit.perception.skin_tone import skin_tone
>>> skin_tone(astronaut(), box=(181, 58, 270, 178)).label     # doctest: +SKIP
'MST3'
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.special import ndtr

from biaskit.perception.base import Face, TagOutput, check_attributes, settings_name
from biaskit.perception.color import (
    SRGB_TO_LINEAR, hex_to_rgb, lab_to_srgb, lightness_to_luminance, luminance_to_lightness, srgb_to_lab,
)
from biaskit.taxonomy import MST_SWATCHES, SKIN_TONE, UNCLEAR

#: The skin is read from the face's frame reduced to a square patch of this side (2 x 2 blocks
#: of the SAMPLE_SIDE sample, averaged).
ANALYSIS_SIDE = 24
#: Typical landmark positions in box-relative units (CenterFace-sized box).
DEFAULT_LANDMARKS = np.array([[0.28, 0.38], [0.72, 0.38], [0.5, 0.56], [0.32, 0.74], [0.68, 0.74]])
#: Skin luminance is divided by the face's highlight luminance to this power (chosen on the
#: calibration half: 0.5 and 0.75 separate Black and White adults alike, AUC 0.795 and 0.794,
#: and 0.75 leaves half the shift of a 0.5 EV change; 1.0 separates less, 0.786).
EXPOSURE_WEIGHT = 0.75
#: The 5th brightest of the 48 x 48 sample: averaging softens small highlights, and the 99.5th
#: (12th brightest) missed a painted face's when the whole image was its box (a face the
#: detector does not find); 99.8 and 99.9 separate the calibration half alike (0.811, 0.813),
#: 99.8 moves less with the face's size.
HIGHLIGHT_PERCENTILE = 99.8
#: The analysed frame around the landmarks (:func:`face_frame`), in units of d = sqrt(eye distance x
#: eye-to-mouth distance): UTKFace medians of CenterFace's boxes (width 2.21 d, height 2.48 d; the
#: point halfway between eyes and mouth at 0.50 of the width, 0.52 of the height).
FRAME_SIZE = (2.21, 2.48)
FRAME_CENTRE = (0.50, 0.52)
#: A landmark frame narrower or wider than these multiples of the box is a landmark failure: the box is used.
FRAME_LIMITS = (0.5, 2.0)
#: Rec. 709 luma weights in 1/256 (integer luma of uint8 codes).
LUMA_WEIGHTS = np.array([54, 183, 19], dtype=np.uint16)
#: Highlight and monochrome test read the frame area-averaged to this many x this many pixels:
#: what a face shows at this size whatever its size in the image (a grid of single pixels
#: picked up a different few highlights at each scale: 3 L* of highlight between the same
#: face pasted at 0.5x and 2x; the average softens the highlights alike at every scale, and
#: 48 keeps a painted face's small highlight where 32 erased it).
SAMPLE_SIDE = 2 * ANALYSIS_SIDE
#: The monochrome test reads this many x this many single pixels of the frame (inside the image).
MONOCHROME_SIDE = 32
_ALL_INSIDE = np.ones((SAMPLE_SIDE, SAMPLE_SIDE), bool)
_ALL_INSIDE.flags.writeable = False
#: (normalised L*, Monk score) knots, L* falling.  Ends: the swatches' own L* (MST1-3 are
#: all near L* 93 and differ in hue, so lightness puts them together at 2-2.5; MST4 87.6,
#: MST5 77.9, MST7 42.5, MST8 30.7, MST9 21.1, MST10 14.6).  Middle: the calibration-half
#: medians of UTKFace White (73.2 -> 4) and Black (57.7 -> 7) adults.
TONE_CURVE = np.array([
    (100.0, 1.0), (93.0, 2.2), (87.6, 3.0), (77.9, 3.6), (73.2, 4.0), (57.7, 7.0),
    (42.5, 8.0), (30.7, 9.0), (21.1, 9.6), (14.6, 10.0),
])
#: Lightness uncertainty = this times the robust standard deviation of the skin pixels' L*.
SPREAD_WEIGHT = 0.2
#: Below this lightness uncertainty (L*) a face counts as evenly lit.
MIN_LIGHTNESS_ERROR = 1.0
#: Pixels whose R + G + B codes are under this are too dark for a chromaticity.
MONOCHROME_DARK = 60
#: Chromaticity standard deviation in the face box below this: grayscale or toned (550 UTKFace
#: adults: colour ones >= 0.013 but for two near-monochrome ones, 0.003-0.004; their sepia
#: versions <= 0.0038; 13 of them are grayscale, 0).
MONOCHROME_SPREAD = 0.008
#: Skin median chroma C* below this is too grey to be skin (UTKFace: 5th percentile 8; MST10 3.8).
MIN_SKIN_CHROMA = 3.0
#: Hue angles (degrees, a*b*) skin takes under roughly white light (UTKFace: 1-99 % 1-81;
#: +-15 % casts 0.5-99.5 % -106..101; clipped very light skin, a* slightly negative, ~102).
SKIN_HUE = (0.0, 115.0)
#: Median skin L* outside this range: black or wholly clipped skin.
SKIN_LIGHTNESS = (10.0, 99.5)

MONOCHROME = "grayscale or toned image"
FEW_PIXELS = "too few skin pixels"
GREY_SKIN = "skin colour too grey"
COLOUR_CAST = "colour cast"
EXPOSURE = "extreme exposure"


@dataclass(frozen=True)
class SkinTone:
    """Result for one face.

    ``label`` (``MSTk`` or ``unclear``), ``confidence``, the median skin colour
    ``lab``, the skin pixel count, the continuous Monk ``score``, the
    exposure-normalised ``lightness`` and, when unclear for a reason other than
    the threshold, that ``reason``.
    """

    label: str
    confidence: float
    lab: tuple[float, float, float]
    pixels: int
    score: float = float("nan")
    lightness: float = float("nan")
    reason: str = ""


def tone_score(lightness: np.ndarray) -> np.ndarray:
    """Continuous Monk score (1 .. 10) of normalised skin lightness (L*), by :data:`TONE_CURVE`."""
    return np.interp(-np.asarray(lightness, float), -TONE_CURVE[:, 0], TONE_CURVE[:, 1])


def reference_colour(tone: int) -> tuple[int, int, int]:
    """sRGB of a flat face that reads ``MST<tone>`` in the middle of its step.

    The swatch's hue and chroma (a*, b*) at the lightness halfway across the
    step's range on :data:`TONE_CURVE` (kept inside :data:`SKIN_LIGHTNESS`).
    Known answers for tests and validation; the swatches themselves read
    within one step (module docstring, step 4).
    """
    tones, lightness = TONE_CURVE[:, 1], TONE_CURVE[:, 0]  # tone rising, lightness falling
    bounds = np.interp([tone - 0.5, tone + 0.5], tones, lightness)
    middle = np.mean(np.clip(bounds, SKIN_LIGHTNESS[0] + 1, SKIN_LIGHTNESS[1] - 1))
    _, a, b = srgb_to_lab(np.array(hex_to_rgb(MST_SWATCHES[SKIN_TONE[tone - 1]])))
    return tuple(int(v) for v in lab_to_srgb(np.array([middle, a, b])))


def normalised_lightness(skin_lightness: np.ndarray, highlight: np.ndarray) -> np.ndarray:
    """Skin L* with the exposure set by the face's highlight luminance (module docstring, step 3)."""
    luminance = lightness_to_luminance(skin_lightness)
    reference = np.maximum(np.maximum(highlight, luminance), 1e-4)
    return luminance_to_lightness(np.minimum(luminance / reference**EXPOSURE_WEIGHT, 1.0))


def label_confidence(lightness: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest step (0 = MST1) and the probability it is right, given lightness uncertain by ``spread``."""
    score = tone_score(lightness)
    step = np.clip(np.floor(score + 0.5), 1, 10)
    error = np.maximum(SPREAD_WEIGHT * spread, MIN_LIGHTNESS_ERROR)
    # the uncertainty carried through the curve: half the score range over +-error
    sigma = np.maximum((tone_score(lightness - error) - tone_score(lightness + error)) / 2, 1e-3)
    confidence = ndtr((step + 0.5 - score) / sigma) - ndtr((step - 0.5 - score) / sigma)
    return (step - 1).astype(int), confidence


def skin_tone(image: np.ndarray, box, landmarks: np.ndarray | None = None, *,
              threshold: float = 0.5, min_pixels: int = 30) -> SkinTone:
    """Monk Skin Tone of the face at ``box`` (x0, y0, x1, y1) in an RGB uint8 ``image``."""
    return skin_tones([(image, box, landmarks)], threshold=threshold, min_pixels=min_pixels)[0]


def skin_tones(faces, *, threshold: float = 0.5, min_pixels: int = 30) -> list[SkinTone]:
    """:func:`skin_tone` of many ``(image, box, landmarks)`` faces in one vectorised pass.

    Every face is reduced to an ``ANALYSIS_SIDE`` square patch; masks, robust
    filtering, medians and the tone curve then run on the ``[n, pixels]``
    stack at once, so the per-face cost is little more than cutting the patch.
    """
    if not faces:
        return []
    samples, within, grids, points = (np.stack(part) for part in zip(*(_face_patch(*face) for face in faces)))
    patches, inside = _halve(samples, within)
    lab = srgb_to_lab(patches.reshape(len(faces), -1, 3)).astype(np.float32)  # float32: faster sorts
    skin = _robust_skin(lab, _region_masks(points) & inside)
    counts = skin.sum(axis=1)
    colour = np.stack([masked_median(lab[..., c], skin) for c in range(3)], axis=1).astype(np.float64)
    spread = 1.4826 * masked_median(np.abs(lab[..., 0] - colour[:, :1].astype(np.float32)), skin)
    lightness = normalised_lightness(np.nan_to_num(colour[:, 0]), highlights(samples))
    step, confidence = label_confidence(lightness, np.nan_to_num(spread))
    score = tone_score(lightness)
    with np.errstate(invalid="ignore"):
        monochrome = chromaticity_spread(grids) < MONOCHROME_SPREAD  # NaN (too dark): the exposure check
    reasons = _reasons(colour, counts, monochrome, min_pixels)
    results = []
    for k, reason in enumerate(reasons):
        if reason:
            results.append(SkinTone(UNCLEAR, 0.0, tuple(float(v) for v in colour[k]), int(counts[k]), reason=reason))
            continue
        label = SKIN_TONE[step[k]] if confidence[k] >= threshold else UNCLEAR
        results.append(SkinTone(label, float(confidence[k]), tuple(float(v) for v in colour[k]), int(counts[k]),
                                float(score[k]), float(lightness[k])))
    return results


def _reasons(colour: np.ndarray, counts: np.ndarray, monochrome: np.ndarray, min_pixels: int) -> list[str]:
    """Why each face cannot be trusted ("" where it can), first reason that applies."""
    lightness, chroma = colour[:, 0], np.hypot(colour[:, 1], colour[:, 2])
    hue = np.degrees(np.arctan2(colour[:, 2], colour[:, 1]))
    with np.errstate(invalid="ignore"):  # NaN colour of a face without skin pixels: already FEW_PIXELS
        checks = [
            (monochrome, MONOCHROME),
            (counts < min_pixels, FEW_PIXELS),
            # black or clipped skin is grey too: exposure first, it is the cause
            ((lightness < SKIN_LIGHTNESS[0]) | (lightness > SKIN_LIGHTNESS[1]), EXPOSURE),
            (chroma < MIN_SKIN_CHROMA, GREY_SKIN),
            ((hue < SKIN_HUE[0]) | (hue > SKIN_HUE[1]), COLOUR_CAST),
        ]
    return [next((reason for failed, reason in checks if failed[k]), "") for k in range(len(colour))]


def chromaticity_spread(samples: np.ndarray) -> np.ndarray:
    """Standard deviation of the chromaticity ``(R, G, B) / (R + G + B)`` of the codes, per sample.

    ``samples`` is ``[n, h, w, 3]`` uint8.  Zero for a grayscale image, under
    0.004 for a sepia one (every pixel one chromaticity), 0.01-0.2 for colour
    photographs.  Dark and clipped pixels are left out: their chromaticity is
    rounding noise or clipping.  Fewer than ten usable pixels -> NaN (an
    exposure problem, not a monochrome image).
    """
    # one contiguous [n, p] array per channel: reductions over a length-3 axis are slow
    red, green, blue = (samples[..., c].reshape(len(samples), -1).astype(np.float32) for c in range(3))
    total = red + green + blue
    usable = (total > MONOCHROME_DARK) & (np.maximum(np.maximum(red, green), blue) < 250)
    count = usable.sum(axis=1)
    weight = usable / np.maximum(count, 1)[:, None]
    scale = 1 / np.maximum(total, 1)
    variance = 0.0
    for channel in (red, green, blue):
        chromaticity = channel * scale
        mean = (chromaticity * weight).sum(axis=1, keepdims=True)
        variance = variance + ((chromaticity - mean) ** 2 * weight).sum(axis=1)
    return np.where(count >= 10, np.sqrt(variance), np.nan)


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise median of ``values[mask]`` for ``[n, p]`` arrays (NaN for an empty row)."""
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    count = mask.sum(axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.clip((count - 1) // 2, 0, None)]
    high = ordered[rows, np.clip(count // 2, 0, values.shape[1] - 1)]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (low + high) / 2, np.nan)


def face_frame(box, landmarks) -> np.ndarray:
    """The part of the image analysed (x0, y0, x1, y1, floats): set by the landmarks when there are.

    A detector's box around the same face changes its margins with the face's
    size in pixels (CenterFace's box around one photograph pasted at 0.4x to
    3x moves its top edge by a fifth of the face's height); its landmarks
    move by a few hundredths.  The
    frame's size is :data:`FRAME_SIZE` times ``d``, the geometric mean of the
    eye distance and the eye-to-mouth distance (one tracks yaw, the other
    pitch), around the point halfway between the eyes and the mouth.  Landmarks
    that give a frame far from the box's size (a detector's failure) are
    ignored, as are missing ones.
    """
    box = np.asarray(box, float)
    if landmarks is None:
        return box
    (left_x, left_y), (right_x, right_y), _, (mouth_lx, mouth_ly), (mouth_rx, mouth_ry) = (
        np.asarray(landmarks, float).tolist())  # Python floats: a face's few numbers, numpy's overhead
    eye_x, eye_y = (left_x + right_x) / 2, (left_y + right_y) / 2
    mouth_x, mouth_y = (mouth_lx + mouth_rx) / 2, (mouth_ly + mouth_ry) / 2
    d = math.sqrt(math.hypot(right_x - left_x, right_y - left_y) * math.hypot(mouth_x - eye_x, mouth_y - eye_y))
    width, height = d * FRAME_SIZE[0], d * FRAME_SIZE[1]
    if not FRAME_LIMITS[0] <= width / max(box[2] - box[0], 1e-6) <= FRAME_LIMITS[1]:  # NaN fails too
        return box
    x0 = (eye_x + mouth_x) / 2 - FRAME_CENTRE[0] * width
    y0 = (eye_y + mouth_y) / 2 - FRAME_CENTRE[1] * height
    return np.array([x0, y0, x0 + width, y0 + height])


def _face_patch(image, box, landmarks):
    """The face's frame area-averaged to a SAMPLE_SIDE square, which of its pixels lie inside the
    image (the others are black), a MONOCHROME_SIDE grid of single pixels of its part inside the
    image, and the landmarks in frame units."""
    height, width = image.shape[:2]
    frame = face_frame(box, landmarks)
    left, top, right, bottom = frame.tolist()  # Python floats: a face's few numbers, numpy's overhead
    # the sample's pixels whose centres lie inside the image: rows r0..r1, columns c0..c1
    step_x, step_y = (right - left) / SAMPLE_SIDE, (bottom - top) / SAMPLE_SIDE
    c0, c1 = (min(max(math.ceil((edge - left) / step_x - 0.5), 0), SAMPLE_SIDE) for edge in (0, width))
    r0, r1 = (min(max(math.ceil((edge - top) / step_y - 0.5), 0), SAMPLE_SIDE) for edge in (0, height))
    # an integer window holding the frame's part inside the image, at least one pixel
    x0, y0 = min(max(math.floor(left), 0), width - 1), min(max(math.floor(top), 0), height - 1)
    x1, y1 = min(max(math.ceil(right), x0 + 1), width), min(max(math.ceil(bottom), y0 + 1), height)
    points = DEFAULT_LANDMARKS if landmarks is None else (
        (np.asarray(landmarks, float) - frame[:2]) / (right - left, bottom - top))
    if c1 <= c0 or r1 <= r0:  # no part of the frame in the image (a broken box): no pixels at all
        black = np.zeros((SAMPLE_SIDE, SAMPLE_SIDE, 3), np.uint8)
        return black, ~_ALL_INSIDE, black[:MONOCHROME_SIDE, :MONOCHROME_SIDE], points
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    # single pixels: averaging would mix clipped and unclipped pixels of a sepia image into new
    # chromaticities (a sepia face then varied as much as the least colourful colour photographs)
    grid = np.asarray(crop.resize((MONOCHROME_SIDE, MONOCHROME_SIDE), Image.Resampling.NEAREST, box=(
        min(max(left - x0, 0), x1 - x0 - 1), min(max(top - y0, 0), y1 - y0 - 1),
        max(min(right, x1) - x0, 1), max(min(bottom, y1) - y0, 1))))
    # box-filter averaging keeps the mean colour and is what the face shows at this size, whatever its size
    part = crop.resize((c1 - c0, r1 - r0), Image.Resampling.BOX, box=(
        max(left + c0 * step_x - x0, 0), max(top + r0 * step_y - y0, 0),
        min(left + c1 * step_x - x0, x1 - x0), min(top + r1 * step_y - y0, y1 - y0)))
    if (c0, r0, c1, r1) == (0, 0, SAMPLE_SIDE, SAMPLE_SIDE):
        return np.asarray(part), _ALL_INSIDE, grid, points
    sample, within = np.zeros((SAMPLE_SIDE, SAMPLE_SIDE, 3), np.uint8), np.zeros((SAMPLE_SIDE, SAMPLE_SIDE), bool)
    sample[r0:r1, c0:c1], within[r0:r1, c0:c1] = np.asarray(part), True
    return sample, within, grid, points


def _halve(samples: np.ndarray, within: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[n, 2s, 2s, 3]`` samples averaged over 2 x 2 blocks (the ANALYSIS_SIDE patch), and the
    patch pixels whose four sample pixels all lie inside the image, flattened to ``[n, s * s]``."""
    wide = samples.astype(np.uint16)
    blocks = wide[:, ::2, ::2] + wide[:, 1::2, ::2] + wide[:, ::2, 1::2] + wide[:, 1::2, 1::2]
    patches = ((blocks + 2) // 4).astype(np.uint8)  # rounded, as the resize rounds
    inside = within[:, ::2, ::2] & within[:, 1::2, ::2] & within[:, ::2, 1::2] & within[:, 1::2, 1::2]
    return patches, inside.reshape(len(samples), -1)


def highlights(samples: np.ndarray) -> np.ndarray:
    """HIGHLIGHT_PERCENTILE of the luminance of ``[n, h, w, 3]`` uint8 frame samples.

    Read from integer Rec. 709 luma (then linearised): highlights are near
    neutral, where luma and luminance agree, and a partition of integers is
    far cheaper than a sort of floats.
    """
    pixels = samples.reshape(len(samples), -1, 3).astype(np.uint16)
    luma = (pixels[..., 0] * LUMA_WEIGHTS[0] + pixels[..., 1] * LUMA_WEIGHTS[1]
            + pixels[..., 2] * LUMA_WEIGHTS[2]) >> 8
    rank = min(luma.shape[1] - 1, int(luma.shape[1] * HIGHLIGHT_PERCENTILE / 100))
    return SRGB_TO_LINEAR[np.partition(luma, rank, axis=1)[:, rank]]


@functools.lru_cache(maxsize=1)
def _unit_grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of the analysis patch in frame units, flattened."""
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
    """The ``skin_tone`` attribute from calibrated skin lightness (see the module docstring).

    Parameters
    ----------
    threshold : float
        Minimum probability that the label is the right step (``confidence``).
    min_pixels : int
        Fewer skin pixels than this (after reduction) -> ``unclear``.
    """

    attributes = ("skin_tone",)

    def __init__(self, *, threshold: float = 0.5, min_pixels: int = 30):
        self.threshold = float(threshold)
        self.min_pixels = int(min_pixels)
        self.name = settings_name(
            "mst-lightness", threshold=self.threshold, min_pixels=self.min_pixels, curve="utkface-v2"
        )
        self.calls = 0

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] = ("skin_tone",)) -> TagOutput:
        check_attributes(self.name, attributes, self.attributes)
        self.calls += 1
        results = skin_tones([(f.image, f.box, f.landmarks) for f in faces],
                             threshold=self.threshold, min_pixels=self.min_pixels)
        return {"skin_tone": ([r.label for r in results], np.array([r.confidence for r in results]))}
