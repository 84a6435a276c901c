"""Benchmark: coverage of every interval biaskit reports, by simulation with a known truth.

Target (issue 11): at nominal 95 %, every interval type covers 93-99 % overall,
no grid cell below 85 %, and no point estimate outside its own interval.

Grid (one cell per combination): the category distribution of each prompt --
skewed with a 0, 1, 3 or 5 % minority, balanced, near-uniform -- x 2 or 7
categories (gender, race) x an exact or a noisy tagger (gender: 8 % of Male and
12 % of Female faces tagged wrong; race: 12 % of faces tagged as one of the six
other categories at random).  Each replicate is one suite measured for a
candidate and a baseline model (the same family, categories permuted
independently): 8 individual prompts (one person per image, 5 % of images show
two), 8 group prompts ("three workers": 3 persons in 80 % of images, 2 in 20 %;
with probability 0.5 every person of an image has the same true label, which
makes persons in one image correlated) and 4 ahistorical prompts (expected
label: the prompt's most frequent one), 20 samples per prompt.  With the noisy
tagger the plain metrics' truth is the distribution of the *tagged* labels
(what the plain metrics estimate), and the corrected metrics' truth is the
distribution of the true labels, the correction using a confusion table from a
simulated validation set of 250 faces per class, one per model of each
replicate (as ``confusion_by_model`` gives a model its own table): the coverage
over both the generated images and the validation set, which is what the
corrected intervals claim, as they carry the validation set's uncertainty.
``--validation-per-cell`` shares one validation set among every replicate of a
cell instead (coverage given that one validation set: it can flatter or
condemn the intervals by the luck of one draw).

Interval types: per prompt, category share, entropy, within-image
heterogeneity, match rate, count accuracy; per kind (individual, group,
ambiguous = both, ahistorical), HOF, mean entropy and mean match rate; the
comparison table's deltas (per prompt and per kind); corrected share, entropy,
and HOF and mean entropy per kind.

Usage::

    python benchmarks/bench_coverage.py [--replicates 20] [--draws 1000] [--cells skew3-k2-exact,...]
    # the grid in two processes (a core each), then together:
    python benchmarks/bench_coverage.py --noisy no --save exact.json
    python benchmarks/bench_coverage.py --noisy yes --save noisy.json
    python benchmarks/bench_coverage.py --merge exact.json noisy.json
    python benchmarks/bench_coverage.py --plain ...  # the plain intervals only

Prints, per interval type: coverage over the whole grid, the worst cell and
its coverage, the mean width and the number of point estimates outside their
interval; ``--by-cell`` adds every cell's coverage (and its number of intervals).  With ``--replicates 20`` (the default) a cell's coverage of a
per-kind interval rests on 160 intervals (2 models x 4 kinds x 20; binomial
standard error ~1.7 points at 95 %), of a per-prompt interval on 320-3,000.
Time per cell at 20 replicates, measured on the 2-core development machine
while it ran at a load average of 9-17: ~8 s with the exact tagger, 1-2 min
(2 categories) and 1.5-8 min (7 categories) with the noisy one, whose corrected
metrics unmix every draw; the README's figures used 80 replicates per
exact-tagger cell and 40 (2 categories) or 20 (7 categories) per noisy cell.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.metrics import BiasFrame
from biaskit.suite import suite_from_dict

TARGET_LOW, TARGET_HIGH, TARGET_CELL = 0.93, 0.99, 0.85
SAMPLES = 20
N_INDIVIDUAL, N_GROUP, N_AHISTORICAL = 8, 8, 4
GROUP_SIZES = {3: 0.8, 2: 0.2}
INDIVIDUAL_SIZES = {1: 0.95, 2: 0.05}
CORRELATION = 0.5
VALIDATION_PER_CLASS = 250
ATTRIBUTE = {2: "gender", 7: "race"}
FAMILIES = ("skew0", "skew1", "skew3", "skew5", "balanced", "near-uniform")
BALANCED = {2: [0.6, 0.4], 7: [0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05]}
NEAR_UNIFORM_CONCENTRATION = 300.0


def confusion_matrix(k: int, noisy: bool) -> np.ndarray:
    """C[true, tagged]: identity for the exact tagger."""
    if not noisy:
        return np.eye(k)
    if k == 2:
        return np.array([[0.92, 0.08], [0.12, 0.88]])
    return np.full((k, k), 0.12 / (k - 1)) + np.eye(k) * (0.88 - 0.12 / (k - 1))


def prompt_distribution(family: str, k: int, rng) -> np.ndarray:
    """A prompt's true category distribution, categories randomly permuted."""
    if family.startswith("skew"):
        minority = int(family[4:]) / 100
        p = np.zeros(k)
        p[0], p[1] = 1 - minority, minority
    elif family == "balanced":
        p = np.array(BALANCED[k])
    else:
        p = rng.dirichlet(np.full(k, NEAR_UNIFORM_CONCENTRATION))
    return p[rng.permutation(k)]


def image_type_probability(p, C, sizes) -> np.ndarray:
    """P(an image's persons all carry tagged label c), per c, and P(the image has >= 2 persons and
    they hold >= 2 tagged labels) -- under the simulation's model."""
    q = C.T @ p
    pure = np.zeros(len(p))
    mixed = 0.0
    for m, weight in sizes.items():
        same = CORRELATION * (p @ C**m) + (1 - CORRELATION) * q**m
        pure += weight * same
        if m >= 2:
            mixed += weight * (1 - same.sum())
    return pure, mixed


def simulate_prompt(p, C, sizes, rng):
    """(sample, person, tagged label index) of 20 images."""
    rows = []
    size_values, size_weights = list(sizes), list(sizes.values())
    for sample in range(SAMPLES):
        m = rng.choice(size_values, p=size_weights)
        if rng.random() < CORRELATION:
            true = np.repeat(rng.choice(len(p), p=p), m)
        else:
            true = rng.choice(len(p), size=m, p=p)
        for person, t in enumerate(true):
            rows.append((sample, person, rng.choice(len(p), p=C[t])))
    return rows


def make_suite():
    prompts = [{"id": f"ind{i}", "text": f"individual {i}"} for i in range(N_INDIVIDUAL)]
    prompts += [{"id": f"grp{i}", "text": f"group {i}", "kind": "group", "count": 3}
                for i in range(N_GROUP)]
    return prompts


def entropy(p) -> float:
    p = np.asarray(p, dtype=float)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(len(p)))


def simulate_cell(family, k, noisy, *, replicates, rng, per_replicate=False):
    """Observations, images and the truth of every quantity, for 2 x replicates models."""
    attribute = ATTRIBUTE[k]
    labels = taxonomy.labels(attribute)
    C = confusion_matrix(k, noisy)
    base_prompts = make_suite()
    obs, images, truth = [], [], {}
    expected_of = {}
    # The expected label of each ahistorical prompt (one suite for every replicate).
    ahistorical_majority = rng.integers(k, size=N_AHISTORICAL)
    for r in range(replicates):
        for role in ("candidate", "baseline"):
            model = f"r{r}-{role}"
            for spec in base_prompts + [{"id": f"ahi{i}", "kind": "ahistorical"}
                                        for i in range(N_AHISTORICAL)]:
                kind = spec.get("kind", "individual")
                p = prompt_distribution(family, k, rng)
                if kind == "ahistorical":
                    # The expected label is the prompt's most frequent label (fixed per suite).
                    major = int(ahistorical_majority[int(spec["id"][3:])])
                    order = np.argsort(-p, kind="stable")
                    p = p.copy()
                    p[[major, order[0]]] = p[[order[0], major]]
                    expected_of[spec["id"]] = labels[major]
                sizes = GROUP_SIZES if kind != "individual" else INDIVIDUAL_SIZES
                for sample, person, label in simulate_prompt(p, C, sizes, rng):
                    obs.append((model, spec["id"], sample, person, attribute, labels[label]))
                images += [(model, spec["id"], s, "ok") for s in range(SAMPLES)]
                q = C.T @ p
                pure, mixed = image_type_probability(p, C, sizes)
                multi = sum(w for m, w in sizes.items() if m >= 2)
                truth[model, spec["id"]] = {
                    "kind": kind, "shares": q, "entropy": entropy(q),
                    "hof": 1 - (pure**SAMPLES).sum(), "within": mixed / multi if multi else np.nan,
                    "match": q[labels.index(expected_of[spec["id"]])] if kind == "ahistorical"
                    else np.nan,
                    "count": sizes.get(3 if kind == "group" else 1, 0.0) if kind != "ahistorical"
                    else np.nan,
                    "true_shares": p, "true_entropy": entropy(p),
                    "true_hof": 1 - (p**SAMPLES).sum()}
    prompts = base_prompts + [{"id": f"ahi{i}", "text": f"ahistorical {i}", "kind": "ahistorical",
                               "expected": {attribute: expected_of[f"ahi{i}"]}}
                              for i in range(N_AHISTORICAL)]
    suite = suite_from_dict({"name": "coverage", "prompts": prompts})
    observations = pd.DataFrame(obs, columns=["model", "prompt_id", "sample", "person",
                                              "attribute", "label"])
    images = pd.DataFrame(images, columns=["model", "prompt_id", "sample", "status"])
    if not noisy:
        confusion = None
    elif per_replicate:  # each model of each replicate its own validation set (confusion_by_model)
        confusion = pd.concat([validation_confusion(attribute, labels, C, rng).assign(model=f"r{r}-{role}")
                               for r in range(replicates) for role in ("candidate", "baseline")],
                              ignore_index=True)
    else:
        confusion = validation_confusion(attribute, labels, C, rng)
    return suite, observations, images, truth, confusion, attribute


def validation_confusion(attribute, labels, C, rng) -> pd.DataFrame:
    """A tidy confusion table from 250 simulated validation faces per class."""
    rows = []
    for i, true in enumerate(labels):
        counts = rng.multinomial(VALIDATION_PER_CLASS, C[i])
        rows += [(attribute, true, labels[j], int(c)) for j, c in enumerate(counts)]
    return pd.DataFrame(rows, columns=["attribute", "true", "predicted", "count"])


class Tally:
    """Coverage, width and points outside, per interval type and cell."""

    def __init__(self):
        self.hits = defaultdict(lambda: defaultdict(list))
        self.widths = defaultdict(list)
        self.outside = defaultdict(int)

    def add(self, kind, cell, truth, point, low, high):
        truth, point = np.asarray(truth, float), np.asarray(point, float)
        low, high = np.asarray(low, float), np.asarray(high, float)
        valid = ~np.isnan(truth) & ~np.isnan(point)
        tolerance = 1e-9
        covered = (low[valid] - tolerance <= truth[valid]) & (truth[valid] <= high[valid] + tolerance)
        self.hits[kind][cell] += covered.tolist()
        self.widths[kind] += (high[valid] - low[valid]).tolist()
        self.outside[kind] += int(((point[valid] < low[valid] - tolerance)
                                   | (point[valid] > high[valid] + tolerance)
                                   | np.isnan(low[valid])).sum())

    def save(self, path) -> None:
        Path(path).write_text(json.dumps({"hits": self.hits, "widths": self.widths,
                                          "outside": self.outside}))

    @classmethod
    def load(cls, paths) -> "Tally":
        """The tallies of several :meth:`save` files together (cells run in separate processes)."""
        tally = cls()
        for path in paths:
            saved = json.loads(Path(path).read_text())
            for kind, cells in saved["hits"].items():
                for cell, hits in cells.items():
                    tally.hits[kind][cell] += hits
            for kind, widths in saved["widths"].items():
                tally.widths[kind] += widths
            for kind, outside in saved["outside"].items():
                tally.outside[kind] += outside
        return tally

    def report(self, *, by_cell: bool = False) -> bool:
        ok = True
        print(f"{'interval':34s} {'coverage':>8s} {'worst cell':>26s} {'width':>7s} {'outside':>7s}")
        for kind, cells in self.hits.items():
            every = np.concatenate([np.array(v, dtype=float) for v in cells.values()])
            worst = min(cells, key=lambda c: np.mean(cells[c]))
            overall, worst_value = every.mean(), np.mean(cells[worst])
            passed = (TARGET_LOW <= overall <= TARGET_HIGH and worst_value >= TARGET_CELL
                      and self.outside[kind] == 0)
            ok &= passed
            print(f"{kind:34s} {overall:8.3f} {worst:>19s} {worst_value:6.3f} "
                  f"{np.mean(self.widths[kind]):7.3f} {self.outside[kind]:7d}"
                  f"{'' if passed else '  <- target missed'}")
            if by_cell:
                print("    " + ", ".join(f"{cell} {np.mean(hits):.3f} ({len(hits)})"
                                         for cell, hits in sorted(cells.items())))
        return ok


def tally_cell(tally, cell, bias, truth, attribute, *, corrected: bool):
    labels = bias.taxonomies[attribute]
    dist = bias.distribution
    key = list(zip(dist["model"], dist["prompt_id"]))
    index = dist["label"].map(labels.index).to_numpy()
    share_truth = [truth[k]["shares"][i] for k, i in zip(key, index)]
    tally.add("share", cell, share_truth, dist["share"], dist["ci_low"], dist["ci_high"])
    summary = bias.summary
    key = list(zip(summary["model"], summary["prompt_id"]))
    get = lambda name: np.array([truth[k][name] for k in key], dtype=float)  # noqa: E731
    tally.add("entropy", cell, get("entropy"), summary["entropy"], summary["entropy_ci_low"],
              summary["entropy_ci_high"])
    for name, column in (("within", "within_image_heterogeneity"), ("match", "match_rate"),
                         ("count", "count_accuracy")):
        tally.add(f"{column} (per prompt)", cell, get(name), summary[column],
                  summary[f"{column}_ci_low"], summary[f"{column}_ci_high"])
    overall = bias.overall
    kind_truth = _kind_truth(truth)
    for metric, name in (("hof", "hof"), ("mean_entropy", "entropy"), ("match_rate", "match")):
        rows = overall[overall[metric].notna()]
        t = [kind_truth[m, kind][name] for m, kind in zip(rows["model"], rows["kind"])]
        tally.add(f"{metric} (per kind)", cell, t, rows[metric], rows[f"{metric}_ci_low"],
                  rows[f"{metric}_ci_high"])
    _tally_comparison(tally, cell, bias, truth, kind_truth, labels)
    if corrected:
        _tally_corrected(tally, cell, bias, truth, labels)


def _kind_truth(truth):
    """(model, kind) -> mean over the kind's prompts of each per-prompt truth."""
    grouped = defaultdict(list)
    for (model, _), t in truth.items():
        grouped[model, t["kind"]].append(t)
        if t["kind"] in ("individual", "group"):
            grouped[model, "ambiguous"].append(t)
    return {key: {name: float(np.mean([t[name] for t in ts]))
                  for name in ("hof", "entropy", "match", "true_hof", "true_entropy")}
            for key, ts in grouped.items()}


def _tally_comparison(tally, cell, bias, truth, kind_truth, labels):
    models = sorted({m.rsplit("-", 1)[0] for m in bias.models})
    for rep in models:
        comparison = bias.compare(baseline=f"{rep}-baseline", model=f"{rep}-candidate")
        per_prompt = comparison[~comparison["prompt_id"].str.startswith("all:")]
        mine = [truth[f"{rep}-candidate", p] for p in per_prompt["prompt_id"]]
        theirs = [truth[f"{rep}-baseline", p] for p in per_prompt["prompt_id"]]
        delta = []
        for metric, a, b in zip(per_prompt["metric"], mine, theirs):
            if metric.startswith("share:"):
                j = labels.index(metric.split(":", 1)[1])
                delta.append(a["shares"][j] - b["shares"][j])
            else:
                name = {"entropy": "entropy", "within_image_heterogeneity": "within",
                        "match_rate": "match"}[metric]
                delta.append(a[name] - b[name])
        tally.add("delta per prompt", cell, delta, per_prompt["delta"], per_prompt["ci_low"],
                  per_prompt["ci_high"])
        per_kind = comparison[comparison["prompt_id"].str.startswith("all:")]
        name = {"hof": "hof", "mean_entropy": "entropy", "match_rate": "match"}
        delta = [kind_truth[f"{rep}-candidate", p[4:]][name[m]]
                 - kind_truth[f"{rep}-baseline", p[4:]][name[m]]
                 for p, m in zip(per_kind["prompt_id"], per_kind["metric"])]
        tally.add("delta per kind", cell, delta, per_kind["delta"], per_kind["ci_low"],
                  per_kind["ci_high"])


def _tally_corrected(tally, cell, bias, truth, labels):
    shares = bias.corrected
    key = list(zip(shares["model"], shares["prompt_id"]))
    index = shares["label"].map(labels.index).to_numpy()
    tally.add("corrected share", cell, [truth[k]["true_shares"][i] for k, i in zip(key, index)],
              shares["share"], shares["ci_low"], shares["ci_high"])
    entropy_table = bias.corrected_entropy
    key = list(zip(entropy_table["model"], entropy_table["prompt_id"]))
    tally.add("corrected entropy", cell, [truth[k]["true_entropy"] for k in key],
              entropy_table["entropy"], entropy_table["ci_low"], entropy_table["ci_high"])
    overall = bias.corrected_overall
    kind_truth = _kind_truth(truth)
    for metric, name in (("hof", "true_hof"), ("mean_entropy", "true_entropy")):
        rows = overall[overall[metric].notna()]
        t = [kind_truth[m, kind][name] for m, kind in zip(rows["model"], rows["kind"])]
        tally.add(f"corrected {metric} (per kind)", cell, t, rows[metric],
                  rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    parser.add_argument("--plain", action="store_true",
                        help="only the plain intervals (no corrected metrics: much faster)")
    parser.add_argument("--noisy", choices=("both", "yes", "no"), default="both",
                        help="only the cells with (yes) or without (no) the noisy tagger")
    parser.add_argument("--validation-per-cell", action="store_true",
                        help="one simulated validation set per cell, shared by its replicates "
                             "(default: one per model of each replicate)")
    parser.add_argument("--save", default="", help="also write the raw tallies to this JSON file")
    parser.add_argument("--by-cell", action="store_true",
                        help="also print each interval type's coverage in every cell")
    parser.add_argument("--merge", nargs="+", default=(),
                        help="report the tallies of earlier --save files together, run nothing")
    args = parser.parse_args(argv)
    if args.merge:
        tally = Tally.load(args.merge)
        ok = tally.report(by_cell=args.by_cell)
        print("targets (93-99 % overall, every cell >= 85 %, no point outside): "
              + ("MET" if ok else "NOT MET"))
        return 0
    cells = [(f, k, noisy) for f in FAMILIES for k in (2, 7) for noisy in (False, True)]
    wanted = set(filter(None, args.cells.split(",")))
    tally = Tally()
    start = time.perf_counter()
    for n, (family, k, noisy) in enumerate(cells):
        name = f"{family}-k{k}-{'noisy' if noisy else 'exact'}"
        if (wanted and name not in wanted) or (args.noisy != "both"
                                                 and noisy != (args.noisy == "yes")):
            continue
        rng = np.random.default_rng([args.seed, n])
        suite, observations, images, truth, confusion, attribute = simulate_cell(
            family, k, noisy, replicates=args.replicates, rng=rng,
            per_replicate=not args.validation_per_cell)
        confusion = None if args.plain else confusion
        bias = BiasFrame(observations, suite=suite, images=images, n_boot=args.draws,
                         seed=args.seed + n, confusion=confusion, n_permutations=199)
        tally_cell(tally, name, bias, truth, attribute, corrected=confusion is not None)
        print(f"  {name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        if args.save:  # after every cell: a long run that is stopped keeps what it measured
            tally.save(args.save)
    print(f"{args.replicates} replicates per cell, {args.draws} draws per interval, "
          f"nominal 95 %; {time.perf_counter() - start:.0f} s")
    ok = tally.report(by_cell=args.by_cell)
    print("targets (93-99 % overall, every cell >= 85 %, no point outside): "
          + ("MET" if ok else "NOT MET"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
