"""Monk Skin Tone on real photographs vs the targets of issue 14.

UTKFace adults (``<data>/utkface``, the White, Black, Asian and Indian groups),
faces found by CenterFace (the largest face of each chip), split in two halves
by the file name: ``sha256(basename)[0]`` even -> calibration half (the anchors
of the tone curve were read from it with ``--calibrate``), odd -> held-out half.

1. Separation: AUC that a Black face gets a darker tone than a White face (on
   the labels, ties counted half; and on the continuous tone score where the
   tagger gives one), median label per group, coverage.
                                 targets (held-out): AUC >= 0.95; medians White <= MST4,
                                 Black >= MST7, Asian and Indian between
2. Stability: share of faces labelled within one step of their own label after
   a lighting change in linear light: +-0.5 EV, a warm cast (red x 1.15,
   blue x 0.85) and a cool cast (red x 0.85, blue x 1.15).
                                 target: >= 80 % under each
3. Threshold: coverage, AUC and stability (within one step, and the very
   same step) of the held-out faces kept at rising ``threshold`` (the
   ``--threshold skin_tone=`` of ``biaskit tag``).
4. Abstention: share of the faces given a label once the photographs are made
   grayscale or sepia.           target: 0 %
5. Swatch recolour: painted faces in each MST swatch colour (target: within
   one step), and in the calibrated reference colours (exact by construction).
6. Speed per face vs the ``skin-tone-classifier`` package (``stone``; its
   per-face ``classify`` step on the same crops, not its detector).
                                 target: >= 50x faster
7. With ``--sdfd``: SDFD's Stable Diffusion portraits by the race their prompt
   asked for (a check on generated images, no target).

Run: ``python benchmarks/bench_skin_tone.py [--data ../shared/validation] [--limit 0]
[--calibrate] [--skip-speed] [--sdfd]``.  ``skin-tone-classifier`` is needed only for part 6.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _faces import painted_face, swatch  # noqa: E402  (shared image helpers)

from biaskit.perception import CenterFaceDetector  # noqa: E402
from bench_perception import best_of  # noqa: E402  (the same timing rule)

from biaskit.perception.color import SRGB_TO_LINEAR, linear_to_srgb  # noqa: E402
from biaskit.perception.skin_tone import reference_colour, skin_tones  # noqa: E402
from biaskit.taxonomy import UNCLEAR  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "validation"
MISSING_DATA = "no UTKFace labels at {path}: give the validation folder with --data DIR"
GROUPS = ("White", "Asian", "Indian", "Black")
SDFD_GROUPS = ("White", "East Asian", "Middle Eastern", "Latino_Hispanic", "Southeast Asian", "Indian", "Black")
#: name -> (exposure in EV, red gain, blue gain), all in linear light.
LIGHTING = {"+0.5 EV": (0.5, 1.0, 1.0), "-0.5 EV": (-0.5, 1.0, 1.0),
            "warm cast": (0.0, 1.15, 0.85), "cool cast": (0.0, 0.85, 1.15)}
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
#: sepia toning matrix (the usual one of image editors), applied to sRGB codes.
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def held_out(name: str) -> bool:
    """The documented split: odd first byte of sha256(file name) -> held-out half."""
    return hashlib.sha256(Path(name).name.encode()).digest()[0] % 2 == 1


def load_faces(folder: Path, limit: int, *, column: str = "race4", groups=GROUPS,
               adults: bool = True) -> tuple[pd.DataFrame, list]:
    """Labelled faces of ``groups`` (in ``column``) with their largest CenterFace face."""
    labels = folder / "labels.csv"
    if not labels.exists():
        raise SystemExit(MISSING_DATA.format(path=labels))
    table = pd.read_csv(labels)
    table = table[table[column].isin(groups) & ((table.age_group == "adult") | (not adults))].reset_index(drop=True)
    if limit:
        table = table.groupby(column).head(limit // len(groups)).reset_index(drop=True)
    detector = CenterFaceDetector()
    rows, faces = [], []
    for row in table.itertuples():
        image = np.asarray(Image.open(folder / row.file).convert("RGB"))
        found = detector.detect(image)
        if not len(found):
            continue
        k = int(np.argmax((found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])))
        rows.append(dict(file=row.file, group=getattr(row, column), held_out=held_out(row.file)))
        faces.append((image, found.boxes[k], found.landmarks[k]))
    return pd.DataFrame(rows), faces


def generated(folder: Path, limit: int) -> None:
    """SDFD portraits (Stable Diffusion 2.1) by the race the prompt asked for: no target, a check."""
    table, faces = load_faces(folder, limit, column="race", groups=SDFD_GROUPS, adults=False)
    tags = tag(faces, threshold=0.5)
    print(f"  {len(table)} faces; AUC Black vs White (labels) {auc(tags.tone, table.group):.3f}")
    for group in SDFD_GROUPS:
        rows = tags[(table.group == group).to_numpy()]
        print(f"  {group:16s}: median {rows.tone.median():4g}, labelled {rows.tone.notna().mean():6.1%} of {len(rows)}")


def relight(image: np.ndarray, ev: float, red: float, blue: float) -> np.ndarray:
    """``image`` under a brighter/dimmer or tinted illuminant (gains in linear light, sRGB curve)."""
    return linear_to_srgb(SRGB_TO_LINEAR[image] * (2.0**ev) * np.array([red, 1.0, blue]))


def grayscale(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(Image.fromarray(image).convert("L"))[..., None], 3, axis=2)


def sepia(image: np.ndarray) -> np.ndarray:
    return np.clip(image @ SEPIA.T, 0, 255).astype(np.uint8)


def tag(faces, *, threshold: float = 0.0) -> pd.DataFrame:
    """Label, tone number (NaN if unclear), continuous score and confidence of each face."""
    results = skin_tones(faces, threshold=threshold)
    labels = [r.label for r in results]
    return pd.DataFrame(dict(
        label=labels,
        tone=[np.nan if label == UNCLEAR else float(label.removeprefix("MST")) for label in labels],
        score=[getattr(r, "score", np.nan) for r in results],
        lightness=[getattr(r, "lightness", np.nan) for r in results],
        confidence=[r.confidence for r in results],
    ))


def auc(values: pd.Series, groups: pd.Series) -> float:
    """P(a Black face's value > a White face's value), ties counted half (NaN rows dropped)."""
    black = values[(groups == "Black") & values.notna()].to_numpy()
    white = values[(groups == "White") & values.notna()].to_numpy()
    if not len(black) or not len(white):
        return float("nan")
    diff = black[:, None] - white[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def separation(table: pd.DataFrame, tags: pd.DataFrame) -> None:
    for name, part in (("calibration", ~table.held_out), ("held-out", table.held_out)):
        rows, groups = tags[part.to_numpy()], table.group[part]
        groups.index = rows.index
        medians = {g: float(rows.tone[groups == g].median()) for g in GROUPS}
        ordered = (medians["White"] <= 4 and medians["Black"] >= 7
                   and all(medians["White"] <= medians[g] <= medians["Black"] for g in ("Asian", "Indian")))
        on_labels = auc(rows.tone, groups)
        verdicts = (f"   target >= 0.95 {verdict(on_labels >= 0.95)}", f"   {verdict(ordered)}")
        held = name == "held-out"
        print(f"  {name:11s}: {len(rows)} faces, coverage {rows.tone.notna().mean():.1%}; "
              f"AUC labels {on_labels:.3f}, score {auc(rows.score, groups):.3f}{verdicts[0] if held else ''}")
        print("               medians " + ", ".join(f"{g} {m:g}" for g, m in medians.items())
              + (verdicts[1] if held else ""))


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def stability(faces, tags: pd.DataFrame, keep=None) -> dict[str, float]:
    """Share of labelled faces within one step of their own label under each lighting change."""
    keep = tags.tone.notna() if keep is None else keep & tags.tone.notna()
    shares = {}
    for name, change in LIGHTING.items():
        moved = tag([(relight(image, *change), box, lm) for image, box, lm in faces])
        both = keep & moved.tone.notna()
        shares[name] = float(((moved.tone - tags.tone).abs() <= 1)[both].mean())
    return shares


def calibrate(table: pd.DataFrame, tags: pd.DataFrame) -> None:
    """Median exposure-normalised skin lightness per group on the calibration half (the curve's anchors)."""
    part = (~table.held_out).to_numpy()
    for group in GROUPS:
        values = tags.lightness[part & (table.group == group).to_numpy()]
        print(f"  calibration median lightness {group:6s}: {values.median():.2f}  (n={values.notna().sum()})")


def thresholds(table: pd.DataFrame, faces, tags: pd.DataFrame) -> None:
    held = table.held_out.to_numpy()
    moved = {name: tag([(relight(image, *change), box, lm) for image, box, lm in faces]).tone
             for name, change in LIGHTING.items()}
    print("  threshold  coverage  AUC   within one step  same step   (held-out faces kept; worst of the"
          " four lighting changes)")
    for threshold in THRESHOLDS:
        kept = pd.Series(held & (tags.confidence >= threshold).to_numpy() & tags.tone.notna().to_numpy())
        within, same = (min(float(((m - tags.tone).abs() <= steps)[kept & m.notna()].mean()) for m in moved.values())
                        for steps in (1, 0))
        print(f"  {threshold:9.2f}  {kept.sum() / held.sum():8.1%}  {auc(tags.tone.where(kept), table.group):.3f}"
              f"  {within:15.1%}  {same:9.1%}")


def abstention(faces) -> None:
    for name, change in (("grayscale", grayscale), ("sepia", sepia)):
        tags = tag([(change(image), box, lm) for image, box, lm in faces], threshold=0.0)
        share = tags.tone.notna().mean()
        print(f"  {name:9s}: {share:6.1%} of {len(tags)} faces labelled   target 0 %   {verdict(share == 0)}")


def swatches() -> None:
    """Painted faces in the MST swatches (target) and in the calibrated reference colours (exact)."""
    for name, colour in (("swatch", swatch), ("reference colour", reference_colour)):
        found = []
        for tone in range(1, 11):
            image, box, landmarks = painted_face(colour(tone))
            label = skin_tones([(image, box, landmarks)], threshold=0.0)[0].label
            found.append(int(label.removeprefix("MST")) if label != UNCLEAR else 0)
        worst = max(abs(f - t) for f, t in zip(found, range(1, 11)))
        print(f"  painted faces, {name:16s} MST1..10 -> {found}; worst {worst} step(s)"
              + (f"   target <= 1   {verdict(worst <= 1)}" if name == "swatch" else ""))


def speed(faces) -> None:
    import cv2
    from stone.image import classify

    from biaskit.taxonomy import MST_SWATCHES

    crops = [cv2.cvtColor(np.ascontiguousarray(img[max(int(b[1]), 0):int(b[3]), max(int(b[0]), 0):int(b[2])]),
                          cv2.COLOR_RGB2BGR) for img, b, _ in faces]
    palette, names = [code.upper() for code in MST_SWATCHES.values()], list(MST_SWATCHES)
    ours = best_of(lambda: skin_tones(faces))
    sample = crops[:100]
    theirs = best_of(lambda: [classify(crop, False, False, palette, names) for crop in sample], repeats=1)
    per_face_ours, per_face_theirs = ours / len(faces), theirs / len(sample)
    ratio = per_face_theirs / per_face_ours
    print(f"  biaskit {per_face_ours * 1e3:.3f} ms/face ({len(faces)} faces, one batch); stone classify "
          f"{per_face_theirs * 1e3:.2f} ms/face ({len(sample)} crops)")
    print(f"  speed-up {ratio:.0f}x   target >= 50x   {verdict(ratio >= 50)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared validation folder")
    parser.add_argument("--limit", type=int, default=0, help="at most this many faces (split over groups); 0 = all")
    parser.add_argument("--calibrate", action="store_true", help="print the tone curve's anchors")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--sdfd", action="store_true", help="also the SDFD generated portraits by prompted race")
    args = parser.parse_args()
    table, faces = load_faces(args.data / "utkface", args.limit)
    tags = tag(faces)
    print(f"[separation] UTKFace adults, {len(table)} faces ({table.held_out.sum()} held out)")
    separation(table, tags)
    if args.calibrate:
        calibrate(table, tags)
        return
    print("[stability] held-out faces within one step of their own label")
    held = table.held_out.to_numpy()
    held_faces = [face for face, keep in zip(faces, held) if keep]
    for name, share in stability(held_faces, tags[held].reset_index(drop=True)).items():
        print(f"  {name:9s}: {share:6.1%}   target >= 80 %   {verdict(share >= 0.8)}")
    print("[threshold]")
    thresholds(table, faces, tags)
    print("[abstention] grayscale and sepia versions of the held-out photographs")
    abstention(held_faces)
    print("[swatch recolour]")
    swatches()
    if not args.skip_speed:
        print("[speed] per face vs skin-tone-classifier")
        speed(faces)
    if args.sdfd:
        print("[generated] SDFD portraits by the race the prompt asked for (threshold 0.5)")
        generated(args.data / "sdfd", args.limit)


if __name__ == "__main__":
    main()
