"""Release figures: compare a candidate model with its baseline.

Every function takes the tidy tables of :mod:`biaskit.metrics` (or of
:func:`biaskit.perception.validate`), draws on ``ax`` (a new figure when
``ax`` is None) and returns the Axes, so figures compose into a user's own
layout; :func:`summary_figure`, the one figure of two panels, takes
``fig=None`` instead and returns the Figure.  Names (models, prompts,
labels) are drawn as plain text: a ``$`` is a dollar sign, never math.  matplotlib is imported inside the functions: importing this module
costs nothing and works headless (Agg).

========================  ====================================================
function                  figure
========================  ====================================================
:func:`category_shares`   per prompt, stacked category shares, model beside
                          baseline (skin tone in the Monk swatch colours)
:func:`entropy_scatter`   per-prompt entropy, baseline on x, model on y, with
                          the diagonal and interval whiskers
:func:`overall_bars`      HOF or mean entropy per attribute per model, with
                          intervals (the system card's summary figure)
:func:`summary_figure`    both panels of the summary figure side by side
                          (takes ``fig=None``, returns the Figure)
:func:`ahistorical_match` match rate per ahistorical prompt and model
:func:`rate_bars`         unclear, no-person, refusal and error rates per model
:func:`confusion_matrix`  a tagger's validation confusion matrix
========================  ====================================================

Examples
--------
>>> from biaskit import plots                                    # doctest: +SKIP
>>> ax = plots.category_shares(bias.distribution, attribute="skin_tone",
...                            models=["baseline", "candidate"])  # doctest: +SKIP
>>> ax.figure.savefig("skin_tone.png")                           # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from biaskit import taxonomy
from biaskit.suite import POOLED_KIND
from biaskit.tables import CONFUSION_COLUMNS, require_columns

NO_ROWS = "{figure}: the {table} table has no rows for {what}"
UNKNOWN_METRIC = "{figure}: unknown metric {metric!r}; expected one of {known}"

DISTRIBUTION_NEEDS = ("model", "prompt_id", "attribute", "label", "share")
SUMMARY_NEEDS = ("model", "prompt_id", "attribute", "entropy", "entropy_ci_low", "entropy_ci_high")
MATCH_NEEDS = ("model", "prompt_id", "attribute", "expected", "match_rate")
OVERALL_NEEDS = ("model", "attribute", "kind")

#: The two panels of the system card's summary figure: metric -> axis label.
OVERALL_METRICS = {
    "hof": "heterogeneous-output frequency",
    "mean_entropy": "mean normalized entropy",
}
#: Rates per model drawn by :func:`rate_bars`: column -> short name.
RATE_COLUMNS = {
    "unclear_share": "unclear",
    "no_person_share": "no person",
    "refusal_rate": "refused",
    "error_rate": "error",
}
#: Kinds of prompt where diversity is wanted (ahistorical prompts want consistency).
AMBIGUOUS_KINDS = ("individual", "group")
EDGE_COLOR = "#555555"  # thin edges keep the near-white light MST swatches visible


def _new_axes(ax, *, figsize=(6.4, 4.8)):
    """Return ``ax``, or the Axes of a new figure when it is None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plain(text) -> str:
    """``text`` drawn as itself: a ``$`` would start matplotlib math text (and a name such
    as ``a$b$c`` would break every figure), so it is escaped."""
    return str(text).replace("$", r"\$")


def _set_title(ax, text: str) -> None:
    """A title that wraps at the figure's edges when it is too long, so no word is clipped."""
    ax.set_title(text, wrap=True)


def _legend_outside(ax, *, n_labels: int) -> None:
    """The legend right of the Axes, where it cannot cover a bar or a point."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False,
              ncols=_legend_columns(n_labels))


def _ordered(values: Sequence, order: Sequence | None) -> list:
    """Unique ``values`` in first-seen order, or ``order`` restricted to them."""
    seen = list(dict.fromkeys(values))
    return seen if order is None else [v for v in order if v in set(seen)]


def _select(frame, *, needs, table, figure, what, **equal):
    """Rows of ``frame`` whose columns equal ``equal``; a clear error when none."""
    require_columns(frame, needs, name=f"{figure}: {table} table")
    mask = np.ones(len(frame), dtype=bool)
    for column, value in equal.items():
        if value is not None:
            mask &= (frame[column] == value).to_numpy()
    rows = frame.loc[mask]
    if rows.empty:
        raise ValueError(NO_ROWS.format(figure=figure, table=table, what=what))
    return rows


def attribute_labels(attribute: str, present: Sequence[str] = ()) -> list[str]:
    """Known labels of ``attribute`` in taxonomy order (``present`` order if unregistered)."""
    try:
        return list(taxonomy.labels(attribute))
    except KeyError:
        return [p for p in dict.fromkeys(present) if p != taxonomy.UNCLEAR]


def label_colors(attribute: str, labels: Sequence[str] | None = None) -> dict[str, str]:
    """One fixed colour per label, so a label looks the same in every figure.

    Skin tone uses the Monk Skin Tone swatches themselves; other attributes take
    matplotlib's qualitative ``tab10`` (``tab20`` beyond ten categories).

    Examples
    --------
    >>> label_colors("skin_tone")["MST1"]
    '#f6ede4'
    """
    if attribute == "skin_tone":
        return dict(taxonomy.MST_SWATCHES)
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    labels = list(labels) if labels is not None else attribute_labels(attribute)
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: to_hex(cmap(i % cmap.N)) for i, label in enumerate(labels)}


def _error_span(value, low, high) -> np.ndarray:
    """Asymmetric error-bar lengths (2 x n) for matplotlib; NaN bounds draw none."""
    value, low, high = (np.asarray(a, dtype=float) for a in (value, low, high))
    below = np.where(np.isnan(low), 0.0, value - low)
    above = np.where(np.isnan(high), 0.0, high - value)
    # An interval that misses its point (tables from biaskit < 0.2) draws a zero-length side:
    # matplotlib refuses negative lengths, and the figure must still be drawn.
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None)


def category_shares(distribution: pd.DataFrame, *, attribute: str, prompts: Sequence[str] | None = None,
                    models: Sequence[str] | None = None, ax=None):
    """Stacked shares of each category per prompt, one bar per model, side by side.

    Parameters
    ----------
    distribution : DataFrame
        The metrics ``distribution`` table (model, prompt_id, attribute, label, share).
        ``unclear`` rows are left out: shares are over persons with a known label.
    attribute : str
        Which attribute to draw; skin tone is drawn in the MST swatch colours.
    prompts, models : sequence of str, optional
        Which prompts and models, in this order (default: all, in table order).
        Pass ``[baseline, model]`` to put the baseline first in each group.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        One ``BarContainer`` per label in ``ax.containers``, its bars in
        (prompt, model) order.
    """
    rows = _select(distribution, needs=DISTRIBUTION_NEEDS, table="distribution",
                   figure="category_shares", what=f"attribute {attribute!r}", attribute=attribute)
    rows = rows[rows["label"] != taxonomy.UNCLEAR]
    prompts = _ordered(rows["prompt_id"], prompts)
    models = _ordered(rows["model"], models)
    labels = attribute_labels(attribute, rows["label"])
    shares = (rows.pivot_table(index=["prompt_id", "model"], columns="label", values="share",
                               aggfunc="sum")
              .reindex(index=pd.MultiIndex.from_product([prompts, models]), columns=labels)
              .fillna(0.0))
    ax = _new_axes(ax, figsize=shares_figsize(n_bars=len(shares), n_labels=len(labels)))
    y = _group_positions(len(prompts), len(models))
    colors = label_colors(attribute, labels)
    left = np.zeros(len(shares))
    for label in labels:
        width = shares[label].to_numpy()
        ax.barh(y, width, left=left, height=0.85, color=colors[label], edgecolor=EDGE_COLOR,
                linewidth=0.4, label=plain(label))
        left += width
    ax.set_yticks(y, [plain(f"{p} · {m}") for p, m in shares.index])
    ax.invert_yaxis()  # first prompt on top, as read
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of persons with a known label")
    _set_title(ax, plain(f"{attribute}: category shares per prompt"))
    _legend_outside(ax, n_labels=len(labels))
    return ax


def shares_figsize(*, n_bars: int, n_labels: int) -> tuple[float, float]:
    """A figure size for :func:`category_shares` that fits its bars and its legend."""
    return (8.0, max(0.8 + 0.3 * n_bars, 1.0 + 0.25 * _legend_rows(n_labels)))


def _legend_rows(n_labels: int) -> int:
    return -(-n_labels // _legend_columns(n_labels))


def _legend_columns(n_labels: int) -> int:
    return 1 if n_labels <= 5 else 2


def _group_positions(n_groups: int, per_group: int, *, gap: float = 0.8) -> np.ndarray:
    """Bar positions: groups of adjacent bars separated by ``gap``."""
    return np.array([g * (per_group + gap) + i for g in range(n_groups) for i in range(per_group)],
                    dtype=float)


def _slot(centres: np.ndarray, index: int, count: int) -> tuple[np.ndarray, float]:
    """Positions and size of the ``index``-th of ``count`` side-by-side bars in groups at ``centres``."""
    size = 0.8 / max(count, 1)
    return centres - 0.4 + size * (index + 0.5), size * 0.95


def entropy_scatter(summary: pd.DataFrame, *, attribute: str, model: str, baseline: str,
                    kinds: Sequence[str] | None = AMBIGUOUS_KINDS, annotate: bool = True, ax=None):
    """Per-prompt normalized entropy: baseline on x, model on y, intervals as whiskers.

    Points above the diagonal are prompts where the model is more diverse than
    the baseline.  Prompts where either model has no known label are left out.

    Parameters
    ----------
    summary : DataFrame
        The metrics ``summary`` table.
    attribute, model, baseline : str
    kinds : sequence of str or None
        Prompt kinds to draw (default the ambiguous ones; None for all).
    annotate : bool
        Write the prompt id beside each point (up to 40 points).

    Returns
    -------
    matplotlib Axes
        The points and whiskers are ``ax.containers[0]`` (an ErrorbarContainer).
    """
    rows = _select(summary, needs=SUMMARY_NEEDS, table="summary", figure="entropy_scatter",
                   what=f"attribute {attribute!r}", attribute=attribute)
    if kinds is not None and "kind" in rows:
        rows = rows[rows["kind"].isin(kinds)]
    columns = ["entropy", "entropy_ci_low", "entropy_ci_high"]
    pair = (rows[rows["model"] == baseline].set_index("prompt_id")[columns]
            .join(rows[rows["model"] == model].set_index("prompt_id")[columns],
                  lsuffix="_x", rsuffix="_y", how="inner")
            .dropna(subset=["entropy_x", "entropy_y"]))
    if pair.empty:
        raise ValueError(NO_ROWS.format(figure="entropy_scatter", table="summary",
                                        what=f"{attribute!r} with entropy for both {model!r} and {baseline!r}"))
    ax = _new_axes(ax, figsize=(5.2, 5.2))
    x, y = pair["entropy_x"].to_numpy(), pair["entropy_y"].to_numpy()
    ax.errorbar(x, y, xerr=_error_span(x, pair["entropy_ci_low_x"], pair["entropy_ci_high_x"]),
                yerr=_error_span(y, pair["entropy_ci_low_y"], pair["entropy_ci_high_y"]),
                fmt="o", color="#1f77b4", ecolor="#9ecae1", elinewidth=1, capsize=2, markersize=4)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="equal diversity")
    if annotate and len(pair) <= 40:
        _annotate_points(ax, pair.index, x, y)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_xlabel(plain(f"normalized entropy, {baseline} (baseline)"))
    ax.set_ylabel(plain(f"normalized entropy, {model}"))
    _set_title(ax, plain(f"{attribute}: entropy per prompt (above the line = more diverse)"))
    return ax


def _annotate_points(ax, names, x, y) -> None:
    """Label each point; points at the same place share one label, so ids stay readable."""
    spots: dict[tuple[float, float], list[str]] = {}
    for name, xi, yi in zip(names, x, y):
        spots.setdefault((round(float(xi), 2), round(float(yi), 2)), []).append(str(name))
    for (xi, yi), group in spots.items():
        ax.annotate(plain(", ".join(group)), (xi, yi), xytext=(3, 3), textcoords="offset points",
                    fontsize=7)


def default_kind(overall: pd.DataFrame) -> str:
    """The kind the headline uses: the pooled ``ambiguous`` if the table has it, else ``individual``,
    else the first."""
    kinds = list(dict.fromkeys(overall["kind"]))
    for preferred in (POOLED_KIND, "individual"):
        if preferred in kinds:
            return preferred
    return kinds[0]


def overall_bars(overall: pd.DataFrame, *, metric: str = "hof", kind: str | None = None,
                 models: Sequence[str] | None = None, attributes: Sequence[str] | None = None,
                 ax=None):
    """HOF or mean entropy per attribute, one bar per model, with interval whiskers.

    Parameters
    ----------
    overall : DataFrame
        The metrics ``overall`` table (model, attribute, kind, hof, hof_ci_low, ...).
    metric : {"hof", "mean_entropy"}
        Higher is more diverse for both.
    kind : str, optional
        Which prompt kind's row to draw (default :func:`default_kind`).

    Returns
    -------
    matplotlib Axes
        One BarContainer per model in ``ax.containers`` (bars in attribute order),
        each followed by its ErrorbarContainer.
    """
    if metric not in OVERALL_METRICS:
        raise ValueError(UNKNOWN_METRIC.format(figure="overall_bars", metric=metric,
                                               known=list(OVERALL_METRICS)))
    require_columns(overall, OVERALL_NEEDS + (metric, f"{metric}_ci_low", f"{metric}_ci_high"),
                    name="overall_bars: overall table")
    kind = kind or default_kind(overall)
    rows = _select(overall, needs=OVERALL_NEEDS, table="overall", figure="overall_bars",
                   what=f"kind {kind!r}", kind=kind)
    models = _ordered(rows["model"], models)
    attributes = _ordered(rows["attribute"], attributes)
    table = rows.set_index(["attribute", "model"])
    ax = _new_axes(ax, figsize=(1.2 + 1.1 * len(attributes), 4.0))
    x = np.arange(len(attributes), dtype=float)
    for i, model in enumerate(models):
        picked = table.reindex(pd.MultiIndex.from_product([attributes, [model]]))
        value = picked[metric].to_numpy(dtype=float)
        position, width = _slot(x, i, len(models))
        ax.bar(position, np.nan_to_num(value), width=width, label=plain(model), color=f"C{i}")
        ax.errorbar(position, value, yerr=_error_span(value, picked[f"{metric}_ci_low"],
                                                      picked[f"{metric}_ci_high"]),
                    fmt="none", ecolor="black", elinewidth=1, capsize=3)
    ax.set_xticks(x, [plain(a) for a in attributes])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{OVERALL_METRICS[metric]}\n(higher = more diverse)")
    _set_title(ax, plain(f"{OVERALL_METRICS[metric]} ({kind} prompts)"))
    _legend_outside(ax, n_labels=len(models))
    return ax


def summary_figure(overall: pd.DataFrame, *, kind: str | None = None,
                   models: Sequence[str] | None = None, fig=None):
    """The system card's summary figure: HOF and mean entropy panels side by side.

    The one multi-panel figure: it takes ``fig`` (a matplotlib Figure or
    SubFigure to draw both panels on; a new 10 x 4 inch Figure when None) where
    the single-panel functions take ``ax``, and returns that Figure.  Its two
    Axes are ``fig.axes`` (HOF, then mean entropy), each as :func:`overall_bars`
    draws it.
    """
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), OVERALL_METRICS):
        overall_bars(overall, metric=metric, kind=kind, models=models, ax=ax)
    return fig


def ahistorical_match(summary: pd.DataFrame, *, models: Sequence[str] | None = None, ax=None):
    """Match rate with the expected label, per ahistorical prompt and model (ideal: 1).

    Parameters
    ----------
    summary : DataFrame
        The metrics ``summary`` table; rows with an ``expected`` label are drawn.

    Returns
    -------
    matplotlib Axes
        One BarContainer per model; bars in (prompt, attribute) order.
    """
    require_columns(summary, MATCH_NEEDS, name="ahistorical_match: summary table")
    expected = summary["expected"].astype("string").fillna("")
    rows = summary[expected != ""]
    if rows.empty:
        raise ValueError(NO_ROWS.format(figure="ahistorical_match", table="summary",
                                        what="prompts with an expected label"))
    models = _ordered(rows["model"], models)
    keys = list(dict.fromkeys(zip(rows["prompt_id"], rows["attribute"], rows["expected"])))
    table = rows.set_index(["prompt_id", "attribute", "model"])["match_rate"]
    ax = _new_axes(ax, figsize=(7.0, 0.8 + 0.3 * len(keys) * len(models)))
    y = np.arange(len(keys), dtype=float)
    for i, model in enumerate(models):
        value = np.array([table.get((p, a, model), np.nan) for p, a, _ in keys], dtype=float)
        position, height = _slot(y, i, len(models))
        bars = ax.barh(position, np.nan_to_num(value), height=height, label=plain(model),
                       color=f"C{i}")
        ax.bar_label(bars, labels=[_percent_label(v) for v in value], padding=2, fontsize=7)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, [plain(f"{p} ({a} = {e})") for p, a, e in keys])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("share of known-labelled persons with the expected label (ideal 1)")
    _set_title(ax, "ahistorical / unrealistic prompts: match rate")
    _legend_outside(ax, n_labels=len(models))
    return ax


def _percent_label(value: float) -> str:
    """Bar label: a zero bar is invisible, so its value is written out; n/a when missing."""
    return "n/a" if np.isnan(value) else f"{value:.0%}"


def rate_bars(rates: pd.DataFrame, *, models: Sequence[str] | None = None, ax=None):
    """Unclear, no-person, refusal and error rates, one bar per model per rate.

    Parameters
    ----------
    rates : DataFrame
        One row per model with the columns of :data:`RATE_COLUMNS` that exist.

    Returns
    -------
    matplotlib Axes
        One BarContainer per model, bars in :data:`RATE_COLUMNS` order.
    """
    require_columns(rates, ("model",), name="rate_bars: rates table")
    columns = [c for c in RATE_COLUMNS if c in rates.columns]
    if not columns or rates.empty:
        raise ValueError(NO_ROWS.format(figure="rate_bars", table="rates",
                                        what=f"any of {list(RATE_COLUMNS)}"))
    models = _ordered(rates["model"], models)
    table = rates.set_index("model")
    ax = _new_axes(ax, figsize=(1.5 + 1.2 * len(columns), 3.6))
    x = np.arange(len(columns), dtype=float)
    for i, model in enumerate(models):
        value = table.loc[model, columns].to_numpy(dtype=float)
        position, width = _slot(x, i, len(models))
        bars = ax.bar(position, np.nan_to_num(value), width=width, label=plain(model), color=f"C{i}")
        ax.bar_label(bars, labels=[_percent_label(v) for v in value], padding=2, fontsize=7)
    ax.set_xticks(x, [RATE_COLUMNS[c] for c in columns])
    ax.set_ylim(0, max(0.05, float(np.nanmax(table[columns].to_numpy(dtype=float), initial=0)) * 1.15))
    ax.set_ylabel("share")
    _set_title(ax, "unclear, no-person and refusal rates")
    _legend_outside(ax, n_labels=len(models))
    return ax


def confusion_matrix(confusion: pd.DataFrame, *, attribute: str, normalize: bool = True,
                     cmap: str = "Blues", ax=None):
    """A tagger's confusion matrix: true labels as rows, predictions as columns.

    Parameters
    ----------
    confusion : DataFrame
        Tidy confusion table (attribute, true, predicted, count); ``predicted``
        may be ``unclear``, drawn as the last column.
    normalize : bool
        Show each row as shares of its true label (recall on the diagonal)
        instead of counts.

    Returns
    -------
    matplotlib Axes
        The matrix is ``ax.images[0].get_array()``; cell texts are ``ax.texts``.
    """
    rows = _select(confusion, needs=CONFUSION_COLUMNS, table="confusion", figure="confusion_matrix",
                   what=f"attribute {attribute!r}", attribute=attribute)
    labels = attribute_labels(attribute, list(rows["true"]) + list(rows["predicted"]))
    true = [label for label in labels if label in set(rows["true"])]
    predicted = [label for label in labels if label in set(rows["predicted"]) | set(true)]
    if (rows["predicted"] == taxonomy.UNCLEAR).any():
        predicted.append(taxonomy.UNCLEAR)
    matrix = (rows.pivot_table(index="true", columns="predicted", values="count", aggfunc="sum")
              .reindex(index=true, columns=predicted).fillna(0).to_numpy(dtype=float))
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    ax = _new_axes(ax, figsize=(1.8 + 0.7 * len(predicted), 1.4 + 0.6 * len(true)))
    image = ax.imshow(matrix, cmap=cmap, vmin=0, vmax=1 if normalize else None)
    threshold = (matrix.max() if matrix.size else 0) / 2
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}" if normalize else f"{value:.0f}", ha="center", va="center",
                fontsize=8, color="white" if value > threshold else "black")
    ax.set_xticks(range(len(predicted)), [plain(p) for p in predicted], rotation=45, ha="right")
    ax.set_yticks(range(len(true)), [plain(t) for t in true])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _set_title(ax, plain(f"{attribute}: confusion "
                         f"({'share of true label' if normalize else 'count'})"))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax
