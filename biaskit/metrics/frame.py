"""BiasFrame: every metric of one measurement, disaggregated, as pandas tables.

In the spirit of fairlearn's ``MetricFrame``: one object built once from the
observations (+ the suite, + optionally the images table), holding the
posterior draws of its intervals, and exposing tidy DataFrames.  Definitions (DESIGN.md §4,
for one model, prompt and attribute with a taxonomy of K categories; the person
is the counting unit and "unclear" labels are left out of shares):

* ``share_c = n_c / sum(n)`` over the known labels of all resamples;
* ``entropy`` = ``-sum share_c ln share_c / ln K`` (NaN when no known label;
  optional Miller-Madow correction, see :mod:`biaskit.metrics.entropy`);
* ``heterogeneous`` = the resamples hold more than one distinct known label
  (NA when no known label); ``hof`` of a kind of prompt = share of its prompts
  with a known label that are heterogeneous (``overall`` also pools individual
  and group prompts, the ones whose answer is open, as kind ``ambiguous``);
* ``within_image_heterogeneity`` = among images with >= 2 known-labelled
  persons, the share whose labels are not all equal (NaN when none);
* ``match_rate`` (prompts with an expected label) = share of known-labelled
  persons with the expected label; over a set of prompts, the mean of the
  per-prompt rates;
* ``n_images`` = images generated (status ok) -- with no images table, the
  distinct (model, prompt_id, sample) of the observations;
* ``unclear_share`` = unclear / persons; ``no_person_share`` = ok images with no
  observation row / images (NaN without an images table, since images with no
  person never reach the observations);
* ``count_accuracy`` = share of images whose number of distinct persons equals
  the prompt's ``expected_people`` (an image with no person counts 0 persons;
  NaN where the prompt states no count);
* intervals (:mod:`biaskit.metrics.posterior`, images as the unit): Jeffreys
  intervals for proportions (shares and match rates in effective counts,
  within-image heterogeneity, count accuracy, HOF over prompts);
  posterior-predictive pivot intervals for entropy and means over prompts;
  MOVER intervals for differences of proportions.

Tables: :attr:`distribution`, :attr:`summary`, :attr:`overall`, :attr:`rates`,
:meth:`compare` (see :mod:`biaskit.metrics.compare`), :attr:`corrected`,
:attr:`corrected_entropy` and :attr:`corrected_overall` (see
:mod:`biaskit.metrics.correction`); :meth:`save` writes them all.  The draws
of each attribute are made once (:meth:`draws`), so tables and comparisons
computed later use the same ones.

Examples
--------
>>> bias = BiasFrame(observations, suite=suite, images=images)  # doctest: +SKIP
>>> bias.overall[["model", "attribute", "kind", "hof", "mean_entropy"]]  # doctest: +SKIP
>>> bias.compare(baseline="dall-e-3")  # doctest: +SKIP
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from biaskit.metrics import compare as comparing
from biaskit.metrics import correction as correcting
from biaskit.metrics.bootstrap import group_sums, percentile_interval
from biaskit.metrics.counts import pack
from biaskit.metrics.entropy import check_correction
from biaskit.metrics.io import resolve_taxonomies, validate_observations
from biaskit.metrics.join import check_tables
from biaskit.metrics.measures import AttributeMetrics, attribute_metrics, image_metrics
from biaskit.metrics.posterior import (
    AttributeDraws,
    design_sums,
    effective_counts,
    entropy_interval,
    jeffreys_interval,
    pivot_interval,
)
from biaskit.metrics.measures import ratio as _ratio
from biaskit.metrics.stats import N_PERMUTATIONS
from biaskit.suite import AMBIGUOUS_KINDS, KINDS, POOLED_KIND, Suite
from biaskit.tables import concat_rows, write_table

DISTRIBUTION_COLUMNS = ("model", "prompt_id", "attribute", "label", "count", "share",
                        "ci_low", "ci_high")
SUMMARY_COLUMNS = ("model", "prompt_id", "kind", "attribute", "n_images", "n_people", "n_known",
                   "unclear_share", "no_person_share", "entropy", "entropy_ci_low",
                   "entropy_ci_high", "heterogeneous", "within_image_heterogeneity", "expected",
                   "match_rate", "count_accuracy", "within_image_heterogeneity_ci_low",
                   "within_image_heterogeneity_ci_high", "match_rate_ci_low", "match_rate_ci_high",
                   "count_accuracy_ci_low", "count_accuracy_ci_high")
OVERALL_COLUMNS = ("model", "attribute", "kind", "n_prompts", "hof", "hof_ci_low", "hof_ci_high",
                   "mean_entropy", "mean_entropy_ci_low", "mean_entropy_ci_high", "match_rate",
                   "match_rate_ci_low", "match_rate_ci_high")
RATES_COLUMNS = ("model", "n_samples", "n_images", "refusal_rate", "error_rate",
                 "no_person_share", "n_observations", "unclear_share")

BAD_N_BOOT = "n_boot must be a non-negative integer, got {value!r}"
BAD_CONFIDENCE = "confidence must be strictly between 0 and 1, got {value!r}"
UNKNOWN_MODEL = "model {model!r} is not in the measurement; models: {known}"
#: Attributes whose posterior draws are made at once (one thread each).
DRAW_THREADS = 2
#: Draws (groups x draws x categories) handled at once.
REPLICATE_VALUES_PER_CHUNK = 1 << 22


class BiasFrame:
    """Disaggregated bias metrics of one or more models over a prompt suite.

    Parameters
    ----------
    observations : DataFrame
        model, prompt_id, sample, person, attribute, label (confidence and
        tagger optional and unused); validated by
        :func:`biaskit.metrics.io.validate_observations`.
    suite : Suite
        Gives every prompt's kind, expected person count and expected labels.
        Every suite prompt gets rows, with NaN metrics where a model has no data.
    images : DataFrame, optional
        The images table (model, prompt_id, sample, status, ...), for n_images,
        no-person share, refusal and error rates.
    n_boot : int
        Posterior draws per interval (0: no intervals).
    seed : int
        Seed of the posterior draws and the permutation tests.
    confidence : float
        Nominal coverage of the intervals.
    entropy_correction : {None, "miller-madow"}
    confusion : DataFrame, optional
        A tidy confusion table (attribute, true, predicted, count) from
        ``biaskit validate``; enables :attr:`corrected`.  Rows with a
        ``model`` value are that model's own validation set, used for it
        instead of the pooled rows (:func:`~biaskit.metrics.correction.validation_sources`).
    taxonomies : mapping, optional
        attribute -> labels, for attributes not in :mod:`biaskit.taxonomy` (or
        to override one for this measurement).
    attributes : sequence of str, optional
        Attributes to measure (default: those in the observations, in order of
        first appearance).
    n_permutations : int
        Draws of the permutation test used by :meth:`compare` for small tables.
    name : str
        Name of the observations table in error messages.
    """

    def __init__(self, observations: pd.DataFrame, *, suite: Suite,
                 images: pd.DataFrame | None = None, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95, entropy_correction: str | None = None,
                 confusion: pd.DataFrame | None = None,
                 taxonomies: Mapping[str, tuple[str, ...]] | None = None,
                 attributes=None, n_permutations: int = N_PERMUTATIONS,
                 name: str = "observations"):
        if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
            raise ValueError(BAD_N_BOOT.format(value=n_boot))
        if not 0.0 < confidence < 1.0:
            raise ValueError(BAD_CONFIDENCE.format(value=confidence))
        self.suite = suite
        self.n_boot, self.seed, self.confidence = int(n_boot), seed, confidence
        self.n_permutations = n_permutations
        self.entropy_correction = check_correction(entropy_correction)
        overrides = resolve_taxonomies(list(taxonomies or {}), taxonomies)
        observations = validate_observations(observations, suite=suite, taxonomies=overrides,
                                             name=name)
        if attributes is None:
            attributes = list(pd.unique(observations["attribute"]))
        self.taxonomies = resolve_taxonomies(attributes, overrides)
        observations = observations[observations["attribute"].isin(self.taxonomies)]
        observations, images = check_tables(observations, images, suite=suite, name=name)
        self._packed = pack(observations, suite=suite, taxonomies=self.taxonomies, images=images,
                            name=name)
        packed = self._packed
        self._point = group_sums(packed.matrix, packed.group, n_groups=packed.n_groups)
        self._confusion = confusion
        self._points: dict[str, AttributeMetrics] = {}
        self._designs: dict[str, np.ndarray] = {}
        self._draws: dict[str, AttributeDraws] = {}
        self._proportions: dict[str, dict] = {}
        self._expected: dict[str, np.ndarray] = {}
        self._aggregates: dict[tuple[str, str], dict[str, dict]] = {}

    # ------------------------------------------------------------------ layout
    @property
    def models(self) -> tuple[str, ...]:
        """Models measured (sorted)."""
        return self._packed.models

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.taxonomies)

    @property
    def prompt_ids(self) -> tuple[str, ...]:
        return self._packed.prompt_ids

    @cached_property
    def kinds(self) -> np.ndarray:
        """Kind of each prompt, in suite order."""
        return np.array([p.kind for p in self.suite], dtype=object)

    def model_index(self, model: str) -> int:
        if model not in self.models:
            raise KeyError(UNKNOWN_MODEL.format(model=model, known=", ".join(self.models)))
        return self.models.index(model)

    def expected_index(self, attribute: str) -> np.ndarray:
        """Per group: index of the prompt's expected label for ``attribute``, -1 where none."""
        if attribute not in self._expected:
            labels = self.taxonomies[attribute]
            per_prompt = np.array([labels.index(p.expected[attribute]) if attribute in p.expected
                                   else -1 for p in self.suite], dtype=np.int64)
            self._expected[attribute] = np.tile(per_prompt, len(self.models))
        return self._expected[attribute]

    def point_metrics(self, attribute: str) -> AttributeMetrics:
        """Point estimates of ``attribute`` per group (arrays of leading shape (G,))."""
        if attribute not in self._points:
            self._points[attribute] = attribute_metrics(
                self._point, self._packed.layout[attribute],
                expected=self.expected_index(attribute), correction=self.entropy_correction)
        return self._points[attribute]

    def design(self, attribute: str) -> np.ndarray:
        """Group sums of :func:`biaskit.metrics.posterior.design_sums` of ``attribute`` (G, 3K + 2)."""
        if attribute not in self._designs:
            block = self._packed.layout[attribute]
            self._designs[attribute] = group_sums(
                design_sums(self._packed.matrix[:, block.label_columns]), self._packed.group,
                n_groups=self._packed.n_groups)
        return self._designs[attribute]

    def effective_counts(self, attribute: str) -> np.ndarray:
        """Known-label counts (G, K) over each group's design effect (images are the unit)."""
        return effective_counts(self.point_metrics(attribute).counts, self.design(attribute))

    def draws(self, attribute: str) -> AttributeDraws:
        """Posterior-predictive pivots of ``attribute`` (computed once; seeded per attribute).

        The first call draws every attribute's, two at a time: the compiled
        draws (:mod:`biaskit.metrics.kernels`) release the GIL, and each
        attribute has its own seeded generator, so the result does not depend
        on the order or the threads.
        """
        if attribute not in self._draws:
            missing = [a for a in self.attributes if a not in self._draws]
            for name in missing:  # the shared lazy tables, before two threads read them
                self.point_metrics(name).counts
                self.design(name)
                self.expected_index(name)
            with ThreadPoolExecutor(max_workers=DRAW_THREADS) as pool:
                for name, draws in zip(missing, pool.map(self._draw, missing)):
                    self._draws[name] = draws
        return self._draws[attribute]

    def _draw(self, attribute: str) -> AttributeDraws:
        if attribute not in self._draws:
            rng = np.random.default_rng([self.seed, self.attributes.index(attribute)])
            return AttributeDraws(
                self.point_metrics(attribute).counts, self.design(attribute),
                expected=self.expected_index(attribute), n_draws=self.n_boot, rng=rng,
                correction=self.entropy_correction)
        return self._draws[attribute]

    def group_chunks(self, start: int, stop: int):
        """Slices covering groups ``start:stop`` whose share pivots fit in a small working set."""
        width = max(len(labels) for labels in self.taxonomies.values()) if self.taxonomies else 1
        per_chunk = max(1, REPLICATE_VALUES_PER_CHUNK // max(1, self.n_boot * width))
        for first in range(start, stop, per_chunk):
            yield slice(first, min(first + per_chunk, stop))

    def proportion_interval(self, successes, trials) -> tuple[np.ndarray, np.ndarray]:
        """Jeffreys interval at this frame's confidence (NaN without draws: ``n_boot=0``)."""
        low, high = jeffreys_interval(successes, trials, confidence=self.confidence)
        if self.n_boot == 0:
            return np.full_like(low, np.nan), np.full_like(high, np.nan)
        return low, high

    def proportion_intervals(self, attribute: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Jeffreys intervals of ``attribute``'s proportions per group (computed once).

        ``shares`` (G, K): effective counts (images as the unit);
        ``within_image_heterogeneity`` (G,): mixed images among those with >= 2
        known persons; ``match_rate`` (G,): the expected label's effective count.
        """
        if attribute not in self._proportions:
            block = self._packed.layout[attribute]
            effective = self.effective_counts(attribute)
            known = effective.sum(axis=1)
            expected = self.expected_index(attribute)
            hits = np.take_along_axis(effective, np.maximum(expected, 0)[:, None], axis=1)[:, 0]
            self._proportions[attribute] = {
                "shares": self.proportion_interval(effective, known[:, None]),
                "within_image_heterogeneity": self.proportion_interval(
                    self._point[:, block.mixed], self._point[:, block.eligible]),
                "match_rate": self.proportion_interval(np.where(expected >= 0, hits, 0.0),
                                                       np.where(expected >= 0, known, 0.0))}
        return self._proportions[attribute]

    def pivot_interval(self, point, pivots, *, bounds=(0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
        """:func:`biaskit.metrics.posterior.pivot_interval` at this frame's confidence."""
        return pivot_interval(point, pivots, confidence=self.confidence, bounds=bounds)

    def index_columns(self, repeat: int = 1) -> dict[str, np.ndarray]:
        """model and prompt_id columns for per-group rows, each group repeated ``repeat`` times."""
        n_models, n_prompts = len(self.models), len(self.prompt_ids)
        return {"model": np.repeat(np.array(self.models, dtype=object), n_prompts * repeat),
                "prompt_id": np.tile(np.repeat(np.array(self.prompt_ids, dtype=object), repeat),
                                     n_models)}

    # ------------------------------------------------------------------ tables
    @cached_property
    def distribution(self) -> pd.DataFrame:
        """Category distribution per model x prompt x attribute, zero-count labels included.

        Columns: model, prompt_id, attribute, label, count (persons), share
        (NaN when the prompt has no known label), ci_low, ci_high.
        """
        parts = []
        for attribute, labels in self.taxonomies.items():
            point = self.point_metrics(attribute)
            low, high = self.proportion_intervals(attribute)["shares"]
            parts.append(pd.DataFrame({
                **self.index_columns(repeat=len(labels)), "attribute": attribute,
                "label": np.tile(np.array(labels, dtype=object), point.counts.shape[0]),
                "count": point.counts.ravel().astype(np.int64), "share": point.shares.ravel(),
                "ci_low": low.ravel(), "ci_high": high.ravel()}))
        return concat_rows(parts, DISTRIBUTION_COLUMNS)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per model x prompt x attribute; columns :data:`SUMMARY_COLUMNS`."""
        images = image_metrics(self._point, self._packed.layout)
        states_count = np.tile([p.expected_people is not None for p in self.suite], len(self.models))
        no_person = images["no_person_share"] if self._packed.has_images_table else np.nan
        parts = []
        for attribute in self.taxonomies:
            point = self.point_metrics(attribute)
            low, high = entropy_interval(point.entropy, self.draws(attribute),
                                         confidence=self.confidence)
            expected = self.expected_index(attribute)
            within = self.proportion_intervals(attribute)["within_image_heterogeneity"]
            match = self.proportion_intervals(attribute)["match_rate"]
            count = self.proportion_interval(self._point[:, self._packed.layout.count_match],
                                             np.where(states_count, images["n_images"], 0.0))
            labels = np.array(self.taxonomies[attribute] + (None,), dtype=object)
            parts.append(pd.DataFrame({
                **self.index_columns(), "kind": np.tile(self.kinds, len(self.models)),
                "attribute": attribute, "n_images": images["n_images"].astype(np.int64),
                "n_people": point.people.astype(np.int64), "n_known": point.known.astype(np.int64),
                "unclear_share": _ratio(point.unclear, point.people),
                "no_person_share": no_person, "entropy": point.entropy,
                "entropy_ci_low": low, "entropy_ci_high": high,
                "heterogeneous": pd.array(np.where(np.isnan(point.heterogeneous), None,
                                                   point.heterogeneous == 1), dtype="boolean"),
                "within_image_heterogeneity": point.within_image,
                "expected": pd.array(labels[expected], dtype="string"),
                "match_rate": point.match_rate,
                "count_accuracy": np.where(states_count, images["count_accuracy"], np.nan),
                "within_image_heterogeneity_ci_low": within[0],
                "within_image_heterogeneity_ci_high": within[1],
                "match_rate_ci_low": match[0], "match_rate_ci_high": match[1],
                "count_accuracy_ci_low": count[0], "count_accuracy_ci_high": count[1]}))
        return concat_rows(parts, SUMMARY_COLUMNS)

    @cached_property
    def overall(self) -> pd.DataFrame:
        """One row per model x attribute x kind (:attr:`overall_kinds`).

        ``n_prompts`` counts the prompts of the kind with at least one known
        label; ``hof`` and ``mean_entropy`` average over them (each prompt
        weighs the same); ``match_rate`` is the mean of the per-prompt match
        rates of those with an expected label (NaN if none).
        """
        rows = []
        for attribute in self.taxonomies:
            for model in self.models:
                for kind in self.overall_kinds:
                    agg = self.aggregate(model=model, attribute=attribute, kind=kind)
                    row = {"model": model, "attribute": attribute, "kind": kind,
                           "n_prompts": agg["n_prompts"]}
                    for metric in ("hof", "mean_entropy", "match_rate"):
                        low, high = self.aggregate_interval(agg, metric)
                        row.update({metric: agg[metric], f"{metric}_ci_low": float(low),
                                    f"{metric}_ci_high": float(high)})
                    rows.append(row)
        return concat_rows([pd.DataFrame(rows)] if rows else [], OVERALL_COLUMNS)

    @cached_property
    def rates(self) -> pd.DataFrame:
        """One row per model: refusal, error, no-person and unclear rates.

        Columns: model, n_samples (rows of the images table, or observed images
        without one), n_images (ok), refusal_rate, error_rate (NaN without an
        images table), no_person_share, n_observations (person x attribute
        rows), unclear_share (unclear rows / rows, over all attributes).
        """
        layout, n_prompts = self._packed.layout, len(self.prompt_ids)
        per_model = self._point.reshape(len(self.models), n_prompts, -1).sum(axis=1)
        status = self._packed.status_counts
        unclear = np.zeros(len(self.models))
        rows = np.zeros(len(self.models))
        for block in layout.blocks:
            unclear += per_model[:, block.unclear]
            rows += per_model[:, block.label_columns].sum(axis=1) + per_model[:, block.unclear]
        frame = pd.DataFrame({
            "model": list(self.models), "n_samples": status["n_samples"].to_numpy(),
            "n_images": status["n_images"].to_numpy(),
            "refusal_rate": _ratio(status["n_refused"].to_numpy(float), status["n_samples"]),
            "error_rate": _ratio(status["n_error"].to_numpy(float), status["n_samples"]),
            "no_person_share": (_ratio(per_model[:, layout.no_person], per_model[:, layout.image])
                                if self._packed.has_images_table else np.nan),
            "n_observations": rows.astype(np.int64),
            "unclear_share": _ratio(unclear, rows)})
        return frame.loc[:, list(RATES_COLUMNS)]

    @property
    def corrected(self) -> pd.DataFrame | None:
        """Distribution corrected for classifier error (None without ``confusion``).

        See :func:`biaskit.metrics.correction.corrected_tables`.
        """
        return None if self._corrected_tables is None else self._corrected_tables[0]

    @property
    def corrected_entropy(self) -> pd.DataFrame | None:
        """Normalized entropy of the corrected distribution, with intervals (None without ``confusion``).

        Columns: model, prompt_id, attribute, observed_entropy, entropy, ci_low, ci_high.
        """
        return None if self._corrected_tables is None else self._corrected_tables[1]

    @property
    def corrected_overall(self) -> pd.DataFrame | None:
        """Observed and corrected HOF and mean entropy per model, attribute and kind, with intervals
        (None without ``confusion``); see :func:`biaskit.metrics.correction.corrected_tables`."""
        return None if self._corrected_tables is None else self._corrected_tables[2]

    @cached_property
    def _corrected_tables(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
        if self._confusion is None:
            return None
        return correcting.corrected_tables(self, self._confusion)

    @property
    def suite_kinds(self) -> tuple[str, ...]:
        present = set(self.kinds)
        return tuple(k for k in KINDS if k in present)

    @cached_property
    def kind_masks(self) -> dict[str, np.ndarray]:
        """Boolean masks over the prompts (suite order), one per kind of :attr:`overall`.

        Each kind in the suite, in KINDS order, then :data:`POOLED_KIND`
        (individual and group prompts together) when the suite has both.
        """
        masks = {kind: self.kinds == kind for kind in self.suite_kinds}
        if all(kind in masks for kind in AMBIGUOUS_KINDS):
            masks[POOLED_KIND] = np.isin(self.kinds, AMBIGUOUS_KINDS)
        return masks

    @property
    def overall_kinds(self) -> tuple[str, ...]:
        """The ``kind`` values of :attr:`overall`: :attr:`suite_kinds`, maybe :data:`POOLED_KIND`."""
        return tuple(self.kind_masks)

    def aggregate(self, *, model: str, attribute: str, kind: str) -> dict:
        """HOF, mean entropy and mean match rate over one kind of prompt (or pooled), with pivots.

        Returns n_prompts, hof, mean_entropy, match_rate, ``hof_ci`` (the
        Jeffreys interval of the share of heterogeneous prompts) and, for the
        last two, ``<metric>_pivots`` (B,): draw by draw, the mean over the
        same prompts of their posterior-predictive pivots
        (:mod:`biaskit.metrics.posterior`), the error of the mean's estimator.
        """
        key = (model, attribute)
        if key not in self._aggregates:
            self._aggregates[key] = self._aggregate_kinds(model=model, attribute=attribute)
        return self._aggregates[key][kind]

    def aggregate_interval(self, agg: dict, metric: str) -> tuple[float, float]:
        """Interval of one metric of :meth:`aggregate`'s result: Jeffreys for HOF, else the pivots'."""
        if metric == "hof":
            return agg["hof_ci"]
        low, high = self.pivot_interval(agg[metric], agg[f"{metric}_pivots"])
        if metric == "mean_entropy":  # the hull with the posterior interval, as per prompt
            credible = percentile_interval(agg["mean_entropy_posterior"], confidence=self.confidence)
            low, high = np.fmin(low, credible[0]), np.fmax(high, credible[1])
        return float(low), float(high)

    def prompt_pivots(self, attribute: str, rows: slice) -> dict[str, np.ndarray]:
        """Pivots (g, B) of the per-prompt entropy and match rate of groups ``rows``."""
        draws = self.draws(attribute)
        return {"mean_entropy": draws.entropy[rows], "match_rate": draws.match[rows],
                "posterior_entropy": draws.posterior_entropy[rows]}

    def _aggregate_kinds(self, *, model: str, attribute: str) -> dict[str, dict]:
        """Every kind's point values and mean pivots for one model and attribute."""
        m, n_prompts = self.model_index(model), len(self.prompt_ids)
        rows = slice(m * n_prompts, (m + 1) * n_prompts)
        point = self.point_metrics(attribute)
        known = point.known[rows] > 0
        has_expected = self.expected_index(attribute)[rows] >= 0
        masks = {"hof": known, "mean_entropy": known, "match_rate": known & has_expected}
        values = {"hof": point.heterogeneous[rows], "mean_entropy": point.entropy[rows],
                  "match_rate": point.match_rate[rows]}
        pivots = self.prompt_pivots(attribute, rows)
        result = {}
        for kind, of_kind in self.kind_masks.items():
            result[kind] = {"n_prompts": int((known & of_kind).sum())}
            for metric, mask in masks.items():
                used = mask & of_kind
                result[kind][metric] = float(values[metric][used].mean()) if used.any() else np.nan
                if metric == "hof":
                    # The number of heterogeneous prompts is a sum of independent Bernoulli
                    # variables: at most as variable as a binomial with their mean probability.
                    low, high = self.proportion_interval(values[metric][used].sum(), used.sum())
                    result[kind]["hof_ci"] = (float(low), float(high))
                    continue
                if used.any():
                    pivots_of_kind = pivots[metric][used].mean(axis=0, dtype=np.float64)
                else:
                    pivots_of_kind = np.full(self.n_boot, np.nan)
                if metric == "mean_entropy":
                    result[kind]["mean_entropy_posterior"] = (
                        pivots["posterior_entropy"][used].mean(axis=0, dtype=np.float64)
                        if used.any() else np.full(self.n_boot, np.nan))
                result[kind][f"{metric}_pivots"] = pivots_of_kind
        return result

    # --------------------------------------------------------------- compare
    def compare(self, *, baseline: str, model: str | None = None) -> pd.DataFrame:
        """Each model (or ``model``) against ``baseline``; see :mod:`biaskit.metrics.compare`."""
        self.model_index(baseline)
        models = [model] if model is not None else [m for m in self.models if m != baseline]
        for name in models:
            self.model_index(name)
        return comparing.comparison_table(self, baseline=baseline, models=models)

    def save(self, out_dir: str | Path, *, baseline: str | None = None) -> dict[str, Path]:
        """Write distribution, summary, overall, rates (+ comparison; corrected, corrected_entropy) as parquet + CSV."""
        out_dir = Path(out_dir)
        tables = {"distribution": self.distribution, "summary": self.summary,
                  "overall": self.overall, "rates": self.rates}
        if baseline is not None:
            tables["comparison"] = self.compare(baseline=baseline)
        if self.corrected is not None:
            tables["corrected"] = self.corrected
            tables["corrected_entropy"] = self.corrected_entropy
            tables["corrected_overall"] = self.corrected_overall
        return {name: write_table(table, out_dir / f"{name}.parquet", csv=True)
                for name, table in tables.items()}

    def __repr__(self) -> str:
        return (f"BiasFrame(models={list(self.models)}, prompts={len(self.prompt_ids)}, "
                f"attributes={list(self.attributes)}, n_boot={self.n_boot})")
