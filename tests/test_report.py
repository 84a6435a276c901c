"""The report shows the run's numbers, embeds everything, escapes text and leaks no secret."""

import base64
import io
import json
from html.parser import HTMLParser

import pandas as pd
import pytest
from PIL import Image

from biaskit.report import load_run, render_figures, write_report
from biaskit.report.render import markdown_cell
from report_support import EVIL_TEXT, SECRET, make_run


class ReportParser(HTMLParser):
    """Tables (by class) as lists of cell-text rows, and every <img> src."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.links = {}, [], []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag in ("link", "script"):
            self.links.append(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    made = make_run(run_dir)
    paths = write_report(run_dir, thumbnails=2)
    html = paths["html"].read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(html)
    return {"run_dir": run_dir, "paths": paths, "html": html, "parsed": parser,
            "markdown": paths["markdown"].read_text(encoding="utf-8"), **made}


def test_writes_html_markdown_and_figure_files(report):
    paths = report["paths"]
    assert paths["html"] == report["run_dir"] / "report.html"
    assert paths["markdown"] == report["run_dir"] / "report.md"
    names = sorted(p.stem for p in paths["figures"].glob("*.png"))
    assert names == ["ahistorical", "entropy_gender_cand", "entropy_skin_tone_cand", "rates",
                     "shares_gender", "shares_skin_tone", "summary"]
    for name in names:  # each figure file is referenced by the markdown
        assert f"](figures/{name}.png)" in report["markdown"]


def test_html_is_self_contained(report):
    parsed = report["parsed"]
    assert parsed.links == []  # no stylesheet link, no script
    assert all(src.startswith("data:image/") for src in parsed.images)
    assert "http://" not in report["html"].replace("http://127.0.0.1:1", "")
    # 7 figures + 2 thumbnails x 2 models x 3 prompts.
    pngs = [s for s in parsed.images if s.startswith("data:image/png")]
    jpegs = [s for s in parsed.images if s.startswith("data:image/jpeg")]
    assert len(pngs) == 7 and len(jpegs) == 12
    for src in pngs[:1] + jpegs[:1]:
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert image.width > 0
    thumb = Image.open(io.BytesIO(base64.b64decode(jpegs[0].split(",", 1)[1])))
    assert thumb.format == "JPEG" and max(thumb.size) == 160


def test_embedded_summary_figure_is_the_file(report):
    src = report["parsed"].images[0]
    assert base64.b64decode(src.split(",", 1)[1]) == (report["paths"]["figures"] / "summary.png").read_bytes()


def test_headline_table_has_values_and_intervals(report):
    rows = report["parsed"].tables["headline"]
    assert rows[0] == ["prompts", "attribute", "HOF · base (baseline)", "mean entropy · base (baseline)",
                       "HOF · cand", "mean entropy · cand"]
    assert rows[1] == ["individual", "gender", "0.00 [0.00, 0.00]", "0.05 [0.00, 0.10]",
                       "0.45 [0.30, 0.60]", "0.62 [0.50, 0.70]"]
    assert rows[2][1] == "skin_tone" and rows[2][4] == "0.20 [0.10, 0.30]"
    assert len(rows) == 3  # ahistorical rows are not diversity headlines
    assert "| individual | gender | 0.00 [0.00, 0.00] | 0.05 [0.00, 0.10] | 0.45 [0.30, 0.60] |" in report["markdown"]


def test_significant_differences_one_row_per_prompt_below_alpha(report):
    rows = report["parsed"].tables["significant"]
    # workers (p = 0.02 but q = 0.3) and the all:individual aggregate are left out; smallest q
    # first, though founders has the smaller p.
    assert [(r[0], r[2], r[3]) for r in rows[1:]] == [("doctor", "gender", "cand"),
                                                     ("founders", "skin_tone", "cand")]
    doctor, founders = rows[1], rows[2]
    assert doctor[4:] == ["0.62", "0.00", "+0.62 [0.40, 0.80]", "Male -0.50 [-0.80, -0.20]",
                          "0.0010", "0.0030"]
    # No entropy row for founders: dashes, and the larger of the two share moves.
    assert founders[4:8] == ["–", "–", "–", "MST3 -0.10 [-0.20, 0.00]"]
    assert founders[8:] == ["0.0005", "0.0490"]


def test_ahistorical_table(report):
    rows = report["parsed"].tables["ahistorical"]
    assert rows[1] == ["founders", "the US founding fathers", "gender", "Male", "100.0% of 4", "75.0% of 4"]


def test_rates_table_shows_the_measured_rates(report):
    rows = {r[0]: r[1:] for r in report["parsed"].tables["rates"][1:]}
    assert report["parsed"].tables["rates"][0] == ["model", "unclear share", "no person share", "refusal rate",
                                                   "error rate"]
    assert rows["cand"] == ["5.0%", "0.0%", "12.5%", "12.5%"]
    assert rows["base"] == ["0.0%", "0.0%", "0.0%", "0.0%"]


def test_prompt_text_is_escaped_in_html_and_markdown(report):
    html, markdown = report["html"], report["markdown"]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; doctor | &amp; co" in html
    assert "<script>" not in markdown
    assert markdown_cell(EVIL_TEXT) in markdown
    assert markdown_cell("a | b\nc") == "a \\| b c"
    assert markdown_cell("[click](http://x) *now* [a][b]") == "[click\\](http://x) \\*now\\* [a\\][b]"
    assert markdown_cell("0.45 [0.30, 0.60]") == "0.45 [0.30, 0.60]"  # an interval is not a link


def test_no_secret_in_any_output(report):
    for path in [report["paths"]["html"], report["paths"]["markdown"],
                 *report["paths"]["figures"].iterdir()]:
        assert SECRET.encode() not in path.read_bytes(), path
    assert "[redacted]" in report["html"]


def test_gallery_labels_and_notes(report):
    html = report["html"]
    assert "1: Male, MST3" in html  # base doctor: one person
    assert "3: Male, MST3" in html  # a workers image: three numbered persons
    assert "2: Female, MST3" in html  # cand workers sample 0, person 1
    assert html.count('class="prompt-gallery"') == 3


def test_methods_section(report):
    counts = {r[0]: r[1:] for r in report["parsed"].tables["counts"][1:]}
    assert counts["cand"] == ["3", "8", "6", "1", "1", "1", "10"]
    assert counts["base"] == ["3", "6", "6", "0", "0", "0", "10"]
    taggers = report["parsed"].tables["taggers"]
    assert ["skin_tone", "colorimetry", "20", "1"] in taggers
    settings = dict(tuple(r) for r in report["parsed"].tables["settings"][1:])
    assert settings["seed"] == "7" and settings["openai.api_key"] == "[redacted]"
    versions = dict(tuple(r) for r in report["parsed"].tables["versions"][1:])
    assert versions["pandas"] == pd.__version__
    assert "perceived" in html_text(report["html"]).lower()


def html_text(html):
    return html.replace("\n", " ")


def test_unreadable_image_costs_one_thumbnail(tmp_path):
    made = make_run(tmp_path)
    first = made["images"].iloc[0]
    (tmp_path / first["path"]).write_bytes(b"not an image")
    paths = write_report(tmp_path, thumbnails=1)
    html = paths["html"].read_text(encoding="utf-8")
    assert "image unreadable" in html
    parser = ReportParser()
    parser.feed(html)
    assert len([s for s in parser.images if s.startswith("data:image/jpeg")]) == 5


def test_missing_metrics_and_unknown_baseline_are_clear_errors(tmp_path):
    make_run(tmp_path)
    with pytest.raises(ValueError, match="baseline 'nobody'"):
        load_run(tmp_path, baseline="nobody")
    for name in ("overall", "rates"):
        (tmp_path / "metrics" / f"{name}.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"'overall', 'rates'.*biaskit measure"):
        write_report(tmp_path)


def test_baseline_from_run_json_comes_first_when_nothing_was_measured_against(tmp_path):
    make_run(tmp_path)
    (tmp_path / "metrics" / "comparison.parquet").unlink()
    config = json.loads((tmp_path / "run.json").read_text())
    config["baseline"] = "cand"
    (tmp_path / "run.json").write_text(json.dumps(config))
    run = load_run(tmp_path)
    assert run.models == ["cand", "base"] and run.candidates == ["base"]


def test_baseline_is_the_one_measure_compared_against(tmp_path):
    # Issue 13 item 14: `measure --baseline X` then `report RUN` (or write_report(run)) lost X.
    make_run(tmp_path)
    config = json.loads((tmp_path / "run.json").read_text())
    del config["baseline"]  # as after `biaskit generate` + `tag` + `measure --baseline base`
    (tmp_path / "run.json").write_text(json.dumps(config))
    run = load_run(tmp_path)
    assert run.baseline == "base" and run.candidates == ["cand"]
    names = [figure.name for figure in render_figures(run)]
    assert "entropy_gender_cand" in names and "entropy_skin_tone_cand" in names
    config["baseline"] = "cand"  # a stale run.json does not relabel the measured comparison
    (tmp_path / "run.json").write_text(json.dumps(config))
    assert load_run(tmp_path).baseline == "base"
    with pytest.raises(ValueError, match=r"--baseline 'cand': the comparison in .*metrics was "
                                         r"measured against 'base'"):
        load_run(tmp_path, baseline="cand")


def test_validation_tables_in_the_run_are_shown(tmp_path):
    from biaskit.tables import write_table

    make_run(tmp_path)
    confusion = pd.DataFrame({"attribute": ["gender"] * 3, "true": ["Male", "Female", "Female"],
                              "predicted": ["Male", "Female", "unclear"], "count": [40, 35, 5]})
    summary = pd.DataFrame({"attribute": ["gender"], "n": [80], "accuracy": [0.9375],
                            "ci_low": [0.86], "ci_high": [0.97], "unclear_rate": [0.0625]})
    write_table(confusion, tmp_path / "validation" / "confusion.parquet")
    write_table(summary, tmp_path / "validation" / "summary.parquet")
    paths = write_report(tmp_path, thumbnails=0)
    assert (paths["figures"] / "confusion_gender.png").exists()
    parser = ReportParser()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    # attribute, model, tagger, faces, accuracy [CI], tagger unclear, effective n (absent here)
    assert parser.tables["validation"][1] == ["gender", "all", "–", "80", "0.938 [0.860, 0.970]", "6.2%",
                                              "–"]
    assert len(parser.images) == 8  # the 7 figures and the confusion matrix
    markdown = paths["markdown"].read_text()
    assert "| gender | all | – | 80 | 0.938 [0.860, 0.970] | 6.2% | – |" in markdown
    assert "not corrected for tagger error" in markdown


def test_boxes_stored_as_text_are_drawn_and_unreadable_ones_skipped(tmp_path):
    from biaskit.report.gallery import _boxes

    make_run(tmp_path)
    people = pd.read_parquet(tmp_path / "people.parquet")
    text = people.astype({c: str for c in ("x0", "y0", "x1", "y1")})
    text.loc[0, "x0"] = "n/a"
    text.to_parquet(tmp_path / "people.parquet")
    boxes = _boxes(load_run(tmp_path))
    assert sum(len(v) for v in boxes.values()) == len(people) - 1
    second = people.iloc[1]
    assert (int(second["person"]), float(second["x0"]), float(second["y0"]), float(second["x1"]),
            float(second["y1"])) in boxes[second["sha256"]]
    assert write_report(tmp_path, thumbnails=1)["html"].exists()


def test_a_prompt_named_all_is_a_prompt_and_kind_aggregates_are_not():
    from biaskit.report.data import significant_differences

    comparison = pd.DataFrame(
        [(pid, "gender", "entropy", "cand", "base", 0.9, 0.1, 0.8, 0.5, 1.0, 0.001, 0.002)
         for pid in ("all", "all:individual", "all:ambiguous", "doctor")],
        columns=["prompt_id", "attribute", "metric", "model", "baseline", "value", "baseline_value",
                 "delta", "ci_low", "ci_high", "p_value", "q_value"])
    assert list(significant_differences(comparison)["prompt_id"]) == ["all", "doctor"]


def test_expectations_that_could_not_be_checked_are_listed_with_why(tmp_path):
    # Issue 13 item 18: an expectation on an attribute nobody tagged (race, offline) vanished.
    import yaml

    from report_support import SUITE

    make_run(tmp_path)
    suite = json.loads(json.dumps(SUITE))
    suite["prompts"][2]["expected"] = {"gender": "Male", "race": "White"}
    suite["prompts"].append({"id": "popes", "text": "a medieval pope", "kind": "ahistorical",
                             "expected": {"gender": "Male"}})
    (tmp_path / "suite2.yaml").write_text(yaml.safe_dump(suite))
    paths = write_report(tmp_path, suite=tmp_path / "suite2.yaml", thumbnails=0)
    markdown = paths["markdown"].read_text()
    section = markdown.split("## Ahistorical")[1].split("\n## ")[0]
    assert "Expectations that could not be checked" in section
    assert "| founders | race | White | 'race' was not tagged in this run" in section
    assert "| popes | gender | Male | the prompt has no measured image |" in section
    assert "| founders | gender | Male |" not in section.split("could not be checked")[1]
    html = paths["html"].read_text()
    assert "&#39;race&#39; was not tagged in this run" in html or "'race' was not tagged" in html


def test_no_unchecked_list_when_every_expectation_is_measured(tmp_path):
    make_run(tmp_path)
    markdown = write_report(tmp_path, thumbnails=0)["markdown"].read_text()
    assert "could not be checked" not in markdown


def test_model_names_with_dollar_signs_keep_every_figure(tmp_path):
    # Issue 13 item 10: a model named with "$" (broken math text) dropped all the figures.
    from biaskit.tables import write_table

    make_run(tmp_path)
    expected = [figure.name for figure in render_figures(load_run(tmp_path))]
    hostile = "c$^$"
    for path in [*(tmp_path / "metrics").glob("*.parquet"), tmp_path / "images.parquet",
                 tmp_path / "observations.parquet", tmp_path / "perception_errors.parquet"]:
        table = pd.read_parquet(path)
        write_table(table.replace({"model": {"cand": hostile}}), path)
    figures = render_figures(load_run(tmp_path))
    assert len(figures) == len(expected) == 7
    assert all(figure.png.startswith(b"\x89PNG") for figure in figures)


def test_without_the_suite_the_report_says_the_list_cannot_be_made(tmp_path):
    info = make_run(tmp_path)
    info["suite_path"].unlink()  # run.json names it, but it is gone
    markdown = write_report(tmp_path, thumbnails=0)["markdown"].read_text()
    assert "the prompt suite was not found (run.json's path, or --prompts SUITE)" in markdown


def test_a_confusion_table_without_its_columns_is_named(tmp_path):
    make_run(tmp_path)
    with pytest.raises(ValueError, match=r"images\.parquet: missing column\(s\) \['attribute', "
                                         r"'true', 'predicted', 'count'\]"):
        load_run(tmp_path, confusion=tmp_path / "images.parquet")


def test_headline_says_it_is_not_corrected_and_how_sensitive_hof_is(report):
    assert "Not corrected for tagger error" in report["html"]
    assert "Not corrected for tagger error" in report["markdown"]
    rows = report["parsed"].tables["hof-sensitivity"]
    # cand's doctor: 1 Male, 1 Female -- heterogeneous through a single face; base's: 2 Male.
    by_key = {tuple(r[:3]): r[3:] for r in rows[1:]}
    assert by_key["individual", "gender", "cand"] == ["1", "1", "1", "1.0", "1.00", "0.00"]
    assert by_key["individual", "gender", "base"] == ["1", "0", "0", "–", "0.00", "0.00"]
    assert by_key["ambiguous", "gender", "cand"] == by_key["individual", "gender", "cand"]


def test_corrected_headline_beside_the_observed_one(tmp_path):
    from biaskit.tables import write_table

    make_run(tmp_path)
    corrected = pd.DataFrame(
        [(m, "gender", "individual", 1, hof, 0.1, 0.0, 0.4, 0.5, 0.12, 0.0, 0.3, 500, 0.9)
         for m, hof in (("base", 0.0), ("cand", 0.45))],
        columns=["model", "attribute", "kind", "n_prompts", "observed_hof", "hof", "hof_ci_low",
                 "hof_ci_high", "observed_mean_entropy", "mean_entropy", "mean_entropy_ci_low",
                 "mean_entropy_ci_high", "n_validation", "validation_accuracy"])
    write_table(corrected, tmp_path / "metrics" / "corrected_overall.parquet")
    paths = write_report(tmp_path, thumbnails=0)
    parser = ReportParser()
    html = paths["html"].read_text(encoding="utf-8")
    parser.feed(html)
    rows = parser.tables["headline"]
    assert rows[0][-2:] == ["HOF corrected · cand", "mean entropy corrected · cand"]
    assert rows[1][:2] == ["individual", "gender"]
    assert rows[1][-4:] == ["0.45 [0.30, 0.60]", "0.62 [0.50, 0.70]", "0.10 [0.00, 0.40]",
                            "0.12 [0.00, 0.30]"]
    assert rows[2][1] == "skin_tone" and rows[2][-2:] == ["–", "–"]  # no correction for it
    assert parser.tables["validation-set"][1] == ["gender", "500", "90.0%"]
    assert "Not corrected" not in html


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_a_note(tmp_path):
    make_run(tmp_path)
    summary = pd.read_parquet(tmp_path / "metrics" / "summary.parquet")
    summary["expected"] = None  # no ahistorical rows: that figure cannot be drawn
    summary.to_parquet(tmp_path / "metrics" / "summary.parquet")
    with pytest.warns(UserWarning, match="figure 'ahistorical' could not be drawn"):
        paths = write_report(tmp_path, thumbnails=0)
    assert "Figure <code>ahistorical</code> could not be drawn" in paths["html"].read_text()
    assert "Figure `ahistorical` could not be drawn" in paths["markdown"].read_text()



def test_a_face_the_policy_does_not_count_is_drawn_grey_unnumbered_and_noted(tmp_path):
    import numpy as np
    from biaskit.report.gallery import BOX_COLOR, UNCOUNTED_COLOR, galleries, thumbnail_uri

    make_run(tmp_path)
    observations = pd.read_parquet(tmp_path / "observations.parquet")
    # as if the face policy had left person 2 of every "workers" image out (a background face)
    dropped = (observations["prompt_id"] == "workers") & (observations["person"] == 2)
    observations[~dropped].to_parquet(tmp_path / "observations.parquet")
    (workers,) = [g for g in galleries(load_run(tmp_path), per_prompt=1) if g["prompt_id"] == "workers"]
    thumb = workers["models"][0]["thumbnails"][0]
    assert thumb.note == "1 face(s) not counted (face policy)"
    assert [line.split(":")[0] for line in thumb.people] == ["1", "2"]

    blank = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(blank, format="PNG")
    boxes = [(0, 10, 10, 90, 90), (1, 110, 10, 190, 90)]
    uri = thumbnail_uri(io.BytesIO(blank.getvalue()), boxes=boxes, size=200, counted={0})
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))), dtype=int)
    assert np.abs(pixels[50, 10] - BOX_COLOR).max() < 60  # counted: the yellow box (JPEG blurs edges)
    assert np.abs(pixels[50, 110] - UNCOUNTED_COLOR).max() < 60  # not counted: grey
    assert np.abs(pixels[14, 114] - 255).max() < 40  # and no number drawn inside it
    numbered = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumbnail_uri(
        io.BytesIO(blank.getvalue()), boxes=boxes, size=200).split(",", 1)[1]))), dtype=int)
    assert np.abs(numbered[50, 110] - BOX_COLOR).max() < 60  # counted=None: every face counts
