"""What every tagger shares: the face it is given, its output, and the abstention rule.

A tagger receives a batch of :class:`Face` objects (one image array may be
shared by several faces) and returns, for each attribute it tags, one label
per face and its confidence.  A label is a category of the attribute's
taxonomy, or ``"unclear"`` when the confidence is under the tagger's threshold
for that attribute.  Thresholds are parameters and are written into the
tagger's ``name``, which fills the ``tagger`` column of the observations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from biaskit.taxonomy import AGE_BINS, RACE4, RACE7, RACE7_TO_RACE4, UNCLEAR

#: Default abstention thresholds (minimum top-class probability) per attribute.
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "gender": 0.6,
    "race": 0.4,
    "race4": 0.5,
    "age": 0.3,
    "age_group": 0.5,
    "skin_tone": 0.5,
}
#: Fallback threshold for user-defined attributes.
DEFAULT_THRESHOLD = 0.5
#: In cautious mode a face is called a child once P(age < 18) reaches this.
CAUTIOUS_CHILD_PROBABILITY = 0.25
ADULT_AGE = 18

# attribute -> (labels, confidences), one entry per face
TagOutput = dict[str, tuple[list[str], np.ndarray]]


@dataclass(frozen=True)
class Face:
    """One detected face: the image it is in, its box and (optional) landmarks."""

    image: np.ndarray
    box: np.ndarray  # x0, y0, x1, y1 in the array's pixels
    landmarks: np.ndarray | None = None  # [5, 2] (x, y)


@runtime_checkable
class Tagger(Protocol):
    """A backend that tags faces for some attributes."""

    name: str
    attributes: tuple[str, ...]

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...]) -> TagOutput:
        """Labels and confidences of ``faces`` for each of ``attributes``."""
        ...


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threshold_for(attribute: str, thresholds: Mapping[str, float] | None,
                  defaults: Mapping[str, float] = DEFAULT_THRESHOLDS) -> float:
    """The abstention threshold of ``attribute``: the user's value, else the tagger's ``defaults``."""
    if thresholds and attribute in thresholds:
        return float(thresholds[attribute])
    return float(defaults.get(attribute, DEFAULT_THRESHOLDS.get(attribute, DEFAULT_THRESHOLD)))


def decide(
    probabilities: np.ndarray, labels: tuple[str, ...], threshold: float
) -> tuple[list[str], np.ndarray]:
    """Top label per row, or ``"unclear"`` when its probability is under ``threshold``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[0] == 0:
        return [], np.zeros(0)
    best = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(best)), best]
    chosen = [labels[i] if c >= threshold else UNCLEAR for i, c in zip(best, confidence)]
    return chosen, confidence


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``[n, K]`` logits (shifted by the row maximum, so exp cannot overflow)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def race7_to_race4(probabilities: np.ndarray) -> np.ndarray:
    """Sum FairFace race-7 probabilities ``[n, 7]`` into race-4 ``[n, 4]``."""
    fold = np.zeros((len(RACE7), len(RACE4)))
    for row, race in enumerate(RACE7):
        fold[row, RACE4.index(RACE7_TO_RACE4[race])] = 1.0
    return np.asarray(probabilities) @ fold


def age_group_labels(
    child_probability: np.ndarray, *, cautious: bool, threshold: float
) -> tuple[list[str], np.ndarray]:
    """``child`` / ``adult`` from P(age < 18).

    In cautious mode a face is called ``child`` as soon as P(child) reaches
    :data:`CAUTIOUS_CHILD_PROBABILITY`, so borderline faces err towards child;
    otherwise the likelier group wins and ``threshold`` applies as usual.
    """
    p_child = np.asarray(child_probability, dtype=np.float64)
    if cautious:
        is_child = p_child >= CAUTIOUS_CHILD_PROBABILITY
        confidence = np.where(is_child, p_child, 1 - p_child)
        return ["child" if c else "adult" for c in is_child], confidence
    return decide(np.stack([p_child, 1 - p_child], axis=1), ("child", "adult"), threshold)


# FairFace's age bins as [low, high) in years; "70+" runs to the end.
AGE_BIN_EDGES = ((0, 3), (3, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 200))
assert len(AGE_BIN_EDGES) == len(AGE_BINS)


def ages_to_bins(probabilities: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """Fold a distribution over ages ``[n, A]`` (class ``j`` = ``ages[j]`` years) into the 9 bins."""
    ages = np.asarray(ages, dtype=np.float64)
    fold = np.zeros((len(ages), len(AGE_BINS)))
    for column, (low, high) in enumerate(AGE_BIN_EDGES):
        fold[(ages >= low) & (ages < high), column] = 1.0
    return np.asarray(probabilities, dtype=np.float64) @ fold


def child_probability_from_bins(bin_probabilities: np.ndarray) -> np.ndarray:
    """P(age < 18) from FairFace bin probabilities, 10-19 counted for 8 of its 10 years."""
    p = np.asarray(bin_probabilities, dtype=np.float64)
    return p[:, 0] + p[:, 1] + 0.8 * p[:, 2]


def settings_name(kind: str, **settings) -> str:
    """``kind(key=value,...)``: a tagger's recorded name, settings sorted."""
    parts = ",".join(f"{key}={_fmt(value)}" for key, value in sorted(settings.items()))
    return f"{kind}({parts})"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_fmt(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def empty_output(attributes: tuple[str, ...]) -> TagOutput:
    return {attribute: ([], np.zeros(0)) for attribute in attributes}


UNKNOWN_ATTRIBUTES = "{tagger}: cannot tag {attributes}; it tags {known}"


def check_attributes(tagger: str, requested: tuple[str, ...], known: tuple[str, ...]) -> None:
    """Raise a ValueError naming the tagger when asked for attributes it does not give."""
    missing = [a for a in requested if a not in known]
    if missing:
        raise ValueError(UNKNOWN_ATTRIBUTES.format(tagger=tagger, attributes=missing, known=list(known)))
