"""CLIP zero-shot tagging with open_clip: race (FairFace 7 and 4), gender, user attributes.

Each label is described by one or more phrases ("a man", "a male person"); each
phrase is put into several templates ("a photo of {}.", ...); the text
embeddings of all of a label's sentences are averaged (a *prompt ensemble*, as
in the CLIP paper) into one class vector.  A face's aligned crop is embedded,
compared to the class vectors (cosine x CLIP's logit scale), and a softmax
gives the label probabilities.  ``race4`` sums the race-7 probabilities
(FairFace's fold), so the two never disagree.

User attributes come from a YAML file of ``attribute -> label -> prompts``;
those prompts are full sentences and are used as written::

    glasses:
      glasses: ["a photo of a person wearing glasses"]
      no glasses: ["a photo of a person without glasses", "a photo of a face"]

Weights: the default is ViT-B-32 with LAION-2B weights
(``laion2b_s34b_b79k``), downloaded from the Hugging Face hub on first use
and cached; ``pretrained`` may also be a local checkpoint file, and
``cache_dir`` a folder that holds downloaded weights.  When the weights are
missing and cannot be fetched, :class:`BiaskitWeightsError` says which
attribute needs which weights and how to supply them.  Random weights are
only ever used when asked for explicitly (``pretrained=None`` together with
``allow_random_weights=True``: tests and benchmarks), and then seeded, so two
loads give the same model.

Examples
--------
>>> tagger = ClipTagger()                                   # doctest: +SKIP
>>> tagger.tag(faces, attributes=("race", "gender"))        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import pickle
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from biaskit import taxonomy
from biaskit.yamlio import load_yaml
from biaskit.perception.base import (
    Face,
    TagOutput,
    check_attributes,
    decide,
    empty_output,
    race7_to_race4,
    settings_name,
    threshold_for,
)
from biaskit.perception.crops import face_crop
from biaskit.perception.torch_utils import chunks, resolve_device, to_tensor

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
TEMPLATES = (
    "a photo of {}.",
    "a close-up photo of the face of {}.",
    "a portrait of {}.",
    "a cropped photo of {}.",
    "a photo of the face of {}.",
)
#: Built-in label descriptions, in taxonomy order.
LABEL_PHRASES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "gender": {"Male": ("a man", "a male person"), "Female": ("a woman", "a female person")},
    "race": {
        "White": ("a White person", "a Caucasian person"),
        "Black": ("a Black person", "an African American person"),
        "Latino_Hispanic": ("a Latino person", "a Hispanic person"),
        "East Asian": ("an East Asian person", "a Chinese, Japanese or Korean person"),
        "Southeast Asian": ("a Southeast Asian person", "a Filipino, Vietnamese or Thai person"),
        "Indian": ("an Indian person", "a South Asian person"),
        "Middle Eastern": ("a Middle Eastern person", "an Arab person"),
    },
}
BUILTIN_ATTRIBUTES = ("gender", "race", "race4")

MISSING_WEIGHTS = (
    "CLIP weights {model}/{pretrained} (needed for attribute(s) {attributes}) are not available: "
    "{reason}. Supply them in one of these ways: run once with network access so that they "
    "download into the Hugging Face cache (or into --clip-cache DIR); copy a cache that holds "
    "them to this machine and pass --clip-cache DIR; or pass a local checkpoint file with "
    "--clip-weights PATH (Python: pretrained='PATH')"
)
NOT_A_CHECKPOINT = (
    "--clip-weights {path}: not a {model} checkpoint that can be loaded safely ({reason}); give "
    "an open_clip weights file (.pt/.bin/.safetensors holding tensors only)"
)
NOT_A_CHECKPOINT_FILE = "not a torch or safetensors checkpoint"
RANDOM_REFUSED = (
    "CLIP for attribute(s) {attributes}: pretrained=None would use randomly initialised weights; "
    "pass allow_random_weights=True if that is really wanted (tests, benchmarks)"
)
BAD_PROMPTS = "{path}: {problem}"
RANDOM_SEED = 0

log = logging.getLogger(__name__)
_models: dict[tuple, tuple] = {}
_models_lock = threading.Lock()


class BiaskitWeightsError(RuntimeError):
    """Model weights that a tagger needs are missing and cannot be fetched."""


def load_clip(
    model: str = DEFAULT_MODEL,
    pretrained: str | Path | None = DEFAULT_PRETRAINED,
    *,
    device=None,
    cache_dir: str | Path | None = None,
    allow_random_weights: bool = False,
    attributes: tuple[str, ...] = (),
):
    """``(model, tokenizer)`` of an open_clip model in eval mode, cached per process.

    Raises
    ------
    BiaskitWeightsError
        If the weights are neither present locally nor downloadable.
    ValueError
        If ``pretrained`` is None and ``allow_random_weights`` is not set.
    """
    device = resolve_device(device)
    names = ", ".join(attributes) or "CLIP"
    if pretrained is None and not allow_random_weights:
        raise ValueError(RANDOM_REFUSED.format(attributes=names))
    key = (model, str(pretrained), str(cache_dir), str(device))
    with _models_lock:
        if key not in _models:
            _models[key] = _create(model, pretrained, device, cache_dir, names)
        return _models[key]


def _create(model_name, pretrained, device, cache_dir, names):
    import open_clip
    import torch

    pretrained_arg = None if pretrained is None else str(pretrained)
    looks_like_file = pretrained_arg is not None and (
        Path(pretrained_arg).suffix in (".pt", ".pth", ".bin", ".safetensors") or "/" in pretrained_arg
        or Path(pretrained_arg).is_file()
    )
    if looks_like_file and not Path(pretrained_arg).is_file():
        raise BiaskitWeightsError(MISSING_WEIGHTS.format(
            model=model_name, pretrained=pretrained_arg, attributes=names, reason="no such file"))
    if looks_like_file and not _checkpoint_format(Path(pretrained_arg)):
        raise BiaskitWeightsError(NOT_A_CHECKPOINT.format(
            path=pretrained_arg, model=model_name, reason=NOT_A_CHECKPOINT_FILE))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)  # a deliberate random init is reproducible
            # open_clip itself falls back to random weights, with only a log line, when
            # the weights cannot be found (an empty tag, a hf-hub:/local-dir: model
            # without weights): demand them unless random weights were asked for.
            clip_model = open_clip.create_model(
                model_name, pretrained=pretrained_arg, device=device,
                cache_dir=None if cache_dir is None else str(cache_dir),
                require_pretrained=pretrained is not None,
            )
    except Exception as exc:  # noqa: BLE001 -- the file's problems, told in one line
        if not looks_like_file:
            if isinstance(exc, RuntimeError):
                raise BiaskitWeightsError(MISSING_WEIGHTS.format(
                    model=model_name, pretrained=pretrained_arg, attributes=names,
                    reason=exc)) from None
            raise
        # Not a weights-only checkpoint of this model: a pickle with code (refused by
        # torch.load(weights_only=True), which is what protects the user), text, or
        # the tensors of another model.
        raise BiaskitWeightsError(NOT_A_CHECKPOINT.format(
            path=pretrained_arg, model=model_name, reason=_short_reason(exc))) from None
    clip_model.eval()
    return clip_model, open_clip.get_tokenizer(model_name)


def _short_reason(exc: BaseException) -> str:
    """Why a checkpoint file failed to load, in a few words (torch's messages run to pages)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "torch.load(weights_only=True) refused it: pickled objects, or not a checkpoint"
    if isinstance(exc, RuntimeError) and "state_dict" in str(exc):
        return "its tensors are not those of this architecture"
    return NOT_A_CHECKPOINT_FILE


def _checkpoint_format(path: Path) -> bool:
    """Whether ``path`` starts like a checkpoint: a torch zip or pickle, or safetensors.

    Checked before the model is built, so a text file (or an image) is refused at once.
    """
    with open(path, "rb") as file:
        head = file.read(16)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save zip / legacy pickle
        return True
    # safetensors: an 8-byte little-endian header length, then the JSON header.
    return len(head) > 9 and head[8:9] == b"{"


def read_prompts(path: str | Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """``attribute -> label -> prompts`` from a YAML file, validated, attributes registered."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prompts file")
    data = load_yaml(path, what="CLIP prompts file") or {}
    if not isinstance(data, dict) or not data:
        raise ValueError(BAD_PROMPTS.format(path=path, problem="expected a mapping attribute -> label -> prompts"))
    result = {}
    for attribute, labels in data.items():
        if not isinstance(labels, dict) or len(labels) < 2:
            raise ValueError(BAD_PROMPTS.format(
                path=path, problem=f"attribute {attribute!r} needs a mapping of at least two labels to prompts"))
        parsed = {}
        for label, prompts in labels.items():
            prompts = [prompts] if isinstance(prompts, str) else prompts
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
                raise ValueError(BAD_PROMPTS.format(
                    path=path, problem=f"attribute {attribute!r}, label {label!r}: give one or more non-empty prompts"))
            parsed[str(label)] = tuple(prompts)
        taxonomy.register_attribute(str(attribute), list(parsed))
        result[str(attribute)] = parsed
    return result


class ClipTagger:
    """Zero-shot tagger on aligned face crops.

    Parameters
    ----------
    model, pretrained : str
        open_clip architecture and weights (tag, or path of a local checkpoint).
    prompts : str, Path or mapping, optional
        User attributes: a YAML path or a mapping ``attribute -> label -> prompts``.
    templates : tuple of str
        Sentence templates for the built-in label phrases.
    thresholds : mapping, optional
        Minimum probability per attribute; below it the label is ``unclear``.
    device : str, optional
        ``cpu`` / ``cuda``; automatic when unset.
    batch_size : int
        Faces per ``encode_image`` call.
    cache_dir : str or Path, optional
        Where hub weights are cached / looked up.
    allow_random_weights : bool
        Permit ``pretrained=None`` (random init; tests and benchmarks only).
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        pretrained: str | Path | None = DEFAULT_PRETRAINED,
        prompts: str | Path | Mapping | None = None,
        templates: tuple[str, ...] = TEMPLATES,
        thresholds: Mapping[str, float] | None = None,
        device=None,
        batch_size: int = 32,
        cache_dir: str | Path | None = None,
        allow_random_weights: bool = False,
    ):
        if pretrained is None and not allow_random_weights:
            raise ValueError(RANDOM_REFUSED.format(attributes="CLIP"))
        self.model_name, self.pretrained = model, pretrained
        self.cache_dir, self.allow_random_weights = cache_dir, allow_random_weights
        self.templates = tuple(templates)
        self.user_prompts = read_prompts(prompts) if isinstance(prompts, (str, Path)) else {
            a: {l: tuple(p) for l, p in labels.items()} for a, labels in (prompts or {}).items()
        }
        for attribute, labels in self.user_prompts.items():
            taxonomy.register_attribute(attribute, list(labels))
        self.attributes = BUILTIN_ATTRIBUTES + tuple(self.user_prompts)
        self.thresholds = {a: threshold_for(a, thresholds) for a in self.attributes}
        self.batch_size = int(batch_size)
        self._device = device
        self._class_vectors: dict[str, object] = {}
        self.calls = 0
        weights = "random" if pretrained is None else Path(str(pretrained)).name
        self.name = settings_name(
            "clip", model=model, weights=weights, templates=len(self.templates),
            prompts=_digest(self.user_prompts), **self.thresholds,
        )

    def _model(self, attributes: tuple[str, ...]):
        return load_clip(
            self.model_name, self.pretrained, device=self._device, cache_dir=self.cache_dir,
            allow_random_weights=self.allow_random_weights, attributes=attributes,
        )

    def sentences(self, attribute: str) -> dict[str, list[str]]:
        """Every sentence that describes each label of ``attribute``, in taxonomy order."""
        if attribute in self.user_prompts:
            return {label: list(p) for label, p in self.user_prompts[attribute].items()}
        phrases = LABEL_PHRASES[attribute]
        return {
            label: [t.format(p) for p in phrases[label] for t in self.templates]
            for label in taxonomy.labels(attribute)
        }

    def class_vectors(self, attribute: str):
        """``[K, d]`` unit text vectors: each label's prompt-ensemble mean, renormalised."""
        import torch

        if attribute not in self._class_vectors:
            model, tokenizer = self._model((attribute,))
            device = next(model.parameters()).device
            vectors = []
            with torch.inference_mode():
                for sentences in self.sentences(attribute).values():
                    text = model.encode_text(tokenizer(sentences).to(device))
                    text = text / text.norm(dim=-1, keepdim=True)
                    mean = text.mean(dim=0)
                    vectors.append(mean / mean.norm())
            self._class_vectors[attribute] = torch.stack(vectors)
        return self._class_vectors[attribute]

    def embed(self, faces: list[Face], *, attributes: tuple[str, ...] = ("CLIP",)) -> np.ndarray:
        """``[n, d]`` unit image embeddings of the faces' aligned crops."""
        model, _ = self._model(attributes)
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        crops = np.stack([face_crop(f, size=size) for f in faces]) if faces else None
        return self.embed_crops(crops, attributes=attributes)

    def embed_crops(self, crops: np.ndarray | None, *, attributes: tuple[str, ...] = ("CLIP",)) -> np.ndarray:
        """``[n, d]`` unit embeddings of ``[n, S, S, 3]`` uint8 crops at the model's input size."""
        import torch

        model, _ = self._model(attributes)
        if crops is None or len(crops) == 0:
            return np.zeros((0, model.visual.output_dim), np.float32)
        device = next(model.parameters()).device
        config = model.visual.preprocess_cfg
        out = []
        with torch.inference_mode():
            for part in chunks(len(crops), self.batch_size):
                self.calls += 1
                batch = to_tensor(crops[part], mean=config["mean"], std=config["std"], device=device)
                features = model.encode_image(batch)
                out.append((features / features.norm(dim=-1, keepdim=True)).float().cpu().numpy())
        return np.concatenate(out)

    def probabilities(self, embeddings: np.ndarray, attribute: str) -> np.ndarray:
        """Softmax over the labels of ``attribute`` for unit ``embeddings``."""
        import torch

        model, _ = self._model((attribute,))
        source = "race" if attribute == "race4" else attribute
        vectors = self.class_vectors(source)
        with torch.inference_mode():
            image = torch.from_numpy(embeddings).to(vectors.device, vectors.dtype)
            logits = model.logit_scale.exp() * image @ vectors.T
            probabilities = logits.softmax(dim=-1).float().cpu().numpy()
        return race7_to_race4(probabilities) if attribute == "race4" else probabilities

    def tag(self, faces: list[Face], *, attributes: tuple[str, ...] = BUILTIN_ATTRIBUTES) -> TagOutput:
        check_attributes(self.name, attributes, self.attributes)
        if not faces:
            return empty_output(attributes)
        embeddings = self.embed(faces, attributes=attributes)
        return {
            attribute: decide(
                self.probabilities(embeddings, attribute), taxonomy.labels(attribute), self.thresholds[attribute]
            )
            for attribute in attributes
        }


def _digest(prompts: Mapping) -> str:
    """Short content hash of the user prompts (recorded in the tagger name)."""
    if not prompts:
        return "none"
    import hashlib
    import json

    return hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()[:10]
