"""Monk Skin Tone from calibrated skin lightness: colour science, painted swatch faces, a real photograph.

Known answers come from scikit-image (colour conversions), from the MST swatch
definitions (painted faces) and from physics: a pigment change darkens the
skin but not its highlights, an illuminant change scales both.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from _faces import astronaut, exposure, painted_face, swatch
from biaskit.perception import CenterFaceDetector, Face, SkinToneTagger, skin_tone
from biaskit.perception.color import (
    SRGB_TO_LINEAR, lab_to_srgb, lightness_to_luminance, linear_to_srgb, luminance_to_lightness, srgb_to_lab,
)
from biaskit.perception.skin_tone import (
    COLOUR_CAST, EXPOSURE, FEW_PIXELS, GREY_SKIN, MONOCHROME, TONE_CURVE, face_frame, label_confidence,
    reference_colour, skin_tones, tone_score,
)
from biaskit.taxonomy import UNCLEAR

TONES = range(1, 11)
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def tone_of(result) -> int:
    return int(result.label.removeprefix("MST"))


def relight(image: np.ndarray, ev: float = 0.0, red: float = 1.0, blue: float = 1.0) -> np.ndarray:
    """A brighter/dimmer or tinted illuminant: gains in linear light, sRGB curve."""
    return linear_to_srgb(SRGB_TO_LINEAR[image] * 2.0**ev * np.array([red, 1.0, blue]))


@pytest.fixture(scope="module")
def photo():
    """The astronaut photograph, her face box and landmarks (CenterFace)."""
    image = astronaut()
    faces = CenterFaceDetector().detect(image)
    return image, faces.boxes[0], faces.landmarks[0]


# ---- colour science --------------------------------------------------------------------------

def test_lab_and_lightness_agree_with_scikit_image():
    from skimage.color import rgb2lab

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(200, 3), dtype=np.uint8)
    np.testing.assert_allclose(srgb_to_lab(rgb), rgb2lab(rgb[None] / 255.0)[0], atol=1e-3)
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    lightness = rgb2lab(grey[None] / 255.0)[0, :, 0]
    np.testing.assert_allclose(luminance_to_lightness(SRGB_TO_LINEAR), lightness, atol=1e-3)
    np.testing.assert_allclose(lightness_to_luminance(lightness), SRGB_TO_LINEAR, atol=1e-6)
    np.testing.assert_array_equal(lab_to_srgb(srgb_to_lab(rgb)), rgb)  # round trip, to the code


def test_tone_curve_is_monotone_and_maps_each_swatch_within_one_step():
    assert np.all(np.diff(TONE_CURVE[:, 0]) < 0) and np.all(np.diff(TONE_CURVE[:, 1]) > 0)
    swatch_lightness = srgb_to_lab(np.array([swatch(t) for t in TONES]))[:, 0]
    steps = np.floor(tone_score(swatch_lightness) + 0.5)
    assert np.abs(steps - np.array(TONES)).max() <= 1, steps
    assert tone_score(100.0) == 1.0 and tone_score(0.0) == 10.0


# ---- painted swatch faces --------------------------------------------------------------------

@pytest.mark.parametrize("with_landmarks", [True, False])
def test_painted_swatch_faces_read_within_one_step_in_order(with_landmarks):
    results = []
    for tone in TONES:
        image, box, landmarks = painted_face(swatch(tone), size=240)
        results.append(skin_tone(image, box, landmarks if with_landmarks else None, threshold=0.0))
    found = np.array([tone_of(r) for r in results])
    assert np.abs(found - np.array(TONES)).max() <= 1, found
    assert np.all(np.diff(found) >= 0), found
    # from MST4 on the swatches differ in lightness: the score must strictly follow them
    assert np.all(np.diff([r.score for r in results][3:]) > 0)
    for tone, result in zip(TONES, results):
        np.testing.assert_allclose(result.lab, srgb_to_lab(np.array(swatch(tone))), atol=0.5)


def test_faces_painted_in_the_reference_colours_read_their_tone_exactly():
    for tone in TONES:
        image, box, landmarks = painted_face(reference_colour(tone), size=200)
        result = skin_tone(image, box, landmarks)
        assert result.label == f"MST{tone}" and abs(result.score - tone) < 0.5, (tone, result)
    references = srgb_to_lab(np.array([reference_colour(t) for t in TONES]))
    assert references[:, 0].tolist() == sorted(references[:, 0], reverse=True)
    # each keeps its own swatch's hue and chroma (a*, b*: up to the rounding to sRGB codes)
    np.testing.assert_allclose(references[:, 1:], srgb_to_lab(np.array([swatch(t) for t in TONES]))[:, 1:], atol=1.0)


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_painted_faces_within_one_tone_under_15_percent_brightness(factor):
    for tone in TONES:
        image, box, landmarks = painted_face(swatch(tone))
        before = tone_of(skin_tone(image, box, landmarks, threshold=0.0))
        after = tone_of(skin_tone(exposure(image, factor), box, landmarks, threshold=0.0))
        assert abs(after - before) <= 1, (tone, before, after)


def test_mask_ignores_hair_eyes_mouth_highlight_and_background():
    one, box, landmarks = painted_face(swatch(7), background=(250, 250, 250))
    other, _, _ = painted_face(swatch(7), background=(0, 0, 0))
    a, b = skin_tone(one, box, landmarks), skin_tone(other, box, landmarks)
    assert a.label == b.label == "MST8"
    np.testing.assert_allclose(a.lab, b.lab, atol=0.5)


# ---- a real photograph -----------------------------------------------------------------------

def test_astronaut_skin_is_a_light_tone(photo):
    result = skin_tone(*photo)
    assert result.label in ("MST2", "MST3", "MST4"), result


@pytest.mark.parametrize("change", [dict(ev=0.5), dict(ev=-0.5), dict(red=1.15, blue=0.85),
                                    dict(red=0.85, blue=1.15)])
def test_astronaut_within_one_step_under_lighting_changes(photo, change):
    image, box, landmarks = photo
    before = skin_tone(image, box, landmarks, threshold=0.0)
    after = skin_tone(relight(image, **change), box, landmarks, threshold=0.0)
    assert abs(tone_of(after) - tone_of(before)) <= 1, (before, after)


@pytest.fixture(scope="module")
def demo_faces():
    """Every face of the demo's ``skewed`` model: one photograph pasted mirrored or not at three sizes."""
    from biaskit import demo

    detector, faces = CenterFaceDetector(), []
    for prompt in ("a doctor", "two nurses", "three construction workers"):
        for seed in range(3):
            image = np.asarray(demo.skewed(prompt, seed))
            found = detector.detect(image)
            faces += [(image, box, landmarks) for box, landmarks in zip(found.boxes, found.landmarks)]
    return faces


def test_the_same_face_at_any_size_or_mirrored_reads_the_same_step(demo_faces):
    # The face is 60, 95 and 200 px wide; before the frame came from the landmarks the
    # detector's box (and the highlights of a single-pixel grid) moved it across MST3/MST4.
    widths = [box[2] - box[0] for _, box, _ in demo_faces]
    assert min(widths) < 70 and max(widths) > 180
    results = skin_tones(demo_faces, threshold=0.0)
    assert len({r.label for r in results}) == 1, [r.label for r in results]
    scores = [r.score for r in results]
    assert max(scores) - min(scores) < 0.25, scores


def test_the_frame_follows_the_landmarks_not_the_box(photo):
    image, box, landmarks = photo
    frame = face_frame(box, landmarks)
    # scale-equivariant, whatever box the detector drew around the same landmarks
    np.testing.assert_allclose(face_frame(box * 2 + [5, 0, 5, 0], landmarks * 2), frame * 2, rtol=1e-6)
    np.testing.assert_allclose(face_frame(box + [-8, 6, 10, -4], landmarks), frame)
    # no landmarks, or landmarks whose frame is far from the box's size: the box itself
    np.testing.assert_array_equal(face_frame(box, None), box)
    collapsed = np.repeat(landmarks[:1], 5, axis=0)
    np.testing.assert_array_equal(face_frame(box, collapsed), box)


@pytest.mark.parametrize("side", ["left", "top", "right", "bottom"])
def test_a_face_cut_by_the_image_edge_reads_as_the_whole_face(side):
    image, box, landmarks = painted_face(swatch(7), size=200)
    frame = face_frame(box, landmarks)  # about (35, 42, 165, 187)
    # cut the image ~18 px inside the frame's edge on one side, shift the coordinates with it
    x0, y0, x1, y1 = {"left": (55, 0, 200, 200), "top": (0, 60, 200, 200),
                      "right": (0, 0, 147, 200), "bottom": (0, 0, 200, 170)}[side]
    assert not (x0 <= frame[0] and y0 <= frame[1] and frame[2] <= x1 and frame[3] <= y1)
    whole = skin_tone(image, box, landmarks, threshold=0.0)
    part = skin_tone(image[y0:y1, x0:x1], box - [x0, y0, x0, y0], landmarks - [x0, y0], threshold=0.0)
    assert part.label == whole.label and part.reason == "" and part.pixels < whole.pixels, (part, whole)
    np.testing.assert_allclose(part.lab, whole.lab, atol=1.0)


def test_a_face_whose_frame_lies_outside_the_image_has_too_few_skin_pixels():
    image, box, landmarks = painted_face(swatch(7), size=200)
    for shift in ([300, 0], [0, -300]):
        result = skin_tone(image, box + np.tile(shift, 2), landmarks + shift)
        assert (result.label, result.reason, result.pixels) == (UNCLEAR, FEW_PIXELS, 0), result


def test_darker_recolours_of_a_real_face_read_darker(photo):
    # Pigment, not light: scale the skin-coloured pixels of the face in linear light and
    # keep everything brighter than L* 90 (the highlights that set the exposure) as it is.
    image, box, landmarks = photo
    x0, y0, x1, y1 = (int(v) for v in box)
    face = image[y0:y1, x0:x1]
    lab = srgb_to_lab(face)
    skin = (lab[..., 0] <= 90) & (lab[..., 1] > 5) & (lab[..., 2] > 5)
    scores = []
    for pigment in (1.0, 0.6, 0.35, 0.2, 0.1):
        recoloured = image.copy()
        recoloured[y0:y1, x0:x1][skin] = linear_to_srgb(SRGB_TO_LINEAR[face] * pigment)[skin]
        scores.append(skin_tone(recoloured, box, landmarks, threshold=0.0).score)
    assert np.all(np.diff(scores) > 0), scores
    assert scores[-1] - scores[0] >= 4, scores


# ---- abstention ------------------------------------------------------------------------------

def test_grayscale_and_sepia_photographs_get_no_skin_tone(photo):
    image, box, landmarks = photo
    grey = np.repeat(image.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    toned = np.clip(image @ SEPIA.T, 0, 255).astype(np.uint8)
    # brighter, then toned: its highlights clip, and an averaged pixel mixing clipped and unclipped
    # ones takes a new chromaticity (the face's spread 0.0086 averaged to 48 px, 0.0014 unaveraged)
    bright = np.clip(relight(image, ev=1.5) @ SEPIA.T, 0, 255).astype(np.uint8)
    for changed in (grey, toned, bright):
        result = skin_tone(changed, box, landmarks, threshold=0.0)
        assert (result.label, result.confidence, result.reason) == (UNCLEAR, 0.0, MONOCHROME)
        # an abstention still reports what was measured
        assert len(result.lab) == 3 and result.lab[0] > 20 and result.pixels > 100, result
    assert skin_tone(image, box, landmarks, threshold=0.0).reason == ""


def test_grayscale_painted_faces_get_no_skin_tone():
    for tone in (2, 6, 9):
        image, box, landmarks = painted_face(swatch(tone))
        grey = np.repeat(image.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        assert skin_tone(grey, box, landmarks, threshold=0.0).reason == MONOCHROME


def test_desaturated_cast_and_badly_exposed_faces_are_unclear(photo):
    image, box, landmarks = photo
    grey = image.mean(axis=2, keepdims=True)
    faded = np.round(0.1 * image + 0.9 * grey).astype(np.uint8)
    assert skin_tone(faded, box, landmarks, threshold=0.0).reason in (MONOCHROME, GREY_SKIN)
    grey_skin, grey_box, grey_landmarks = painted_face((150, 150, 150))  # coloured hair, mouth, background
    assert skin_tone(grey_skin, grey_box, grey_landmarks, threshold=0.0).reason == GREY_SKIN
    cases = {
        COLOUR_CAST: relight(image, red=0.3, blue=2.5),  # a strong blue-green cast
        EXPOSURE: relight(image, ev=-7),  # near black
    }
    for reason, changed in cases.items():
        result = skin_tone(changed, box, landmarks, threshold=0.0)
        assert (result.label, result.reason) == (UNCLEAR, reason)
    clipped = skin_tone(relight(image, ev=4), box, landmarks, threshold=0.0)
    assert (clipped.label, clipped.reason) == (UNCLEAR, EXPOSURE)


def test_too_few_skin_pixels_is_unclear():
    image, box, landmarks = painted_face(swatch(3), size=40)
    result = skin_tone(image, box, landmarks, min_pixels=10_000)
    assert (result.label, result.reason) == (UNCLEAR, FEW_PIXELS)


# ---- confidence and threshold ----------------------------------------------------------------

def shaded_faces(count: int = 60, seed: int = 0):
    """Painted faces with skin colours between the swatches and random shading noise."""
    rng = np.random.default_rng(seed)
    swatches = SRGB_TO_LINEAR[np.array([swatch(t) for t in TONES])]
    faces = []
    for position in np.linspace(0, 9, count):
        low = int(min(position, 8))
        linear = swatches[low] + (position - low) * (swatches[low + 1] - swatches[low])
        skin = tuple(int(v) for v in linear_to_srgb(linear))
        image, box, landmarks = painted_face(skin)
        noise = rng.normal(1.0, rng.uniform(0.0, 0.25), size=image.shape[:2])[..., None]
        shaded = np.clip(np.round(image * noise), 0, 255).astype(np.uint8)
        faces.append((shaded, box, landmarks))
    return faces


def test_a_higher_threshold_keeps_fewer_faces_whose_labels_survive_exposure_more_often():
    faces = shaded_faces()
    base = skin_tones(faces, threshold=0.0)
    moved = [skin_tones([(relight(img, ev=ev), box, lm) for img, box, lm in faces], threshold=0.0)
             for ev in (-0.3, 0.3)]
    confidence = np.array([r.confidence for r in base])
    same = np.array([all(m[k].label == base[k].label for m in moved) for k in range(len(faces))])
    assert 0 < confidence.min() and confidence.max() <= 1
    kept = [(confidence >= threshold) for threshold in (0.0, 0.8, 0.95)]
    coverage = [k.mean() for k in kept]
    agreement = [same[k].mean() for k in kept]
    assert coverage[0] > coverage[1] > coverage[2] > 0, coverage
    assert agreement[0] < agreement[1] < agreement[2], agreement


@pytest.mark.parametrize(("lightness", "spread"), [(66.0, 20.0), (64.0, 2.0), (70.5, 10.0)])
def test_confidence_is_the_normal_mass_of_the_step(lightness, spread):
    # On the straight part of the curve between the White (MST4) and Black (MST7) anchors the
    # score is normal with sd = slope x lightness error (0.2 x spread, at least 1 L*).
    from scipy.stats import norm

    (l0, t0), (l1, t1) = TONE_CURVE[4], TONE_CURVE[5]
    assert (t0, t1) == (4.0, 7.0)
    slope = (t1 - t0) / (l0 - l1)
    score, sd = t0 + (l0 - lightness) * slope, slope * max(0.2 * spread, 1.0)
    step = round(score)
    expected = norm.cdf(step + 0.5, score, sd) - norm.cdf(step - 0.5, score, sd)
    index, confidence = label_confidence(np.array([lightness]), np.array([spread]))
    assert index[0] == step - 1
    np.testing.assert_allclose(confidence[0], expected, rtol=1e-9)


def test_label_is_unclear_exactly_below_the_threshold():
    faces = shaded_faces(count=20, seed=1)
    confidence = np.array([r.confidence for r in skin_tones(faces, threshold=0.0)])
    assert (confidence < 0.7).any() and ((confidence > 0.7) & (confidence < 0.9)).any()
    assert (confidence == 1.0).any() and (confidence < 1.0).any()
    for threshold in (0.7, 0.9, 1.0, None):  # None: the default, 0.5 (README); 1.0 keeps certain ones
        chosen = {} if threshold is None else dict(threshold=threshold)
        kept = confidence >= (0.5 if threshold is None else threshold)
        tagger = SkinToneTagger(**chosen)
        labels = tagger.tag([Face(*face) for face in faces])["skin_tone"][0]
        for k, result in enumerate(skin_tones(faces, **chosen)):
            assert (result.label != UNCLEAR) == kept[k], result
            assert skin_tone(*faces[k], **chosen) == result and labels[k] == result.label


def test_skin_tone_tagger_batch_and_recorded_settings():
    faces = [Face(*painted_face(swatch(t))) for t in (2, 9)]
    tagger = SkinToneTagger(threshold=0.4)
    assert tagger.calls == 0
    labels, confidence = tagger.tag(faces)["skin_tone"]
    assert labels == ["MST2", "MST10"] and confidence.shape == (2,) and tagger.calls == 1
    # the recorded name is the tag cache's key: every setting and the curve's version are in it
    assert tagger.name == "mst-lightness(curve=utkface-v2,min_pixels=30,threshold=0.4)"
    with pytest.raises(ValueError, match=re.escape(tagger.name) + ": cannot tag \\['race'\\]"):
        tagger.tag(faces, attributes=("race",))
    tagger.tag(faces)
    assert tagger.calls == 2
    strict = SkinToneTagger(min_pixels=10_000)
    assert "min_pixels=10000" in strict.name and strict.tag(faces)["skin_tone"][0] == [UNCLEAR, UNCLEAR]
    # the defaults the README states: threshold 0.5, at least 30 skin pixels, alike in every entry point
    assert SkinToneTagger().name == "mst-lightness(curve=utkface-v2,min_pixels=30,threshold=0.5)"
    for call in (skin_tone, skin_tones):
        parameters = inspect.signature(call).parameters
        assert (parameters["threshold"].default, parameters["min_pixels"].default) == (0.5, 30)


def test_score_and_lightness_reported_agree_with_the_curve(photo):
    result = skin_tone(*photo)
    assert result.score == pytest.approx(float(tone_score(result.lightness)))
    assert result.lab[0] < result.lightness <= 100  # the exposure lifts it: the photo's highlights are not white


def test_batched_and_one_by_one_agree(photo):
    faces = [photo] + [painted_face(swatch(t)) for t in (1, 5, 8)]
    batched = skin_tones(faces)
    assert [skin_tone(*face) for face in faces] == batched
