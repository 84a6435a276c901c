"""Detection on real photos (scikit-image's astronaut) and robust image loading."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _faces import astronaut, collage
from biaskit.perception import CenterFaceDetector, Faces, HogDetector, ImageLoadError, load_image, make_detector
from biaskit.perception import centerface
from biaskit.perception.centerface import nms


@pytest.fixture(scope="module")
def detector():
    return CenterFaceDetector()


def _centres_inside(boxes, tiles):
    """For each tile, how many detected box centres fall inside it."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return [int(((cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)).sum()) for x0, y0, x1, y1 in tiles]


def test_astronaut_has_one_face_with_landmarks_on_the_face(detector):
    faces = detector.detect(astronaut())
    assert len(faces) == 1
    x0, y0, x1, y1 = faces.boxes[0]
    # the face lies around x 180-270, y 60-180 in the 512x512 photo
    assert 160 < x0 < 200 and 250 < x1 < 290 and 40 < y0 < 80 and 160 < y1 < 200
    left_eye, right_eye, nose, mouth_left, mouth_right = faces.landmarks[0]
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_eye[1] < nose[1] < mouth_left[1]
    assert abs(left_eye[1] - right_eye[1]) < 10  # upright face: eyes level
    assert faces.scores[0] > 0.8


def test_collage_of_scaled_copies_every_face_found_down_to_about_22px(detector):
    # head widths; the face is ~57 % of the head, so the smallest face is ~23 px wide
    sizes = [300, 220, 160, 120, 90, 70, 55, 45, 40]
    image, tiles = collage(sizes)
    faces = detector.detect(image)
    assert len(faces) == len(sizes)
    assert _centres_inside(faces.boxes, tiles) == [1] * len(sizes)
    assert (faces.boxes[:, 2] - faces.boxes[:, 0]).min() < 30


def test_collage_of_flipped_and_rotated_copies_every_face_counted(detector):
    transforms = [None, "flip", 15, -15, 30, -30, "flip", 20]
    image, tiles = collage([160, 120, 160, 120, 160, 120, 100, 100], transforms=transforms)
    faces = detector.detect(image)
    assert len(faces) == len(transforms)
    assert _centres_inside(faces.boxes, tiles) == [1] * len(transforms)


def test_batched_detection_equals_one_by_one(detector):
    small, _ = collage([120, 60], canvas=256)
    images = [astronaut(), small, astronaut()[:, ::-1].copy()]
    together = detector.detect_many(images)
    for image, batched in zip(images, together):
        alone = detector.detect(image)
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-3)


def test_no_face_in_a_flat_image(detector):
    assert len(detector.detect(np.full((300, 200, 3), 128, np.uint8))) == 0


def test_hog_detector_finds_the_astronaut_without_landmarks():
    faces = HogDetector(upsample=0).detect(astronaut())
    assert len(faces) >= 1 and faces.landmarks is None
    cx = (faces.boxes[:, 0] + faces.boxes[:, 2]) / 2
    assert np.any((cx > 190) & (cx < 260))


def test_make_detector_names_and_errors():
    assert isinstance(make_detector("hog"), HogDetector)
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        make_detector("yolo")


def test_nms_drops_overlaps_and_keeps_the_best():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
    assert list(nms(boxes, np.array([0.5, 0.9, 0.7]), iou=0.3)) == [1, 2]


def test_centerface_weights_are_constants_and_outputs_move_by_rounding_only():
    """Weights listed as graph inputs would be variables to the runtime (half the CPU speed)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    session = centerface.make_session(providers=["CPUExecutionProvider"], threads=1)
    assert [value.name for value in session.get_inputs()] == [centerface.INPUT_NAME]
    assert not session.get_overridable_initializers()
    # the exporter's layout, every weight a graph input too: the same network, computed without
    # the optimisations that need constant weights
    model = onnx.load_from_string(centerface._dynamic_model_bytes())
    model.graph.input.extend(helper.make_tensor_value_info(w.name, w.data_type, list(w.dims))
                             for w in model.graph.initializer)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    as_inputs = ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                     providers=["CPUExecutionProvider"])
    blob = centerface.preprocess([astronaut()])
    names = list(centerface.OUTPUT_NAMES)
    for fast, reference in zip(session.run(names, {centerface.INPUT_NAME: blob}),
                               as_inputs.run(names, {centerface.INPUT_NAME: blob})):
        np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-3)


# ---- image loading ---------------------------------------------------------------------------

def _saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(astronaut())


@pytest.mark.parametrize("mode, fmt", [
    ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("RGB", "JPEG"), ("1", "PNG"),
])
def test_every_mode_loads_as_rgb_and_the_face_is_found(tmp_path, photo, mode, fmt, detector):
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(_saved(photo.convert(mode), fmt))
    loaded = load_image(path)
    assert loaded.array.shape == (512, 512, 3) and loaded.array.dtype == np.uint8
    if mode != "1":  # a 1-bit image keeps too little of a face
        assert len(detector.detect(loaded.array)) == 1


def _pillow_pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _png_chunks(data: bytes):
    """(type, payload) of each chunk of a PNG file."""
    position, chunks = 8, []
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append((data[position + 4 : position + 8], data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def _png_file(chunks) -> bytes:
    """A PNG file of ``chunks``, every checksum right."""
    import zlib

    body = b"".join(len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")
                    for kind, payload in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("extra", [
    {}, {"optimize": True}, {"compress_level": 0}, {"gamma": True}, {"icc": True}, {"transparency": (0, 0, 0)},
])
def test_plain_rgb_png_decodes_to_the_same_pixels_as_pillow(tmp_path, photo, extra, monkeypatch):
    """The OpenCV path for 8-bit RGB PNG gives Pillow's pixels, whatever ancillary chunks the file has."""
    import cv2
    from PIL import ImageCms, PngImagePlugin

    decoded, imdecode = [], cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *args: decoded.append(1) or imdecode(*args))

    kwargs = {k: v for k, v in extra.items() if k in ("optimize", "compress_level", "transparency")}
    if extra.get("gamma"):
        info = PngImagePlugin.PngInfo()
        info.add(b"gAMA", (100000).to_bytes(4, "big"))  # gamma 1.0: a decoder that applied it would differ
        kwargs["pnginfo"] = info
    if extra.get("icc"):
        kwargs["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    path = tmp_path / "plain.png"
    path.write_bytes(_saved(photo, "PNG", **kwargs))
    np.testing.assert_array_equal(load_image(path).array, _pillow_pixels(path))
    assert decoded == [1]  # it did take the OpenCV path


def test_png_cut_short_with_good_checksums_is_an_error_not_a_partial_image(tmp_path, photo):
    chunks = _png_chunks(_saved(photo, "PNG"))
    cut = [(kind, payload[: len(payload) // 2] if kind == b"IDAT" else payload) for kind, payload in chunks]
    path = tmp_path / "short.png"
    path.write_bytes(_png_file(cut))
    with pytest.raises(ImageLoadError, match="short.png.*corrupt or truncated"):
        load_image(path)


def test_png_with_exif_orientation_is_turned_upright(tmp_path, photo, detector):
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "exif.png"
    path.write_bytes(_saved(photo.rotate(-90, expand=True), "PNG", exif=exif))  # 8: turn 90 degrees back
    np.testing.assert_array_equal(load_image(path).array, np.asarray(photo))


def test_sixteen_bit_grey_is_scaled_by_full_range(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(values, mode="I;16").save(path)
    array = load_image(path).array
    assert Image.open(path).mode in ("I;16", "I")
    np.testing.assert_array_equal(array[0, :, 0], [0, 128, 255])


def test_transparent_pixels_become_grey_not_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent except one pixel
    rgba[0, 0, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    array = load_image(path).array
    assert tuple(array[0, 0]) == (255, 0, 0) and tuple(array[1, 1]) == (128, 128, 128)


def test_exif_orientation_is_applied(tmp_path, photo, detector):
    rotated = photo.rotate(90, expand=True)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 8  # ... with the tag that says "rotate 90 CW to view"
    path = tmp_path / "exif.jpg"
    rotated.save(path, exif=exif)
    loaded = load_image(path)
    faces = detector.detect(loaded.array)
    assert len(faces) == 1
    left_eye, right_eye = faces.landmarks[0][:2]
    assert abs(left_eye[1] - right_eye[1]) < 12  # upright again


def test_large_image_downscaled_and_scale_reported(tmp_path, photo):
    path = tmp_path / "big.png"
    photo.resize((3000, 3000)).save(path)
    loaded = load_image(path, max_side=1000)
    assert loaded.array.shape[:2] == (1000, 1000)
    assert loaded.scale == pytest.approx(1000 / 3000)
    assert loaded.original_size == (3000, 3000)


def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 90k pixels > 2x the limit
    with pytest.raises(ImageLoadError, match="bomb.png.*refused"):
        load_image(path)


def test_truncated_corrupt_missing_and_non_images_raise_naming_the_file(tmp_path, photo):
    data = _saved(photo, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("hello")
    corrupt = bytearray(_saved(photo, "PNG"))
    corrupt[100:400] = b"\x00" * 300
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    for name, reason in [("cut.jpg", "truncated"), ("text.png", "not an image"),
                         ("corrupt.png", "corrupt"), ("absent.png", "no such file")]:
        with pytest.raises(ImageLoadError, match=f"{name}.*{reason}"):
            load_image(tmp_path / name)


# ---- two passes: close-ups and small faces alike ---------------------------------------------

def _close_up(box, side=768):
    """The astronaut's face cropped to ``box`` and enlarged to fill a ``side`` px frame."""
    crop = Image.fromarray(astronaut()).crop(box).resize((side, side), Image.Resampling.LANCZOS)
    factors = np.array([side / (box[2] - box[0]), side / (box[3] - box[1])])
    return np.asarray(crop), lambda points: (points - np.array(box[:2])) * factors


@pytest.mark.parametrize("box", [(180, 60, 275, 185), (175, 50, 285, 190)])
def test_close_up_filling_the_frame_found_once_with_its_landmarks(detector, box):
    image, to_crop = _close_up(box)
    # one pass at full size splits this face into two overlapping half faces
    assert len(CenterFaceDetector(downscaled_side=None).detect(image)) == 2
    faces = detector.detect(image)
    assert len(faces) == 1 and faces.scores[0] > 0.8
    x0, y0, x1, y1 = faces.boxes[0]
    assert x1 - x0 > 600 and y1 - y0 > 600
    # the landmarks are the astronaut's own (found in the original photo), carried into the close-up
    expected = to_crop(detector.detect(astronaut()).landmarks[0])
    assert np.abs(faces.landmarks[0] - expected).max() < 0.08 * 768


def test_second_pass_only_on_large_images_and_named(detector):
    assert detector.name == "centerface(threshold=0.5,nms=0.3,downscaled=512@0.5)"
    assert CenterFaceDetector(downscaled_side=None).name == "centerface(threshold=0.5,nms=0.3)"
    before = detector.calls
    detector.detect(astronaut())  # 512 px: under 1.25 x 512, one pass
    assert detector.calls == before + 1
    detector.detect(_close_up((160, 30, 300, 200))[0])  # 768 px: two
    assert detector.calls == before + 3


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_no_face_in_photos_without_a_person_at_either_size(detector, name):
    from skimage import data

    photo = Image.fromarray(getattr(data, name)())
    for side in (max(photo.size), 768, 1536):
        scaled = photo.resize((side * photo.width // max(photo.size), side * photo.height // max(photo.size)))
        assert len(detector.detect(np.asarray(scaled))) == 0, (name, side)


def test_merge_faces_by_hand_computed_overlaps():
    from biaskit.perception.detect import merge_faces

    landmarks = np.arange(3 * 10, dtype=np.float32).reshape(3, 5, 2)
    # boxes 0 and 1 overlap by 81 / (100 + 100 - 81) = 0.68; box 2 overlaps box 0 by 25 / 175 = 0.14
    first = Faces(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.6, 0.9], np.float32),
                  landmarks[:2])
    second = Faces(np.array([[1, 1, 11, 11], [5, 5, 15, 15]], np.float32), np.array([0.8, 0.7], np.float32),
                   np.stack([landmarks[2], landmarks[2] + 1]))
    merged = merge_faces([first, second], nms_iou=0.3)
    np.testing.assert_array_equal(merged.scores, np.array([0.9, 0.8, 0.7], np.float32))
    np.testing.assert_array_equal(merged.boxes[1], [1, 1, 11, 11])  # the better of the overlapping pair
    np.testing.assert_array_equal(merged.landmarks[1], landmarks[2])  # with its own landmarks
    # at IoU 0.1 the third box (0.14 with the kept [1, 1, 11, 11]: 36 / 164 = 0.22) goes too
    assert len(merge_faces([first, second], nms_iou=0.1)) == 2


def test_faces_sized_and_scaled():
    faces = Faces(np.array([[0, 0, 10, 40], [0, 0, 30, 30]], np.float32), np.array([0.9, 0.8], np.float32),
                  np.ones((2, 5, 2), np.float32))
    np.testing.assert_allclose(faces.sizes, [20, 30])
    assert faces.sized(atleast=25).scores.tolist() == [pytest.approx(0.8)]
    assert faces.sized(below=25).scores.tolist() == [pytest.approx(0.9)]
    doubled = faces.scaled(x=2, y=3)
    np.testing.assert_allclose(doubled.boxes[0], [0, 0, 20, 120])
    np.testing.assert_allclose(doubled.landmarks[0, 0], [2, 3])


# ---- who counts ----------------------------------------------------------------------------

def test_face_sizes_by_hand():
    from biaskit.perception.subjects import face_sizes

    boxes = np.array([[0, 0, 100, 100], [0, 0, 50, 50], [10, 10, 30, 60]], float)  # sizes 100, 50, sqrt(1000)
    size_image, size_largest = face_sizes(boxes, width=400, height=100)  # image size sqrt(40000) = 200
    np.testing.assert_allclose(size_image, [0.5, 0.25, np.sqrt(1000) / 200])
    np.testing.assert_allclose(size_largest, [1, 0.5, np.sqrt(1000) / 100])
    assert [len(v) for v in face_sizes(np.zeros((0, 4)), width=10, height=10)] == [0, 0]


def test_face_policy_select_by_kind_and_all():
    import pandas as pd

    from biaskit.perception.subjects import FacePolicy, make_policy

    people = pd.DataFrame({"sha256": ["a"] * 4 + ["b"], "person": [0, 1, 2, 3, 0],
                           "size_largest": [1.0, 0.5, 0.3, 0.1, 1.0]})
    rows = [("solo", "a", p) for p in range(4)] + [("crowd", "a", p) for p in range(4)] + [("other", "b", 0)]
    observations = pd.DataFrame(rows, columns=["prompt_id", "sha256", "person"])
    kinds = {"solo": "individual", "crowd": "group"}
    kept = FacePolicy().select(observations, people, kinds=kinds)
    assert kept.groupby("prompt_id")["person"].apply(list).to_dict() == {
        "solo": [0, 1], "crowd": [0, 1, 2], "other": [0]}  # 0.5 counts (at least half); other: a group
    stricter = FacePolicy(individual_min=0.6, group_min=0.05).select(observations, people, kinds=kinds)
    assert stricter.groupby("prompt_id").size().to_dict() == {"solo": 1, "crowd": 4, "other": 1}
    assert make_policy("all").select(observations, people, kinds=kinds).equals(observations)
    unknown = observations.assign(person=[9] * len(observations))  # sizes not in the people table: counted
    assert len(FacePolicy().select(unknown, people, kinds=kinds)) == len(observations)
    with pytest.raises(ValueError, match="unknown face policy 'some'"):
        make_policy("some")
    with pytest.raises(ValueError, match="individual_min must be between 0 and 1"):
        FacePolicy(individual_min=1.5)
