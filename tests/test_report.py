"""The report shows the run's numbers, embeds everything, escapes text and leaks no secret."""

import base64
import io
import json
from html.parser import HTMLParser

import pandas as pd
import pytest
from PIL import Image

from biaskit.report import load_run, write_report
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


def test_baseline_from_run_json_comes_first(tmp_path):
    make_run(tmp_path)
    config = json.loads((tmp_path / "run.json").read_text())
    config["baseline"] = "cand"
    (tmp_path / "run.json").write_text(json.dumps(config))
    run = load_run(tmp_path)
    assert run.models == ["cand", "base"] and run.candidates == ["base"]


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
    assert parser.tables["validation"][1] == ["gender", "80", "0.938", "0.86", "0.97", "0.062"]
    assert len(parser.images) == 8  # the 7 figures and the confusion matrix
    assert "| gender | 80 | 0.938 | 0.86 | 0.97 | 0.062 |" in paths["markdown"].read_text()


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
