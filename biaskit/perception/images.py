"""Robust image loading for perception.

Generated and user-supplied images come in every flavour Pillow can open:
palette, grey, 16-bit, CMYK, with alpha, rotated by an EXIF tag, huge.  All
of them are turned into one thing, an ``[H, W, 3]`` uint8 RGB array, or an
:class:`ImageLoadError` naming the file and what is wrong with it.

Very large images are downscaled for detection (faces in a 4000 px photo are
found as well at 2048 px, four times faster); the returned ``scale`` maps
coordinates back to the original pixels.  Pillow's decompression-bomb guard
stays on: an image with more pixels than ``Image.MAX_IMAGE_PIXELS * 2`` is
refused before it is decoded.

Examples
--------
>>> from biaskit.perception.images import load_image
>>> loaded = load_image("photo.jpg")          # doctest: +SKIP
>>> loaded.array.shape, loaded.scale           # doctest: +SKIP
((512, 512, 3), 1.0)
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from biaskit.paths import MAX_IMAGE_BYTES, read_verified

#: Longest side an image is decoded to; larger images are downscaled.
DEFAULT_MAX_SIDE = 2048
#: Background that transparent pixels are composited onto (mid grey: neither
#: a skin colour nor an extreme that could bias colorimetry).
ALPHA_BACKGROUND = (128, 128, 128)

#: Formats whose ``verify()`` checks data integrity (PNG: CRC of every chunk).
_VERIFIABLE = ("PNG",)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_RGB = 2  # IHDR colour type: truecolour, no alpha

LOAD_ERROR = "{path}: cannot read image: {reason}"


class ImageLoadError(ValueError):
    """An image file that cannot be decoded (missing, truncated, not an image, too big)."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded RGB image and how it relates to the file on disk.

    Attributes
    ----------
    array : numpy.ndarray
        ``[H, W, 3]`` uint8 RGB pixels, EXIF orientation applied.
    scale : float
        ``array`` size divided by the original size (1.0 unless downscaled).
    original_size : tuple of int
        ``(width, height)`` of the image after EXIF rotation, before downscaling.
    """

    array: np.ndarray
    scale: float
    original_size: tuple[int, int]


def load_image(path: str | Path, *, max_side: int = DEFAULT_MAX_SIDE,
               sha256: str | None = None) -> LoadedImage:
    """Decode ``path`` into an RGB array, downscaled so its longest side <= ``max_side``.

    A file over :data:`biaskit.paths.MAX_IMAGE_BYTES` is refused by its size
    before it is read; with ``sha256`` the bytes must have that digest.

    Raises
    ------
    ImageLoadError
        If the file is missing, too large, not the recorded bytes, not an image,
        truncated or corrupt, or trips Pillow's decompression-bomb guard.
    """
    path = Path(path)
    try:
        data = read_verified(path, sha256=sha256, max_bytes=MAX_IMAGE_BYTES)
    except FileNotFoundError:
        raise ImageLoadError(LOAD_ERROR.format(path=path, reason="no such file")) from None
    except OSError as exc:
        raise ImageLoadError(LOAD_ERROR.format(path=path, reason=exc.strerror or exc)) from None
    except ValueError as exc:  # too large, or not the bytes the table recorded
        raise ImageLoadError(str(exc)) from None
    try:
        with warnings.catch_warnings():
            # A "possible bomb" warning (between 1x and 2x the pixel limit) is
            # fine to decode; above 2x Pillow raises, and that guard stays.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format in _VERIFIABLE:
                    image.verify()  # chunk checksums: catches corruption decoding would let through
            plain = _plain_png(data, max_side=max_side)
            if plain is not None:
                return plain
            with Image.open(io.BytesIO(data)) as image:
                return _decode(image, max_side=max_side)
    except UnidentifiedImageError:
        raise ImageLoadError(LOAD_ERROR.format(path=path, reason="not an image file")) from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(LOAD_ERROR.format(path=path, reason=f"refused, {exc}")) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated data and corrupt streams as OSError/SyntaxError.
        raise ImageLoadError(
            LOAD_ERROR.format(path=path, reason=f"corrupt or truncated ({exc})")
        ) from None


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to an ``[H, W, 3]`` uint8 RGB array."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _high_depth_to_rgb(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "RGBA", "RGBa", "PA"):
        background = Image.new("RGB", image.size, ALPHA_BACKGROUND)
        background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _plain_png(data: bytes, *, max_side: int) -> LoadedImage | None:
    """An 8-bit RGB PNG without EXIF and within ``max_side``, decoded by OpenCV; else None.

    Generated images are mostly such files, and libpng decodes them about a
    fifth faster than Pillow, to the same pixels (PNG is lossless).  Anything
    else, and any file OpenCV cannot decode, goes to Pillow, which names the
    problem.
    """
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 26:
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if depth != 8 or colour != _PNG_RGB or max(width, height) > max_side or b"eXIf" in data:
        return None
    import cv2

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if array is None or array.shape != (height, width, 3):
        return None
    return LoadedImage(array=array, scale=1.0, original_size=(width, height))


def _decode(image: Image.Image, *, max_side: int) -> LoadedImage:
    width, height = image.size
    if max(width, height) > max_side:
        # draft() lets JPEG decode at 1/2, 1/4, 1/8 size: big photos load fast.
        image.draft("RGB", (max_side, max_side))
    # Load before reading EXIF: a PNG's getexif() loads the image itself, and the
    # broken-EXIF guard below must not swallow a decoding error.
    image.load()
    original = (height, width) if _orientation_swaps_axes(image) else (width, height)
    ImageOps.exif_transpose(image, in_place=True)  # the default returns a copy even when upright
    if max(image.size) > max_side:
        factor = max_side / max(image.size)
        new_size = (max(1, round(image.size[0] * factor)), max(1, round(image.size[1] * factor)))
        if image.mode not in ("RGB", "L", "RGBA", "LA"):
            image = Image.fromarray(to_rgb_array(image))
        image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = to_rgb_array(image)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError("image has no pixels")
    return LoadedImage(array=array, scale=array.shape[1] / original[0], original_size=original)


def _orientation_swaps_axes(image: Image.Image) -> bool:
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block should not make the image unreadable
        return False
    return orientation in (5, 6, 7, 8)


def _high_depth_to_rgb(image: Image.Image) -> np.ndarray:
    """16-bit / 32-bit grey to 8-bit RGB by the type's full range (not per-image stretch)."""
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "F":
        top = 1.0 if values.size and float(np.nanmax(values)) <= 1.0 else 255.0
    else:  # "I": 32-bit ints, usually 16-bit data promoted
        top = 65535.0 if values.size and values.max() > 255 else 255.0
    grey = np.clip(np.nan_to_num(values.astype(np.float64)) / top * 255.0 + 0.5, 0, 255)
    grey = grey.astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
