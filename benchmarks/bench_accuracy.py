"""How right are the offline taggers on real labelled faces?  (issue 10, items 3-5)

Reads ``../shared/validation`` (``--data DIR``): ``utkface/`` (1,889 photographs,
labels from the file names) and ``sdfd/`` (1,000 Stable Diffusion 2.1
portraits, labels = what the prompt asked for; 368 ask for an androgynous
person and have no gender label).  For every image the default detector runs
and the largest face is the labelled one.  Then, for every offline tagger of
gender / age / age_group:

- detection misses per set;
- accuracy of the kept labels with a Wilson 95 % interval (estimand: the
  probability that a label the tagger keeps on a face of this population is
  the labelled one) and coverage (kept labels / detected faces; ``coverage_all``
  counts missed faces as not covered), per attribute, per set, per subgroup
  (age band, race, prompt term), on the tuning and on the held-out split;
- the accuracy-coverage curve per tagger and attribute (held-out split);
- the thresholds the tuning split would choose for the documented accuracy
  (:data:`biaskit.perception.embedded.TARGET_ACCURACY`), beside the shipped ones.

**Split.** A file is in the held-out split when the first byte of the
BLAKE2b digest of its path in ``labels.csv`` is odd (about half of each set),
in the tuning split otherwise: fixed, independent of the labels.

Run ``python benchmarks/bench_accuracy.py`` (about 25 minutes on 2 busy cores;
``--limit 100`` for a quick look; ``--out DIR`` writes the tables as CSV).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit.perception import EmbeddedTagger, Face, load_image, make_detector, wilson_interval
from biaskit.perception.calibration import accuracy_coverage, threshold_for_accuracy
from biaskit.perception.embedded import EMBEDDED_THRESHOLDS, TARGET_ACCURACY, V01_THRESHOLDS
from biaskit.perception.quality import NO_LIMITS
from biaskit.taxonomy import UNCLEAR

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "validation"
MISSING = ("{bench}: no validation data at {path} (expected utkface/labels.csv and sdfd/labels.csv); "
           "pass --data DIR")
ATTRIBUTES = ("gender", "age", "age_group")
# subgroup columns per set: age band, race, prompt term
SUBGROUPS = {"utkface": ("age", "age_group", "race4", "gender"),
             "sdfd": ("age_group", "age", "race", "prompt_gender_term")}
COVERAGES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)


def split_of(name: str) -> str:
    """``heldout`` or ``tune``: the parity of the first byte of BLAKE2b(name)."""
    return "heldout" if hashlib.blake2b(name.encode()).digest()[0] % 2 else "tune"


def taggers() -> dict[str, EmbeddedTagger]:
    """Every offline tagger of gender/age, with no confidence threshold (applied afterwards).

    ``dlib`` is the shipped default (calibrated thresholds, quality limits);
    ``dlib-mirror`` the same averaged over the face and its mirror image;
    ``dlib-v0.1`` the tagger as v0.1 shipped it (its thresholds, no quality limits).
    """
    zero = {a: 0.0 for a in ATTRIBUTES}
    return {"dlib": EmbeddedTagger(thresholds=zero),
            "dlib-mirror": EmbeddedTagger(thresholds=zero, mirror=True),
            "dlib-v0.1": EmbeddedTagger(thresholds=zero, quality=NO_LIMITS)}


SHIPPED = {"dlib": EMBEDDED_THRESHOLDS, "dlib-mirror": EMBEDDED_THRESHOLDS, "dlib-v0.1": V01_THRESHOLDS}


def predict(labels: pd.DataFrame, root: Path, tagged: dict[str, EmbeddedTagger]) -> pd.DataFrame:
    """One row per labelled image: detected?, and per tagger x attribute its label and confidence."""
    detector = make_detector(None)
    rows = []
    for name in labels["file"]:
        row = {"file": name, "detected": False}
        try:
            array = load_image(root / name).array
        except ValueError as exc:
            print(f"  skipped {name}: {exc}", file=sys.stderr)
            rows.append(row)
            continue
        found = detector.detect(array)
        if len(found):
            areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
            best = int(areas.argmax())
            landmarks = None if found.landmarks is None else found.landmarks[best]
            face = Face(array, found.boxes[best], landmarks)
            row["detected"] = True
            for tag_name, tagger in tagged.items():
                out = tagger.tag([face], attributes=ATTRIBUTES)
                for attribute in ATTRIBUTES:
                    row[f"{tag_name}:{attribute}:label"] = out[attribute][0][0]
                    row[f"{tag_name}:{attribute}:confidence"] = float(out[attribute][1][0])
        rows.append(row)
    return labels.merge(pd.DataFrame(rows), on="file")


def long_form(frame: pd.DataFrame, set_name: str, names) -> pd.DataFrame:
    """Tidy rows: set, file, split, subgroup values, tagger, attribute, truth, label, confidence, gated."""
    parts = []
    for tag_name in names:
        for attribute in ATTRIBUTES:
            part = frame[["file", "detected", *SUBGROUPS[set_name]]].copy()
            part["truth"] = frame[attribute].astype("string")
            part["label"] = frame.get(f"{tag_name}:{attribute}:label")
            part["confidence"] = frame.get(f"{tag_name}:{attribute}:confidence")
            part["tagger"], part["attribute"], part["set"] = tag_name, attribute, set_name
            parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["split"] = out["file"].map(split_of)
    out = out[out["truth"].notna() & (out["truth"] != "")]
    out["gated"] = out["label"] == UNCLEAR  # thresholds are 0 here: unclear = outside the quality limits
    return out


def effective(tagged: dict[str, EmbeddedTagger]) -> dict[str, dict[str, float]]:
    """The threshold each tagger applies per attribute: none for age_group in cautious mode."""
    return {name: {a: 0.0 if a == "age_group" and tagger.cautious else SHIPPED[name][a] for a in ATTRIBUTES}
            for name, tagger in tagged.items()}


def uncautious(rows: pd.DataFrame) -> pd.DataFrame:
    """age_group as the non-cautious mode labels it (the likelier group), from the cautious labels.

    Cautious mode calls ``child`` from P(child) = 0.25 on with that confidence; below 0.5
    the likelier group is ``adult``, with confidence 1 - P(child).
    """
    rows = rows.copy()
    flip = (rows["attribute"] == "age_group") & (rows["label"] == "child") & (rows["confidence"] < 0.5)
    rows.loc[flip, "label"] = "adult"
    rows.loc[flip, "confidence"] = 1 - rows.loc[flip, "confidence"]
    return rows


def apply_thresholds(rows: pd.DataFrame, thresholds: dict) -> pd.DataFrame:
    """kept / correct columns for the given threshold per (tagger, attribute)."""
    rows = rows.copy()
    limit = rows.apply(lambda r: thresholds[r["tagger"]][r["attribute"]], axis=1)
    rows["kept"] = rows["detected"] & ~rows["gated"] & (rows["confidence"] >= limit)
    rows["correct"] = rows["kept"] & (rows["label"] == rows["truth"])
    return rows


def accuracy_table(rows: pd.DataFrame, subgroups: dict) -> pd.DataFrame:
    """Accuracy [Wilson 95 %] and coverage per tagger, set, split, attribute and subgroup."""
    out = []
    keys = ["tagger", "set", "split", "attribute"]
    for (tag_name, set_name, split, attribute), group in rows.groupby(keys):
        for column in ("all", *subgroups[set_name]):
            by = [("all", group)] if column == "all" else group.groupby(group[column].astype("string"))
            for value, part in by:
                detected, kept, right = int(part["detected"].sum()), int(part["kept"].sum()), int(part["correct"].sum())
                low, high = wilson_interval(right, kept)
                out.append(dict(tagger=tag_name, set=set_name, split=split, attribute=attribute, subgroup=column,
                                group=value, n=len(part), detected=detected, kept=kept,
                                coverage=kept / detected if detected else np.nan,
                                coverage_all=kept / len(part), accuracy=right / kept if kept else np.nan,
                                ci_low=float(low), ci_high=float(high)))
    table = pd.DataFrame(out)
    overall = table[table["subgroup"] == "all"].set_index(keys)["accuracy"].rename("overall")
    table = table.join(overall, on=keys)
    table["drop"] = table["overall"] - table["accuracy"]  # how much worse than the set as a whole
    return table.drop(columns="overall")


def curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy at each coverage of the detected faces (held-out split); gated faces rank last."""
    out = []
    held = rows[(rows["split"] == "heldout") & rows["detected"]]
    for (tag_name, set_name, attribute), group in held.groupby(["tagger", "set", "attribute"]):
        score = group["confidence"] - 2.0 * group["gated"]  # confidences are in [0, 1]
        curve = accuracy_coverage(score, group["label"] == group["truth"], coverages=COVERAGES)
        out.append(curve.assign(tagger=tag_name, set=set_name, attribute=attribute))
    return pd.concat(out, ignore_index=True)


def tuned_thresholds(rows: pd.DataFrame) -> pd.DataFrame:
    """Thresholds the tuning split (both sets) would choose for TARGET_ACCURACY, per tagger and attribute.

    age_group is calibrated as the non-cautious mode labels it (the threshold only applies there).
    """
    tune = uncautious(rows[(rows["split"] == "tune") & rows["detected"] & ~rows["gated"]])
    out = []
    for (tag_name, attribute), group in tune.groupby(["tagger", "attribute"]):
        chosen = threshold_for_accuracy(group["confidence"], group["label"] == group["truth"],
                                        target=TARGET_ACCURACY[attribute], min_kept=50)
        out.append(dict(tagger=tag_name, attribute=attribute, target=TARGET_ACCURACY[attribute], tuned=chosen,
                        shipped=SHIPPED[tag_name][attribute]))
    return pd.DataFrame(out)


def data_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark on the shared validation sets takes (``--data``, ``--limit``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with utkface/ and sdfd/")
    parser.add_argument("--limit", type=int, help="first N images per set only (a quick look)")
    return parser


def data_missing(bench: str, data: Path, sets) -> bool:
    """Say so (one line) and return True when a set's labels are not under ``data``."""
    if all((data / s / "labels.csv").is_file() for s in sets):
        return False
    print(MISSING.format(bench=bench, path=data.resolve()))
    return True


def main(argv=None) -> int:
    parser = data_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the tables here as CSV")
    args = parser.parse_args(argv)
    if data_missing("bench_accuracy", args.data, SUBGROUPS):
        return 2
    tagged = taggers()
    frames, misses = [], []
    for set_name in SUBGROUPS:
        labels = pd.read_csv(args.data / set_name / "labels.csv", dtype=str, keep_default_na=False)
        labels = labels.head(args.limit) if args.limit else labels
        start = time.perf_counter()
        predicted = predict(labels, args.data / set_name, tagged)
        print(f"{set_name}: {len(labels)} images in {time.perf_counter() - start:.0f} s")
        predicted = predicted.replace("", pd.NA)
        misses.append(dict(set=set_name, images=len(predicted), missed=int((~predicted["detected"]).sum())))
        frames.append(long_form(predicted, set_name, tagged))
    rows = apply_thresholds(pd.concat(frames, ignore_index=True), effective(tagged))
    tables = {"misses": pd.DataFrame(misses).assign(rate=lambda d: d["missed"] / d["images"]),
              "accuracy": accuracy_table(rows, SUBGROUPS), "curves": curves(rows),
              "thresholds": tuned_thresholds(rows)}
    report(tables)
    if args.out:  # with every face's label and confidence, to recompute any figure without a rerun
        args.out.mkdir(parents=True, exist_ok=True)
        for name, table in {**tables, "faces": rows}.items():
            table.to_csv(args.out / f"{name}.csv", index=False)
    return 0


def report(tables: dict[str, pd.DataFrame]) -> None:
    """Print the tables a reader needs first; the rest go to --out."""
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    print("\ndetection misses (default detector)\n", tables["misses"].to_string(index=False))
    acc = tables["accuracy"]
    overall = acc[acc["subgroup"].isin(["all", "age_group"])]
    print("\naccuracy of kept labels [Wilson 95 %] and coverage of detected faces\n",
          overall[["tagger", "set", "split", "attribute", "subgroup", "group", "n", "kept", "coverage", "accuracy",
                   "ci_low", "ci_high"]].round(3).to_string(index=False))
    gender = acc[(acc["attribute"] == "gender") & (acc["split"] == "heldout") & (acc["subgroup"] != "all")]
    print("\ngender per subgroup, held-out split\n",
          gender[["tagger", "set", "subgroup", "group", "n", "kept", "coverage", "accuracy", "ci_low",
                  "ci_high", "drop"]].round(3).to_string(index=False))
    curve = tables["curves"].pivot_table(index=["tagger", "set", "attribute"], columns="coverage", values="accuracy")
    print("\naccuracy-coverage curves, held-out split (columns: coverage of detected faces)\n",
          curve[sorted(curve.columns, reverse=True)].round(3).to_string())
    print("\nthresholds from the tuning split vs shipped\n", tables["thresholds"].round(3).to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
