"""Colour science used by skin-tone colorimetry: sRGB -> linear light, luminance and CIELAB.

Small, vectorised numpy implementations (no scikit-image at run time); the
tests check them against scikit-image.
"""

from __future__ import annotations

import numpy as np

# sRGB (D65) to CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
#: Relative luminance Y of linear sRGB (the Y row of the matrix above).
LUMINANCE = _RGB_TO_XYZ[1]
_CODES = np.arange(256) / 255.0
#: uint8 sRGB code -> linear light (lookup table: the gamma curve once, not per pixel).
SRGB_TO_LINEAR = np.where(_CODES > 0.04045, ((_CODES + 0.055) / 1.055) ** 2.4, _CODES / 12.92)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """``[..., 3]`` linear-light RGB in [0, 1] -> CIELAB (D65)."""
    xyz = (linear @ _RGB_TO_XYZ.T) / _D65_WHITE
    delta = 6 / 29
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1
    )


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` uint8 sRGB -> CIELAB (D65), float64."""
    return linear_to_lab(SRGB_TO_LINEAR[np.asarray(rgb, dtype=np.uint8)])


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """``[..., 3]`` CIELAB (D65) -> uint8 sRGB, out-of-gamut colours clipped."""
    lab = np.asarray(lab, dtype=float)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    delta = 6 / 29
    xyz = np.where(f > delta, f**3, 3 * delta**2 * (f - 4 / 29)) * _D65_WHITE
    return linear_to_srgb(xyz @ np.linalg.inv(_RGB_TO_XYZ).T)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """``[..., 3]`` linear-light RGB -> uint8 sRGB codes (clipped to [0, 1] first)."""
    linear = np.clip(np.asarray(linear, dtype=float), 0.0, 1.0)
    code = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(code * 255).astype(np.uint8)


def hex_to_rgb(code: str) -> tuple[int, int, int]:
    """``"#a07e56"`` -> ``(160, 126, 86)``."""
    code = code.lstrip("#")
    return tuple(int(code[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def lightness_to_luminance(lightness: np.ndarray) -> np.ndarray:
    """CIE L* -> relative luminance Y in [0, 1] (inverse of the L* curve)."""
    lightness = np.asarray(lightness, dtype=float)
    return np.where(lightness > 8.0, ((lightness + 16) / 116) ** 3, lightness / (24389 / 27))


def luminance_to_lightness(luminance: np.ndarray) -> np.ndarray:
    """Relative luminance Y in [0, 1] -> CIE L*."""
    luminance = np.asarray(luminance, dtype=float)
    return np.where(luminance > 216 / 24389, 116 * np.cbrt(luminance) - 16, 24389 / 27 * luminance)
