"""A small measured run on disk, for the report tests: real images, hand-made metrics.

The metric tables are written by hand (known values) so the report tests check
what the report shows, independently of how the metrics are computed.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import yaml

from biaskit import demo
from biaskit.tables import write_table

SECRET = "sk-test-DoNotLeak0123456789"
EVIL_TEXT = 'a <script>alert("x")</script> doctor | & co'
SUITE = {
    "name": "report-test",
    "samples": 2,
    "prompts": [
        {"id": "doctor", "text": EVIL_TEXT},
        {"id": "workers", "text": "three construction workers", "kind": "group", "count": 3},
        {"id": "founders", "text": "the US founding fathers", "kind": "ahistorical",
         "expected": {"gender": "Male"}},
    ],
}
MODELS = ("base", "cand")  # base is the baseline
ATTRIBUTES = ("gender", "skin_tone")


def _store(run_dir, image):
    payload = io.BytesIO()
    image.save(payload, format="PNG")
    data = payload.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = run_dir / "images" / f"{sha}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha, f"images/{sha}.png", image.size


def make_run(run_dir):
    """Write a measured run; return a dict of what was written (for expectations)."""
    suite_path = run_dir / "suite.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    suite_path.write_text(yaml.safe_dump(SUITE), encoding="utf-8")
    images, people, observations = [], [], []
    generators = {"base": demo.skewed, "cand": demo.mixed}
    for model in MODELS:
        for prompt in SUITE["prompts"]:
            for sample in range(2):
                seed = 100 * MODELS.index(model) + 10 * sample + len(prompt["id"])
                sha, path, (w, h) = _store(run_dir, generators[model](prompt["text"], seed))
                images.append((model, prompt["id"], sample, seed, "ok", None, None, path, sha, w, h))
                n_people = 3 if prompt["id"] == "workers" else 1
                for person in range(n_people):
                    people.append((sha, person, 10 + 150 * person, 20, 140 + 150 * person, 180, 0.9))
                    gender = "Female" if (model == "cand" and (sample + person) % 2) else "Male"
                    tone = "unclear" if (model, prompt["id"], sample) == ("cand", "doctor", 1) else "MST3"
                    observations += [(model, prompt["id"], sample, person, "gender", gender, 0.9, "embedded"),
                                     (model, prompt["id"], sample, person, "skin_tone", tone, 0.8, "colorimetry")]
    # One refused and one failed sample for the candidate.
    images.append(("cand", "doctor", 2, 1, "refused", "content policy", None, None, None, None, None))
    images.append(("cand", "workers", 2, 2, "error", "HTTP 500", None, None, None, None, None))
    images_df = pd.DataFrame(images, columns=["model", "prompt_id", "sample", "seed", "status", "error",
                                              "revised_prompt", "path", "sha256", "width", "height"])
    write_table(images_df, run_dir / "images.parquet")
    write_table(pd.DataFrame(people, columns=["sha256", "person", "x0", "y0", "x1", "y1", "score"]),
                run_dir / "people.parquet")
    write_table(pd.DataFrame(observations, columns=["model", "prompt_id", "sample", "person",
                                                    "attribute", "label", "confidence", "tagger"]),
                run_dir / "observations.parquet")
    # The tagger could not read one of the candidate's images.
    write_table(pd.DataFrame([("cand", "workers", 1, "ab" * 32, "images/x.png", "truncated file")],
                             columns=["model", "prompt_id", "sample", "sha256", "path", "error"]),
                run_dir / "perception_errors.parquet")
    _write_metrics(run_dir)
    config = {"name": "report-test-run", "suite": {"path": str(suite_path)}, "seed": 7,
              "samples": 2, "baseline": "base",
              "models": {"base": "python:biaskit.demo:skewed", "cand": "openai:gpt-image-1"},
              "openai": {"api_key": SECRET, "base_url": "http://127.0.0.1:1"},
              "note": f"Authorization: Bearer {SECRET}"}
    (run_dir / "run.json").write_text(json.dumps(config), encoding="utf-8")
    return {"images": images_df, "suite_path": suite_path}


def _write_metrics(run_dir):
    metrics = run_dir / "metrics"
    distribution = pd.DataFrame(
        [("base", "doctor", "gender", "Male", 2, 1.0, 1.0, 1.0),
         ("cand", "doctor", "gender", "Male", 1, 0.5, 0.0, 1.0),
         ("cand", "doctor", "gender", "Female", 1, 0.5, 0.0, 1.0),
         ("base", "doctor", "skin_tone", "MST3", 2, 1.0, 1.0, 1.0),
         ("cand", "doctor", "skin_tone", "MST3", 1, 1.0, 1.0, 1.0),
         ("cand", "doctor", "skin_tone", "unclear", 1, np.nan, np.nan, np.nan)],
        columns=["model", "prompt_id", "attribute", "label", "count", "share", "ci_low", "ci_high"])
    summary_rows = []
    for model in MODELS:
        for prompt in SUITE["prompts"]:
            for attribute in ATTRIBUTES:
                expected = prompt.get("expected", {}).get(attribute)
                entropy = 0.0 if model == "base" else 0.6 + 0.1 * len(prompt["id"]) % 3 / 10
                match = (1.0 if model == "base" else 0.75) if expected else np.nan
                summary_rows.append((model, prompt["id"], prompt.get("kind", "individual"), attribute,
                                     2, 2, 2 if expected is None else 4, 0.0, 0.0,
                                     entropy, max(0.0, entropy - 0.2), min(1.0, entropy + 0.2),
                                     entropy > 0, np.nan, expected, match, 1.0))
    summary = pd.DataFrame(summary_rows, columns=[
        "model", "prompt_id", "kind", "attribute", "n_images", "n_people", "n_known", "unclear_share",
        "no_person_share", "entropy", "entropy_ci_low", "entropy_ci_high", "heterogeneous",
        "within_image_heterogeneity", "expected", "match_rate", "count_accuracy"])
    overall = pd.DataFrame(
        [("base", "gender", "individual", 1, 0.0, 0.0, 0.0, 0.05, 0.0, 0.1, np.nan),
         ("cand", "gender", "individual", 1, 0.45, 0.30, 0.60, 0.62, 0.5, 0.7, np.nan),
         ("base", "skin_tone", "individual", 1, 0.1, 0.0, 0.2, 0.11, 0.05, 0.2, np.nan),
         ("cand", "skin_tone", "individual", 1, 0.2, 0.1, 0.3, 0.33, 0.25, 0.4, np.nan),
         ("base", "gender", "ahistorical", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
         ("cand", "gender", "ahistorical", 1, 1.0, 1.0, 1.0, 0.81, 0.6, 1.0, 0.75)],
        columns=["model", "attribute", "kind", "n_prompts", "hof", "hof_ci_low", "hof_ci_high",
                 "mean_entropy", "mean_entropy_ci_low", "mean_entropy_ci_high", "match_rate"])
    q = {"doctor": 0.003, "workers": 0.3, "founders": 0.049}
    comparison = pd.DataFrame(
        [("doctor", "gender", "entropy", 0.62, 0.0, 0.62, 0.4, 0.8),
         ("doctor", "gender", "share:Male", 0.5, 1.0, -0.5, -0.8, -0.2),
         ("doctor", "gender", "share:Female", 0.5, 0.0, 0.5, 0.2, 0.8),
         ("workers", "gender", "entropy", 0.3, 0.2, 0.1, -0.1, 0.3),
         ("workers", "gender", "share:Male", 0.9, 1.0, -0.1, -0.3, 0.1),
         ("founders", "skin_tone", "share:MST3", 0.9, 1.0, -0.1, -0.2, 0.0),
         ("founders", "skin_tone", "share:MST5", 0.05, 0.0, 0.05, 0.0, 0.1),
         ("all:individual", "gender", "hof", 0.45, 0.0, 0.45, 0.3, 0.6)],
        columns=["prompt_id", "attribute", "metric", "value", "baseline_value", "delta", "ci_low",
                 "ci_high"]).assign(model="cand", baseline="base")
    # p and q disagree both ways: workers has p < 0.05 <= q (not significant), and founders
    # (another attribute, so another BH family) the smallest p but not the smallest q.
    p = {"doctor": 0.001, "workers": 0.02, "founders": 0.0005}
    comparison["q_value"] = comparison["prompt_id"].map(q).fillna(0.0001)
    comparison["p_value"] = comparison["prompt_id"].map(p).fillna(0.00005)
    # cand: 1 refused and 1 failed of 8 samples, 1 unclear of 20 labels; a person in every image.
    rates = pd.DataFrame(
        [("base", 6, 6, 0.0, 0.0, 0.0, 20, 0.0), ("cand", 8, 6, 0.125, 0.125, 0.0, 20, 0.05)],
        columns=["model", "n_samples", "n_images", "refusal_rate", "error_rate", "no_person_share",
                 "n_observations", "unclear_share"])
    for name, frame in (("distribution", distribution), ("summary", summary), ("overall", overall),
                        ("rates", rates), ("comparison", comparison)):
        write_table(frame, metrics / f"{name}.parquet", csv=True)
