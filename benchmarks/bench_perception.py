"""Perception throughput vs targets (issue 3).

1. Embedded stack (CenterFace + dlib gender/age + MST colorimetry) through
   ``tag_images`` from the PNG files, tag cache off, on 512x512 images with one
   to four faces, vs the same ONNX calls alone (CenterFace per image, gender
   and age per chunk of a batch's faces) on inputs decoded, aligned and
   converted beforehand, in the faster of two schedules; all alternate in one
   run.                                             target: >= 90 %
   The same run's images/s (default stack, two-pass detector: one pass at 512 px)
                                                    target: >= 25 images/s (issue 10)
2. Skin tone per face: biaskit colorimetry vs the ``skin-tone-classifier``
   package (``stone``; its per-face classify step, not its detector) on the
   same face crops.                                 target: >= 50x faster
3. CLIP ViT-B-32 tagging (crops, encode, prompt-ensemble softmax) vs raw
   batched ``encode_image`` (random-init weights).  target: >= 90 %

Run: ``python benchmarks/bench_perception.py [--images 256] [--repeats 6] [--skip-clip]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _faces import collage, make_run  # noqa: E402  (shared image helpers)

from biaskit.perception import CenterFaceDetector, EmbeddedTagger, Face, tag_images  # noqa: E402
from biaskit.perception.base import available_cores  # noqa: E402
from biaskit.perception.pipeline import batch_slices  # noqa: E402
from biaskit.perception.skin_tone import skin_tone, skin_tones  # noqa: E402

#: Images/s of the default stack on 512 px images (2-core machine), issue 10.
THROUGHPUT_TARGET = 25


def best_of(function, repeats: int = 3) -> float:
    """Fastest of ``repeats`` timings (seconds): the least disturbed by other processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_interleaved(*functions, repeats: int = 3) -> tuple[float, ...]:
    """Fastest timing of each function, run in turn: load from other processes hits all alike."""
    rounds = [timed(*functions)[:, 0] for _ in range(repeats)]
    return tuple(min(column) for column in zip(*rounds))


def timed(*functions) -> np.ndarray:
    """Wall and process-CPU seconds of each function, run one after the other: ``[k, 2]``."""
    times = []
    for function in functions:
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return np.array(times)


def make_images(count: int, seed: int = 0, *, side: int = 512) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        faces = 1 + index % 4
        sizes = list(rng.integers(100, 220 if faces <= 2 else 150, size=faces))
        image = collage(sizes, canvas=512, seed=index)[0]
        if side != 512:  # the same scenes at another size (768: the detector's second pass runs)
            image = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))
        images.append(image)
    return images


def bench_embedded(images: list[np.ndarray], *, batch_size: int = 16, min_face: int = 24, repeats: int = 5) -> None:
    """tag_images from files vs the same model calls on inputs decoded and prepared beforehand.

    The baseline makes exactly the stack's model calls: CenterFace once per
    image, dlib's landmark model once per face, gender and age once per chunk
    of the faces of each of the stack's batches (``batch_slices``).  Decoding, CenterFace's input
    tensor, the chips and their float conversion are done before timing, so
    every step that is not a model call counts against the stack.  The calls
    get the faster of two schedules: one after another with CenterFace on all
    cores (intra-op threads), or all as tasks on a pool of one thread per core
    (CenterFace one thread a call, as the stack runs it).  A second, stricter
    ratio leaves the landmark model out of the baseline (its calls then count
    as overhead).
    """
    cores = available_cores()
    with tempfile.TemporaryDirectory() as folder:
        frame = make_run(Path(folder), {f"{i}.png": image for i, image in enumerate(images)})
        detector, embedded = CenterFaceDetector(), EmbeddedTagger()
        intra_op = CenterFaceDetector(threads=cores)
        found = [detector.detect(image) for image in images]
        faces = [[Face(image, f.boxes[k], f.landmarks[k]) for k in range(len(f))
                  if min(f.boxes[k][2] - f.boxes[k][0], f.boxes[k][3] - f.boxes[k][1]) >= min_face]
                 for image, f in zip(images, found)]
        blobs = [detector.prepare(image) for image in images]
        engine = embedded._engine

        def batch_calls(batch: slice, centerface, with_landmarks: bool) -> list:
            """A batch's model calls, in the stack's order: CenterFace, landmarks, gender and age."""
            batch_faces = faces[batch]
            gender, age, _ = embedded.stage(sum(batch_faces, []))  # float32 inputs in the stack's chunks; quality
            return ([(centerface, blob) for blob in blobs[batch]]
                    + [(embedded.landmarks, image_faces) for image_faces in batch_faces
                       if with_landmarks and image_faces]
                    + [(engine.gender.run, x) for x in gender] + [(engine.age.run, x) for x in age])

        def calls(centerface, with_landmarks: bool) -> list:
            return [call for batch in batch_slices(len(images), batch_size)
                    for call in batch_calls(batch, centerface, with_landmarks)]

        schedule = {(pooled, with_landmarks): calls(detector.run_network if pooled else intra_op.run_network,
                                                    with_landmarks)
                    for pooled in (True, False) for with_landmarks in (True, False)}

        def one_after_another(with_landmarks: bool):
            for run, x in schedule[False, with_landmarks]:
                run(x)

        def on_a_pool(with_landmarks: bool):
            with ThreadPoolExecutor(max_workers=cores) as pool:
                for future in [pool.submit(run, x) for run, x in schedule[True, with_landmarks]]:
                    future.result()

        def full_stack():
            tag_images(frame, root=Path(folder), tagger=[embedded, "skin"], detector=detector, cache=None,
                       batch_size=batch_size, min_face=min_face, progress=False)

        for warm_up in (lambda: one_after_another(True), lambda: on_a_pool(False), full_stack):
            warm_up()  # sessions, landmark model
        # This machine's speed drifts by a fifth within a minute (a shared VM).  Each round runs
        # pool, pool without landmarks, stack, stack, pool without landmarks, pool -- symmetric,
        # so a drift that is linear over the round cancels from every ratio -- then the
        # one-after-another schedule once.
        rounds = np.array([np.vstack([_symmetric_round(lambda: on_a_pool(True), lambda: on_a_pool(False), full_stack),
                                      timed(lambda: one_after_another(True))]) for _ in range(repeats)])
    pooled, pooled_nets, full, sequential = rounds[..., 0].T
    cpu = np.median(rounds[..., 1], axis=0)  # process CPU seconds: pool, pool without landmarks, stack, sequential
    n = len(images)
    height, width = images[0].shape[:2]
    print(f"[embedded] {n} images, {sum(map(len, faces))} faces ({width}x{height}, 1-4 faces each), {cores} cores, "
          f"{repeats} rounds, medians")
    print(f"  model calls alone : {n / np.median(sequential):7.2f} images/s one after another "
          f"(CenterFace on {cores} threads)")
    print(f"                      {n / np.median(pooled):7.2f} images/s on a pool of {cores} threads (one per call)")
    print(f"  full tag_images   : {n / np.median(full):7.2f} images/s (decode, detect, align, gender/age, skin tone, "
          f"tables)")
    rate = n / np.median(full)
    print(f"  throughput        : {rate:7.2f} images/s   target >= {THROUGHPUT_TARGET} images/s   "
          f"{'PASS' if rate >= THROUGHPUT_TARGET else 'MISS'}   (load average {_load()}; other tenants slow it)")
    for label, models in (("ratio", np.minimum(sequential, pooled)), ("without landmarks", pooled_nets)):
        ratios = models / full
        ratio = float(np.median(ratios))
        print(f"  {label:18s}: {ratio:7.1%}   target >= 90 %   {'PASS' if ratio >= 0.9 else 'MISS'}"
              f"   (rounds {ratios.min():.1%} .. {ratios.max():.1%}; "
              f"overhead {np.median(full - models) / n * 1e3:.2f} ms/image)")
    # Less disturbed by other tenants than wall time: CPU time per image and cores kept busy.
    print(f"  CPU per image     : model calls on the pool {cpu[0] / n * 1e3:.1f} ms "
          f"({cpu[0] / np.median(pooled):.2f} cores busy), stack {cpu[2] / n * 1e3:.1f} ms "
          f"({cpu[2] / np.median(full):.2f} cores busy); CPU ratio {cpu[0] / cpu[2]:.1%}")


def _load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _symmetric_round(*functions) -> np.ndarray:
    """Mean times of each function, run in the order 1 .. k, k .. 1 (cancels a linear drift)."""
    return (timed(*functions) + timed(*reversed(functions))[::-1]) / 2


def bench_skin(images: list[np.ndarray]) -> None:
    import cv2
    from stone.image import classify

    from biaskit.taxonomy import MST_SWATCHES

    detector = CenterFaceDetector()
    faces = []
    for image in images:
        f = detector.detect(image)
        faces += [(image, f.boxes[k], f.landmarks[k]) for k in range(len(f))]
    crops = [cv2.cvtColor(np.ascontiguousarray(img[int(b[1]):int(b[3]), int(b[0]):int(b[2])]), cv2.COLOR_RGB2BGR)
             for img, b, _ in faces]
    palette = [code.upper() for code in MST_SWATCHES.values()]
    labels = list(MST_SWATCHES)

    # stone.process() (its file-in API) cannot run here: it needs cv2.CascadeClassifier, which
    # OpenCV 5 dropped; its per-face work is classify() (skin mask + k-means), timed on the crops.
    ours = best_of(lambda: skin_tones(faces))  # what SkinToneTagger runs: all faces in one pass
    one_by_one = best_of(lambda: [skin_tone(img, box, lm) for img, box, lm in faces])
    theirs = best_of(lambda: [classify(crop, False, False, palette, labels) for crop in crops], repeats=1)
    agree = np.mean([
        abs(int(skin_tone(img, box, lm).label.removeprefix("MST"))
            - int(classify(crop, False, False, palette, labels)[0]["tone_label"].removeprefix("MST"))) <= 1
        for (img, box, lm), crop in zip(faces[:20], crops[:20])
    ])
    n = len(faces)
    print(f"[skin tone] {n} faces")
    print(f"  biaskit (batched)   : {ours / n * 1e3:8.3f} ms/face")
    print(f"  biaskit (one call/face): {one_by_one / n * 1e3:5.3f} ms/face")
    print(f"  stone classify      : {theirs / n * 1e3:8.3f} ms/face (skin mask + k-means, no I/O)")
    verdict = "PASS" if theirs / ours >= 50 else "MISS"
    print(f"  speed-up            : {theirs / ours:8.1f}x   target >= 50x   {verdict}")
    print(f"  within one tone of stone on {min(n, 20)} faces: {agree:.0%}")


def bench_clip(images: list[np.ndarray], *, batch_size: int = 32) -> None:
    import torch

    from biaskit.perception import ClipTagger

    tagger = ClipTagger(pretrained=None, allow_random_weights=True, batch_size=batch_size)
    detector = CenterFaceDetector()
    faces = []
    for image in images:
        f = detector.detect(image)
        faces += [Face(image, f.boxes[k], f.landmarks[k]) for k in range(len(f))]
    faces = faces[:64]
    model, _ = tagger._model(("race",))
    tagger.tag(faces[:2], attributes=("race", "race4", "gender"))  # warm-up, text vectors cached
    pixels = torch.randn(len(faces), 3, 224, 224)

    def raw():
        with torch.inference_mode():
            for start in range(0, len(faces), batch_size):
                model.encode_image(pixels[start : start + batch_size])

    def tagging():
        tagger.tag(faces, attributes=("race", "race4", "gender"))

    raw()  # warm-up of the batch-32 path
    raw_time, tag_time = best_of_interleaved(raw, tagging, repeats=3)
    n = len(faces)
    print(f"[clip] ViT-B-32 (random init), {n} faces, batch {batch_size}, {torch.get_num_threads()} threads")
    print(f"  raw encode_image : {n / raw_time:7.2f} faces/s")
    print(f"  ClipTagger.tag   : {n / tag_time:7.2f} faces/s (align, encode, race/race4/gender)")
    ratio = raw_time / tag_time
    print(f"  ratio            : {ratio:7.1%}   target >= 90 %   {'PASS' if ratio >= 0.9 else 'MISS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="a run of a few hundred images, as an evaluation makes")
    parser.add_argument("--repeats", type=int, default=6, help="rounds of the embedded timings")
    parser.add_argument("--side", type=int, default=512,
                        help="image side (px); the throughput target is for 512, 768 shows the second pass's cost")
    parser.add_argument("--skip-clip", action="store_true")
    parser.add_argument("--skip-skin", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    images = make_images(args.images, side=args.side)
    if not args.skip_embedded:
        bench_embedded(images, repeats=args.repeats)
    if not args.skip_skin:
        bench_skin(images)
    if not args.skip_clip:
        bench_clip(images)


if __name__ == "__main__":
    main()
