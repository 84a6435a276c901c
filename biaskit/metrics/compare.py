"""Model vs baseline: deltas with intervals, tests and q-values.

The comparison table has one row per model, prompt, attribute and metric:

* per prompt (``prompt_id`` = the prompt's id): ``entropy``; ``share:<label>``
  for every label of the taxonomy; ``within_image_heterogeneity`` for group and
  ahistorical prompts (kinds that can show several persons); ``match_rate``
  where the prompt has an expected label for the attribute.
* per kind of prompt (``prompt_id`` = ``all:<kind>``, e.g. ``all:individual``,
  and ``all:ambiguous`` for individual and group prompts pooled): ``hof``,
  ``mean_entropy`` and, where prompts of the kind have an expected label,
  ``match_rate`` (as in the overall table).

``delta = value - baseline_value``; ``ci_low``/``ci_high`` is its interval
(the two models' images are distinct, so their estimates are independent):
for proportions (shares, within-image heterogeneity, match rate) and HOF the
MOVER interval of the two Jeffreys intervals, for entropy and means over
prompts the difference of the two models' posterior-predictive pivots
(:mod:`biaskit.metrics.posterior`).  ``p_value`` (per-prompt rows only; the same on
every metric row of a prompt and attribute) tests that the model's and the
baseline's known-label distributions are equal
(:func:`biaskit.metrics.stats.equal_distribution_test`); ``q_value`` is its
Benjamini-Hochberg adjustment across the prompts of one model, baseline and
attribute.  A prompt the baseline (or the model) lacks has NaN values on its
side, and NaN delta, interval and p-value: it is not an error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter

import numpy as np
import pandas as pd

from biaskit.metrics.posterior import mover_interval
from biaskit.metrics.stats import benjamini_hochberg, equal_distribution_tests
from biaskit.tables import concat_rows

COMPARISON_COLUMNS = ("prompt_id", "attribute", "metric", "model", "baseline", "value",
                      "baseline_value", "delta", "ci_low", "ci_high", "p_value", "q_value")
OVERALL_PROMPT = "all:{kind}"
SHARE_METRIC = "share:{label}"
SHARE_PREFIX = SHARE_METRIC.format(label="")
MULTI_PERSON_KINDS = ("group", "ahistorical")
DELTA_RANGE = (-1.0, 1.0)
#: Threads running the tests of the model-attribute pairs beside the intervals' thread.
TEST_THREADS = 2
#: Spawn key of the tests' generators (apart from the posterior draws' streams of the same seed).
TEST_STREAM = 1


def comparison_table(frame, *, baseline: str, models) -> pd.DataFrame:
    """Rows of every model in ``models`` against ``baseline`` (see the module docstring).

    The tests (mostly Monte-Carlo draws, in numpy calls that release the GIL)
    run in :data:`TEST_THREADS` other threads while this one computes the
    intervals; each model and attribute draws from its own seeded generator,
    so the result does not depend on the timing.
    """
    pairs = [(model, attribute) for model in models for attribute in frame.attributes]
    for attribute in frame.attributes:  # the lazy point counts, before two threads read them
        frame.point_metrics(attribute).counts
    with ThreadPoolExecutor(max_workers=TEST_THREADS) as pool:
        tests = {pair: pool.submit(_tests, frame, baseline=baseline, pair=pair,
                                   rng=np.random.default_rng(np.random.SeedSequence(
                                       frame.seed, spawn_key=(TEST_STREAM, n))))
                 for n, pair in enumerate(pairs)}
        parts = []
        for model, attribute in pairs:
            parts.append(_prompt_rows(frame, model=model, baseline=baseline, attribute=attribute,
                                      tests=tests[model, attribute]))
            parts.append(_overall_rows(frame, model=model, baseline=baseline, attribute=attribute))
    return concat_rows(parts, COMPARISON_COLUMNS)


def _per_prompt_metrics(frame, attribute):
    """metric name -> (extractor of an AttributeMetrics array, prompts it applies to (P,))."""
    every = np.ones(len(frame.prompt_ids), dtype=bool)
    has_expected = frame.expected_index(attribute)[: len(frame.prompt_ids)] >= 0
    metrics = {"entropy": (attrgetter("entropy"), every)}
    for j, label in enumerate(frame.taxonomies[attribute]):
        metrics[SHARE_METRIC.format(label=label)] = (lambda m, j=j: m.shares[..., j], every)
    metrics["within_image_heterogeneity"] = (attrgetter("within_image"),
                                             np.isin(frame.kinds, MULTI_PERSON_KINDS))
    metrics["match_rate"] = (attrgetter("match_rate"), has_expected)
    return metrics


def _delta_intervals(frame, *, attribute, metrics, mine: int, theirs: int):
    """Per metric: interval of model - baseline per prompt.

    Proportions (shares, within-image heterogeneity, match rate): the MOVER
    interval of the two Jeffreys intervals; entropy: the difference of the two
    models' posterior-predictive pivots (:mod:`biaskit.metrics.posterior`).
    """
    n_prompts = len(frame.prompt_ids)
    point = frame.point_metrics(attribute)
    model_rows = slice(mine * n_prompts, (mine + 1) * n_prompts)
    base_rows = slice(theirs * n_prompts, (theirs + 1) * n_prompts)
    proportions = frame.proportion_intervals(attribute)
    bounds = {}
    for name, (extract, _) in metrics.items():
        values = extract(point)
        if name == "entropy":
            continue
        low, high = proportions["shares" if name.startswith(SHARE_PREFIX) else name]
        if name.startswith(SHARE_PREFIX):
            j = frame.taxonomies[attribute].index(name[len(SHARE_PREFIX):])
            low, high = low[:, j], high[:, j]
        bounds[name] = mover_interval(values[model_rows], (low[model_rows], high[model_rows]),
                                      values[base_rows], (low[base_rows], high[base_rows]))
    entropy = (np.full(n_prompts, np.nan), np.full(n_prompts, np.nan))
    pivots = frame.draws(attribute).entropy
    for prompts in frame.group_chunks(0, n_prompts):
        mine_rows, base = _shift(prompts, mine * n_prompts), _shift(prompts, theirs * n_prompts)
        delta = point.entropy[mine_rows] - point.entropy[base]
        entropy[0][prompts], entropy[1][prompts] = frame.pivot_interval(
            delta, pivots[mine_rows] - pivots[base], bounds=DELTA_RANGE)
    bounds["entropy"] = entropy
    return bounds


def _shift(rows: slice, offset: int) -> slice:
    return slice(rows.start + offset, rows.stop + offset)


def _tests(frame, *, baseline, pair, rng) -> np.ndarray:
    """Per-prompt p-values of equal distributions of ``pair`` = (model, attribute) vs ``baseline``."""
    model, attribute = pair
    n_prompts = len(frame.prompt_ids)
    counts = frame.point_metrics(attribute).counts
    mine, theirs = frame.model_index(model), frame.model_index(baseline)
    return equal_distribution_tests(counts[mine * n_prompts:(mine + 1) * n_prompts],
                                    counts[theirs * n_prompts:(theirs + 1) * n_prompts],
                                    rng=rng, n_permutations=frame.n_permutations)


def _prompt_rows(frame, *, model, baseline, attribute, tests) -> pd.DataFrame:
    n_prompts = len(frame.prompt_ids)
    mine, theirs = frame.model_index(model), frame.model_index(baseline)
    point = frame.point_metrics(attribute)
    model_rows = slice(mine * n_prompts, (mine + 1) * n_prompts)
    base_rows = slice(theirs * n_prompts, (theirs + 1) * n_prompts)
    metrics = _per_prompt_metrics(frame, attribute)
    bounds = _delta_intervals(frame, attribute=attribute, metrics=metrics, mine=mine, theirs=theirs)
    p_values = tests.result()
    q_values = benjamini_hochberg(p_values)
    parts = []
    for metric, (extract, applies) in metrics.items():
        values = extract(point)
        parts.append(pd.DataFrame({
            "prompt_id": np.array(frame.prompt_ids, dtype=object)[applies],
            "order": np.flatnonzero(applies), "metric": metric,
            "value": values[model_rows][applies], "baseline_value": values[base_rows][applies],
            "ci_low": bounds[metric][0][applies], "ci_high": bounds[metric][1][applies],
            "p_value": p_values[applies], "q_value": q_values[applies]}))
    rows = pd.concat(parts, ignore_index=True).sort_values("order", kind="stable")
    return _finish(rows.drop(columns="order"), model=model, baseline=baseline, attribute=attribute)


def _overall_rows(frame, *, model, baseline, attribute) -> pd.DataFrame:
    has_expected = frame.expected_index(attribute)[: len(frame.prompt_ids)] >= 0
    rows = []
    for kind, of_kind in frame.kind_masks.items():
        mine = frame.aggregate(model=model, attribute=attribute, kind=kind)
        theirs = frame.aggregate(model=baseline, attribute=attribute, kind=kind)
        metrics = ["hof", "mean_entropy"]
        if (has_expected & of_kind).any():
            metrics.append("match_rate")
        for metric in metrics:
            if metric == "hof":
                low, high = mover_interval(mine[metric], mine["hof_ci"], theirs[metric],
                                           theirs["hof_ci"])
            else:
                low, high = frame.pivot_interval(
                    mine[metric] - theirs[metric],
                    mine[f"{metric}_pivots"] - theirs[f"{metric}_pivots"], bounds=DELTA_RANGE)
            rows.append({"prompt_id": OVERALL_PROMPT.format(kind=kind), "metric": metric,
                         "value": mine[metric], "baseline_value": theirs[metric],
                         "ci_low": float(low), "ci_high": float(high),
                         "p_value": np.nan, "q_value": np.nan})
    return _finish(pd.DataFrame(rows), model=model, baseline=baseline, attribute=attribute)


def _finish(rows: pd.DataFrame, *, model, baseline, attribute) -> pd.DataFrame:
    rows = rows.assign(attribute=attribute, model=model, baseline=baseline)
    rows["delta"] = rows["value"] - rows["baseline_value"]
    return rows
