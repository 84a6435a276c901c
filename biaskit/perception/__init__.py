"""Perception: find every face in every image and tag it (DESIGN.md §1-3, §5).

images -> people -> observations.  Detectors (:mod:`.detect`): CenterFace
(default) and dlib HOG.  Taggers: the embedded dlib gender/age classifiers
(:mod:`.embedded`), Monk Skin Tone colorimetry (:mod:`.skin_tone`), CLIP
zero-shot (:mod:`.clip`), a FairFace ResNet-34 checkpoint (:mod:`.fairface`)
and a linear probe on CLIP or dlib-descriptor embeddings (:mod:`.probe`,
:mod:`.descriptor`).  :func:`tag_run` tags a run directory, :func:`validate`
measures any tagger on labelled faces.

Examples
--------
>>> from biaskit.perception import tag_run, validate
>>> observations = tag_run("runs/demo")                                            # doctest: +SKIP
>>> result = validate(labels="val.csv", images="faces/", tagger="embedded", out="val")  # doctest: +SKIP
"""

from biaskit.perception.base import DEFAULT_THRESHOLDS, Face, Tagger
from biaskit.perception.cache import TagCache
from biaskit.perception.clip import BiaskitWeightsError, ClipTagger, load_clip, read_prompts
from biaskit.perception.detect import CenterFaceDetector, Detector, Faces, HogDetector, make_detector
from biaskit.perception.embedded import EmbeddedTagger
from biaskit.perception.fairface import FairFaceTagger, load_fairface
from biaskit.perception.images import ImageLoadError, LoadedImage, load_image
from biaskit.perception.pipeline import DEFAULT_MIN_FACE, ERRORS_TABLE, TagResult, tag_images, tag_run
from biaskit.perception.probe import ProbeTagger, train_probe
from biaskit.perception.skin_tone import SkinToneTagger, skin_tone
from biaskit.perception.taggers import make_taggers, plan_taggers
from biaskit.perception.validate import ValidationResult, validate, wilson_interval

__all__ = [
    "BiaskitWeightsError", "CenterFaceDetector", "ClipTagger", "DEFAULT_MIN_FACE", "DEFAULT_THRESHOLDS",
    "Detector", "ERRORS_TABLE", "EmbeddedTagger", "Face", "Faces", "FairFaceTagger", "HogDetector",
    "ImageLoadError", "LoadedImage", "ProbeTagger", "SkinToneTagger", "TagCache", "TagResult", "Tagger",
    "ValidationResult", "load_clip", "load_fairface", "load_image", "make_detector", "make_taggers",
    "plan_taggers", "read_prompts", "skin_tone", "tag_images", "tag_run", "train_probe", "validate",
    "wilson_interval",
]
