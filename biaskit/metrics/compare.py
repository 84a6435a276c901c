"""Model vs baseline: deltas with bootstrap intervals, tests and q-values.

The comparison table has one row per model, prompt, attribute and metric:

* per prompt (``prompt_id`` = the prompt's id): ``entropy``; ``share:<label>``
  for every label of the taxonomy; ``within_image_heterogeneity`` for group and
  ahistorical prompts (kinds that can show several persons); ``match_rate``
  where the prompt has an expected label for the attribute.
* per kind of prompt (``prompt_id`` = ``all:<kind>``, e.g. ``all:individual``):
  ``hof``, ``mean_entropy`` and, where prompts of the kind have an expected
  label, ``match_rate`` (as in the overall table).

``delta = value - baseline_value``; ``ci_low``/``ci_high`` is the percentile
interval of the replicate deltas, the two models being resampled independently
(their images are distinct).  ``p_value`` (per-prompt rows only; the same on
every metric row of a prompt and attribute) tests that the model's and the
baseline's known-label distributions are equal
(:func:`biaskit.metrics.stats.equal_distribution_test`); ``q_value`` is its
Benjamini-Hochberg adjustment across the prompts of one model, baseline and
attribute.  A prompt the baseline (or the model) lacks has NaN values on its
side, and NaN delta, interval and p-value: it is not an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biaskit.metrics.stats import benjamini_hochberg, equal_distribution_test

COMPARISON_COLUMNS = ("prompt_id", "attribute", "metric", "model", "baseline", "value",
                      "baseline_value", "delta", "ci_low", "ci_high", "p_value", "q_value")
OVERALL_PROMPT = "all:{kind}"
SHARE_METRIC = "share:{label}"
MULTI_PERSON_KINDS = ("group", "ahistorical")


def comparison_table(frame, *, baseline: str, models) -> pd.DataFrame:
    """Rows of every model in ``models`` against ``baseline`` (see the module docstring)."""
    rng = np.random.default_rng(frame.seed)
    parts = []
    for model in models:
        for attribute in frame.attributes:
            parts.append(_prompt_rows(frame, model=model, baseline=baseline,
                                      attribute=attribute, rng=rng))
            parts.append(_overall_rows(frame, model=model, baseline=baseline, attribute=attribute))
    if not parts:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    return pd.concat(parts, ignore_index=True).loc[:, list(COMPARISON_COLUMNS)]


def _per_prompt_metrics(frame, attribute, point, reps):
    """metric name -> (point array (G,), replicates (G, B), prompts it applies to (P,))."""
    every = np.ones(len(frame.prompt_ids), dtype=bool)
    has_expected = frame.expected_index(attribute)[: len(frame.prompt_ids)] >= 0
    metrics = {"entropy": (point.entropy, reps.entropy, every)}
    for j, label in enumerate(frame.taxonomies[attribute]):
        metrics[SHARE_METRIC.format(label=label)] = (point.shares[..., j], reps.shares[..., j], every)
    metrics["within_image_heterogeneity"] = (point.within_image, reps.within_image,
                                             np.isin(frame.kinds, MULTI_PERSON_KINDS))
    metrics["match_rate"] = (point.match_rate, reps.match_rate, has_expected)
    return metrics


def _prompt_rows(frame, *, model, baseline, attribute, rng) -> pd.DataFrame:
    n_prompts = len(frame.prompt_ids)
    mine = slice(frame.model_index(model) * n_prompts, (frame.model_index(model) + 1) * n_prompts)
    theirs = slice(frame.model_index(baseline) * n_prompts,
                   (frame.model_index(baseline) + 1) * n_prompts)
    point, reps = frame.metrics(attribute)
    p_values = np.array([equal_distribution_test(a, b, rng=rng).p_value
                         for a, b in zip(point.counts[mine], point.counts[theirs])])
    q_values = benjamini_hochberg(p_values)
    parts = []
    for metric, (values, replicates, applies) in _per_prompt_metrics(frame, attribute, point,
                                                                     reps).items():
        low, high = frame.interval(replicates[mine][applies] - replicates[theirs][applies])
        parts.append(pd.DataFrame({
            "prompt_id": np.array(frame.prompt_ids, dtype=object)[applies],
            "order": np.flatnonzero(applies), "metric": metric,
            "value": values[mine][applies], "baseline_value": values[theirs][applies],
            "ci_low": low, "ci_high": high,
            "p_value": p_values[applies], "q_value": q_values[applies]}))
    rows = pd.concat(parts, ignore_index=True).sort_values("order", kind="stable")
    return _finish(rows.drop(columns="order"), model=model, baseline=baseline, attribute=attribute)


def _overall_rows(frame, *, model, baseline, attribute) -> pd.DataFrame:
    has_expected = frame.expected_index(attribute)[: len(frame.prompt_ids)] >= 0
    rows = []
    for kind in frame.suite_kinds:
        mine = frame.aggregate(model=model, attribute=attribute, kind=kind)
        theirs = frame.aggregate(model=baseline, attribute=attribute, kind=kind)
        metrics = ["hof", "mean_entropy"]
        if (has_expected & (frame.kinds == kind)).any():
            metrics.append("match_rate")
        for metric in metrics:
            low, high = frame.interval(mine[f"{metric}_replicates"] - theirs[f"{metric}_replicates"])
            rows.append({"prompt_id": OVERALL_PROMPT.format(kind=kind), "metric": metric,
                         "value": mine[metric], "baseline_value": theirs[metric],
                         "ci_low": float(low), "ci_high": float(high),
                         "p_value": np.nan, "q_value": np.nan})
    return _finish(pd.DataFrame(rows), model=model, baseline=baseline, attribute=attribute)


def _finish(rows: pd.DataFrame, *, model, baseline, attribute) -> pd.DataFrame:
    rows = rows.assign(attribute=attribute, model=model, baseline=baseline)
    rows["delta"] = rows["value"] - rows["baseline_value"]
    return rows
