"""Benchmark: the report of a full system-card run (figures, galleries, tables).

Target: ``write_report`` for the shipped suite (prompts/system_card.yaml, ~68
prompts) x 2 models x 20 samples, 4 attributes, 8 thumbnails per prompt and
model, in <= 30 s on this 2-core machine, with report.html <= 15 MB.

The run is synthetic but shaped like a real one: real 512x512 photos on disk
(a pool of 40 distinct demo images reused across samples, as a content-addressed
store would), 1-3 people per image, random labels with ~5 % unclear, and the
metric tables computed by :class:`biaskit.metrics.BiasFrame` (200 replicates;
their time is not counted).

Usage::

    python benchmarks/bench_report.py [--samples 20] [--thumbnails 8]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit import demo, taxonomy
from biaskit.metrics import BiasFrame
from biaskit.report import write_report
from biaskit.store import write_json_atomic
from biaskit.suite import load_suite
from biaskit.tables import write_table

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 30.0
TARGET_MB = 15.0
ATTRIBUTES = ("gender", "age_group", "race4", "skin_tone")


def build_run(run_dir: Path, *, suite, samples: int, rng) -> None:
    pool = []
    for i in range(40):
        buffer = io.BytesIO()
        (demo.mixed if i % 2 else demo.skewed)("two people", i).save(buffer, format="PNG")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        (run_dir / "images").mkdir(parents=True, exist_ok=True)
        (run_dir / "images" / f"{sha}.png").write_bytes(data)
        pool.append(sha)
    # People are per image file (as the tagger writes them): 1-3 per pooled file.
    persons = {sha: int(rng.integers(1, 4)) for sha in pool}
    people = [(sha, p, 20 + 150 * p, 40, 150 + 150 * p, 200, 0.9)
              for sha, n in persons.items() for p in range(n)]
    images, observations = [], []
    for model, skew in (("baseline", 0.9), ("candidate", 0.5)):
        for prompt in suite:
            for sample in range(samples):
                sha = pool[int(rng.integers(len(pool)))]
                images.append((model, prompt.id, sample, sample, "ok", None, None,
                               f"images/{sha}.png", sha, 512, 512))
                for person in range(persons[sha]):
                    for attribute in ATTRIBUTES:
                        labels = taxonomy.labels(attribute)
                        label = (taxonomy.UNCLEAR if rng.random() < 0.05 else
                                 labels[0] if rng.random() < skew else labels[int(rng.integers(len(labels)))])
                        observations.append((model, prompt.id, sample, person, attribute, label, 0.8, "synthetic"))
    images = pd.DataFrame(images, columns=["model", "prompt_id", "sample", "seed", "status", "error",
                                           "revised_prompt", "path", "sha256", "width", "height"])
    observations = pd.DataFrame(observations, columns=["model", "prompt_id", "sample", "person",
                                                       "attribute", "label", "confidence", "tagger"])
    write_table(images, run_dir / "images.parquet")
    write_table(pd.DataFrame(people, columns=["sha256", "person", "x0", "y0", "x1", "y1", "score"]),
                run_dir / "people.parquet")
    write_table(observations, run_dir / "observations.parquet")
    BiasFrame(observations, suite=suite, images=images, n_boot=200).save(run_dir / "metrics",
                                                                        baseline="baseline")
    write_json_atomic(run_dir / "run.json", {"baseline": "baseline", "seed": 0, "samples": samples,
                                             "suite": str(suite.path)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--thumbnails", type=int, default=8)
    args = parser.parse_args(argv)
    suite = load_suite(REPO / "prompts" / "system_card.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        build_run(run_dir, suite=suite, samples=args.samples, rng=np.random.default_rng(0))
        print(f"built {len(suite)} prompts x 2 models x {args.samples} samples "
              f"in {time.perf_counter() - start:.1f} s (not counted)")
        start = time.perf_counter()
        paths = write_report(run_dir, thumbnails=args.thumbnails)
        elapsed = time.perf_counter() - start
        size_mb = paths["html"].stat().st_size / 1e6
        n_figures = len(list(paths["figures"].glob("*.png")))
    ok = elapsed <= TARGET_S and size_mb <= TARGET_MB
    print(f"write_report: {elapsed:.1f} s (target <= {TARGET_S:.0f} s); report.html {size_mb:.1f} MB "
          f"(target <= {TARGET_MB:.0f} MB); {n_figures} figures; "
          f"{len(suite) * 2 * args.thumbnails} thumbnails -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
