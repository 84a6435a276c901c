"""Benchmark: 1,000,000 observation rows -> all metric tables with 1000-replicate intervals.

Target (issue 4): <= 10 s wall-clock and <= 2 GB peak memory on a 2-core machine.

The synthetic measurement is 3 models x 100 prompts x N samples with ~1.7 people
per image (1 to 3; ~6 % of images have nobody) and 3 attributes (gender,
race, skin_tone), ~8 % of labels "unclear"; N is chosen so the observations
reach the requested row count (--rows).  ``--samples-per-prompt`` fixes N
instead: 20 is the system-card layout (3 x 3268 prompts x 20 samples), with
~33 times more model x prompt groups, hence ~9,800 count vectors per
attribute with 1000 posterior draws each (race and skin tone: 7,100 and
8,000 distinct ones) and ~13,000 small tables for the Monte-Carlo
conditional test.
Both layouts must meet the target::

    python benchmarks/bench_metrics.py                          # 100 prompts x 654 samples
    python benchmarks/bench_metrics.py --samples-per-prompt 20  # the card's layout

Usage::

    python benchmarks/bench_metrics.py [--rows 1000000] [--n-boot 1000] [--prompts 100]

Prints: build time of the data (not counted), then the time of BiasFrame
construction (validation, packing) and of each table (the posterior draws
fall in the first that needs them, ``summary``), the total
wall-clock and CPU time (wall-clock suffers when other jobs share the cores),
and the peak resident memory of the process (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.metrics import BiasFrame
from biaskit.suite import suite_from_dict

TARGET_SECONDS = 10.0
TARGET_PEAK_GB = 2.0
ATTRIBUTES = ("gender", "race", "skin_tone")
MODELS = ("candidate", "baseline", "previous")


def make_suite(n_prompts: int):
    prompts = []
    for i in range(n_prompts):
        if i % 10 == 9:
            prompts.append({"id": f"p{i:03d}", "text": f"prompt {i}", "kind": "ahistorical",
                            "expected": {"gender": "Male"}})
        elif i % 3 == 2:
            prompts.append({"id": f"p{i:03d}", "text": f"prompt {i}", "kind": "group", "count": 3})
        else:
            prompts.append({"id": f"p{i:03d}", "text": f"prompt {i}"})
    return suite_from_dict({"name": "bench", "prompts": prompts})


def make_observations(*, rows: int, n_prompts: int, samples: int | None, seed: int = 0):
    """Observations (and images table) with about ``rows`` rows."""
    rng = np.random.default_rng(seed)
    people_per_image = 1.7
    if samples is None:
        samples = int(np.ceil(rows / (len(MODELS) * n_prompts * people_per_image * len(ATTRIBUTES))))
    else:
        n_prompts = int(np.ceil(rows / (len(MODELS) * samples * people_per_image * len(ATTRIBUTES))))
    n_images = len(MODELS) * n_prompts * samples
    model = np.repeat(np.arange(len(MODELS)), n_prompts * samples)
    prompt = np.tile(np.repeat(np.arange(n_prompts), samples), len(MODELS))
    sample = np.tile(np.arange(samples), len(MODELS) * n_prompts)
    people = rng.choice([0, 1, 2, 3], size=n_images, p=[0.06, 0.36, 0.4, 0.18])  # mean ~1.7
    image = np.repeat(np.arange(n_images), people)
    person = np.arange(len(image)) - np.repeat(np.cumsum(people) - people, people)
    frames = []
    for attribute in ATTRIBUTES:
        labels = np.array(taxonomy.labels(attribute) + (taxonomy.UNCLEAR,), dtype=object)
        # Each model x prompt has its own skewed label distribution.
        weights = rng.dirichlet(np.full(len(labels) - 1, 0.5), size=len(MODELS) * n_prompts)
        weights = np.hstack([weights * 0.92, np.full((len(weights), 1), 0.08)])
        group = model[image] * n_prompts + prompt[image]
        cumulative = weights.cumsum(axis=1)[group]
        label = (rng.random(len(image))[:, None] > cumulative).sum(axis=1)
        frames.append(pd.DataFrame({
            "model": np.array(MODELS, dtype=object)[model[image]],
            "prompt_id": np.array([f"p{i:03d}" for i in range(n_prompts)], dtype=object)[prompt[image]],
            "sample": sample[image], "person": person, "attribute": attribute,
            "label": labels[np.minimum(label, len(labels) - 1)]}))
    observations = pd.concat(frames, ignore_index=True)
    status = rng.choice(["ok", "refused", "error"], size=n_images, p=[0.96, 0.03, 0.01])
    status[people > 0] = "ok"
    images = pd.DataFrame({"model": np.array(MODELS, dtype=object)[model],
                           "prompt_id": np.array([f"p{i:03d}" for i in range(n_prompts)],
                                                 dtype=object)[prompt],
                           "sample": sample, "status": status})
    return observations, images, n_prompts, samples


def peak_rss_gb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--samples-per-prompt", type=int, default=None)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    observations, images, n_prompts, samples = make_observations(
        rows=args.rows, n_prompts=args.prompts, samples=args.samples_per_prompt)
    suite = make_suite(n_prompts)
    print(f"data: {len(observations):,} observation rows, {len(images):,} images "
          f"({len(MODELS)} models x {n_prompts} prompts x {samples} samples, "
          f"{len(ATTRIBUTES)} attributes); built in {time.perf_counter() - start:.1f} s (not counted)")
    rss_before = peak_rss_gb()

    timings = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    tick = start
    frame = BiasFrame(observations, suite=suite, images=images, n_boot=args.n_boot, seed=0)
    timings["BiasFrame (validate, pack)"] = time.perf_counter() - tick
    for name in ("distribution", "summary", "overall", "rates"):
        tick = time.perf_counter()
        table = getattr(frame, name)
        timings[f"{name} ({len(table):,} rows)"] = time.perf_counter() - tick
    tick = time.perf_counter()
    comparison = frame.compare(baseline="baseline")
    timings[f"comparison ({len(comparison):,} rows)"] = time.perf_counter() - tick
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = peak_rss_gb()

    for name, seconds in timings.items():
        print(f"  {name:48s} {seconds:6.2f} s")
    print(f"CPU time of this process: {cpu:.2f} s (load average now {os.getloadavg()[0]:.1f}; "
          "wall-clock suffers when other jobs share the cores)")
    print(f"total: {total:.2f} s (target <= {TARGET_SECONDS:.0f} s) -> "
          f"{'OK' if total <= TARGET_SECONDS else 'OVER'}")
    print(f"peak RSS: {peak:.2f} GB (before measuring: {rss_before:.2f} GB; target <= "
          f"{TARGET_PEAK_GB:.0f} GB) -> {'OK' if peak <= TARGET_PEAK_GB else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
