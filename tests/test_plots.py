"""The figures draw what the tables say: bar sizes, colours, whiskers, cells."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from biaskit import plots
from biaskit.taxonomy import MST_SWATCHES, UNCLEAR


def new_ax():
    return Figure().subplots()


def bar_containers(ax):
    from matplotlib.container import BarContainer

    return [c for c in ax.containers if isinstance(c, BarContainer)]


@pytest.fixture
def distribution():
    rows = [
        # model, prompt, attribute, label, count
        ("base", "doctor", "skin_tone", "MST2", 6), ("base", "doctor", "skin_tone", "MST7", 2),
        ("cand", "doctor", "skin_tone", "MST2", 3), ("cand", "doctor", "skin_tone", "MST5", 3),
        ("cand", "doctor", "skin_tone", "MST9", 2), ("cand", "doctor", "skin_tone", UNCLEAR, 4),
        ("base", "nurse", "skin_tone", "MST3", 5),
        ("cand", "nurse", "skin_tone", "MST3", 1), ("cand", "nurse", "skin_tone", "MST10", 4),
        ("base", "doctor", "gender", "Male", 7), ("base", "doctor", "gender", "Female", 1),
    ]
    frame = pd.DataFrame(rows, columns=["model", "prompt_id", "attribute", "label", "count"])
    known = frame[frame["label"] != UNCLEAR]
    totals = known.groupby(["model", "prompt_id", "attribute"])["count"].transform("sum")
    frame["share"] = (known["count"] / totals).reindex(frame.index)
    frame["ci_low"] = frame["share"] - 0.1
    frame["ci_high"] = frame["share"] + 0.1
    return frame


def test_category_shares_widths_are_shares_and_colours_are_mst_swatches(distribution):
    ax = plots.category_shares(distribution, attribute="skin_tone", models=["base", "cand"],
                               ax=new_ax())
    containers = bar_containers(ax)
    # One container per MST tone, each with one bar per (prompt, model).
    assert [c.get_label() for c in containers] == list(MST_SWATCHES)
    assert all(len(c.patches) == 4 for c in containers)
    for container in containers:
        colour = to_hex(container.patches[0].get_facecolor())
        assert colour == MST_SWATCHES[container.get_label()]
    by_label = {c.get_label(): [p.get_width() for p in c.patches] for c in containers}
    # Bar order: doctor/base, doctor/cand, nurse/base, nurse/cand.
    assert by_label["MST2"] == pytest.approx([6 / 8, 3 / 8, 0, 0])
    assert by_label["MST5"] == pytest.approx([0, 3 / 8, 0, 0])
    assert by_label["MST10"] == pytest.approx([0, 0, 0, 4 / 5])
    # Stacked: each bar starts where the previous tone ended, and every bar sums to 1.
    mst9 = containers[list(MST_SWATCHES).index("MST9")].patches[1]
    assert mst9.get_x() == pytest.approx(3 / 8 + 3 / 8)
    total = np.sum([[p.get_width() for p in c.patches] for c in containers], axis=0)
    assert total == pytest.approx([1, 1, 1, 1])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["doctor · base", "doctor · cand", "nurse · base", "nurse · cand"]


def test_category_shares_model_order_and_prompt_subset(distribution):
    ax = plots.category_shares(distribution, attribute="skin_tone", prompts=["nurse"],
                               models=["cand", "base"], ax=new_ax())
    mst3 = next(c for c in bar_containers(ax) if c.get_label() == "MST3")
    assert [p.get_width() for p in mst3.patches] == pytest.approx([1 / 5, 1.0])


def test_category_shares_other_attribute_uses_distinct_colours(distribution):
    ax = plots.category_shares(distribution, attribute="gender", ax=new_ax())
    containers = bar_containers(ax)
    assert [c.get_label() for c in containers] == ["Male", "Female"]
    colours = {to_hex(c.patches[0].get_facecolor()) for c in containers}
    assert len(colours) == 2
    assert [c.patches[0].get_width() for c in containers] == pytest.approx([7 / 8, 1 / 8])


def test_category_shares_unknown_attribute_names_it(distribution):
    with pytest.raises(ValueError, match="race"):
        plots.category_shares(distribution, attribute="race", ax=new_ax())


def test_category_shares_missing_column_is_named(distribution):
    with pytest.raises(ValueError, match="share"):
        plots.category_shares(distribution.drop(columns="share"), attribute="gender")


@pytest.fixture
def summary():
    return pd.DataFrame({
        "model": ["base", "cand"] * 3 + ["base", "cand"],
        "prompt_id": ["doctor", "doctor", "nurse", "nurse", "chef", "chef", "founders", "founders"],
        "kind": ["individual"] * 6 + ["ahistorical"] * 2,
        "attribute": ["gender"] * 8,
        "entropy": [0.2, 0.7, 0.5, 0.4, 0.1, np.nan, 0.0, 0.3],
        "entropy_ci_low": [0.1, 0.5, 0.3, 0.35, 0.0, np.nan, 0.0, 0.1],
        "entropy_ci_high": [0.4, 0.9, 0.55, 0.6, 0.3, np.nan, 0.0, 0.5],
        "expected": [None] * 6 + ["Male", "Male"],
        "match_rate": [np.nan] * 6 + [1.0, 0.75],
    })


def test_entropy_scatter_points_and_whiskers_are_the_intervals(summary):
    ax = plots.entropy_scatter(summary, attribute="gender", model="cand", baseline="base",
                               ax=new_ax())
    container = ax.containers[0]
    line, _, (xbars, ybars) = container.lines[0], None, container.lines[2]
    # chef has no entropy for cand and founders is ahistorical: two points remain.
    assert line.get_xdata() == pytest.approx([0.2, 0.5])
    assert line.get_ydata() == pytest.approx([0.7, 0.4])
    x_ends = [tuple(seg[:, 0]) for seg in xbars.get_segments()]
    y_ends = [tuple(seg[:, 1]) for seg in ybars.get_segments()]
    assert x_ends == [pytest.approx((0.1, 0.4)), pytest.approx((0.3, 0.55))]
    assert y_ends == [pytest.approx((0.5, 0.9)), pytest.approx((0.35, 0.6))]
    diagonal = ax.get_lines()[-1]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    assert {t.get_text() for t in ax.texts} == {"doctor", "nurse"}


def test_entropy_scatter_points_at_one_place_share_a_label(summary):
    same = summary.assign(entropy=0.5, entropy_ci_low=0.4, entropy_ci_high=0.6)
    ax = plots.entropy_scatter(same, attribute="gender", model="cand", baseline="base", ax=new_ax())
    assert [t.get_text() for t in ax.texts] == ["doctor, nurse, chef"]


def test_entropy_scatter_all_kinds_and_missing_model(summary):
    ax = plots.entropy_scatter(summary, attribute="gender", model="cand", baseline="base",
                               kinds=None, ax=new_ax())
    assert len(ax.containers[0].lines[0].get_xdata()) == 3
    with pytest.raises(ValueError, match="other"):
        plots.entropy_scatter(summary, attribute="gender", model="other", baseline="base")


@pytest.fixture
def overall():
    rows = []
    for model, shift in (("base", 0.0), ("cand", 0.2)):
        for attribute, hof in (("gender", 0.3), ("race", 0.5), ("skin_tone", 0.6)):
            for kind, k in (("individual", 0.0), ("group", 0.05)):
                value = hof + shift + k
                rows.append((model, attribute, kind, 10, value, value - 0.1, value + 0.05,
                             value - 0.2, value - 0.25, value - 0.15, np.nan))
    return pd.DataFrame(rows, columns=[
        "model", "attribute", "kind", "n_prompts", "hof", "hof_ci_low", "hof_ci_high",
        "mean_entropy", "mean_entropy_ci_low", "mean_entropy_ci_high", "match_rate"])


@pytest.mark.parametrize("metric", ["hof", "mean_entropy"])
def test_overall_bars_heights_and_whiskers(overall, metric):
    ax = plots.overall_bars(overall, metric=metric, kind="individual", ax=new_ax())
    bars = bar_containers(ax)
    assert [b.get_label() for b in bars] == ["base", "cand"]
    expected = overall[overall["kind"] == "individual"].set_index(["model", "attribute"])
    from matplotlib.container import ErrorbarContainer

    whiskers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    for bar, whisker in zip(bars, whiskers):
        model = bar.get_label()
        rows = expected.loc[model].loc[["gender", "race", "skin_tone"]]
        assert [p.get_height() for p in bar.patches] == pytest.approx(rows[metric].tolist())
        ends = [tuple(seg[:, 1]) for seg in whisker.lines[2][0].get_segments()]
        assert ends == [pytest.approx((lo, hi)) for lo, hi in
                        zip(rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"])]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["gender", "race", "skin_tone"]


def test_overall_bars_default_kind_and_bad_metric(overall):
    ax = plots.overall_bars(overall, ax=new_ax())  # "individual" preferred when no "all"
    assert bar_containers(ax)[0].patches[0].get_height() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="entropy_max"):
        plots.overall_bars(overall, metric="entropy_max")


def test_summary_figure_has_both_panels(overall):
    figure = plots.summary_figure(overall, kind="group")
    assert len(figure.axes) == 2
    hof, entropy = (bar_containers(ax)[1] for ax in figure.axes)
    assert hof.patches[1].get_height() == pytest.approx(0.5 + 0.2 + 0.05)
    assert entropy.patches[1].get_height() == pytest.approx(0.5 + 0.2 + 0.05 - 0.2)


def test_ahistorical_match_bars(summary):
    ax = plots.ahistorical_match(summary, ax=new_ax())
    bars = bar_containers(ax)
    assert [b.get_label() for b in bars] == ["base", "cand"]
    assert [b.patches[0].get_width() for b in bars] == pytest.approx([1.0, 0.75])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["founders (gender = Male)"]
    assert [t.get_text() for t in ax.texts] == ["100%", "75%"]  # values written on the bars


def test_ahistorical_match_without_expected_labels(summary):
    with pytest.raises(ValueError, match="expected label"):
        plots.ahistorical_match(summary[summary["kind"] != "ahistorical"])


def test_rate_bars_heights():
    rates = pd.DataFrame({"model": ["base", "cand"], "refusal_rate": [0.0, 0.1],
                          "error_rate": [0.05, 0.0], "unclear_share": [0.2, 0.3],
                          "no_person_share": [0.1, 0.15]})
    ax = plots.rate_bars(rates, models=["cand", "base"], ax=new_ax())
    bars = bar_containers(ax)
    assert [b.get_label() for b in bars] == ["cand", "base"]
    # Order of the rates: unclear, no person, refused, error.
    assert [p.get_height() for p in bars[0].patches] == pytest.approx([0.3, 0.15, 0.1, 0.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["unclear", "no person", "refused", "error"]
    assert [t.get_text() for t in ax.texts[:4]] == ["30%", "15%", "10%", "0%"]


def test_confusion_matrix_normalized_and_counts():
    confusion = pd.DataFrame({
        "attribute": ["gender"] * 5 + ["race"],
        "true": ["Male", "Male", "Female", "Female", "Male", "White"],
        "predicted": ["Male", "Female", "Female", "unclear", "unclear", "White"],
        "count": [6, 2, 9, 1, 2, 4],
    })
    ax = plots.confusion_matrix(confusion, attribute="gender", ax=new_ax())
    matrix = ax.images[0].get_array()
    assert np.asarray(matrix) == pytest.approx(np.array([[0.6, 0.2, 0.2], [0.0, 0.9, 0.1]]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Male", "Female", "unclear"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Male", "Female"]
    counts = plots.confusion_matrix(confusion, attribute="gender", normalize=False, ax=new_ax())
    assert [t.get_text() for t in counts.texts] == ["6", "2", "2", "0", "9", "1"]


def test_default_axes_are_created_headless(distribution):
    import matplotlib.pyplot as plt

    ax = plots.category_shares(distribution, attribute="gender")
    try:
        assert ax.figure is not None and len(bar_containers(ax)) == 2
    finally:
        plt.close(ax.figure)


# ---- issue 13: plain-text names, titles and legends that fit, summary_figure(fig=) -------------

HOSTILE = {"base": "m$^$", "cand": "$\\alpha^$ b", "doctor": "d$1$", "gender": "gender"}


def _rename(frame):
    return frame.replace({"model": HOSTILE, "prompt_id": HOSTILE})


def _all_texts(figure):
    return [t for t in figure.findobj(matplotlib.text.Text) if t.get_text()]


def test_names_with_dollar_signs_are_drawn_as_plain_text(distribution, summary, overall):
    # "$\alpha^$" is broken math text: before, drawing it raised and the report lost every figure.
    from matplotlib import cbook

    figures = []
    for draw in (
        lambda ax: plots.category_shares(_rename(distribution), attribute="skin_tone", ax=ax),
        lambda ax: plots.entropy_scatter(_rename(summary), attribute="gender", model=HOSTILE["cand"],
                                         baseline=HOSTILE["base"], ax=ax),
        lambda ax: plots.overall_bars(_rename(overall), ax=ax),
        lambda ax: plots.ahistorical_match(_rename(summary), ax=ax),
        lambda ax: plots.rate_bars(pd.DataFrame({"model": [HOSTILE["base"], HOSTILE["cand"]],
                                                 "refusal_rate": [0.1, 0.2]}), ax=ax),
    ):
        figure = Figure(layout="constrained")
        draw(figure.subplots())
        figure.savefig(__import__("io").BytesIO(), format="png")  # raised before the fix
        figures.append(figure)
    texts = [t.get_text() for figure in figures for t in _all_texts(figure)]
    assert not [t for t in texts if cbook.is_math_text(t)]
    # The escaped dollar is drawn as a dollar sign: the names appear as written.
    shown = {t.replace("\\$", "$") for t in texts}
    assert {"m$^$", "$\\alpha^$ b"} <= shown
    assert any("d$1$" in t for t in shown)


def _inside(figure, artist) -> bool:
    renderer = figure.canvas.get_renderer()
    box, frame = artist.get_window_extent(renderer), figure.bbox
    return (box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1
            and box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1)


@pytest.mark.parametrize("attribute", ["skin_tone", "gender"])
def test_entropy_title_is_not_clipped(summary, attribute):
    # The report draws it 5.5 in wide: the title ran past both edges of the figure.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = Figure(figsize=(5.5, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = plots.entropy_scatter(summary.assign(attribute=attribute), attribute=attribute,
                               model="cand", baseline="base", ax=figure.subplots())
    figure.draw_without_rendering()
    title = ax.title
    assert " ".join(title.get_text().split()) == (
        f"{attribute}: entropy per prompt (above the line = more diverse)")
    assert _inside(figure, title)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("figure_name", ["ahistorical", "overall", "rates"])
def test_legend_covers_no_bar(summary, overall, figure_name):
    # One ahistorical prompt at a 100 % match: the legend sat on the bars' ends.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    one_prompt = summary.assign(match_rate=[np.nan] * 6 + [1.0, 1.0])
    sizes = {"ahistorical": (8.0, 1.25), "overall": (4.5, 4.0), "rates": (6.5, 3.6)}
    figure = Figure(figsize=sizes[figure_name], layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    if figure_name == "ahistorical":
        plots.ahistorical_match(one_prompt, ax=ax)
    elif figure_name == "overall":
        plots.overall_bars(overall.assign(hof=0.95, hof_ci_low=0.9, hof_ci_high=1.0), ax=ax)
    else:
        plots.rate_bars(pd.DataFrame({"model": ["base", "cand"], "refusal_rate": [0.9, 0.95],
                                      "unclear_share": [0.9, 0.95]}), ax=ax)
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for c in bar_containers(ax) for p in c.patches]
    assert bars and not any(_overlaps(legend, bar) for bar in bars)
    assert _inside(figure, ax.get_legend())


def test_summary_figure_draws_on_the_figure_given(overall):
    figure = Figure(figsize=(12, 8))
    top, bottom = figure.subfigures(2, 1)
    returned = plots.summary_figure(overall, kind="individual", fig=bottom)
    assert returned is bottom and len(bottom.axes) == 2 and not top.axes
    assert [ax.get_ylabel().split("\n")[0] for ax in bottom.axes] == list(plots.OVERALL_METRICS.values())
    new = plots.summary_figure(overall, kind="individual")
    assert isinstance(new, Figure) and len(new.axes) == 2
