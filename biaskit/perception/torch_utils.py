"""Small torch helpers shared by the CLIP, FairFace and probe taggers (torch imported lazily)."""

from __future__ import annotations

import numpy as np

UNKNOWN_DEVICE = "device {device!r}: use 'cpu', 'cuda', 'cuda:N' or leave it unset (automatic)"


def resolve_device(device: str | None = None):
    """``cuda`` when available, else ``cpu``; an explicit choice is validated."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(UNKNOWN_DEVICE.format(device=device)) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here")
    return resolved


def to_tensor(crops: np.ndarray, *, mean, std, device):
    """``[n, H, W, 3]`` uint8 crops -> normalised ``[n, 3, H, W]`` float tensor on ``device``."""
    import torch

    batch = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (batch - mean_t) / std_t


def chunks(n: int, size: int):
    """``slice`` objects covering ``range(n)`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
