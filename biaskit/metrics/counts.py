"""Pack observations into one count matrix: a row per image, a column per quantity.

Every metric of DESIGN.md §4 is a ratio of sums over the images of one model and
prompt (the resample is the unit).  So each image gets one row of per-image
counts -- for each attribute its known-label counts, its unclear count, whether
it has >= 2 known-labelled persons and whether those labels differ; then the
image itself, whether it has no person, whether its person count is the one the
prompt asks for.  A group's metrics are computed from the column sums of its
rows (:func:`biaskit.metrics.bootstrap.group_sums`).

Groups are (model, prompt) pairs, numbered ``model_index * n_prompts +
prompt_index`` with prompts in suite order; image rows are sorted by group.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.metrics.io import DUPLICATE_ROW, OBSERVATION_KEY, plain
from biaskit.suite import Suite
from biaskit.tables import STATUS_ERROR, STATUS_OK, STATUS_REFUSED

NOT_OK_IMAGES = ("{count} observed image(s) are not 'ok' in the images table (first: model "
                 "{model!r}, prompt_id {prompt_id!r}, sample {sample!r}); counted as generated")


@dataclass(frozen=True)
class AttributeBlock:
    """Columns of one attribute in the packed matrix."""

    name: str
    labels: tuple[str, ...]
    start: int

    @property
    def k(self) -> int:
        """Size of the taxonomy (empty categories count, DESIGN.md §4)."""
        return len(self.labels)

    @property
    def label_columns(self) -> slice:
        return slice(self.start, self.start + self.k)

    @property
    def unclear(self) -> int:
        return self.start + self.k

    @property
    def eligible(self) -> int:
        """1 where the image has >= 2 persons with a known label."""
        return self.start + self.k + 1

    @property
    def mixed(self) -> int:
        """1 where the image has >= 2 distinct known labels."""
        return self.start + self.k + 2

    @property
    def stop(self) -> int:
        return self.start + self.k + 3


@dataclass(frozen=True)
class Layout:
    """Column layout: attribute blocks, then image, no-person and count-match columns."""

    blocks: tuple[AttributeBlock, ...]

    @classmethod
    def build(cls, taxonomies: dict[str, tuple[str, ...]]) -> "Layout":
        blocks, start = [], 0
        for name, labels in taxonomies.items():
            blocks.append(AttributeBlock(name, tuple(labels), start))
            start = blocks[-1].stop
        return cls(tuple(blocks))

    @property
    def image(self) -> int:
        return self.blocks[-1].stop if self.blocks else 0

    @property
    def no_person(self) -> int:
        return self.image + 1

    @property
    def count_match(self) -> int:
        return self.image + 2

    @property
    def width(self) -> int:
        return self.image + 3

    def __getitem__(self, attribute: str) -> AttributeBlock:
        return next(b for b in self.blocks if b.name == attribute)


@dataclass(frozen=True)
class PackedCounts:
    """Per-image counts of one measurement, sorted by group (model x prompt)."""

    models: tuple[str, ...]
    prompt_ids: tuple[str, ...]
    layout: Layout
    matrix: np.ndarray  # (n_images, layout.width) float64
    group: np.ndarray  # (n_images,) int64, non-decreasing
    has_images_table: bool
    status_counts: pd.DataFrame  # per model: n_samples, n_ok, n_refused, n_error

    @property
    def n_groups(self) -> int:
        return len(self.models) * len(self.prompt_ids)


def pack(observations: pd.DataFrame, *, suite: Suite, taxonomies: dict[str, tuple[str, ...]],
         images: pd.DataFrame | None = None, name: str = "observations") -> PackedCounts:
    """Pack validated observations (and optionally the images table) into counts.

    Without an images table, the images are the distinct (model, prompt_id,
    sample) of the observations.  With one, they are its ``ok`` rows plus any
    observed image it lacks or marks otherwise (a warning: they were evidently
    generated), and an ``ok`` image with no observation row is a no-person image.
    """
    models = sorted(set(pd.unique(observations["model"]))
                    | set(() if images is None else pd.unique(images["model"])))
    prompt_ids = tuple(p.id for p in suite)
    layout = Layout.build(taxonomies)
    obs_group = _group_codes(observations, models=models, prompt_ids=prompt_ids)
    samples = pd.concat([observations["sample"], images["sample"]] if images is not None
                        else [observations["sample"]], ignore_index=True)
    sample_codes, sample_values = pd.factorize(samples)
    n_samples = max(len(sample_values), 1)
    obs_key = obs_group * n_samples + sample_codes[: len(observations)]
    bound = len(models) * len(prompt_ids) * n_samples
    keys = sorted_unique(obs_key, bound=bound)
    if images is not None:
        ok = (images["status"] == STATUS_OK).to_numpy()
        img_key = (_group_codes(images, models=models, prompt_ids=prompt_ids) * n_samples
                   + sample_codes[len(observations):])[ok]
        ok_keys = sorted_unique(img_key, bound=bound)
        _warn_not_ok(keys[~_contains(ok_keys, keys)], models=models, prompt_ids=prompt_ids,
                     sample_values=sample_values, n_samples=n_samples)
        keys = sorted_unique(np.concatenate([keys, ok_keys]), bound=bound)
    image_of_row = np.searchsorted(keys, obs_key)
    group = keys // n_samples
    matrix = _image_matrix(observations, image_of_row=image_of_row, n_images=len(keys),
                           layout=layout, name=name)
    persons = _person_counts(observations, image_of_row=image_of_row, n_images=len(keys))
    _fill_image_columns(matrix, layout=layout, persons=persons,
                        expected_people=_expected_people(suite)[group % len(prompt_ids)])
    return PackedCounts(models=tuple(models), prompt_ids=prompt_ids, layout=layout,
                        matrix=matrix, group=group, has_images_table=images is not None,
                        status_counts=_status_counts(images, models=models, keys=keys,
                                                     n_samples=n_samples, n_prompts=len(prompt_ids)))


def _group_codes(frame: pd.DataFrame, *, models, prompt_ids) -> np.ndarray:
    model = category_codes(frame["model"], categories=models)
    prompt = category_codes(frame["prompt_id"], categories=prompt_ids)
    return model * len(prompt_ids) + prompt


def category_codes(values: pd.Series, *, categories) -> np.ndarray:
    """Index of each value in ``categories`` (-1 if absent), like ``pd.Categorical(...).codes``.

    Factorizes first and looks up only the distinct values: much faster than
    ``pd.Categorical`` on large columns of (Arrow-backed) strings.
    """
    codes, uniques = pd.factorize(values)
    position = {value: i for i, value in enumerate(categories)}
    lookup = np.array([position.get(value, -1) for value in uniques] + [-1], dtype=np.int64)
    return lookup[codes]  # a missing value (code -1) maps to the trailing -1


def _column_of_row(observations: pd.DataFrame, *, layout: Layout) -> np.ndarray:
    """Matrix column of each observation: its label's column, or its attribute's unclear one."""
    attr_codes, attributes = pd.factorize(observations["attribute"])
    label_codes, labels = pd.factorize(observations["label"])
    table = np.full((len(attributes), len(labels)), -1, dtype=np.int64)
    for a, attribute in enumerate(attributes):
        block = layout[attribute]
        for j, label in enumerate(labels):
            if label == taxonomy.UNCLEAR:
                table[a, j] = block.unclear
            elif label in block.labels:
                table[a, j] = block.start + block.labels.index(label)
    return table[attr_codes, label_codes]


def _image_matrix(observations, *, image_of_row, n_images, layout, name) -> np.ndarray:
    _check_duplicates(observations, image_of_row=image_of_row, name=name)
    column = _column_of_row(observations, layout=layout)
    flat = image_of_row.astype(np.int64) * layout.width + column
    matrix = np.bincount(flat, minlength=n_images * layout.width).astype(np.float64)
    matrix = matrix.reshape(n_images, layout.width)
    for block in layout.blocks:
        counts = matrix[:, block.label_columns]
        matrix[:, block.eligible] = counts.sum(axis=1) >= 2
        matrix[:, block.mixed] = (counts > 0).sum(axis=1) >= 2
    return matrix


def _check_duplicates(observations, *, image_of_row, name) -> None:
    person_codes, persons = pd.factorize(observations["person"])
    attr_codes, attributes = pd.factorize(observations["attribute"])
    key = ((image_of_row.astype(np.int64) * max(len(persons), 1) + person_codes)
           * max(len(attributes), 1) + attr_codes)
    order = np.argsort(key, kind="stable")
    repeated = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(repeated):
        row = int(order[repeated[0] + 1])
        where = ", ".join(f"{c} {plain(observations[c][row])!r}" for c in OBSERVATION_KEY)
        raise ValueError(DUPLICATE_ROW.format(name=name, row=row + 1, key=where))


def _person_counts(observations, *, image_of_row, n_images) -> np.ndarray:
    """Distinct persons per image, over all attributes."""
    person_codes, persons = pd.factorize(observations["person"])
    n_persons = max(len(persons), 1)
    pairs = sorted_unique(image_of_row.astype(np.int64) * n_persons + person_codes,
                          bound=n_images * n_persons)
    return np.bincount(pairs // n_persons, minlength=n_images)


#: Largest key range deduplicated through a presence mask (1 byte per possible key).
MAX_MASKED_KEYS = 1 << 26


def sorted_unique(keys: np.ndarray, *, bound: int) -> np.ndarray:
    """``np.unique(keys)`` for non-negative integer keys below ``bound``.

    Through a presence mask when the range is small enough (linear time), else
    ``np.unique``.

    Examples
    --------
    >>> sorted_unique(np.array([5, 1, 5, 3]), bound=8).tolist()
    [1, 3, 5]
    """
    keys = np.asarray(keys, dtype=np.int64)
    if bound > MAX_MASKED_KEYS:
        return np.unique(keys)
    present = np.zeros(bound, dtype=bool)
    present[keys] = True
    return np.flatnonzero(present)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in ``sorted_keys`` (sorted, unique)."""
    where = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
    return (sorted_keys[where] == keys) if len(sorted_keys) else np.zeros(len(keys), dtype=bool)


def _expected_people(suite: Suite) -> np.ndarray:
    """Expected person count per prompt, -1 where the prompt states none."""
    return np.array([-1 if p.expected_people is None else p.expected_people for p in suite])


def _fill_image_columns(matrix, *, layout, persons, expected_people) -> None:
    matrix[:, layout.image] = 1.0
    matrix[:, layout.no_person] = persons == 0
    matrix[:, layout.count_match] = persons == expected_people


def _warn_not_ok(keys, *, models, prompt_ids, sample_values, n_samples) -> None:
    if len(keys):
        group, sample = divmod(int(keys[0]), n_samples)
        model, prompt = divmod(group, len(prompt_ids))
        warnings.warn(NOT_OK_IMAGES.format(count=len(keys), model=models[model],
                                           prompt_id=prompt_ids[prompt],
                                           sample=plain(sample_values[sample])), stacklevel=4)


def _status_counts(images, *, models, keys, n_samples, n_prompts) -> pd.DataFrame:
    """Per model: samples asked for, images generated (ok), refused, failed."""
    n_ok = np.bincount(keys // n_samples // max(n_prompts, 1), minlength=len(models))
    frame = pd.DataFrame({"model": list(models), "n_images": n_ok})
    if images is None:
        frame["n_samples"] = n_ok
        frame["n_refused"] = np.nan
        frame["n_error"] = np.nan
        return frame
    status = pd.crosstab(images["model"], images["status"]).reindex(
        index=list(models), columns=[STATUS_REFUSED, STATUS_ERROR], fill_value=0)
    frame["n_refused"] = status[STATUS_REFUSED].to_numpy()
    frame["n_error"] = status[STATUS_ERROR].to_numpy()
    frame["n_samples"] = frame["n_images"] + frame["n_refused"] + frame["n_error"]
    return frame
