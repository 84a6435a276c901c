"""Test helpers for perception: real-photo collages, painted synthetic faces, hand-built runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from biaskit.perception.color import hex_to_rgb
from biaskit.taxonomy import MST_SWATCHES

# The head (face + hair + some background) in scikit-image's astronaut photo.
HEAD_BOX = (150, 20, 305, 215)


def astronaut() -> np.ndarray:
    from skimage.data import astronaut as photo

    return photo()


def grace_hopper() -> np.ndarray:
    """matplotlib's sample portrait of Grace Hopper (600 x 512, RGB)."""
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        return np.asarray(image.convert("RGB"))


def cameraman() -> np.ndarray:
    """scikit-image's cameraman photo (512 x 512 grayscale) as RGB."""
    from skimage.data import camera

    return np.repeat(camera()[:, :, None], 3, axis=2)


def head() -> Image.Image:
    return Image.fromarray(astronaut()).crop(HEAD_BOX)


def collage(sizes, *, canvas: int = 1024, transforms=None, seed: int = 0) -> tuple[np.ndarray, list[tuple]]:
    """Copies of the astronaut's head at ``sizes`` (head width, px) on a grey canvas.

    ``transforms[i]`` is None, ``"flip"`` or a rotation angle in degrees.
    Returns the image and the tiles' (x0, y0, x1, y1).
    """
    rng = np.random.default_rng(seed)
    base = np.full((canvas, canvas, 3), 0, np.uint8)
    base[:] = rng.integers(90, 110, size=3, dtype=np.uint8)
    out = Image.fromarray(base)
    transforms = transforms or [None] * len(sizes)
    tiles, x, y, row_height = [], 8, 8, 0
    source = head()
    for size, transform in zip(sizes, transforms):
        tile = source.resize((size, round(size * source.height / source.width)), Image.Resampling.LANCZOS)
        if transform == "flip":
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif transform is not None:
            tile = tile.rotate(float(transform), resample=Image.Resampling.BICUBIC, expand=True,
                               fillcolor=tuple(int(v) for v in base[0, 0]))
        if x + tile.width > canvas - 8:
            x, y, row_height = 8, y + row_height + 8, 0
        out.paste(tile, (x, y))
        tiles.append((x, y, x + tile.width, y + tile.height))
        x += tile.width + 8
        row_height = max(row_height, tile.height)
    assert y + row_height <= canvas, "collage does not fit"
    return np.asarray(out), tiles


def swatch(tone: int) -> tuple[int, int, int]:
    return hex_to_rgb(list(MST_SWATCHES.values())[tone - 1])


def painted_face(skin, *, size: int = 160, background=(40, 120, 200)):
    """A frontal face drawing: skin ellipse, dark hair, brows, eyes, red mouth, a white highlight.

    Returns the image, the face box (x0, y0, x1, y1) and the five landmarks.
    """
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    s = size / 160
    box = (30 * s, 20 * s, 130 * s, 150 * s)
    draw.ellipse((25 * s, 5 * s, 135 * s, 90 * s), fill=(35, 25, 20))  # hair
    draw.ellipse(box, fill=tuple(skin))
    eyes = [(57 * s, 70 * s), (103 * s, 70 * s)]
    for ex, ey in eyes:
        draw.rectangle((ex - 12 * s, ey - 14 * s, ex + 12 * s, ey - 10 * s), fill=(30, 20, 15))  # brow
        draw.ellipse((ex - 9 * s, ey - 5 * s, ex + 9 * s, ey + 5 * s), fill=(250, 250, 250))  # sclera
        draw.ellipse((ex - 4 * s, ey - 4 * s, ex + 4 * s, ey + 4 * s), fill=(20, 20, 20))  # iris
    mouth = [(65 * s, 118 * s), (95 * s, 118 * s)]
    draw.ellipse((62 * s, 112 * s, 98 * s, 124 * s), fill=(170, 40, 50))
    draw.ellipse((74 * s, 40 * s, 86 * s, 48 * s), fill=(255, 255, 255))  # specular highlight
    landmarks = np.array([eyes[0], eyes[1], (80 * s, 95 * s), mouth[0], mouth[1]], dtype=np.float32)
    return np.asarray(image), np.array(box, dtype=np.float32), landmarks


def exposure(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale light intensity (linear RGB) by ``factor`` - a brighter or dimmer illuminant."""
    linear = (image / 255.0) ** 2.2 * factor
    return np.clip(np.round(np.clip(linear, 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8)


def make_run(run_dir: Path, files: dict[str, bytes | np.ndarray | Image.Image], *, extra_rows=()) -> pd.DataFrame:
    """A run directory with images/ and images.parquet, one ok row per file (model m, prompt p<i>)."""
    run_dir = Path(run_dir)
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (name, content) in enumerate(files.items()):
        path = run_dir / "images" / name
        if isinstance(content, np.ndarray):
            Image.fromarray(content).save(path)
        elif isinstance(content, Image.Image):
            content.save(path)
        else:
            path.write_bytes(content)
        data = path.read_bytes()
        rows.append(dict(model="m", prompt_id=f"p{index}", sample=0, seed=index, status="ok", error=None,
                         revised_prompt=None, path=f"images/{name}", sha256=hashlib.sha256(data).hexdigest(),
                         width=None, height=None))
    rows.extend(extra_rows)
    frame = pd.DataFrame(rows)
    frame.to_parquet(run_dir / "images.parquet", index=False)
    return frame
