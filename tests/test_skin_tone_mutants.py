"""Skin tone's inner steps against independent computations: the survivors of a mutation run killed.

Each test checks one step of :mod:`biaskit.perception.skin_tone` (the face's frame and its
sample, the 2 x 2 reduction, the highlight, the monochrome test, the masked median, the robust
skin filter, the region masks, the abstention reasons) against a straightforward computation
written here: scalar loops, ``np.median``, Pillow on the uncropped image, hand-worked values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from _faces import painted_face, swatch
from biaskit.perception.color import SRGB_TO_LINEAR, srgb_to_lab
from biaskit.perception.skin_tone import (
    COLOUR_CAST, DEFAULT_LANDMARKS, EXPOSURE, FEW_PIXELS, FRAME_CENTRE, FRAME_SIZE, GREY_SKIN, MONOCHROME,
    MONOCHROME_SIDE, SAMPLE_SIDE, TONE_CURVE, _face_patch, _halve, _reasons, _region_masks, _robust_skin,
    chromaticity_spread, face_frame, highlights, masked_median, reference_colour, skin_tone, skin_tones,
    tone_score,
)

RAMP = 3  # codes per pixel of the test image's ramps


def ramp_image(height: int = 70, width: int = 80, seed: int = 0) -> np.ndarray:
    """Red rises with x, green with y (RAMP codes a pixel), blue is noise: every shift shows."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).integers(0, 256, size=(height, width))
    return np.stack([RAMP * x + 5, RAMP * y + 5, noise], axis=-1).astype(np.uint8)


def expected_patch(image: np.ndarray, frame):
    """The frame's SAMPLE_SIDE sample (black outside the image), which sample pixels have their
    centre inside the image, and the MONOCHROME_SIDE grid of nearest pixels of its part inside."""
    height, width = image.shape[:2]
    left, top, right, bottom = frame
    step_x, step_y = (right - left) / SAMPLE_SIDE, (bottom - top) / SAMPLE_SIDE
    centre_x = left + (np.arange(SAMPLE_SIDE) + 0.5) * step_x
    centre_y = top + (np.arange(SAMPLE_SIDE) + 0.5) * step_y
    columns = np.flatnonzero((centre_x >= 0) & (centre_x < width))
    rows = np.flatnonzero((centre_y >= 0) & (centre_y < height))
    within = np.zeros((SAMPLE_SIDE, SAMPLE_SIDE), bool)
    sample = np.zeros((SAMPLE_SIDE, SAMPLE_SIDE, 3), np.uint8)
    if len(columns) and len(rows):
        within[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] = True
        # the same area average, taken by Pillow from the whole image over the span those pixels cover
        span = (max(left + columns[0] * step_x, 0), max(top + rows[0] * step_y, 0),
                min(left + (columns[-1] + 1) * step_x, width), min(top + (rows[-1] + 1) * step_y, height))
        part = Image.fromarray(image).resize((len(columns), len(rows)), Image.Resampling.BOX, box=span)
        sample[within] = np.asarray(part).reshape(-1, 3)
    # nearest pixel to each grid point: the pixel holding the point's coordinates
    inner_left, inner_right = max(left, 0), min(right, width)
    inner_top, inner_bottom = max(top, 0), min(bottom, height)
    gx = np.floor(inner_left + (np.arange(MONOCHROME_SIDE) + 0.5) * (inner_right - inner_left) / MONOCHROME_SIDE)
    gy = np.floor(inner_top + (np.arange(MONOCHROME_SIDE) + 0.5) * (inner_bottom - inner_top) / MONOCHROME_SIDE)
    grid = image[np.clip(gy.astype(int), 0, height - 1)[:, None], np.clip(gx.astype(int), 0, width - 1)[None, :]]
    return sample, within, grid


@pytest.mark.parametrize("frame", [
    (10.4, 7.7, 75.9, 66.2),  # inside the image, fractional edges
    (-20.3, -15.6, 60.2, 66.1),  # over the left and top edges
    (-37.5, -41.2, 50.5, 45.5),
    (20.5, 15.25, 130.2, 120.7),  # over the right and bottom edges
    (-25.4, -25.6, 70.6, 70.4),  # 2 px sample pixels: the first one inside starts 0.6 px in
    (20.5, 15.5, 116.5, 111.5),  # the last one inside ends 0.5 px past the image's right edge
    (-1.2, 1.0, 66.0, 68.2),  # only the first column of sample pixels outside the image
    (1.0, -1.2, 68.2, 66.0),  # only the first row
    (-11.0, -9.0, 85.0, 87.0),  # larger than the image on every side
    (10.6, 12.3, 11.9, 13.4),  # a frame under 2 px: the window of pixels is kept at least one wide
])
def test_face_patch_is_the_frame_area_averaged_black_outside_and_its_nearest_pixel_grid(frame):
    image = ramp_image()
    sample, within, grid, points = _face_patch(image, np.array(frame), None)
    want_sample, want_within, want_grid = expected_patch(image, frame)
    np.testing.assert_array_equal(within, want_within)
    assert sample.dtype == np.uint8 and not sample[~within].any()
    assert np.abs(sample.astype(int) - want_sample).max() <= 1
    np.testing.assert_array_equal(grid, want_grid)
    np.testing.assert_array_equal(points, DEFAULT_LANDMARKS)


def test_face_patch_gives_the_landmarks_in_frame_units():
    image, box, landmarks = painted_face(swatch(5), size=200)
    frame = face_frame(box, landmarks)
    *_, points = _face_patch(image, box, landmarks)
    size = frame[2:] - frame[:2]
    np.testing.assert_allclose(points, (landmarks - frame[:2]) / size, rtol=1e-6)
    assert 0 < points.min() and points.max() < 1


def test_halve_rounds_the_two_by_two_mean_and_keeps_blocks_wholly_inside():
    rng = np.random.default_rng(3)
    samples = rng.integers(0, 256, size=(3, SAMPLE_SIDE, SAMPLE_SIDE, 3)).astype(np.uint8)
    within = np.zeros((3, SAMPLE_SIDE, SAMPLE_SIDE), bool)
    within[0] = True
    within[1, 5:, 3:] = True  # odd edges: the blocks they cut are partly outside
    within[2, :41, :47] = True
    patches, inside = _halve(samples, within)
    half = SAMPLE_SIDE // 2
    for n in range(3):
        for r in range(half):
            for c in range(half):
                block = samples[n, 2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(-1, 3).astype(int)
                np.testing.assert_array_equal(patches[n, r, c], np.floor(block.mean(axis=0) + 0.5))
                assert inside[n, r * half + c] == within[n, 2 * r:2 * r + 2, 2 * c:2 * c + 2].all()
    assert inside.shape == (3, half * half) and patches.dtype == np.uint8


def luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(int)
    return (54 * rgb[..., 0] + 183 * rgb[..., 1] + 19 * rgb[..., 2]) // 256


@pytest.mark.parametrize("side", [SAMPLE_SIDE, 10])
def test_highlight_is_the_luminance_of_the_998th_permille_luma(side):
    rng = np.random.default_rng(side)
    samples = rng.integers(0, 256, size=(2, side, side, 3)).astype(np.uint8)
    samples[1, ..., 1] //= 4  # a dim green channel: the channels' weights differ
    count = side * side
    rank = min(count - 1, int(count * 0.998))  # 0.998 of 100 pixels: the brightest
    want = [SRGB_TO_LINEAR[np.sort(luma(s).ravel())[rank]] for s in samples]
    np.testing.assert_allclose(highlights(samples), want)


def chromaticity_sd(sample: np.ndarray) -> float:
    """The chromaticities' standard deviation over the usable pixels, one pixel at a time."""
    values = []
    for pixel in sample.reshape(-1, 3).astype(float):
        if pixel.sum() > 60 and pixel.max() < 250:
            values.append(pixel / pixel.sum())
    if len(values) < 10:
        return float("nan")
    values = np.array(values)
    return float(np.sqrt(((values - values.mean(axis=0)) ** 2).mean(axis=0).sum()))


def test_chromaticity_spread_agrees_with_a_pixel_by_pixel_standard_deviation():
    rng = np.random.default_rng(7)
    samples = rng.integers(0, 256, size=(4, 12, 12, 3)).astype(np.uint8)
    samples[1] = (samples[1] // 3) + 60  # every sum well over 255: no wrapping of uint8 sums
    samples[2].reshape(-1, 3)[:20] = [[20, 20, 20], [21, 20, 20], [250, 100, 90], [249, 100, 90]] * 5  # the limits
    samples[3] = 10  # dark ...
    samples[3].reshape(-1, 3)[:10] = rng.integers(40, 200, size=(10, 3))  # ... but for 10 usable pixels
    spread = chromaticity_spread(samples)
    np.testing.assert_allclose(spread, [chromaticity_sd(s) for s in samples], rtol=1e-5)
    samples[3].reshape(-1, 3)[9] = 10  # 9 usable pixels: too few for a chromaticity
    assert np.isnan(chromaticity_spread(samples[3:]))[0]


def test_masked_median_is_the_median_of_the_masked_values():
    rng = np.random.default_rng(11)
    values = rng.normal(size=(40, 9))
    mask = rng.random((40, 9)) < np.linspace(0, 1, 40)[:, None]
    mask[1], mask[2], mask[3] = False, [True] + [False] * 8, [True, True] + [False] * 7  # 0, 1 and 2 values
    got = masked_median(values, mask)
    want = [np.median(v[m]) if m.any() else np.nan for v, m in zip(values, mask)]
    np.testing.assert_allclose(got, want)
    assert np.isnan(got[1]) and got[2] == values[2, 0]
    # two columns, both used: the upper middle is the last column
    np.testing.assert_allclose(masked_median(np.array([[1.0, 3.0]]), np.array([[True, True]])), [2.0])


def robust_skin(lab: np.ndarray, region: np.ndarray, passes: int = 2) -> np.ndarray:
    """The skin filter of the module docstring (step 2), one face at a time with ``np.median``."""
    keep = region.copy()
    lightness = lab[:, 0]
    centre = np.median(lightness[keep])
    spread = max(1.4826 * np.median(np.abs(lightness[keep] - centre)), 2.0)
    keep &= np.abs(lightness - centre) <= 3 * spread
    for _ in range(passes):
        centre = np.median(lab[keep], axis=0)
        distance = np.sqrt(((lab - centre) ** 2).sum(axis=1))
        keep &= distance <= max(2.5 * 1.4826 * np.median(distance[keep]), 6.0)
    return keep


def test_robust_skin_filter_agrees_with_a_face_by_face_computation():
    rng = np.random.default_rng(5)
    faces, pixels = 30, 200
    spread = np.linspace(0.3, 12, faces)[:, None, None]  # from under the 2 L* / 6 Delta E floors to far over
    lab = (np.array([60.0, 15.0, 20.0]) + rng.standard_t(3, size=(faces, pixels, 3)) * spread).astype(np.float32)
    lab[::3, :15, 0] += 40  # highlights
    lab[1::3, :15] -= [35, 0, 0]  # shadows
    region = rng.random((faces, pixels)) < 0.8
    keep = _robust_skin(lab, region)
    want = np.array([robust_skin(lab[n].astype(np.float64), region[n]) for n in range(faces)])
    np.testing.assert_array_equal(keep, want)
    assert want[:, :15].mean() < want[:, 15:].mean() < region.mean()  # the outliers go first
    # by hand: an even face (no spread: the floors 2 L* and 6 Delta E apply); a pixel exactly
    # 3 x 2 L* lighter, which is also exactly 6 Delta E away, stays; one 6.5 Delta E away in a* goes
    even = np.array([[50, 10, 10]] * 150 + [[56, 10, 10]] * 20 + [[50, 16.5, 10]] * 10 + [[50, 30, 10]] * 20,
                    np.float32)
    kept = _robust_skin(even[None], np.ones((1, 200), bool))[0]
    assert kept[:170].all() and not kept[170:].any()
    # a face with a second cluster of colours, where a third pass of the colour filter would drop two more
    rng = np.random.default_rng(16)
    lab = np.array([60.0, 15, 20]) + rng.normal(size=(100, 3)) * rng.uniform(1, 8)
    lab[:rng.integers(5, 40)] += rng.normal(size=3) * rng.uniform(5, 30)
    lab, region = lab.astype(np.float32), np.ones(100, bool)
    twice, thrice = robust_skin(lab.astype(float), region), robust_skin(lab.astype(float), region, passes=3)
    assert (twice != thrice).sum() == 2
    np.testing.assert_array_equal(_robust_skin(lab[None], region[None])[0], twice)


def region_mask(points: np.ndarray) -> np.ndarray:
    """The region mask of the module docstring (step 1), one pixel at a time."""
    (lx, ly), (rx, ry), (nose_x, _), (mlx, mly), (mrx, mry) = points
    eye_half = max(0.12, 0.3 * abs(rx - lx))
    mouth_x, mouth_y, mouth_half = (mlx + mrx) / 2, (mly + mry) / 2, abs(mrx - mlx) / 2 + 0.06
    out = []
    for row in range(24):
        for col in range(24):
            u, v = (col + 0.5) / 24, (row + 0.5) / 24
            inside = ((u - nose_x) / 0.40) ** 2 + ((v - 0.52) / 0.46) ** 2 <= 1
            for eye_x, eye_y in ((lx, ly), (rx, ry)):
                inside &= not (abs(u - eye_x) < eye_half and eye_y - 0.17 < v < eye_y + 0.07)
            inside &= not (abs(u - mouth_x) < mouth_half and abs(v - mouth_y) < 0.08)
            out.append(inside)
    return np.array(out)


def test_region_masks_are_the_ellipse_minus_eyes_brows_and_mouth():
    tilted = np.array([[0.25, 0.33], [0.78, 0.42], [0.55, 0.6], [0.36, 0.78], [0.74, 0.7]])  # wide, tilted
    close = np.array([[0.40, 0.36], [0.6, 0.36], [0.45, 0.55], [0.42, 0.74], [0.58, 0.76]])  # eyes close
    points = np.stack([DEFAULT_LANDMARKS, tilted, close])
    masks = _region_masks(points)
    for n in range(len(points)):
        np.testing.assert_array_equal(masks[n], region_mask(points[n]))
    # by hand: the nose bridge between the default eyes is skin, each eye and the mouth centre are not
    grid = masks[0].reshape(24, 24)
    assert grid[9, 12] and not grid[9, 6] and not grid[9, 17] and not grid[17, 12]


def test_the_frame_is_set_by_the_eye_and_mouth_distances():
    # eyes 40 apart on a tilt of 3 / 4, mouth 30 below and 10 right of their midpoint
    landmarks = np.array([[100, 100], [132, 124], [118, 130], [110, 142], [142, 142]], float)
    eye_distance, eye_to_mouth = 40.0, math.hypot(126 - 116, 142 - 112)
    d = math.sqrt(eye_distance * eye_to_mouth)
    width, height = FRAME_SIZE[0] * d, FRAME_SIZE[1] * d
    centre_x, centre_y = (116 + 126) / 2, (112 + 142) / 2
    want = [centre_x - FRAME_CENTRE[0] * width, centre_y - FRAME_CENTRE[1] * height]
    want += [want[0] + width, want[1] + height]
    box = np.array([50, 50, 50 + width, 50 + height])
    np.testing.assert_allclose(face_frame(box, landmarks), want, rtol=1e-12)
    # landmarks whose frame is exactly half or exactly twice the box's width are still used
    for ratio in (0.5, 2.0):
        edge = np.array([0, 0, width / ratio, height])
        np.testing.assert_allclose(face_frame(edge, landmarks), want, rtol=1e-12)
    # the same in units where the box is under a pixel wide: only the ratio counts
    scale = 1e-3
    np.testing.assert_allclose(face_frame(box * scale, landmarks * scale), np.array(want) * scale)
    # without landmarks: the box, as floats
    assert face_frame((1, 2, 30, 40), None).dtype == float


def test_reasons_at_their_limits_and_by_hue():
    hue_115 = next(colour for colour in ([-math.sin(math.radians(25)) * r, math.cos(math.radians(25)) * r]
                                         for r in np.linspace(20, 21, 1000))
                   if np.degrees(np.arctan2(colour[1], colour[0])) == 115.0)
    cases = [
        ((50, 10, 20), 30, ""),
        ((50, 10, 20), 29, FEW_PIXELS),  # 30 pixels wanted: exactly 30 do
        ((10.0, 10, 20), 30, ""), ((9.99, 10, 20), 30, EXPOSURE),
        ((99.5, 10, 20), 30, ""), ((99.51, 10, 20), 30, EXPOSURE),
        ((50, 3.0, 0.0), 30, ""),  # chroma exactly 3, hue exactly 0
        ((50, 0.0, 2.9), 30, GREY_SKIN),  # chroma 2.9 (of a* alone: 0)
        ((50, 10, -0.5), 30, COLOUR_CAST),
        ((50, *hue_115), 30, ""), ((50, -12, 20), 30, COLOUR_CAST),  # 121 degrees: yellow-green
    ]
    colour = np.array([c for c, _, _ in cases], float)
    counts = np.array([n for _, n, _ in cases])
    monochrome = np.zeros(len(cases), bool)
    assert _reasons(colour, counts, monochrome, 30) == [reason for _, _, reason in cases]
    monochrome[0] = True
    assert _reasons(colour, counts, monochrome, 30)[0] == MONOCHROME


def test_tone_score_of_integer_lightness_codes():
    codes = np.array([15, 50, 73, 90], np.uint8)
    np.testing.assert_allclose(tone_score(codes), np.interp(-codes.astype(float), -TONE_CURVE[:, 0],
                                                            TONE_CURVE[:, 1]))


def test_the_lightest_reference_colour_sits_halfway_across_its_clipped_step():
    # MST1 spans L* 100 .. 97.08 on the curve; clipped to 98.5 (1 under the clipping limit 99.5)
    upper = np.interp(1.5, TONE_CURVE[:, 1], TONE_CURVE[:, 0])
    lightness = srgb_to_lab(np.array(reference_colour(1)))[0]
    assert abs(lightness - (98.5 + upper) / 2) < 0.25, lightness


def test_exactly_min_pixels_skin_pixels_are_enough_by_default():
    # a painted face cut by the image's left and bottom edges down to exactly 30 skin pixels
    image, box, landmarks = painted_face(swatch(6), size=200)
    x0, y1 = 130, 152
    cut = (image[:y1, x0:], box - [x0, 0, x0, 0], landmarks - [x0, 0])
    assert skin_tone(*cut, min_pixels=0).pixels == 30
    for result in (skin_tone(*cut), skin_tones([cut])[0]):  # the default min_pixels: 30
        assert result.reason == "" and result.label.startswith("MST"), result
    assert skin_tone(*cut, min_pixels=31).reason == FEW_PIXELS


def test_colour_spread_and_confidence_of_a_face_painted_pixel_by_pixel():
    # A face painted at the analysis resolution: each 10 x 10 block of a 240 px image (the face box)
    # is one analysis pixel, of lightness 62 +- noise, with a white highlight block.
    from biaskit.perception.color import lab_to_srgb
    from biaskit.perception.skin_tone import label_confidence, normalised_lightness

    rng = np.random.default_rng(2)
    blocks = lab_to_srgb(np.stack([62 + rng.normal(0, 9, (24, 24)), np.full((24, 24), 14.0),
                                   np.full((24, 24), 19.0)], axis=-1))
    blocks[3, 12] = 255
    image = np.repeat(np.repeat(blocks, 10, axis=0), 10, axis=1)
    result = skin_tone(image, (0, 0, 240, 240), threshold=0.0)
    lab = srgb_to_lab(blocks).reshape(-1, 3)
    skin = robust_skin(lab, region_mask(DEFAULT_LANDMARKS))
    colour = np.median(lab[skin], axis=0)
    spread = 1.4826 * np.median(np.abs(lab[skin, 0] - colour[0]))
    assert result.pixels == skin.sum() and 0.2 * spread > 1.0  # over the 1 L* floor: the spread counts
    np.testing.assert_allclose(result.lab, colour, atol=1e-3)
    highlight = SRGB_TO_LINEAR[np.sort(luma(image[2::5, 2::5]).ravel())[int(48 * 48 * 0.998)]]
    lightness = normalised_lightness(colour[0], highlight)
    _, confidence = label_confidence(np.array([lightness]), np.array([spread]))
    assert result.lightness == pytest.approx(lightness, abs=1e-3)
    assert result.confidence == pytest.approx(confidence[0], rel=1e-3) and 0.2 < result.confidence < 0.9
