"""FairFace ResNet-34 checkpoint as a tagger: race (7 and 4), gender, age, age_group.

FairFace (Karkkainen & Joo, 2021) released a torchvision ResNet-34 whose final
layer has 18 outputs: race-7 logits (0-6, in :data:`biaskit.taxonomy.RACE7`
order), gender (7 Male, 8 Female) and age (9-17, the nine bins).  The file is
supplied by the user and loaded with ``torch.load(weights_only=True)``, so a
checkpoint cannot run code.  Faces are aligned as FairFace aligned its
training data (five landmarks, 25 % padding, 224 px) and normalised with the
ImageNet statistics.

Examples
--------
>>> tagger = FairFaceTagger(checkpoint="res34_fair_align_multi_7_20190809.pt")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from biaskit.perception.base import (
    Face,
    TagOutput,
    age_group_labels,
    check_attributes,
    child_probability_from_bins,
    decide,
    empty_output,
    race7_to_race4,
    settings_name,
    softmax,
    threshold_for,
)
from biaskit.perception.crops import face_crop
from biaskit.perception.torch_utils import chunks, resolve_device, to_tensor
from biaskit.taxonomy import AGE_BINS, GENDER, RACE4, RACE7

OUTPUTS = 18
RACE_SLICE, GENDER_SLICE, AGE_SLICE = slice(0, 7), slice(7, 9), slice(9, 18)
INPUT_SIZE = 224
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

BAD_CHECKPOINT = "FairFace checkpoint {path}: {problem}"


def load_fairface(path: str | Path, *, device=None):
    """A torchvision ResNet-34 with an 18-way head, weights from ``path``, in eval mode."""
    import torch
    import torchvision

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(BAD_CHECKPOINT.format(
            path=path, problem="no such file (download FairFace's res34_fair_align_multi_7 checkpoint)"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused or corrupt file
        raise ValueError(BAD_CHECKPOINT.format(path=path, problem=f"cannot be loaded safely ({exc})")) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(BAD_CHECKPOINT.format(path=path, problem="is not a state dict"))
    state = {key.removeprefix("module."): value for key, value in state.items()}
    network = torchvision.models.resnet34(weights=None)
    network.fc = torch.nn.Linear(network.fc.in_features, OUTPUTS)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(BAD_CHECKPOINT.format(
            path=path, problem=f"does not fit a ResNet-34 with {OUTPUTS} outputs ({str(exc).splitlines()[0]})"
        )) from None
    return network.to(resolve_device(device)).eval()


class FairFaceTagger:
    """Tags race, race4, gender, age and age_group with a FairFace ResNet-34 checkpoint.

    Parameters
    ----------
    checkpoint : str or Path
        The ``.pt`` state dict (18 outputs).
    thresholds : mapping, optional
        Minimum probability per attribute.
    cautious : bool
        Borderline ``age_group`` faces are called ``child``.
    device : str, optional
        ``cpu`` / ``cuda``; automatic when unset.
    batch_size : int
        Faces per forward pass.
    """

    attributes = ("race", "race4", "gender", "age", "age_group")

    def __init__(self, *, checkpoint: str | Path, thresholds: Mapping[str, float] | None = None,
                 cautious: bool = True, device=None, batch_size: int = 32):
        self.checkpoint = Path(checkpoint)
        self.network = load_fairface(self.checkpoint, device=device)
        self.device = next(self.network.parameters()).device
        self.cautious = bool(cautious)
        self.batch_size = int(batch_size)
        self.thresholds = {a: threshold_for(a, thresholds) for a in self.attributes}
        self.name = settings_name("fairface", weights=self.checkpoint.name, cautious=self.cautious, **self.thresholds)
        self.calls = 0

    def logits(self, faces: list[Face]) -> np.ndarray:
        """``[n, 18]`` raw outputs for the faces' aligned 224 px crops."""
        import torch

        crops = np.stack([face_crop(f, size=INPUT_SIZE) for f in faces])
        out = []
        with torch.inference_mode():
            for part in chunks(len(crops), self.batch_size):
                self.calls += 1
                batch = to_tensor(crops[part], mean=IMAGENET_MEAN, std=IMAGENET_STD, device=self.device)
                out.append(self.network(batch).float().cpu().numpy())
        return np.concatenate(out)

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] = attributes) -> TagOutput:
        check_attributes(self.name, attributes, self.attributes)
        if not faces:
            return empty_output(attributes)
        logits = self.logits(faces)
        race, gender, age = (softmax(logits[:, s]) for s in (RACE_SLICE, GENDER_SLICE, AGE_SLICE))
        results: TagOutput = {}
        for attribute in attributes:
            if attribute == "age_group":
                results[attribute] = age_group_labels(
                    child_probability_from_bins(age), cautious=self.cautious, threshold=self.thresholds[attribute])
                continue
            probabilities, labels = {
                "race": (race, RACE7), "race4": (race7_to_race4(race), RACE4),
                "gender": (gender, GENDER), "age": (age, AGE_BINS),
            }[attribute]
            results[attribute] = decide(probabilities, labels, self.thresholds[attribute])
        return results
