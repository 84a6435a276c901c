"""How good is a linear probe on the dlib face descriptor (``train-probe --backbone dlib``)?  (issue 10, item 4)

Reads ``../shared/validation`` (``--data DIR``; it says so and stops when the
folder is missing): ``utkface/`` (photographs) and ``sdfd/`` (Stable Diffusion
2.1 portraits, labels = what the prompt asked for).  For every image the
default detector runs and the largest face is embedded by the 128-D dlib
descriptor (:class:`biaskit.perception.descriptor.DlibDescriptor`, the
``dlib`` backbone); images with no face found are left out, as in
``bench_accuracy.py``.

Then, for each set in turn, logistic heads are trained with biaskit's own probe
code (:func:`biaskit.perception.probe.fit_heads`, what ``train_probe`` runs) on
that set's **tuning** split only and scored on the **held-out** split of both
sets (the split of ``bench_accuracy.py``: parity of the first byte of
BLAKE2b(file)); the tuning figures are the heads' fit to their own training
faces.  Attributes: gender, race4 (SDFD's race mapped to four groups), race
(FairFace 7; SDFD names all seven, UTKFace only White, Black, Indian) and
age_group.  Accuracy is over every face with a label (estimand: the
probability that the probe's top label on a face of this population is the
labelled one), with a Wilson 95 % interval; ``at 85 %`` is the accuracy of the
85 % most confident labels.  Per-face time is the descriptor stage alone
(landmarks, aligned chip, network), one face per call, on one process.

Nothing trained here ships: UTKFace is for non-commercial research and SDFD
states no licence; a user trains their own probe on FairFace (CC BY 4.0).

Run ``python benchmarks/bench_probe.py --cache /tmp/probe`` (the embeddings
take about 0.1-0.3 s a face on a busy 2-core machine; ``--cache`` keeps them
for a rerun, ``--limit 100`` for a quick look).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_accuracy import data_missing, data_parser, split_of
from biaskit.perception import Face, load_image, make_detector, wilson_interval
from biaskit.perception.calibration import accuracy_coverage
from biaskit.perception.descriptor import DlibDescriptor
from biaskit.perception.probe import fit_heads, head_probabilities
from biaskit.taxonomy import RACE7_TO_RACE4

SETS = ("utkface", "sdfd")
ATTRIBUTES = ("gender", "race4", "race", "age_group")
COVERAGE = 0.85


def read_set(root: Path, set_name: str, limit: int | None) -> pd.DataFrame:
    """The set's labels (empty string = no label), race4 filled from race where the set has only race."""
    labels = pd.read_csv(root / set_name / "labels.csv", dtype=str, keep_default_na=False)
    labels = labels.head(limit) if limit else labels
    if "race4" not in labels:
        labels["race4"] = labels["race"].map(RACE7_TO_RACE4).fillna("")
    return labels.assign(split=labels["file"].map(split_of))


def embed_set(labels: pd.DataFrame, root: Path, encoder: DlibDescriptor) -> tuple[np.ndarray, np.ndarray, float]:
    """``(detected [n], descriptors [n, 128] (NaN where none), seconds in the descriptor)``."""
    detector = make_detector(None)
    detected = np.zeros(len(labels), bool)
    vectors = np.full((len(labels), 128), np.nan, np.float32)
    spent = 0.0
    for row, name in enumerate(labels["file"]):
        array = load_image(root / name).array
        found = detector.detect(array)
        if not len(found):
            continue
        areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
        start = time.perf_counter()
        vectors[row] = encoder.embed([Face(array, found.boxes[int(areas.argmax())])])[0]
        spent += time.perf_counter() - start
        detected[row] = True
    return detected, vectors, spent


def embeddings(args, set_name: str, labels: pd.DataFrame, encoder) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`embed_set`, read from / written to ``--cache`` when given (keyed by the file list)."""
    cached = args.cache / f"{set_name}-{len(labels)}.npz" if args.cache else None
    if cached is not None and cached.is_file():
        stored = np.load(cached)
        if list(stored["files"]) == list(labels["file"]):
            return stored["detected"], stored["vectors"], float(stored["seconds"])
    detected, vectors, seconds = embed_set(labels, args.data / set_name, encoder)
    if cached is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
        np.savez(cached, files=np.array(labels["file"]), detected=detected, vectors=vectors, seconds=seconds)
    return detected, vectors, seconds


def score(head, vectors: np.ndarray, truth: pd.Series) -> dict:
    """Accuracy of the top label with its Wilson interval, and accuracy of the most confident 85 %."""
    probabilities = head_probabilities(head, vectors)
    predicted = np.array(head["labels"])[probabilities.argmax(1)]
    correct = predicted == truth.to_numpy()
    low, high = wilson_interval(int(correct.sum()), len(correct))
    curve = accuracy_coverage(probabilities.max(1), correct, coverages=(COVERAGE,))
    return {"n": len(correct), "accuracy": float(correct.mean()), "ci_low": float(low), "ci_high": float(high),
            f"at {COVERAGE:.0%}": float(curve["accuracy"].iloc[0])}


def evaluate(faces: dict[str, pd.DataFrame], vectors: dict[str, np.ndarray], *, l2: float) -> pd.DataFrame:
    """Train on each set's tuning split, score on its own tuning split and on both held-out splits."""
    rows = []
    for train_set, frame in faces.items():
        for attribute in ATTRIBUTES:
            train = (frame["split"] == "tune") & (frame[attribute] != "")
            if train.sum() < 20 or frame.loc[train, attribute].nunique() < 2:
                continue
            heads, _ = fit_heads(vectors[train_set][train.to_numpy()], frame[train].reset_index(drop=True),
                                 attributes=(attribute,), l2=l2)
            for test_set, test in faces.items():
                for split in ("tune", "heldout") if test_set == train_set else ("heldout",):
                    keep = ((test["split"] == split) & (test[attribute] != "")).to_numpy()
                    if keep.sum() == 0:
                        continue
                    result = score(heads[attribute], vectors[test_set][keep], test.loc[keep, attribute])
                    rows.append({"trained on": f"{train_set} tuning ({int(train.sum())})", "attribute": attribute,
                                 "scored on": f"{test_set} {split}", **result})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = data_parser(__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="keep the descriptors here (a rerun skips the embedding)")
    parser.add_argument("--l2", type=float, default=1e-4, help="the heads' L2 penalty (train-probe's default)")
    args = parser.parse_args(argv)
    if data_missing("bench_probe", args.data, SETS):
        return 2
    encoder = DlibDescriptor()
    faces, vectors = {}, {}
    for set_name in SETS:
        labels = read_set(args.data, set_name, args.limit)
        detected, found, seconds = embeddings(args, set_name, labels, encoder)
        print(f"{set_name}: {len(labels)} images, {int(detected.sum())} with a face; descriptor "
              f"{1000 * seconds / max(detected.sum(), 1):.0f} ms a face")
        faces[set_name], vectors[set_name] = labels[detected].reset_index(drop=True), found[detected]
    table = evaluate(faces, vectors, l2=args.l2)
    pd.set_option("display.width", 200)
    print("\nlinear probe on the dlib descriptor: accuracy of the top label [Wilson 95 %] and of the "
          f"{COVERAGE:.0%} most confident\n", table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
