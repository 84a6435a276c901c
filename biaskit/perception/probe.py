"""A linear probe on face embeddings (CLIP or the dlib descriptor): train on a labelled face folder, then tag.

Training data use FairFace's CSV layout: a ``file`` column (path relative to
the image folder) and one column per attribute (``race``, ``gender``, ``age``,
or any other: its distinct values become a user attribute).  Images are taken
as already-cropped faces (as FairFace's are).  Each attribute gets a
multinomial logistic-regression head (torch, L-BFGS, L2 penalty) on the
embeddings of a **backbone** (:data:`BACKBONES`): ``clip``, unit CLIP image
embeddings (weights from the hub or a local file), or ``dlib``, the 128-D dlib
ResNet face descriptor whose CC0 weights ship in ``face-recognition-models``
(:mod:`.descriptor`; offline).  The heads, the backbone's name and its settings
are saved in one ``.pt`` file holding tensors, strings and numbers only (loaded
with ``weights_only=True``); a probe is always read back with the backbone it
was trained on, and one whose backbone is unknown or not installed is a
one-line error.

Examples
--------
>>> train_probe(labels="fairface_label_train.csv", images="fairface/", out="probe.pt",
...             backbone="dlib")                                                   # doctest: +SKIP
>>> tagger = ProbeTagger(path="probe.pt")                                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from biaskit import taxonomy
from biaskit.perception.base import (
    Face, TagOutput, check_attributes, decide, empty_output, settings_name, softmax, threshold_for,
)
from biaskit.perception.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, ClipTagger
from biaskit.perception.descriptor import SETTINGS as DLIB_SETTINGS, DlibDescriptor
from biaskit.perception.labelled import FILE_COLUMN as LABEL_FILE_COLUMN, labelled_faces, read_labels

FORMAT = "biaskit-linear-probe-1"
#: Embeddings a probe can be trained on; the first is the default.
BACKBONES = ("clip", "dlib")
#: A probe file without a backbone was written by biaskit 0.1, which had CLIP only.
LEGACY_BACKBONE = "clip"

BAD_LABELS = "{path}: {problem}"
BAD_PROBE = "probe file {path}: {problem}"
UNKNOWN_BACKBONE = "backbone {backbone!r} is not one of " + ", ".join(BACKBONES)
WRONG_SIZE = "the {attribute!r} head takes {expected}-D embeddings, its backbone gives {got}-D"

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
    backbone: str = "clip",
    model: str = DEFAULT_MODEL,
    pretrained: str | Path | None = DEFAULT_PRETRAINED,
    device=None,
    cache_dir: str | Path | None = None,
    allow_random_weights: bool = False,
    l2: float = 1e-4,
    detector=None,
    batch_size: int = 32,
) -> dict:
    """Train one head per attribute on the ``backbone`` embeddings of a labelled face folder; save it.

    Parameters
    ----------
    backbone : {"clip", "dlib"}
        ``clip``: CLIP image embeddings (``model``, ``pretrained``, ``device``,
        ``cache_dir``, ``allow_random_weights``, ``batch_size`` choose them and how
        many faces go through the model at once); ``dlib``: the 128-D dlib face
        descriptor (offline, CC0 weights from ``face-recognition-models``; the CLIP
        arguments do not apply).

    Returns a summary: number of training faces, skipped files, training accuracy per attribute.
    """
    if backbone not in BACKBONES:
        raise ValueError(UNKNOWN_BACKBONE.format(backbone=backbone))
    frame, attributes = read_labels(labels, attributes=attributes)
    settings = ({"model": model, "pretrained": None if pretrained is None else str(pretrained)}
                if backbone == "clip" else dict(DLIB_SETTINGS))
    encoder = make_backbone(backbone, settings, what=f"backbone {backbone!r}", device=device,
                            batch_size=batch_size, cache_dir=cache_dir,
                            allow_random_weights=allow_random_weights)
    faces, errors = labelled_faces(frame[LABEL_FILE_COLUMN], images, detector=detector)
    for error in errors:
        log.warning("skipped: %s", error)
    ok = np.array([face is not None for face in faces])
    if not ok.any():
        raise ValueError(BAD_LABELS.format(path=labels, problem="none of the listed images could be read"))
    features = encoder.embed([f for f in faces if f is not None], attributes=attributes)
    heads, accuracy = fit_heads(features, frame[ok].reset_index(drop=True), attributes=attributes, l2=l2)
    payload = {
        "format": FORMAT,
        "backbone": backbone,
        backbone: settings,
        "heads": heads,
        "train": {"faces": int(ok.sum()), "skipped": len(errors)},
    }
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, out)
    return {"faces": int(ok.sum()), "skipped": errors, "train_accuracy": accuracy, "out": str(out),
            "backbone": backbone}


def fit_heads(features: np.ndarray, frame, *, attributes: tuple[str, ...], l2: float = 1e-4) -> tuple[dict, dict]:
    """One logistic head per attribute on ``features`` (rows of ``frame``, its labels); and training accuracy.

    Each head covers every label of the attribute's taxonomy (labels absent from
    ``frame`` are learnt as unlikely), as a probe file stores it.
    """
    heads, accuracy = {}, {}
    for attribute in attributes:
        names = list(taxonomy.labels(attribute))
        targets = frame[attribute].map(names.index).to_numpy()
        weight, bias = fit_logistic(features, targets, classes=len(names), l2=l2)
        heads[attribute] = {"labels": names, "weight": _tensor(weight), "bias": _tensor(bias)}
        accuracy[attribute] = float((head_probabilities(heads[attribute], features).argmax(1) == targets).mean())
    return heads, accuracy


def head_probabilities(head: Mapping, embeddings: np.ndarray) -> np.ndarray:
    """``[n, labels]`` probabilities of one head (as stored in a probe file) for ``[n, d]`` embeddings."""
    return softmax(embeddings @ head["weight"].numpy() + head["bias"].numpy())


def make_backbone(backbone: str, settings: Mapping, *, what: str, device=None, batch_size: int = 32,
                  cache_dir: str | Path | None = None, allow_random_weights: bool = False):
    """The encoder (``embed(faces, attributes=...)``) of ``backbone`` with its recorded ``settings``.

    ``what`` names the probe in the one-line error raised when the backbone's weights are missing.
    """
    if backbone == "clip":
        return ClipTagger(model=settings["model"], pretrained=settings["pretrained"], device=device,
                          batch_size=batch_size, cache_dir=cache_dir, allow_random_weights=allow_random_weights)
    return DlibDescriptor(what=what)


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def load_probe(path: str | Path) -> dict:
    """The saved probe, validated (``weights_only`` load); ``backbone`` filled in for 0.1 files."""
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
    backbone = payload.setdefault("backbone", LEGACY_BACKBONE)
    if backbone not in BACKBONES:
        raise ValueError(BAD_PROBE.format(path=path, problem=UNKNOWN_BACKBONE.format(backbone=backbone)))
    if not isinstance(payload.get(backbone), dict):
        raise ValueError(BAD_PROBE.format(path=path, problem=f"no settings for its backbone {backbone!r}"))
    return payload


class ProbeTagger:
    """Tags with the heads of a probe file trained by :func:`train_probe`, on the backbone it names.

    Parameters
    ----------
    path : str or Path
        The probe file.
    pretrained : str or Path, optional
        Override the CLIP weights recorded in a CLIP probe (e.g. a local checkpoint
        of the same weights); the CLIP arguments do not apply to a dlib probe.
    thresholds : mapping, optional
        Minimum probability per attribute.
    allow_random_weights : bool
        Needed when the probe was trained on a randomly initialised CLIP (tests).

    Raises
    ------
    BiaskitWeightsError
        The probe's backbone is not installed (a dlib probe without ``face-recognition-models``).
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
        self.backbone = payload["backbone"]
        self.attributes = tuple(self.heads)
        self.thresholds = {a: threshold_for(a, thresholds) for a in self.attributes}
        settings = dict(payload[self.backbone])
        if self.backbone == "clip" and pretrained is not None:
            settings["pretrained"] = pretrained
        self.encoder = make_backbone(
            self.backbone, settings, what=BAD_PROBE.format(path=self.path, problem=f"backbone {self.backbone!r}"),
            device=device, batch_size=batch_size, cache_dir=cache_dir, allow_random_weights=allow_random_weights)
        recorded = ({"model": settings["model"], "weights": payload["clip"]["pretrained"] or "random"}
                    if self.backbone == "clip" else {"descriptor": DlibDescriptor.name})
        # the file's digest too: a probe retrained under the same name is another tagger (and cache key)
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.name = settings_name(f"{self.backbone}-probe", file=self.path.name, sha256=digest, **recorded,
                                  **self.thresholds)

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
            if head["weight"].shape[0] != embeddings.shape[1]:  # e.g. a CLIP probe given other CLIP weights
                raise ValueError(BAD_PROBE.format(path=self.path, problem=WRONG_SIZE.format(
                    attribute=attribute, expected=head["weight"].shape[0], got=embeddings.shape[1])))
            results[attribute] = decide(head_probabilities(head, embeddings), tuple(head["labels"]),
                                        self.thresholds[attribute])
        return results
