"""Gather what a report shows from a run directory, as plain tables.

Everything here is presentation-free: the HTML and Markdown renderers and the
notebooks share these tables, so the numbers in both reports are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biaskit import tables, taxonomy
from biaskit.suite import AMBIGUOUS_KINDS, POOLED_KIND, Suite, load_suite, run_suite

METRIC_TABLES = ("distribution", "summary", "overall", "rates")
#: comparison.parquet exists only when the run has a baseline; an empty table stands in.
COMPARISON_COLUMNS = ("prompt_id", "attribute", "metric", "model", "baseline", "value",
                      "baseline_value", "delta", "ci_low", "ci_high", "p_value", "q_value")
NO_METRICS = ("{run}: no metrics tables in {metrics} (missing {missing}); "
              "run `biaskit measure` or `biaskit run` first")
NO_MODELS = "{run}: the metrics tables name no model"
UNKNOWN_BASELINE = "{run}: baseline {baseline!r} is not a model of this run; models: {models}"
BASELINE_NOT_MEASURED = ("--baseline {baseline!r}: the comparison in {metrics} was measured against "
                         "{measured!r}; run `biaskit measure ... --baseline {baseline}` first")
SEVERAL_BASELINES = "{metrics}/comparison.parquet: several baselines {baselines}; measure one"
VALIDATION_DIR = tables.VALIDATION_DIR  # biaskit validate --out RUN/validation, annotate import
CORRECTED_OVERALL = "corrected_overall.parquet"  # biaskit measure with a confusion table
PERCEPTION_ERRORS = "perception_errors.parquet"  # images the tagger could not read

#: Headline kinds, in the order the headline table lists them.
HEADLINE_KINDS = (POOLED_KIND, "individual", "group")
DEFAULT_ALPHA = 0.05


@dataclass
class RunData:
    """The tables of one run, as the report needs them.

    ``baseline`` is None when the run has a single model or none was recorded;
    ``models`` lists the baseline first, then the candidates.
    """

    run_dir: Path
    config: dict
    models: list[str]
    baseline: str | None
    distribution: pd.DataFrame
    summary: pd.DataFrame
    overall: pd.DataFrame
    comparison: pd.DataFrame
    rates: pd.DataFrame
    images: pd.DataFrame = field(default_factory=pd.DataFrame)
    people: pd.DataFrame = field(default_factory=pd.DataFrame)
    observations: pd.DataFrame = field(default_factory=pd.DataFrame)
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    perception_errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    corrected_overall: pd.DataFrame = field(default_factory=pd.DataFrame)
    suite: Suite | None = None

    @property
    def candidates(self) -> list[str]:
        """Models compared against the baseline (every model when there is none)."""
        return [m for m in self.models if m != self.baseline]

    def prompt_text(self, prompt_id: str) -> str:
        """The prompt's text when the suite is known, else its id."""
        if self.suite is not None and prompt_id in self.suite:
            return self.suite[prompt_id].text
        return prompt_id


def _optional_table(path: Path) -> pd.DataFrame:
    return tables.read_table(path) if path.exists() else pd.DataFrame()


def load_run(run_dir: str | Path, *, suite: Suite | str | Path | None = None,
             baseline: str | None = None, confusion: pd.DataFrame | str | Path | None = None
             ) -> RunData:
    """Read a run's metrics and stage tables for reporting.

    Parameters
    ----------
    run_dir : path
        A run directory with ``metrics/`` (written by ``biaskit measure`` or
        :func:`biaskit.metrics.measure_run`).
    suite : Suite or path, optional
        For prompt texts; default the suite run.json records, if it exists.
    baseline : str, optional
        Default: the baseline of ``metrics/comparison`` (``measure --baseline``),
        else ``baseline`` in run.json.
    confusion : DataFrame or path, optional
        A tidy validation confusion table to draw (default
        ``RUN/validation/confusion.parquet`` when present, as written by
        ``biaskit validate --out RUN/validation`` or ``biaskit annotate import``;
        the rest of that folder is shown by :mod:`biaskit.report.validation`).
    """
    run_dir = Path(run_dir)
    config = tables.read_run_config(run_dir)
    metrics_dir = run_dir / tables.METRICS_DIR
    missing = [n for n in METRIC_TABLES if not (metrics_dir / f"{n}.parquet").exists()]
    if missing:
        raise FileNotFoundError(NO_METRICS.format(run=run_dir, metrics=metrics_dir, missing=missing))
    metric = {n: tables.read_table(metrics_dir / f"{n}.parquet") for n in METRIC_TABLES}
    comparison_path = metrics_dir / "comparison.parquet"
    metric["comparison"] = (tables.read_table(comparison_path) if comparison_path.exists()
                            else pd.DataFrame(columns=list(COMPARISON_COLUMNS)))
    images = _optional_table(run_dir / tables.IMAGES_TABLE)
    people = _optional_table(run_dir / tables.PEOPLE_TABLE)
    observations = _optional_table(run_dir / tables.OBSERVATIONS_TABLE)
    models = _models(metric["summary"], images)
    if not models:
        raise ValueError(NO_MODELS.format(run=run_dir))
    if baseline is not None and baseline not in models:  # no model of the run: say so first
        raise ValueError(UNKNOWN_BASELINE.format(run=run_dir, baseline=baseline, models=models))
    baseline = _baseline(run_dir, given=baseline, config=config, comparison=metric["comparison"])
    if baseline is not None and baseline not in models:
        raise ValueError(UNKNOWN_BASELINE.format(run=run_dir, baseline=baseline, models=models))
    if baseline is not None:
        models = [baseline] + [m for m in models if m != baseline]
    if isinstance(suite, (str, Path)):
        suite = load_suite(suite)
    if confusion is None:
        confusion = _optional_table(run_dir / VALIDATION_DIR / tables.CONFUSION_TABLE)
    elif not isinstance(confusion, pd.DataFrame):
        confusion = tables.read_table(confusion)
    if not confusion.empty:
        tables.require_columns(confusion, tables.CONFUSION_COLUMNS,
                               name=confusion.attrs.get(tables.SOURCE, "confusion table"))
    return RunData(run_dir=run_dir, config=config, models=models, baseline=baseline,
                   images=images, people=people, observations=observations,
                   confusion=confusion,
                   perception_errors=_optional_table(run_dir / PERCEPTION_ERRORS),
                   corrected_overall=_optional_table(metrics_dir / CORRECTED_OVERALL),
                   suite=suite or run_suite(run_dir, config), **metric)


def _baseline(run_dir: Path, *, given: str | None, config: dict,
              comparison: pd.DataFrame) -> str | None:
    """The report's baseline: the one given, else the one the comparison table was measured
    against (``measure --baseline``), else run.json's.

    The comparison table is the record ``measure`` leaves in the metrics folder, so
    ``measure --baseline X`` then ``report RUN`` (or ``write_report(run)``) keeps X.
    A baseline given that differs from the measured one would mislabel the
    differences, so it is refused.
    """
    measured = pd.unique(comparison["baseline"].dropna().astype(str)) if len(comparison) else []
    if len(measured) > 1:
        raise ValueError(SEVERAL_BASELINES.format(metrics=run_dir / tables.METRICS_DIR,
                                                  baselines=list(measured)))
    measured = measured[0] if len(measured) else None
    if given is not None and measured is not None and given != measured:
        raise ValueError(BASELINE_NOT_MEASURED.format(baseline=given, measured=measured,
                                                      metrics=run_dir / tables.METRICS_DIR))
    recorded = config.get("baseline")
    if isinstance(recorded, dict):  # {"name": ..., "spec": ...}
        recorded = recorded.get("name")
    return given or measured or recorded


def _models(summary: pd.DataFrame, images: pd.DataFrame) -> list[str]:
    seen = list(summary.get("model", pd.Series(dtype=str)))
    seen += list(images.get("model", pd.Series(dtype=str)))
    return list(dict.fromkeys(str(m) for m in seen))


def headline(overall: pd.DataFrame, *, models: list[str]) -> pd.DataFrame:
    """The card's headline: HOF and mean entropy per kind, attribute and model.

    One row per (kind, attribute, model) with the point values and intervals,
    kinds in :data:`HEADLINE_KINDS` order (those present), models in ``models`` order.
    """
    kinds = [k for k in HEADLINE_KINDS if k in set(overall["kind"])]
    rows = overall[overall["kind"].isin(kinds) & overall["model"].isin(models)].copy()
    rows["_kind"] = rows["kind"].map(kinds.index)
    rows["_model"] = rows["model"].map(models.index)
    return (rows.sort_values(["_kind", "attribute", "_model"], kind="stable")
            .drop(columns=["_kind", "_model"]).reset_index(drop=True))


def hof_sensitivity(distribution: pd.DataFrame, summary: pd.DataFrame, *,
                    models: list[str]) -> pd.DataFrame:
    """How few tagger errors it takes to change HOF, per kind, attribute and model.

    A prompt's heterogeneity changes with the smallest number of label flips:
    for a heterogeneous prompt, relabelling its minority persons (``n_known -
    largest count``); for a homogeneous one, a single flip.  Columns: kind,
    attribute, model, prompts, heterogeneous, single_face (heterogeneous prompts
    whose minority is one person), median_flips (over heterogeneous prompts),
    hof, hof_single_faces_wrong (HOF if those single faces were tagger errors).
    """
    columns = ["kind", "attribute", "model", "prompts", "heterogeneous", "single_face",
               "median_flips", "hof", "hof_single_faces_wrong"]
    known = distribution[distribution["label"] != taxonomy.UNCLEAR]
    counts = known.groupby(["model", "prompt_id", "attribute"], sort=False)["count"]
    per_prompt = pd.DataFrame({"known": counts.sum(), "largest": counts.max()}).reset_index()
    per_prompt = per_prompt.merge(summary[["model", "prompt_id", "attribute", "kind"]],
                                  on=["model", "prompt_id", "attribute"])
    per_prompt = per_prompt[per_prompt["known"] > 0]
    per_prompt["flips"] = per_prompt["known"] - per_prompt["largest"]
    pooled = per_prompt[per_prompt["kind"].isin(AMBIGUOUS_KINDS)].assign(kind=POOLED_KIND)
    rows = []
    for (kind, attribute, model), group in pd.concat([pooled, per_prompt]).groupby(
            ["kind", "attribute", "model"], sort=False):
        flips = group["flips"]
        n, het, single = len(group), int((flips > 0).sum()), int((flips == 1).sum())
        rows.append({"kind": kind, "attribute": attribute, "model": model, "prompts": n,
                     "heterogeneous": het, "single_face": single,
                     "median_flips": float(flips[flips > 0].median()) if het else np.nan,
                     "hof": het / n, "hof_single_faces_wrong": (het - single) / n})
    frame = pd.DataFrame(rows, columns=columns)
    return headline(frame, models=models) if len(frame) else frame


def _per_prompt(comparison: pd.DataFrame) -> pd.DataFrame:
    """Rows about one prompt (not the ``all:<kind>`` aggregates; prompt ids never hold ':')."""
    return comparison[~comparison["prompt_id"].astype(str).str.startswith("all:")]


def significant_differences(comparison: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA
                            ) -> pd.DataFrame:
    """One row per prompt, attribute and model whose distribution differs from the baseline's.

    A (prompt, attribute, model) is listed when its Benjamini-Hochberg q-value is
    under ``alpha``; the row gives the entropy of both models with the difference
    and its interval, and the category share that moved most (``share:<label>``
    row with the largest absolute difference).  Smallest q first.

    Columns: prompt_id, attribute, model, baseline, entropy, baseline_entropy,
    delta, ci_low, ci_high, shift_label, shift, shift_ci_low, shift_ci_high,
    p_value, q_value.
    """
    rows = _per_prompt(comparison)
    rows = rows[pd.to_numeric(rows["q_value"], errors="coerce") < alpha]
    out = []
    for (prompt_id, attribute, model), group in rows.groupby(
            ["prompt_id", "attribute", "model"], sort=False):
        entropy = group[group["metric"] == "entropy"]
        shares = group[group["metric"].astype(str).str.startswith("share:")]
        shares = shares[shares["delta"].notna()]
        record = {"prompt_id": prompt_id, "attribute": attribute, "model": model,
                  "baseline": group["baseline"].iloc[0], "p_value": group["p_value"].min(),
                  "q_value": group["q_value"].min()}
        first = entropy.iloc[0] if len(entropy) else None
        record.update(entropy=_get(first, "value"), baseline_entropy=_get(first, "baseline_value"),
                      delta=_get(first, "delta"), ci_low=_get(first, "ci_low"),
                      ci_high=_get(first, "ci_high"))
        moved = shares.loc[shares["delta"].abs().idxmax()] if len(shares) else None
        record.update(shift_label=str(moved["metric"]).split(":", 1)[1] if moved is not None else None,
                      shift=_get(moved, "delta"), shift_ci_low=_get(moved, "ci_low"),
                      shift_ci_high=_get(moved, "ci_high"))
        out.append(record)
    columns = ["prompt_id", "attribute", "model", "baseline", "entropy", "baseline_entropy", "delta",
               "ci_low", "ci_high", "shift_label", "shift", "shift_ci_low", "shift_ci_high",
               "p_value", "q_value"]
    frame = pd.DataFrame(out, columns=columns)
    return frame.sort_values(["q_value", "prompt_id"], kind="stable").reset_index(drop=True)


def _get(row, column):
    return np.nan if row is None else row[column]


def ahistorical(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows of prompts with an expected label (the ahistorical check)."""
    expected = summary["expected"].astype("string").fillna("")
    return summary[expected != ""].reset_index(drop=True)


NOT_TAGGED = "{attribute!r} was not tagged in this run (no tagger here gives it; e.g. add --tagger clip)"
NO_KNOWN_LABEL = "no person with a known {attribute!r} label in any model's images"
NOT_MEASURED = "the prompt has no measured image"
NO_SUITE = ("the prompt suite was not found (run.json's path, or --prompts SUITE): expectations "
            "on attributes that were not tagged cannot be listed")
UNCHECKED_COLUMNS = ("prompt_id", "attribute", "expected", "reason")


def unchecked_expectations(summary: pd.DataFrame, suite: Suite | None) -> pd.DataFrame:
    """The suite's expected labels the ahistorical table cannot show, and why.

    An expectation on an attribute no tagger gave (race, offline) has no summary
    row at all, so without this list it would vanish from the report unnoticed.
    Columns: prompt_id, attribute, expected, reason.  Without a suite, one row
    says that the list cannot be made.
    """
    if suite is None:
        return pd.DataFrame([("all", "–", "–", NO_SUITE)], columns=list(UNCHECKED_COLUMNS))
    rows = []
    measured = set(summary["attribute"]) if len(summary) else set()
    for prompt in suite:
        for attribute, expected in prompt.expected.items():
            mine = summary[(summary["prompt_id"] == prompt.id) & (summary["attribute"] == attribute)]
            if attribute not in measured:
                reason = NOT_TAGGED.format(attribute=attribute)
            elif mine.empty:
                reason = NOT_MEASURED
            elif pd.to_numeric(mine["match_rate"], errors="coerce").isna().all():
                reason = NO_KNOWN_LABEL.format(attribute=attribute)
            else:
                continue
            rows.append((prompt.id, attribute, expected, reason))
    return pd.DataFrame(rows, columns=list(UNCHECKED_COLUMNS))

