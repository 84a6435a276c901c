"""Benchmark: do the annotation estimates hold? Coverage and bias with known truth.

1. **The sampling design.**  A simulated run (2 models x 4,000 detected faces) where the tagger
   is right more often on confident faces and on common labels, and 3 % of detections are no
   person (more among low-confidence ones).  Every replicate draws ``biaskit annotate``'s sample
   (``draw_sample``, n = 300, rare labels and low confidence oversampled), takes the true labels
   as the people's answers and computes the tables ``annotate import`` writes.  Printed: the
   coverage of the nominal 95 % intervals of the tagger's accuracy per attribute, precision per
   predicted label, recall per true label and the detector's false-detection share, against the
   values over all 8,000 faces, with the design weights and (for contrast) without them, and
   the mean estimate beside the truth.
2. **Agreement.**  Three simulated annotators (each errs on 10 % of faces at random), 300 faces:
   coverage of the bootstrap intervals of Krippendorff's alpha and Cohen's kappa against the
   values on 200,000 faces.

3. **Real images** (``--data ../shared/validation``, skipped with a message when missing): the
   1,000 SDFD Stable Diffusion 2.1 portraits, tagged by the default embedded stack; the images
   with a gender label (the gender the prompt asked for, a stand-in for people's answers) and
   exactly one detected face are the population.  Repeated annotation samples of n = 150 (drawn
   by ``draw_sample``) estimate the tagger's gender accuracy and precision per predicted label;
   printed: coverage against the value on the whole population, and the mean estimate.  The
   sample's seeds are the replicates; the SDFD file order is not used to tune anything here.

Target: 93-99 % coverage for every interval with the design weights; no estimate outside its
interval (checked on every replicate).

Usage::

    python benchmarks/bench_annotate.py [--reps 400] [--agreement-reps 200] [--n 300]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit import accuracy, taxonomy
from biaskit.annotate.agreement import agreement_table
from biaskit.annotate.sample import draw_sample

FACES_PER_MODEL = 4000
MODELS = ("candidate", "baseline")
ATTRIBUTES = ("gender", "race")
NO_PERSON_SHARE = 0.03


def simulate_run(seed: int = 0):
    """Faces, the tagger's observations, the true labels and which detections show no person."""
    rng = np.random.default_rng(seed)
    faces, observations, truth = [], [], []
    for m, model in enumerate(MODELS):
        n = FACES_PER_MODEL
        base = pd.DataFrame({"model": model, "prompt_id": [f"p{i % 40}" for i in range(n)],
                             "sample": np.arange(n) // 40, "person": 0,
                             "sha256": [f"{model}{i}" for i in range(n)], "path": "",
                             "x0": 0.0, "y0": 0.0, "x1": 1.0, "y1": 1.0})
        faces.append(base)
        confidence = rng.beta(5, 1.5, size=n)
        for attribute, shares in (("gender", [0.85 - 0.2 * m, 0.15 + 0.2 * m]),
                                  ("race", [0.55, 0.12, 0.1, 0.08, 0.07, 0.05, 0.03])):
            labels = np.array(taxonomy.labels(attribute))
            predicted = rng.choice(len(labels), size=n, p=shares)
            common = predicted == 0
            right = rng.random(n) < np.where(common, 0.6 + 0.38 * confidence, 0.35 + 0.45 * confidence)
            other = (predicted + rng.integers(1, len(labels), size=n)) % len(labels)
            true = np.where(right, predicted, other)
            observations.append(base[["model", "prompt_id", "sample", "person"]].assign(
                attribute=attribute, label=labels[predicted], confidence=confidence))
            truth.append(pd.DataFrame({"sha256": base["sha256"], "attribute": attribute,
                                       "true": labels[true]}))
        no_person = rng.random(n) < NO_PERSON_SHARE * (1 - confidence) / np.mean(1 - confidence)
        truth.append(pd.DataFrame({"sha256": base["sha256"][no_person], "attribute": "no_person",
                                   "true": "yes"}))
    return pd.concat(faces, ignore_index=True), pd.concat(observations, ignore_index=True), \
        pd.concat(truth, ignore_index=True)


def predictions_of(faces: pd.DataFrame, observations: pd.DataFrame, truth: pd.DataFrame,
                   weights: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
    """The predictions table of :mod:`biaskit.accuracy` for ``faces`` (real faces only)."""
    keys = ["model", "prompt_id", "sample", "person"]
    false = set(truth.loc[truth["attribute"] == "no_person", "sha256"])
    is_false = faces["sha256"].isin(false).to_numpy()
    real = faces[~is_false]
    table = (real[[*keys, "sha256"]].assign(weight=weights[~is_false].to_numpy())
             .merge(observations, on=keys).merge(truth, on=["sha256", "attribute"]))
    table = table.rename(columns={"sha256": "file", "label": "predicted"}).assign(tagger="sim")
    return table[list(accuracy.PREDICTION_COLUMNS)], is_false


def estimates(predictions: pd.DataFrame, is_false: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """Every estimate with its interval, keyed by (table, attribute, label)."""
    rows = []
    for r in accuracy.summary_table(predictions).itertuples():
        rows.append(("accuracy", r.attribute, "", r.accuracy, r.ci_low, r.ci_high))
    for r in accuracy.precision_table(predictions).itertuples():
        rows.append(("precision", r.attribute, r.predicted, r.precision, r.ci_low, r.ci_high))
    for r in accuracy.recall_table(predictions).itertuples():
        rows.append(("recall", r.attribute, r.true, r.recall, r.ci_low, r.ci_high))
    share, low, high, _ = accuracy.weighted_share(is_false, weights)
    rows.append(("false_detection", "", "", share, low, high))
    return pd.DataFrame(rows, columns=["table", "attribute", "label", "value", "ci_low", "ci_high"])


def bench_design(reps: int, n: int) -> None:
    faces, observations, truth = simulate_run()
    population, false_all = predictions_of(faces, observations, truth, pd.Series(np.ones(len(faces))))
    target = estimates(population, false_all, np.ones(len(faces))).set_index(["table", "attribute", "label"])
    keys = ["model", "prompt_id", "sample", "person"]
    results = {"weighted": [], "unweighted": []}
    started = time.perf_counter()
    for rep in range(reps):
        sample = draw_sample(faces, observations, n=n, attributes=ATTRIBUTES, seed=rep)
        drawn = faces.merge(sample[[*keys, "weight"]], on=keys)
        for name, weights in (("weighted", drawn["weight"]), ("unweighted", pd.Series(np.ones(len(drawn))))):
            table, is_false = predictions_of(drawn, observations, truth, weights)
            results[name].append(estimates(table, is_false, weights.to_numpy()).assign(rep=rep))
    print(f"design: {reps} samples of n={n} from {len(faces)} faces in {time.perf_counter() - started:.0f} s")
    for name, parts in results.items():
        frame = pd.concat(parts).join(target["value"].rename("truth"), on=["table", "attribute", "label"])
        frame = frame[frame["value"].notna() & frame["truth"].notna()]
        frame["covered"] = (frame["ci_low"] <= frame["truth"]) & (frame["truth"] <= frame["ci_high"])
        inside = ((frame["ci_low"] <= frame["value"] + 1e-12) & (frame["value"] <= frame["ci_high"] + 1e-12)).all()
        grouped = frame.groupby("table")
        per_cell = frame.groupby(["table", "attribute", "label"])["covered"].mean()
        print(f"\n{name}: every estimate inside its interval: {inside}")
        print(pd.DataFrame({"coverage": grouped["covered"].mean(),
                            "worst cell": per_cell.groupby("table").min(),
                            "mean width": grouped.apply(lambda g: (g["ci_high"] - g["ci_low"]).mean(),
                                                        include_groups=False)})
              .to_string(float_format=lambda v: f"{v:.3f}"))
        accuracy_rows = frame[frame["table"].isin(["accuracy", "false_detection"])]
        means = accuracy_rows.groupby(["table", "attribute"])[["value", "truth"]].mean()
        print(means.rename(columns={"value": "mean estimate"}).to_string(float_format=lambda v: f"{v:.3f}"))


def annotator_answers(true: np.ndarray, rng: np.random.Generator, *, error: float, n_annotators: int = 3):
    labels = np.array(taxonomy.labels("gender"))
    rows = []
    for a in range(n_annotators):
        flip = rng.random(len(true)) < error
        given = np.where(flip, 1 - true, true)
        rows.append(pd.DataFrame({"annotator": f"a{a}", "face_id": np.arange(len(true)).astype(str),
                                  "attribute": "gender", "label": labels[given]}))
    return pd.concat(rows, ignore_index=True)


def bench_agreement(reps: int, n: int, n_boot: int) -> None:
    rng = np.random.default_rng(1)
    big = annotator_answers((rng.random(200_000) < 0.3).astype(int), rng, error=0.1)
    truth = agreement_table(big, {"gender": ["Male", "Female"]}, n_boot=0)
    truth = truth.assign(key=truth["statistic"] + truth["annotator_a"] + truth["annotator_b"]).set_index("key")
    covered, inside, started = [], True, time.perf_counter()
    for rep in range(reps):
        answers = annotator_answers((rng.random(n) < 0.3).astype(int), rng, error=0.1)
        table = agreement_table(answers, {"gender": ["Male", "Female"]}, n_boot=n_boot, seed=rep)
        table = table.assign(key=table["statistic"] + table["annotator_a"] + table["annotator_b"])
        table["truth"] = table["key"].map(truth["value"])
        covered.append(table.assign(covered=(table["ci_low"] <= table["truth"]) & (table["truth"] <= table["ci_high"])))
        inside &= bool(((table["ci_low"] <= table["value"]) & (table["value"] <= table["ci_high"])).all())
    frame = pd.concat(covered)
    print(f"\nagreement: {reps} sets of {n} faces x 3 annotators, {n_boot} bootstrap replicates, "
          f"{time.perf_counter() - started:.0f} s; every estimate inside its interval: {inside}")
    print(frame.groupby("statistic").agg(truth=("truth", "mean"), mean_estimate=("value", "mean"),
                                         coverage=("covered", "mean"))
          .to_string(float_format=lambda v: f"{v:.3f}"))


def bench_real(data: Path, reps: int, n: int, cache: Path | None = None) -> None:
    from biaskit.perception import tag_images

    folder = data / "sdfd"
    if not (folder / "labels.csv").exists():
        print(f"\nreal images: {folder / 'labels.csv'} not found; pass --data DIR (../shared/validation)")
        return
    labels = pd.read_csv(folder / "labels.csv")
    labels = labels[labels["gender"].notna()].reset_index(drop=True)
    images = pd.DataFrame({"model": "sd21", "prompt_id": "sdfd", "sample": np.arange(len(labels)),
                           "status": "ok", "path": labels["file"]})
    started = time.perf_counter()
    tagged = tag_images(images, root=folder, attributes=["gender"], progress=False, cache=cache)
    print(f"\nreal images: tagged {len(images)} SDFD images in {time.perf_counter() - started:.0f} s")
    keys = ["model", "prompt_id", "sample", "person"]
    rows = images.assign(sha256=[hashlib.sha256((folder / p).read_bytes()).hexdigest() for p in images["path"]])
    faces = rows.merge(tagged.people, on="sha256")
    single = faces.groupby("sha256")["person"].transform("size") == 1
    faces = faces[single].reset_index(drop=True)
    observations = tagged.observations.merge(faces[keys], on=keys)
    truth = faces[["sha256", "sample"]].merge(labels[["gender"]].rename(columns={"gender": "true"}),
                                              left_on="sample", right_index=True)
    truth = truth.assign(attribute="gender")[["sha256", "attribute", "true"]]
    population, none = predictions_of(faces, observations, truth, pd.Series(np.ones(len(faces))))
    target = estimates(population, none, np.ones(len(faces))).set_index(["table", "attribute", "label"])
    print(f"population: {len(faces)} images with one detected face and a gender label; "
          f"predicted {observations['label'].value_counts().to_dict()}")
    parts = []
    for rep in range(reps):
        sample = draw_sample(faces, observations, n=n, attributes=("gender",), seed=rep)
        drawn = faces.merge(sample[[*keys, "weight"]], on=keys)
        table, is_false = predictions_of(drawn, observations, truth, drawn["weight"])
        parts.append(estimates(table, is_false, drawn["weight"].to_numpy()))
    frame = pd.concat(parts).join(target["value"].rename("truth"), on=["table", "attribute", "label"])
    frame = frame[frame["table"].isin(["accuracy", "precision"]) & frame["value"].notna()]
    frame["covered"] = (frame["ci_low"] <= frame["truth"]) & (frame["truth"] <= frame["ci_high"])
    print(frame.groupby(["table", "label"]).agg(truth=("truth", "mean"), mean_estimate=("value", "mean"),
                                                coverage=("covered", "mean"),
                                                mean_width=("ci_high", "mean"))
          .assign(mean_width=lambda t: t["mean_width"] - frame.groupby(["table", "label"])["ci_low"].mean())
          .to_string(float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--agreement-reps", type=int, default=200)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--data", type=Path, default=Path("../shared/validation"),
                        help="folder with sdfd/ (default ../shared/validation)")
    parser.add_argument("--real-reps", type=int, default=400)
    parser.add_argument("--real-n", type=int, default=150)
    parser.add_argument("--only", choices=["design", "agreement", "real"])
    parser.add_argument("--cache", type=Path, help="tag cache folder for the real images (a rerun is instant)")
    args = parser.parse_args()
    if args.only in (None, "design"):
        bench_design(args.reps, args.n)
    if args.only in (None, "agreement"):
        bench_agreement(args.agreement_reps, args.n, args.n_boot)
    if args.only in (None, "real"):
        bench_real(args.data, args.real_reps, args.real_n, args.cache)


if __name__ == "__main__":
    main()
