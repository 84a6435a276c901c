"""A stratified, unequal-probability sample of a run's detected faces, with design weights.

The population is every face the detector found in the run (one row per
person of ``people.parquet`` whose image is in ``images.parquet``).  Models are
strata: each gets ``n`` faces with ``per_model`` and an equal share of ``n``
otherwise (all of its faces when it has fewer).  Within a model, face ``i`` is
drawn with probability ``pi_i`` proportional to a size measure that
oversamples what a tagger gets wrong most often and what is rare::

    s_i = mean over attributes a of  share_a(label_ia) ** -1/2   x   (2 - min_a confidence_ia)

``share_a(label)`` is the share of the model's faces the tagger gave that label
(``unclear`` is a label of its own), so a label 100 times rarer is drawn 10
times more often; a face with a low-confidence tag up to twice as often.
``pi_i = n_m s_i / sum(s)``, capped at 1 (capped faces are taken for sure and
the rest rescaled).  The draw is randomised systematic PPS (a random order,
then one uniform start on the cumulated ``pi``): exactly ``n_m`` faces, and
each face's inclusion probability is exactly ``pi_i``.  Its design weight
``1 / pi_i`` makes weighted sample shares unbiased (Horvitz-Thompson) for the
shares among all of the model's faces, and among the run's faces when models
are pooled.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from biaskit.taxonomy import UNCLEAR

SAMPLE_COLUMNS = ("face_id", "model", "prompt_id", "sample", "person", "sha256", "path",
                  "x0", "y0", "x1", "y1", "inclusion_probability", "weight")
NO_FACES = "{run}: no detected faces to sample (run `biaskit tag` first)"
BAD_N = "--n must be a positive number of faces, got {n}"


def face_id(model: str, prompt_id: str, sample: int, person: int) -> str:
    """A short stable id of one face (it names nothing the annotator could be anchored by)."""
    key = f"{model}\x1f{prompt_id}\x1f{int(sample)}\x1f{int(person)}".encode()
    return "f" + hashlib.blake2b(key, digest_size=6).hexdigest()


def size_measure(labels: pd.DataFrame, confidence: pd.DataFrame) -> np.ndarray:
    """The size measure ``s_i`` of every face of one model (rows: faces, columns: attributes)."""
    rarity = np.zeros(len(labels))
    for attribute in labels.columns:
        shares = labels[attribute].map(labels[attribute].value_counts(normalize=True))
        rarity += shares.to_numpy(float) ** -0.5
    rarity /= max(1, labels.shape[1])
    lowest = confidence.min(axis=1).fillna(0.0).clip(0.0, 1.0).to_numpy(float)
    return rarity * (2.0 - lowest)


def inclusion_probabilities(size: np.ndarray, n: int) -> np.ndarray:
    """``pi_i`` proportional to ``size`` summing to ``n``, capped at 1 (``n`` <= len(size))."""
    size = np.asarray(size, float)
    pi = np.zeros_like(size)
    certain = np.zeros(len(size), bool)
    while True:
        rest = n - certain.sum()
        pi[~certain] = rest * size[~certain] / size[~certain].sum() if rest else 0.0
        pi[certain] = 1.0
        over = (pi > 1.0) & ~certain
        if not over.any():
            return np.clip(pi, 0.0, 1.0)
        certain |= over


def systematic_draw(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn by randomised systematic PPS: each unit with probability exactly ``pi``."""
    order = rng.permutation(len(pi))
    cumulated = np.concatenate([[0.0], np.cumsum(pi[order])])
    start = rng.uniform()
    # unit k is taken when a point start + j (j = 0, 1, ...) falls in (cum[k], cum[k+1]]
    taken = np.floor(cumulated[1:] - start + 1e-12) > np.floor(cumulated[:-1] - start + 1e-12)
    return np.sort(order[taken])


def draw_sample(faces: pd.DataFrame, observations: pd.DataFrame, *, n: int, attributes,
                per_model: bool = False, seed: int = 0) -> pd.DataFrame:
    """The annotation sample: one row per drawn face with its inclusion probability and weight.

    Parameters
    ----------
    faces : DataFrame
        model, prompt_id, sample, person, sha256, path, x0, y0, x1, y1 -- every detected face.
    observations : DataFrame
        The run's observations (the tagger's labels and confidences).
    n : int
        Faces to draw in all, or per model with ``per_model``.
    attributes : sequence of str
        Attributes whose predicted labels stratify the draw.
    per_model : bool
    seed : int

    Returns
    -------
    DataFrame
        :data:`SAMPLE_COLUMNS`, in a random order (the order the page shows them).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(BAD_N.format(n=n))
    rng = np.random.default_rng(seed)
    faces = faces.assign(face_id=[face_id(*key) for key in faces[["model", "prompt_id", "sample", "person"]]
                                  .itertuples(index=False)])
    labels, confidence = _predicted(faces, observations, attributes)
    models = sorted(faces["model"].unique())
    quota = {m: int(n) for m in models} if per_model else _equal_split(int(n), models)
    parts = []
    for model in models:
        rows = np.flatnonzero((faces["model"] == model).to_numpy())
        take = min(quota[model], len(rows))
        pi = inclusion_probabilities(size_measure(labels.iloc[rows], confidence.iloc[rows]), take)
        drawn = systematic_draw(pi, rng)
        parts.append(faces.iloc[rows[drawn]].assign(inclusion_probability=pi[drawn], weight=1.0 / pi[drawn]))
    sample = pd.concat(parts, ignore_index=True)
    return sample.iloc[rng.permutation(len(sample))].reset_index(drop=True)[list(SAMPLE_COLUMNS)]


def _equal_split(n: int, models) -> dict[str, int]:
    base, extra = divmod(n, len(models))
    return {m: base + (i < extra) for i, m in enumerate(models)}


def _predicted(faces: pd.DataFrame, observations: pd.DataFrame, attributes):
    """Per face (rows aligned with ``faces``): predicted label and confidence per attribute."""
    keys = ["model", "prompt_id", "sample", "person"]
    wanted = observations[observations["attribute"].isin(list(attributes))]
    wide = wanted.groupby(keys + ["attribute"], sort=False)[["label", "confidence"]].first().unstack("attribute")
    index = pd.MultiIndex.from_frame(faces[keys])
    labels = (wide["label"].reindex(index=index, columns=list(attributes)).fillna(UNCLEAR)
              if len(wide) else pd.DataFrame(UNCLEAR, index=index, columns=list(attributes)))
    confidence = (wide["confidence"].reindex(index=index, columns=list(attributes)).astype(float)
                  if len(wide) else pd.DataFrame(np.nan, index=index, columns=list(attributes)))
    return labels.reset_index(drop=True), confidence.reset_index(drop=True)
