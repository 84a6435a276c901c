"""Deterministic per-sample seeds.

Each sample's seed is a hash of (base seed, model name, prompt id, sample index),
so a run is reproducible, resumable in any order and independent of Python's
per-process hash randomisation.
"""

from __future__ import annotations

import hashlib
import json

#: Seeds lie in ``0 .. MAX_SEED``: 31 bits fit every backend (torch, numpy, int32 APIs).
MAX_SEED = 2**31 - 1


def derive_seed(base_seed: int, model: str, prompt_id: str, sample: int) -> int:
    """Seed of one sample, stable across processes and platforms.

    Parameters
    ----------
    base_seed : int
        The run's seed (``--seed``).
    model, prompt_id : str
        Model name and prompt id.
    sample : int
        Sample index, ``0 .. samples - 1``.

    Returns
    -------
    int
        An integer in ``0 .. MAX_SEED``.

    Examples
    --------
    >>> derive_seed(0, "m", "doctor", 0) == derive_seed(0, "m", "doctor", 0)
    True
    >>> derive_seed(0, "m", "doctor", 0) != derive_seed(0, "m", "doctor", 1)
    True
    """
    # JSON encoding keeps the fields unambiguous ("a"+"bc" vs "ab"+"c").
    key = json.dumps([int(base_seed), str(model), str(prompt_id), int(sample)])
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & MAX_SEED
