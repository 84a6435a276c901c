"""The offline demo generators: deterministic, and they draw the people asked for."""

import numpy as np
import pytest

from biaskit import demo


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("a doctor", 1), ("three construction workers", 3), ("two nurses", 2), ("12 judges", 6)],
)
def test_people_asked_reads_the_count_in_the_prompt(prompt, expected):
    assert demo._people_asked(prompt) == expected


def test_same_seed_same_image_and_other_seed_other_image():
    first = np.asarray(demo.mixed("a doctor", 7))
    again = np.asarray(demo.mixed("a doctor", 7))
    other = np.asarray(demo.mixed("a doctor", 8))
    assert first.shape == (512, 512, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_skewed_only_pastes_the_astronaut():
    # The astronaut photo is in colour; the cameraman is grey: a grey tile would show up as
    # pixels with R == G == B that are not background.
    image = np.asarray(demo.skewed("three construction workers", 1)).astype(int)
    background = image[-1, -1]
    is_tile = np.any(image != background, axis=-1)
    colourful = np.abs(image[..., 0] - image[..., 2]) > 20
    assert is_tile.sum() > 0
    assert colourful[is_tile].mean() > 0.3
