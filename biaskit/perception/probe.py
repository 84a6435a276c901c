"""A linear probe on CLIP image embeddings: train on a labelled face folder, then tag.

Training data use FairFace's CSV layout: a ``file`` column (path relative to
the image folder) and one column per attribute (``race``, ``gender``, ``age``,
or any other: its distinct values become a user attribute).  Images are taken
as already-cropped faces (as FairFace's are).  Each attribute gets a
multinomial logistic-regression head (torch, L-BFGS, L2 penalty) on the unit
CLIP embeddings; the heads and the CLIP model they belong to are saved in one
``.pt`` file holding tensors, strings and numbers only (loaded with
``weights_only=True``).

Examples
--------
>>> train_probe(labels="fairface_label_train.csv", images="fairface/", out="probe.pt")  # doctest: +SKIP
>>> tagger = ProbeTagger(path="probe.pt")                                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from biaskit import taxonomy
from biaskit.perception.base import (
    Face, TagOutput, check_attributes, decide, empty_output, settings_name, softmax, threshold_for,
)
from biaskit.perception.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, ClipTagger
from biaskit.perception.labelled import FILE_COLUMN as LABEL_FILE_COLUMN, labelled_faces, read_labels

FORMAT = "biaskit-linear-probe-1"

BAD_LABELS = "{path}: {problem}"
BAD_PROBE = "probe file {path}: {problem}"

log = logging.getLogger(__name__)


def fit_logistic(features: np.ndarray, targets: np.ndarray, *, classes: int, l2: float = 1e-4,
                 iterations: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression ``(weight [d, K], bias [K])`` by full-batch L-BFGS."""
    import torch

    x = torch.from_numpy(np.asarray(features, np.float32))
    y = torch.from_numpy(np.array(targets, dtype=np.int64))
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


def train_probe(
    *,
    labels: str | Path,
    images: str | Path,
    out: str | Path,
    attributes: tuple[str, ...] | None = None,
    model: str = DEFAULT_MODEL,
    pretrained: str | Path | None = DEFAULT_PRETRAINED,
    device=None,
    cache_dir: str | Path | None = None,
    allow_random_weights: bool = False,
    l2: float = 1e-4,
    detector=None,
) -> dict:
    """Train one head per attribute on the CLIP embeddings of a labelled face folder; save it.

    Returns a summary: number of training faces, skipped files, training accuracy per attribute.
    """
    frame, attributes = read_labels(labels, attributes=attributes)
    encoder = ClipTagger(model=model, pretrained=pretrained, device=device, cache_dir=cache_dir,
                         allow_random_weights=allow_random_weights)
    faces, errors = labelled_faces(frame[LABEL_FILE_COLUMN], images, detector=detector)
    for error in errors:
        log.warning("skipped: %s", error)
    ok = np.array([face is not None for face in faces])
    if not ok.any():
        raise ValueError(BAD_LABELS.format(path=labels, problem="none of the listed images could be read"))
    features = encoder.embed([f for f in faces if f is not None], attributes=attributes)
    frame = frame[ok].reset_index(drop=True)
    heads, accuracy = {}, {}
    for attribute in attributes:
        names = list(taxonomy.labels(attribute))
        targets = frame[attribute].map(names.index).to_numpy()
        weight, bias = fit_logistic(features, targets, classes=len(names), l2=l2)
        accuracy[attribute] = float(((features @ weight + bias).argmax(1) == targets).mean())
        heads[attribute] = {"labels": names, "weight": _tensor(weight), "bias": _tensor(bias)}
    payload = {
        "format": FORMAT,
        "clip": {"model": model, "pretrained": None if pretrained is None else str(pretrained)},
        "heads": heads,
        "train": {"faces": int(ok.sum()), "skipped": len(errors)},
    }
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, out)
    return {"faces": int(ok.sum()), "skipped": errors, "train_accuracy": accuracy, "out": str(out)}


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def load_probe(path: str | Path) -> dict:
    """The saved probe, validated (``weights_only`` load)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(BAD_PROBE.format(path=path, problem="no such file (train one with `biaskit train-probe`)"))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(BAD_PROBE.format(path=path, problem=f"cannot be loaded safely ({exc})")) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(BAD_PROBE.format(path=path, problem=f"not a {FORMAT} file"))
    return payload


class ProbeTagger:
    """Tags with the heads of a probe file trained by :func:`train_probe`.

    Parameters
    ----------
    path : str or Path
        The probe file.
    pretrained : str or Path, optional
        Override the CLIP weights recorded in the file (e.g. a local checkpoint
        of the same weights).
    thresholds : mapping, optional
        Minimum probability per attribute.
    allow_random_weights : bool
        Needed when the probe was trained on a randomly initialised CLIP (tests).
    """

    def __init__(self, *, path: str | Path, pretrained: str | Path | None = None,
                 thresholds: Mapping[str, float] | None = None, device=None, batch_size: int = 32,
                 cache_dir: str | Path | None = None, allow_random_weights: bool = False):
        self.path = Path(path)
        payload = load_probe(self.path)
        self.heads = payload["heads"]
        for attribute, head in self.heads.items():
            if attribute not in taxonomy.attributes():
                taxonomy.register_attribute(attribute, head["labels"])
        clip = payload["clip"]
        self.encoder = ClipTagger(
            model=clip["model"], pretrained=pretrained if pretrained is not None else clip["pretrained"],
            device=device, batch_size=batch_size, cache_dir=cache_dir, allow_random_weights=allow_random_weights,
        )
        self.attributes = tuple(self.heads)
        self.thresholds = {a: threshold_for(a, thresholds) for a in self.attributes}
        self.name = settings_name("clip-probe", file=self.path.name, model=clip["model"],
                                  weights=clip["pretrained"] or "random", **self.thresholds)

    @property
    def calls(self) -> int:
        return self.encoder.calls

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] | None = None) -> TagOutput:
        attributes = self.attributes if attributes is None else attributes
        check_attributes(self.name, attributes, self.attributes)
        if not faces:
            return empty_output(attributes)
        embeddings = self.encoder.embed(faces, attributes=attributes)
        results: TagOutput = {}
        for attribute in attributes:
            head = self.heads[attribute]
            logits = embeddings @ head["weight"].numpy() + head["bias"].numpy()
            results[attribute] = decide(softmax(logits), tuple(head["labels"]), self.thresholds[attribute])
        return results
