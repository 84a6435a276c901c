"""Colour science used by skin-tone colorimetry: sRGB -> CIELAB and CIEDE2000.

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


def hex_to_rgb(code: str) -> tuple[int, int, int]:
    """``"#a07e56"`` -> ``(160, 126, 86)``."""
    code = code.lstrip("#")
    return tuple(int(code[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def ciede2000(lab1: np.ndarray, lab2: np.ndarray, *, k_l: float = 1.0) -> np.ndarray:
    """CIEDE2000 colour difference, broadcasting over leading axes.

    ``k_l`` > 1 weighs lightness differences less (textile practice uses 2).
    """
    lab1, lab2 = np.broadcast_arrays(np.asarray(lab1, float), np.asarray(lab2, float))
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dlp, dcp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    l_bar, c_bar_p = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                 np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)),
    )
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * t
    r_t = (-2 * np.sqrt(c_bar_p**7 / (c_bar_p**7 + 25.0**7))
           * np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2)))))
    term_l, term_c, term_h = dlp / (k_l * s_l), dcp / s_c, dhp / s_h
    return np.sqrt(term_l**2 + term_c**2 + term_h**2 + r_t * term_c * term_h)
