"""Skin tone as the README promises it, whatever the tagger inside: a real face recoloured to each
Monk swatch is read as that swatch (within one tone), and a darker face never reads lighter.

The photo keeps its shading, highlights, eyes and hair; only its colours move, by one Lab
offset per image that puts the cheeks' median on the swatch.  Tagging goes through
``tag_run`` with the ``skin`` tagger, as ``biaskit tag --tagger skin`` does.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _faces import astronaut, make_run, swatch
from biaskit.perception import tag_run
from biaskit.perception.color import srgb_to_lab

TONES = range(1, 11)
FACE = (181, 58, 270, 178)  # the astronaut's face (x0, y0, x1, y1)


def recoloured(tone: int) -> np.ndarray:
    """The astronaut photo with its cheeks' median colour moved onto MST ``tone``."""
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(astronaut())
    x0, y0, x1, y1 = FACE
    cheeks = lab[y0 + (y1 - y0) * 55 // 100:y0 + (y1 - y0) * 75 // 100,
                 x0 + (x1 - x0) * 20 // 100:x0 + (x1 - x0) * 80 // 100].reshape(-1, 3)
    lab += srgb_to_lab(np.array(swatch(tone))) - np.median(cheeks, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-gamut colours are clipped: the hair, the suit
        return np.clip(np.round(lab2rgb(lab) * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    make_run(root, {f"mst{tone}.png": recoloured(tone) for tone in TONES})
    observations = tag_run(root, tagger=["skin"], attributes=["skin_tone"], progress=False)
    # make_run names prompts p0..p9 in file order: p<i> is MST i+1
    found = {int(row.prompt_id[1:]) + 1: row.label for row in observations.itertuples()}
    return [found.get(tone, "missing") for tone in TONES]


def test_each_recoloured_face_reads_its_swatch_within_one_tone(tones):
    assert "missing" not in tones and "unclear" not in tones, tones
    read = np.array([int(label.removeprefix("MST")) for label in tones])
    assert np.abs(read - np.array(TONES)).max() <= 1, tones
    assert (read == np.array(TONES)).sum() >= 7, tones  # most exactly


def test_darker_faces_never_read_lighter(tones):
    read = [int(label.removeprefix("MST")) for label in tones]
    assert read == sorted(read), tones
    assert read[0] <= 2 and read[-1] >= 9, tones  # the scale's two ends are reached
