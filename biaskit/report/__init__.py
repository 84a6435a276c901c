"""The release report: one self-contained HTML file and a Markdown summary per run.

:func:`write_report` reads a measured run directory (``RUN/metrics/`` plus the
images, people and observations tables) and writes

* ``RUN/report.html`` -- headline table, significant per-prompt differences,
  ahistorical results, figures (embedded PNG), per-prompt thumbnail galleries
  with each person's labels (embedded JPEG) and a methods section; it needs no
  other file and no network;
* ``RUN/report.md`` -- the same tables, linking the figures written to
  ``RUN/figures/*.png``.

Examples
--------
>>> from biaskit.report import write_report                 # doctest: +SKIP
>>> paths = write_report("runs/demo")                        # doctest: +SKIP
>>> paths["html"]                                            # doctest: +SKIP
PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

from pathlib import Path

from biaskit.report.data import DEFAULT_ALPHA, RunData, load_run
from biaskit.report.figures import RenderedFigure, render_figures
from biaskit.report.gallery import galleries
from biaskit.report.render import build_context, render_html, render_markdown
from biaskit.paths import resolve_inside
from biaskit.report.validation import validation_section
from biaskit.tables import write_atomic

__all__ = ["write_report", "load_run", "render_figures", "RunData",
           "RenderedFigure", "REPORT_HTML", "REPORT_MARKDOWN", "FIGURES_DIR"]

REPORT_HTML = "report.html"
REPORT_MARKDOWN = "report.md"
FIGURES_DIR = "figures"


def write_report(run_dir: str | Path, *, suite=None, baseline: str | None = None,
                 confusion=None, alpha: float = DEFAULT_ALPHA, thumbnails: int = 8,
                 title: str | None = None) -> dict[str, Path]:
    """Write ``report.html`` and ``report.md`` (and ``figures/``) into a measured run.

    Parameters
    ----------
    run_dir : path
        The run directory; its ``metrics/`` tables must exist.
    suite : Suite or path, optional
        The prompt suite, for prompt texts (default: the one run.json names).
    baseline : str, optional
        The baseline model (default: the one ``metrics/comparison`` was measured
        against -- ``measure --baseline`` -- else ``baseline`` in run.json).
    confusion : DataFrame or path, optional
        A tidy validation confusion table (attribute, true, predicted, count)
        to draw; default ``RUN/validation/confusion.parquet`` when it exists.
    alpha : float
        q-value threshold of the significant-differences table.
    thumbnails : int
        Thumbnails per prompt and model in the galleries (0: no galleries).
    title : str, optional

    Returns
    -------
    dict
        ``{"html": path, "markdown": path, "figures": directory}``.
    """
    run = load_run(run_dir, suite=suite, baseline=baseline, confusion=confusion)
    notes: list = []
    figures = render_figures(run, notes=notes)
    context = build_context(run, figures=figures, galleries=galleries(run, per_prompt=thumbnails),
                            alpha=alpha, title=title, figure_notes=notes,
                            validation=validation_section(run.run_dir))
    figure_dir = run.run_dir / FIGURES_DIR
    figure_dir.mkdir(exist_ok=True)
    for figure in figures:  # names are slugs (figures.figure_name); checked again here
        _write_atomic(resolve_inside(figure_dir, f"{figure.name}.png", root=figure_dir), figure.png)
    html = _write_atomic(run.run_dir / REPORT_HTML, render_html(context).encode("utf-8"))
    markdown = _write_atomic(run.run_dir / REPORT_MARKDOWN,
                             render_markdown(context, figure_dir=FIGURES_DIR).encode("utf-8"))
    return {"html": html, "markdown": markdown, "figures": figure_dir}


def _write_atomic(path: Path, payload: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(payload))
