"""Render the release figures of a run to PNG bytes, for embedding and for files."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from biaskit import plots
from biaskit.paths import slug
from biaskit.report.data import RunData, ahistorical

DPI = 110
FIGURE_LEFT_OUT = "report: figure {name!r} could not be drawn and is left out: {problem}"


@dataclass(frozen=True)
class RenderedFigure:
    """One figure of the report: a file-safe ``name``, a title, a caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # constrained layout already fits legends
    return buffer.getvalue()


def _panel(draw, *, figsize) -> bytes:
    """Draw one Axes with ``draw(ax)`` on a pyplot-free figure (no global state, no leaks)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    draw(figure.subplots())
    return _png(figure)


def _attributes(run: RunData) -> list[str]:
    return list(dict.fromkeys(run.summary["attribute"]))


def _panels(run: RunData):
    """(name, title, caption, figsize, draw(ax)) for every one-Axes figure of the run."""
    models = run.models
    for attribute in _attributes(run):
        rows = run.distribution[run.distribution["attribute"] == attribute]
        size = plots.shares_figsize(n_bars=rows["prompt_id"].nunique() * len(models),
                                    n_labels=len(plots.attribute_labels(attribute, rows["label"])))
        yield (figure_name("shares", attribute), f"{attribute}: category shares per prompt",
               "Share of each category among persons with a known label; the baseline "
               "bar comes first in each prompt's group.",
               size,
               lambda ax, attribute=attribute: plots.category_shares(
                   run.distribution, attribute=attribute, models=models, ax=ax))
        for model in run.candidates if run.baseline else []:
            yield (figure_name("entropy", attribute, model),
                   f"{attribute}: entropy, {model} vs {run.baseline}",
                   "Normalized entropy per ambiguous prompt with 95% intervals; points above "
                   "the diagonal are prompts where the model is more diverse than the baseline.",
                   (5.5, 5.5),
                   lambda ax, attribute=attribute, model=model: plots.entropy_scatter(
                       run.summary, attribute=attribute, model=model, baseline=run.baseline,
                       ax=ax))
    n_expected = len(ahistorical(run.summary))
    yield ("ahistorical", "Ahistorical and unrealistic prompts",
           "Share of known-labelled persons showing the label the prompt implies (ideal 1).",
           (8.0, 1.0 + 0.25 * max(1, n_expected)),
           lambda ax: plots.ahistorical_match(run.summary, models=models, ax=ax))
    yield ("rates", "Unclear, no-person and refusal rates",
           "Unclear: person x attribute labels the tagger abstained on. No person: generated "
           "images where no face was found. Refused / error: requested samples.",
           (6.5, 3.6), lambda ax: plots.rate_bars(run.rates, models=models, ax=ax))
    if not run.confusion.empty:
        for attribute in dict.fromkeys(run.confusion["attribute"]):
            yield (figure_name("confusion", attribute), f"Validation: {attribute}",
                   "The tagger's confusion matrix on labelled faces (rows: true label).",
                   (6.0, 4.5), lambda ax, attribute=attribute: plots.confusion_matrix(
                       run.confusion, attribute=attribute, ax=ax))


def figure_name(kind: str, *parts: str) -> str:
    """A figure's file name (without ``.png``): its kind and the slug of each user string.

    Model names and attributes come from the user's tables; :func:`biaskit.paths.slug`
    keeps ``evil/../../x`` or ``stabilityai/sdxl-turbo`` inside ``figures/``.
    """
    return "_".join([kind, *(slug(part) for part in parts)])


SUMMARY_TITLE = "Diversity per attribute"
SUMMARY_CAPTION = ("Heterogeneous-output frequency and mean normalized entropy per attribute, "
                   "with 95% intervals (see Methods); higher is more diverse.")


def render_figures(run: RunData, *, notes: list | None = None) -> list[RenderedFigure]:
    """Every figure the run's tables support, as PNG.

    A figure that cannot be drawn is left out with a warning (stderr) and, when
    ``notes`` is given, a ``(name, reason)`` entry in it for the report to show.
    """
    rendered = []
    try:
        rendered.append(RenderedFigure("summary", SUMMARY_TITLE, SUMMARY_CAPTION,
                                       _png(plots.summary_figure(run.overall, models=run.models))))
    except ValueError as exc:
        _left_out("summary", exc, notes)
    for name, title, caption, figsize, draw in _panels(run):
        try:
            png = _panel(draw, figsize=figsize)
        except ValueError as exc:  # e.g. no ahistorical prompts in this suite
            _left_out(name, exc, notes)
            continue
        rendered.append(RenderedFigure(name=name, title=title, caption=caption, png=png))
    return rendered


def _left_out(name: str, problem: Exception, notes: list | None) -> None:
    warnings.warn(FIGURE_LEFT_OUT.format(name=name, problem=problem), stacklevel=3)
    if notes is not None:
        notes.append((name, str(problem)))
