"""Turn a run's tables into the report's context, and the context into HTML or Markdown.

Both formats render the same context: tables as lists of display strings, so
the numbers in report.html and report.md agree to the digit.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import math
import re
from pathlib import Path

import pandas as pd

from biaskit import tables
from biaskit.report import data, methods
from biaskit.report.figures import RenderedFigure

TEMPLATES = Path(__file__).parent / "templates"
DASH = "–"


def number(value, digits: int = 2) -> str:
    """``0.4567 -> "0.46"``; missing -> an en dash."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return DASH
    if math.isnan(value):
        return DASH
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"


def with_interval(value, low, high, digits: int = 2) -> str:
    """``"0.46 [0.30, 0.61]"``, or just the value when the interval is missing."""
    text = number(value, digits)
    if text == DASH or number(low) == DASH or number(high) == DASH:
        return text
    return f"{text} [{number(low, digits)}, {number(high, digits)}]"


def signed_interval(value, low, high, digits: int = 2) -> str:
    """Like :func:`with_interval` with an explicit sign on the value: ``"+0.50 [0.20, 0.80]"``."""
    text = with_interval(value, low, high, digits)
    return text if text == DASH or text.startswith("-") else "+" + text


def percent(value) -> str:
    text = number(value, 3)
    return text if text == DASH else f"{float(value) * 100:.1f}%"


def table(columns, rows) -> dict:
    """The renderers' table shape: column titles and rows of display strings."""
    return {"columns": list(columns), "rows": [[str(cell) for cell in row] for row in rows]}


def headline_table(run: data.RunData) -> dict:
    """The card's table: per kind and attribute, HOF and mean entropy per model, with intervals.

    With a confusion table (``corrected_overall``), each model also gets its HOF
    and mean entropy corrected for tagger error, for the attributes it covers.
    """
    frame = data.headline(run.overall, models=run.models)
    corrected = _corrected_by_key(run)
    columns = ["prompts", "attribute"]
    for model in run.models:
        tag = f"{model} (baseline)" if model == run.baseline else model
        columns += [f"HOF · {tag}", f"mean entropy · {tag}"]
        if corrected:
            columns += [f"HOF corrected · {tag}", f"mean entropy corrected · {tag}"]
    rows = []
    for (kind, attribute), group in frame.groupby(["kind", "attribute"], sort=False):
        by_model = group.set_index("model")
        row = [kind, attribute]
        for model in run.models:
            if model not in by_model.index:
                row += [DASH, DASH] + ([DASH, DASH] if corrected else [])
                continue
            r = by_model.loc[model]
            row += [with_interval(r["hof"], r["hof_ci_low"], r["hof_ci_high"]),
                    with_interval(r["mean_entropy"], r["mean_entropy_ci_low"], r["mean_entropy_ci_high"])]
            if corrected:
                c = corrected.get((kind, attribute, model))
                row += [DASH, DASH] if c is None else [
                    with_interval(c["hof"], c["hof_ci_low"], c["hof_ci_high"]),
                    with_interval(c["mean_entropy"], c["mean_entropy_ci_low"],
                                  c["mean_entropy_ci_high"])]
        rows.append(row)
    return table(columns, rows)


def _corrected_by_key(run: data.RunData) -> dict:
    frame = run.corrected_overall
    if frame.empty:
        return {}
    return {(r["kind"], r["attribute"], r["model"]): r for _, r in frame.iterrows()}


def _correction_source(run: data.RunData) -> str:
    """The confusion table the metrics were corrected with, as ``measure`` recorded it."""
    recorded = tables.read_correction(run.run_dir / tables.METRICS_DIR)
    if recorded is None:
        return "the confusion table given to biaskit measure --confusion"
    path = Path(recorded)
    with contextlib.suppress(ValueError):  # inside the run: say where, relative to it
        return str(path.resolve().relative_to(run.run_dir.resolve()))
    return recorded


def correction_note(run: data.RunData) -> dict:
    """Whether the headline is corrected for tagger error: the validation set and its accuracy,
    or, without one, how few tagger errors would change HOF."""
    frame = run.corrected_overall
    if not frame.empty:
        source = _correction_source(run)
        per_attribute = frame.drop_duplicates("attribute")
        rows = [[r.attribute, f"{int(r.n_validation)}", percent(r.validation_accuracy)]
                for r in per_attribute.itertuples(index=False)]
        return {"corrected": True, "source": source,
                "validation": table(["attribute", "validation faces", "tagger accuracy"], rows)}
    sensitivity = data.hof_sensitivity(run.distribution, run.summary, models=run.models)
    rows = [[r.kind, r.attribute, r.model, r.prompts, r.heterogeneous, r.single_face,
             number(r.median_flips, 1), number(r.hof), number(r.hof_single_faces_wrong)]
            for r in sensitivity.itertuples(index=False)]
    return {"corrected": False, "source": "",
            "sensitivity": table(["prompts", "attribute", "model", "n", "heterogeneous",
                                  "minority of one face", "median flips to homogeneous", "HOF",
                                  "HOF if those single faces were tagger errors"], rows)}


def significant_table(run: data.RunData, *, alpha: float) -> dict:
    frame = data.significant_differences(run.comparison, alpha=alpha)
    rows = [[r.prompt_id, run.prompt_text(r.prompt_id), r.attribute, r.model,
             number(r.entropy), number(r.baseline_entropy), signed_interval(r.delta, r.ci_low, r.ci_high),
             DASH if r.shift_label is None else
             f"{r.shift_label} {signed_interval(r.shift, r.shift_ci_low, r.shift_ci_high)}",
             number(r.p_value, 4), number(r.q_value, 4)]
            for r in frame.itertuples(index=False)]
    return table(["prompt", "text", "attribute", "model", "entropy", "baseline entropy",
                  "entropy difference [95% CI]", "largest share change [95% CI]", "p", "q (BH)"],
                 rows)


def ahistorical_table(run: data.RunData) -> dict:
    frame = data.ahistorical(run.summary)
    keys = list(dict.fromkeys(zip(frame["prompt_id"], frame["attribute"], frame["expected"])))
    indexed = frame.set_index(["prompt_id", "attribute", "model"])
    rows = []
    for prompt_id, attribute, expected in keys:
        row = [prompt_id, run.prompt_text(prompt_id), attribute, expected]
        for model in run.models:
            key = (prompt_id, attribute, model)
            if key in indexed.index:
                r = indexed.loc[key]
                row.append(f"{percent(r['match_rate'])} of {int(r['n_known'])}"
                           if "n_known" in r else percent(r["match_rate"]))
            else:
                row.append(DASH)
        rows.append(row)
    return table(["prompt", "text", "attribute", "expected"] + [f"match · {m}" for m in run.models], rows)


def unchecked_table(run: data.RunData) -> dict:
    """Expected labels that could not be checked (an attribute nobody tagged, ...), and why."""
    frame = data.unchecked_expectations(run.summary, run.suite)
    return table(["prompt", "attribute", "expected", "why it could not be checked"],
                 frame.itertuples(index=False))


def rates_table(run: data.RunData) -> dict:
    columns = [c for c in ("unclear_share", "no_person_share", "refusal_rate", "error_rate")
               if c in run.rates]
    by_model = run.rates.set_index("model")
    rows = [[m] + [percent(by_model.loc[m, c]) if m in by_model.index else DASH for c in columns]
            for m in run.models]
    return table(["model"] + [c.replace("_", " ") for c in columns], rows)


def frame_table(frame: pd.DataFrame) -> dict:
    return table(frame.columns, frame.itertuples(index=False))


def build_context(run: data.RunData, *, figures: list[RenderedFigure], galleries: list[dict],
                  alpha: float, title: str | None = None, validation: dict | None = None,
                  figure_notes=None) -> dict:
    """Everything the templates show (no file paths or secrets beyond redacted run.json)."""
    run_name = run.config.get("name") or run.run_dir.resolve().name
    return {
        "title": title or f"biaskit report: {run_name}",
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "models": run.models,
        "baseline": run.baseline,
        "suite_name": run.suite.name if run.suite is not None else run.config.get("suite_name", ""),
        "alpha": alpha,
        "figures": figures,
        "figures_by_name": {f.name: f for f in figures},
        "headline": headline_table(run),
        "correction": correction_note(run),
        "figure_notes": list(figure_notes or []),
        "significant": significant_table(run, alpha=alpha),
        "ahistorical": ahistorical_table(run),
        "unchecked": unchecked_table(run),
        "rates": rates_table(run),
        "galleries": galleries,
        "counts": frame_table(methods.counts(run)),
        "taggers": frame_table(methods.taggers(run.observations)),
        "validation": validation,  # biaskit.report.validation.validation_section
        "settings": table(["setting", "value"], methods.settings(run.config)),
        "versions": table(["package", "version"], methods.package_versions().items()),
        "caveats": methods.CAVEATS,
    }


def _environment(*, markdown: bool):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=not markdown,  # HTML: every prompt text and label is escaped
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = markdown_cell
    env.filters["data_uri"] = lambda png: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return env


_MD_SPECIAL = re.compile(r"([\\`*<>|])")
# "](" and "][" make links (no reference definitions are written, so a lone "[x]" stays text)
_MD_LINK = re.compile(r"\](?=[(\[])")


def markdown_cell(text) -> str:
    """Text safe inside a Markdown table cell: specials backslash-escaped, no links, one line."""
    return _MD_LINK.sub(r"\\]", _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split())))


def render_html(context: dict) -> str:
    return _environment(markdown=False).get_template("report.html.j2").render(**context)


def render_markdown(context: dict, *, figure_dir: str) -> str:
    return (_environment(markdown=True).get_template("report.md.j2")
            .render(figure_dir=figure_dir, **context))
