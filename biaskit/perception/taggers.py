"""Choosing taggers: spec strings, defaults per attribute, and who tags what.

Spec strings (CLI ``--tagger``, Python ``tagger=``):

============================  ==============================================
``embedded``                  dlib gender/age + MST colorimetry (offline)
``dlib``                      dlib gender, age, age_group only
``skin``                      MST colorimetry only
``clip[:MODEL[:PRETRAINED]]`` open_clip zero-shot (race, race4, gender, user)
``fairface:PATH``             FairFace ResNet-34 checkpoint
``probe:PATH``                linear probe trained by ``biaskit train-probe``, on the
                              backbone its file records (CLIP or the dlib descriptor)
============================  ==============================================

Each requested attribute is tagged by exactly one tagger: the first listed
that provides it, else its default backend (:data:`DEFAULT_BACKEND`).  So
``--tagger clip`` with no ``--attributes`` tags race, race4 and gender with CLIP,
and ``--tagger clip --tagger embedded`` adds age and skin tone from the
embedded stack while gender stays with CLIP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from biaskit import taxonomy
from biaskit.perception.base import Tagger, threshold_for

RANDOM_WEIGHTS = "random"
#: Attributes tagged when neither attributes nor taggers are given: all offline.
DEFAULT_ATTRIBUTES = ("gender", "age", "age_group", "skin_tone")
DEFAULT_BACKEND = {
    "gender": "dlib", "age": "dlib", "age_group": "dlib", "skin_tone": "skin", "race": "clip", "race4": "clip",
}
UNKNOWN_SPEC = (
    "unknown tagger {spec!r}; use embedded, dlib, skin, clip[:MODEL[:PRETRAINED]], fairface:PATH or probe:PATH"
)
NO_TAGGER = (
    "attribute {attribute!r} has no default tagger; give a tagger that provides it "
    "(e.g. --tagger clip with --clip-prompts YAML, or --tagger probe:PATH)"
)
BAD_DEVICE = "device (--device) must be cpu, cuda, cuda:N or mps, got {value!r}"
#: torch device strings biaskit's taggers run on; anything else is a typo caught before any work
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps")


@dataclass
class TaggerOptions:
    """Settings passed to taggers built from spec strings."""

    thresholds: Mapping[str, float] | None = None
    cautious: bool = True
    device: str | None = None
    batch_size: int = 32
    clip_prompts: object = None
    clip_weights: str | None = None
    clip_cache: str | None = None
    allow_random_weights: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # the embedded taggers never read the device, so a typo would otherwise pass unnoticed
        if self.device is not None and not DEVICE_PATTERN.fullmatch(str(self.device)):
            raise ValueError(BAD_DEVICE.format(value=self.device))


def make_taggers(spec: "str | Tagger", options: TaggerOptions) -> list[Tagger]:
    """The tagger(s) a spec string names (an instance is returned as is)."""
    if not isinstance(spec, str):
        return [spec]
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("embedded", "dlib"):
        from biaskit.perception.embedded import EmbeddedTagger

        taggers: list[Tagger] = [EmbeddedTagger(thresholds=options.thresholds, cautious=options.cautious)]
        return taggers + (make_taggers("skin", options) if kind == "embedded" else [])
    if kind in ("skin", "mst"):
        from biaskit.perception.skin_tone import SkinToneTagger

        return [SkinToneTagger(threshold=threshold_for("skin_tone", options.thresholds))]
    if kind == "clip":
        from biaskit.perception import clip

        model, _, pretrained = rest.partition(":")
        pretrained = _weights(options.clip_weights or pretrained or clip.DEFAULT_PRETRAINED)
        return [clip.ClipTagger(
            model=model or clip.DEFAULT_MODEL, pretrained=pretrained, prompts=options.clip_prompts,
            thresholds=options.thresholds, device=options.device, batch_size=options.batch_size,
            cache_dir=options.clip_cache, allow_random_weights=options.allow_random_weights,
        )]
    if kind == "fairface" and rest:
        from biaskit.perception.fairface import FairFaceTagger

        return [FairFaceTagger(checkpoint=rest, thresholds=options.thresholds, cautious=options.cautious,
                               device=options.device, batch_size=options.batch_size)]
    if kind == "probe" and rest:
        from biaskit.perception.probe import ProbeTagger

        return [ProbeTagger(path=rest, pretrained=_weights(options.clip_weights), thresholds=options.thresholds,
                            device=options.device, batch_size=options.batch_size, cache_dir=options.clip_cache,
                            allow_random_weights=options.allow_random_weights)]
    raise ValueError(UNKNOWN_SPEC.format(spec=spec))


def _weights(value):
    """The CLIP weights argument; the word ``random`` stands for None (random init, if allowed)."""
    return None if value == RANDOM_WEIGHTS else value


def plan_taggers(
    *, attributes, tagger, options: TaggerOptions
) -> list[tuple[Tagger, tuple[str, ...]]]:
    """``[(tagger, attributes it tags)]``: every requested attribute assigned to one tagger."""
    specs = [] if tagger is None else ([tagger] if isinstance(tagger, str) or not isinstance(tagger, (list, tuple)) else list(tagger))
    taggers = [t for spec in specs for t in make_taggers(spec, options)]
    if attributes is None:
        provided = [a for t in taggers for a in t.attributes]
        attributes = tuple(dict.fromkeys(provided)) if taggers else DEFAULT_ATTRIBUTES
    attributes = tuple(attributes)
    for attribute in attributes:
        taxonomy.labels(attribute)  # KeyError naming the attribute if unknown
    assignment: dict[int, list[str]] = {}
    for attribute in attributes:
        owner = next((i for i, t in enumerate(taggers) if attribute in t.attributes), None)
        if owner is None:
            backend = DEFAULT_BACKEND.get(attribute)
            if backend is None:
                raise ValueError(NO_TAGGER.format(attribute=attribute))
            owner = next((i for i, t in enumerate(taggers) if getattr(t, "_spec", None) == backend), None)
            if owner is None:
                new = make_taggers(backend, options)
                for t in new:
                    t._spec = backend
                taggers.extend(new)
                owner = next(i for i, t in enumerate(taggers) if attribute in t.attributes)
        assignment.setdefault(owner, []).append(attribute)
    return [(taggers[i], tuple(attrs)) for i, attrs in sorted(assignment.items())]
