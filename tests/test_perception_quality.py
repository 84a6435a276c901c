"""Honest abstention: face quality (size, blur, turn), calibrated thresholds, mirror views."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageFilter

from _faces import astronaut
from biaskit.perception import CenterFaceDetector, EmbeddedTagger, Face
from biaskit.perception.calibration import accuracy_coverage, threshold_for_accuracy
from biaskit.perception.embedded import DEFAULT_QUALITY, EMBEDDED_THRESHOLDS
from biaskit.perception.quality import NO_LIMITS, QualityLimits, dlib_turn, sharpness, turn
from biaskit.taxonomy import UNCLEAR

FRONTAL = np.array([[30, 40], [70, 40], [50, 60], [36, 80], [64, 80]], dtype=np.float64)
ALL = ("gender", "age", "age_group")
KEEP_ALL = {a: 0.0 for a in ALL}


def rotate(points: np.ndarray, degrees: float, centre=(50, 60)) -> np.ndarray:
    angle = np.deg2rad(degrees)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - centre) @ matrix.T + centre


def mirror(points: np.ndarray, width: float = 100) -> np.ndarray:
    flipped = points.copy()
    flipped[:, 0] = width - flipped[:, 0]
    return flipped[[1, 0, 2, 4, 3]]  # the subject's left eye is now on the image's left


def turned(fraction: float) -> np.ndarray:
    """FRONTAL with the nose moved ``fraction`` of the half eye-distance towards the right eye."""
    points = FRONTAL.copy()
    points[2, 0] += fraction * 20
    return points


@pytest.mark.parametrize("fraction", [0.0, 0.4, 0.9, 1.3])
def test_turn_is_the_nose_offset_in_half_eye_distances(fraction):
    assert turn(turned(fraction)) == pytest.approx(fraction)


@pytest.mark.parametrize("degrees", [0, 25, -40, 90, 180])
def test_turn_ignores_roll_mirroring_and_landmark_order(degrees):
    for points in (turned(0.6), turned(1.4)):
        expected = turn(points)
        assert turn(rotate(points, degrees)) == pytest.approx(expected)
        assert turn(mirror(rotate(points, degrees))) == pytest.approx(expected)
        assert turn(points[[1, 0, 2, 3, 4]]) == pytest.approx(expected)


def test_dlib_five_point_layout_gives_the_same_turn():
    # dlib's five points: two corners of one eye, two of the other, the base of the nose
    points = turned(0.7)
    corners = np.array([points[0] - [5, 0], points[0] + [5, 0], points[1] + [5, 0], points[1] - [5, 0], points[2]])
    assert dlib_turn(corners) == pytest.approx(turn(points))


def test_profile_and_unknown_turn_against_the_limits():
    limits = QualityLimits(min_size=24, min_sharpness=0.05, max_turn=1.0)
    mask = limits.passes([100, 100, 100, 10], [0.5, 0.5, 0.5, 0.5],
                         [turn(turned(0.5)), turn(rotate(turned(1.3), 30)), np.nan, 0.0])
    assert mask.tolist() == [True, False, True, False]  # profile out, unknown turn in, 10 px out


@pytest.fixture(scope="module")
def astronaut_face():
    image = astronaut()
    found = CenterFaceDetector().detect(image)
    return Face(image, found.boxes[0], found.landmarks[0])


def blurred(face: Face, radius: float) -> Face:
    image = np.asarray(Image.fromarray(face.image).filter(ImageFilter.GaussianBlur(radius)))
    return Face(image, face.box, face.landmarks)


@pytest.fixture(scope="module")
def lenient():
    """Keeps every label the quality limits allow (thresholds 0)."""
    return EmbeddedTagger(thresholds=KEEP_ALL)


def test_blurring_a_real_face_lowers_sharpness_under_the_limit(lenient, astronaut_face):
    def chip_sharpness(face):
        return sharpness(lenient.chips([face])[1][0])

    sharp, soft, softer = (chip_sharpness(f) for f in (astronaut_face, blurred(astronaut_face, 2),
                                                        blurred(astronaut_face, 6)))
    assert sharp > soft > softer
    assert sharp >= DEFAULT_QUALITY.min_sharpness > softer


def test_blurred_copy_of_a_real_face_is_unclear_for_every_attribute(lenient, astronaut_face):
    out = lenient.tag([astronaut_face, blurred(astronaut_face, 6)], attributes=ALL)
    assert out["gender"][0] == ["Female", UNCLEAR]
    for attribute in ALL:
        assert out[attribute][0][1] == UNCLEAR and out[attribute][0][0] != UNCLEAR
        assert np.isfinite(out[attribute][1]).all()  # the network's confidence is still recorded


def dlib_shape(points: np.ndarray):
    """A dlib five-point shape (two corners per eye, nose base) from the five-landmark layout."""
    import dlib

    eye_a, eye_b, nose = points[0], points[1], points[2]
    half = (eye_b - eye_a) / 4  # eye corners a quarter eye-distance either side of each centre
    corners = [eye_a - half, eye_a + half, eye_b + half, eye_b - half, nose]
    return dlib.full_object_detection(dlib.rectangle(0, 0, 100, 100),
                                      [dlib.point(int(round(x)), int(round(y))) for x, y in corners])


def test_profile_landmark_sets_are_unusable_whatever_their_roll_or_side(lenient, astronaut_face):
    chips = np.repeat(lenient.chips([astronaut_face])[1], 4, axis=0)  # a sharp real chip for all
    faces = [astronaut_face] * 4
    for degrees in (0, 30, -75):
        shapes = [dlib_shape(p) for p in (rotate(turned(0.3), degrees), rotate(turned(1.5), degrees),
                                          mirror(rotate(turned(0.3), degrees)), mirror(rotate(turned(1.5), degrees)))]
        assert lenient.usable(faces, shapes, chips).tolist() == [True, False, True, False]


def test_small_faces_are_unclear(lenient, astronaut_face):
    small_image = np.asarray(Image.fromarray(astronaut_face.image).resize((96, 96), Image.Resampling.LANCZOS))
    small = Face(small_image, astronaut_face.box * 96 / 512, astronaut_face.landmarks * 96 / 512)
    assert min(small.box[2:] - small.box[:2]) < DEFAULT_QUALITY.min_size
    labels = lenient.tag([astronaut_face, small], attributes=("gender",))["gender"][0]
    assert labels == ["Female", UNCLEAR]
    unlimited = EmbeddedTagger(thresholds=KEEP_ALL, quality=NO_LIMITS)
    assert UNCLEAR not in unlimited.tag([small], attributes=("gender",))["gender"][0]


def test_default_thresholds_are_the_calibrated_constants_and_abstain_below_them(astronaut_face):
    default = EmbeddedTagger()
    assert default.thresholds == EMBEDDED_THRESHOLDS
    assert "gender=" + f"{EMBEDDED_THRESHOLDS['gender']:g}" in default.name
    confidence = float(default.tag([astronaut_face], attributes=("gender",))["gender"][1][0])
    above = EmbeddedTagger(thresholds={"gender": confidence + 1e-6}).tag([astronaut_face], attributes=("gender",))
    at = EmbeddedTagger(thresholds={"gender": confidence}).tag([astronaut_face], attributes=("gender",))
    assert above["gender"][0] == [UNCLEAR] and at["gender"][0] == ["Female"]


def test_mirror_averages_the_face_and_its_mirror_image(lenient, astronaut_face):
    gender_chips, age_chips = lenient.chips([astronaut_face])
    one, _ = lenient.probabilities(gender_chips, age_chips)
    flipped, _ = lenient.probabilities(gender_chips[:, :, ::-1].copy(), age_chips[:, :, ::-1].copy())
    both = EmbeddedTagger(thresholds=KEEP_ALL, mirror=True).tag([astronaut_face], attributes=("gender", "age"))
    assert both["gender"][1][0] == pytest.approx(((one + flipped) / 2).max())
    single = lenient.tag([astronaut_face], attributes=("gender",))  # the default: one view
    assert single["gender"][1][0] == pytest.approx(one.max())


def brute_force_threshold(confidence, correct, target, min_kept):
    """The lowest candidate (an observed confidence) whose kept labels reach ``target``."""
    for candidate in sorted(set(confidence)):
        kept = confidence >= candidate
        if kept.sum() >= min_kept and correct[kept].mean() >= target:
            return candidate
    return None


@pytest.mark.parametrize("seed", range(6))
def test_threshold_for_accuracy_matches_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    confidence = np.round(rng.uniform(0.5, 1.0, 80), 2)  # rounded: ties happen
    correct = rng.uniform(size=80) < confidence
    for target, min_kept in itertools.product((0.7, 0.85, 0.95), (1, 10)):
        expected = brute_force_threshold(confidence, correct, target, min_kept)
        chosen = threshold_for_accuracy(confidence, correct, target=target, min_kept=min_kept)
        if expected is None:
            assert chosen > confidence.max()
        else:
            assert chosen == expected


def test_accuracy_coverage_keeps_the_most_confident():
    confidence = np.array([0.9, 0.6, 0.8, 0.7])
    correct = np.array([True, False, True, False])
    curve = accuracy_coverage(confidence, correct, coverages=(1.0, 0.5, 0.75))
    assert curve["kept"].tolist() == [4, 2, 3]
    assert curve["accuracy"].tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert curve["threshold"].tolist() == [0.6, 0.8, 0.7]
