"""Who counts: which of an image's faces are observations of the people a prompt asked for.

Every face found stays in the people table with two sizes: ``size_image``, the
face's size (geometric mean of the box's sides) over the image's (geometric
mean of its sides), and ``size_largest``, its size over that of the largest face
in the same image (1 for the largest).  A :class:`FacePolicy` then decides, per
observation, whether the face is counted: background faces (a crowd, a poster,
a reflection) add tagging error to a prompt that asked for one person, and
they are not what the prompt asked for.

Policies
--------
``subjects`` (default)
    Individual prompts ("a doctor") count the main subject(s): faces at least
    ``individual_min`` (0.5) times the largest face's size, so two people of
    similar size both count and a face in the background does not.  Group,
    ahistorical and prompts of unknown kind count every face at least
    ``group_min`` (0.25) times the largest: a back row stays, a distant crowd
    does not.
``all``
    Every face counts (biaskit 0.1).

The policy filters the observations table at tag time, so the metrics read a
plain table; it is recorded in ``RUN/run.json`` (``face_policy``).  The tag
cache keeps the labels of every face, so changing the policy re-runs no model.

Examples
--------
>>> import pandas as pd
>>> people = pd.DataFrame({"sha256": ["a", "a"], "person": [0, 1], "size_largest": [1.0, 0.2]})
>>> obs = pd.DataFrame({"prompt_id": ["p", "p"], "sha256": ["a", "a"], "person": [0, 1]})
>>> FacePolicy().select(obs, people, kinds={"p": "individual"})["person"].tolist()
[0]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import pandas as pd

POLICIES = ("subjects", "all")
INDIVIDUAL = "individual"
UNKNOWN_POLICY = "unknown face policy {name!r}; choose one of {known}"
BAD_FRACTION = "face policy: {name} must be between 0 and 1, got {value!r}"


def face_sizes(boxes: np.ndarray, *, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """``size_image`` and ``size_largest`` of the faces ``boxes`` (``[n, 4]``) in one image.

    Sizes are geometric means of the sides (the square root of the area), so a
    face twice as wide and tall is twice the size.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    if not len(sizes):
        return sizes, sizes
    largest = max(float(sizes.max()), 1e-9)
    return sizes / np.sqrt(float(width) * float(height)), sizes / largest


@dataclass(frozen=True)
class FacePolicy:
    """Which faces are counted as observations (see the module notes).

    Parameters
    ----------
    name : {"subjects", "all"}
        ``all`` counts every face.
    individual_min : float
        Individual prompts: least ``size_largest`` of a counted face.
    group_min : float
        Other prompts: least ``size_largest`` of a counted face.
    """

    name: str = "subjects"
    individual_min: float = 0.5
    group_min: float = 0.25

    def __post_init__(self):
        if self.name not in POLICIES:
            raise ValueError(UNKNOWN_POLICY.format(name=self.name, known=", ".join(POLICIES)))
        for field in ("individual_min", "group_min"):
            value = getattr(self, field)
            if not 0 <= value <= 1:
                raise ValueError(BAD_FRACTION.format(name=field, value=value))

    def describe(self) -> dict:
        """The policy as recorded in ``run.json``."""
        return {"name": self.name} if self.name == "all" else asdict(self)

    def counted(self, size_largest: pd.Series, kind: pd.Series) -> pd.Series:
        """True where a face of relative size ``size_largest`` in a prompt of ``kind`` counts."""
        if self.name == "all":
            return pd.Series(True, index=size_largest.index)
        least = np.where(kind.to_numpy() == INDIVIDUAL, self.individual_min, self.group_min)
        # a face whose size is unknown (a table from elsewhere) counts
        return size_largest.isna() | (size_largest.to_numpy() >= least - 1e-9)

    def select(self, observations: pd.DataFrame, people: pd.DataFrame, *,
               kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
        """The rows of ``observations`` (with ``sha256``, ``person``, ``prompt_id``) whose face counts.

        ``people`` gives ``size_largest`` per (sha256, person); ``kinds`` maps
        prompt ids to their kind (a prompt not in it is treated as a group).
        """
        if self.name == "all" or observations.empty:
            return observations
        sizes = people.set_index(["sha256", "person"])["size_largest"]
        keys = pd.MultiIndex.from_arrays([observations["sha256"], observations["person"]])
        size = pd.Series(sizes.reindex(keys).to_numpy(), index=observations.index)
        kind = observations["prompt_id"].map(dict(kinds or {}))
        return observations[self.counted(size, kind.fillna("unknown"))]


def make_policy(spec: "str | FacePolicy | None" = None) -> FacePolicy:
    """A policy from its name (``"subjects"``, ``"all"``) or an instance (returned as is)."""
    if spec is None:
        return FacePolicy()
    if isinstance(spec, FacePolicy):
        return spec
    return FacePolicy(name=str(spec).lower())
