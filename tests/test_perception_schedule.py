"""The throughput machinery of the perception pipeline gives the same answers as the plain path.

Detector inputs made ahead (and refilled), detection image by image on a pool of
threads, the embedded tagger split into staging and networks, images taken by this
thread while it waits: each is compared with the straightforward computation on real
photos.
"""

from __future__ import annotations

import hashlib

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from _faces import astronaut, collage, make_run
from biaskit.perception import CenterFaceDetector, EmbeddedTagger, Face, tag_images
from biaskit.perception import centerface
from biaskit.perception.images import load_image
from biaskit.perception.pipeline import _Ahead, _Loader, batch_slices


@pytest.fixture(scope="module")
def detector():
    return CenterFaceDetector()


@pytest.fixture(scope="module")
def odd_group():
    """Three faces on a canvas that is not a multiple of 32 (the network input is padded)."""
    image, _ = collage([150, 110, 80], canvas=512, seed=4)
    return np.ascontiguousarray(image[:470, :401])


def _same_faces(a, b):
    assert len(a) == len(b)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left.boxes, right.boxes)
        np.testing.assert_array_equal(left.scores, right.scores)
        np.testing.assert_array_equal(left.landmarks, right.landmarks)


def test_prepared_inputs_detect_the_same_faces(detector, odd_group):
    images = [astronaut(), odd_group]
    prepared = [detector.prepare(image) for image in images]
    assert prepared[1].shape == (1, 3, 480, 416)
    found = detector.detect_many(images, prepared=prepared)  # side by side on the cores
    _same_faces(found, detector.detect_many(images))
    _same_faces(found, [detector.detect(image) for image in images])
    assert [len(f) for f in found] == [1, 3]


def test_refilled_input_equals_a_fresh_one_padding_included(detector, odd_group):
    used = np.full((1, 3, 480, 416), 7.0, np.float32)  # stale values everywhere, padding too
    refilled = detector.prepare(odd_group, out=used)
    assert refilled is used
    np.testing.assert_array_equal(refilled, centerface.preprocess([odd_group]))
    assert refilled[:, :, 470:].max() == 0 and refilled[:, :, :, 401:].max() == 0


def test_wrong_input_buffer_is_refused(detector, odd_group):
    with pytest.raises(ValueError, match="CenterFace: out= must be a float32 array of shape"):
        detector.prepare(odd_group, out=np.zeros((1, 3, 512, 512), np.float32))


def test_staged_embedded_tagging_equals_tag(detector):
    image = astronaut()
    mirror = np.ascontiguousarray(image[:, ::-1])
    faces = [Face(img, f.boxes[k], f.landmarks[k]) for img in (image, mirror)
             for f in [detector.detect(img)] for k in range(len(f))]
    embedded = EmbeddedTagger(thresholds={"gender": 0.6})  # the astronaut's 0.83 is under the calibrated default
    for attributes in (("gender", "age", "age_group"), ("gender",)):
        direct = embedded.tag(faces, attributes=attributes)
        staged = embedded.finish(embedded.stage(faces, attributes=attributes), attributes=attributes)
        assert direct.keys() == staged.keys() == set(attributes)
        for attribute in attributes:
            assert direct[attribute][0] == staged[attribute][0]
            np.testing.assert_array_equal(direct[attribute][1], staged[attribute][1])
    assert direct["gender"][0] == ["Female", "Female"]
    empty = embedded.finish(embedded.stage([], attributes=("gender",)), attributes=("gender",))
    assert empty["gender"][0] == [] and len(empty["gender"][1]) == 0


def test_taking_a_batch_runs_its_queued_tasks_here_last_first_and_leaves_later_batches():
    gate, ran_here = threading.Event(), []

    def load(item):
        ran_here.append(item)
        return f"<{item}>"

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(gate.wait)  # the worker is busy: every task below stays queued
        ahead = _Ahead(pool=pool, load=load, batches=[[0, 1, 2, 3, 4], [5, 6]])
        assert ahead.take(0) == ["<0>", "<1>", "<2>", "<3>", "<4>"]
        assert ran_here == [4, 3, 2, 1, 0]  # from the back, where the pool does not start
        gate.set()
        assert ahead.take(1) == ["<5>", "<6>"]


def test_while_a_batch_finishes_elsewhere_this_thread_runs_the_next_batchs_tasks():
    started, gate, ran_here = threading.Event(), threading.Event(), []

    def load(item):
        if item == 0:  # the pool's task: running, so it cannot be taken over
            started.set()
            gate.wait(timeout=30)
        else:
            ran_here.append(item)
            if item == 1:
                gate.set()
        return item * 10

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = _Ahead(pool=pool, load=load, batches=[[0], [1, 2], [3]], depth=3)
        assert started.wait(timeout=30)
        assert ahead.take(0) == [0]
        assert ran_here[:2] == [2, 1]  # the next batch's, from the back, instead of idling
        assert ahead.take(1) == [10, 20] and ahead.take(2) == [30]


@pytest.mark.parametrize(("count", "sizes"), [
    (0, []), (1, [1]), (5, [2, 1, 1, 1]), (16, [8, 4, 2, 1, 1]),
    (40, [16, 8, 8, 4, 2, 1, 1]), (50, [16, 16, 2, 8, 4, 2, 1, 1]),
])
def test_batches_are_full_then_the_last_batch_worth_halves_down_to_one_image(count, sizes):
    slices = batch_slices(count, 16)
    assert [part.stop - part.start for part in slices] == sizes
    assert [i for part in slices for i in range(count)[part]] == list(range(count))  # each once, in order


def test_loader_reuses_inputs_of_the_same_size_and_keeps_a_bounded_few(tmp_path):
    make_run(tmp_path, {"a.png": astronaut(), "b.png": astronaut()[:300]})
    batching = CenterFaceDetector(threads=2)  # two threads a call: detection is left to the batch
    assert not batching.one_image_per_core
    loader = _Loader(root=tmp_path, max_side=2048, detector=batching, spare_max=1)
    # The loader checks the bytes against the table's sha256: give the real ones.
    x, y = (hashlib.sha256((tmp_path / "images" / n).read_bytes()).hexdigest() for n in ("a.png", "b.png"))
    first, other = loader.load((x, "images/a.png")), loader.load((y, "images/b.png"))
    assert first.faces is None and other.faces is None
    a_input, b_input = first.prepared, other.prepared
    loader.recycle([first, other])
    assert first.prepared is None and [spare for _, spare in loader._spare] == [b_input]  # oldest dropped
    again = loader.load((x, "images/a.png"))
    assert again.prepared is not a_input  # no spare of that size was left: a fresh array
    kept = again.prepared
    loader.recycle([again])
    refilled = loader.load((x, "images/a.png"))
    assert refilled.prepared is kept
    np.testing.assert_array_equal(refilled.prepared, batching.prepare(load_image(tmp_path / "images/a.png").array))
    missing = loader.load(("z", "images/missing.png"))
    assert missing.image is None and missing.error.startswith(str(tmp_path / "images/missing.png"))


def test_loader_detects_image_by_image_with_a_one_core_detector(tmp_path, detector):
    group, _ = collage([150, 110, 80], canvas=512, seed=4)
    make_run(tmp_path, {"a.png": group})
    assert detector.one_image_per_core  # CPU session, one thread a call
    loader = _Loader(root=tmp_path, max_side=2048, detector=detector)
    item = loader.load((hashlib.sha256((tmp_path / "images/a.png").read_bytes()).hexdigest(), "images/a.png"))
    assert item.prepared is None and len(loader._spare) == 1  # its input is kept for the next image
    _same_faces([item.faces], [detector.detect(group)])
    assert len(item.faces) == 3


def test_results_do_not_depend_on_batch_size(tmp_path, detector):
    group, _ = collage([160, 120, 90], canvas=512, seed=2)
    big, _ = collage([300, 200], canvas=1100, seed=3)  # over a megapixel: input made at detection
    files = {f"{n}.png": image for n, image in enumerate([astronaut(), group, big, group[:400, :333]])}
    files["broken.png"] = b"not an image"
    frame = make_run(tmp_path, files)
    results = [tag_images(frame, root=Path(tmp_path), detector=detector, cache=None, batch_size=size,
                          progress=False) for size in (0, 2, 16)]  # 0 counts as 1
    first = results[0]
    for other in results[1:]:
        assert other.people.equals(first.people) and other.errors.equals(first.errors)
        labels = other.observations.drop(columns="confidence")
        assert labels.equals(first.observations.drop(columns="confidence"))
        # the networks see other batch compositions: float32 rounding, nothing more
        np.testing.assert_allclose(other.observations["confidence"], first.observations["confidence"], atol=1e-6)
    expected = [len(detector.detect(image)) for image in files.values() if isinstance(image, np.ndarray)]
    assert expected[:3] == [1, 3, 2] and len(first.people) == sum(expected) and len(first.errors) == 1


def test_available_cores_follows_the_affinity_mask_or_the_cpu_count(monkeypatch):
    from biaskit.perception import base

    monkeypatch.setattr(base.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert base.available_cores() == 1
    monkeypatch.delattr(base.os, "sched_getaffinity")  # macOS, Windows
    monkeypatch.setattr(base.os, "cpu_count", lambda: 6)
    assert base.available_cores() == 6


def test_one_core_gives_the_same_tables(tmp_path, detector, monkeypatch):
    from biaskit.perception import pipeline

    group, _ = collage([160, 120, 90], canvas=512, seed=2)
    frame = make_run(tmp_path, {f"{n}.png": image for n, image in enumerate([astronaut(), group, group[:300]])})
    many = tag_images(frame, root=tmp_path, detector=detector, cache=None, batch_size=2, progress=False)
    monkeypatch.setattr(pipeline, "available_cores", lambda: 1)  # a pool of one thread, and this one
    one = tag_images(frame, root=tmp_path, detector=detector, cache=None, batch_size=2, progress=False)
    assert one.people.equals(many.people) and one.observations.equals(many.observations)
    assert len(many.people) == 1 + 3 + len(detector.detect(group[:300]))
