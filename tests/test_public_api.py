"""The README's Python quickstart, call by call, on a tiny run: each call's result is checked.

A callable model and a ``folder:`` baseline -> generate -> ``biaskit.tag_run`` ->
``biaskit.measure_run`` -> ``bias.overall`` / ``bias.compare`` -> ``plots.summary_figure``
-> ``biaskit.write_report``; plus ``biaskit.ImageStore(run).images()`` and the lazy exports.
"""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.container import BarContainer

import biaskit
from biaskit import demo, plots
from biaskit.generate import generate

SAMPLES = 2


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    suite = biaskit.load_suite("prompts/smoke.yaml")
    pregenerated = root / "pregenerated"
    for prompt in suite:  # the baseline's images: PATH/<prompt_id>/*.png
        (pregenerated / prompt.id).mkdir(parents=True)
        for i in range(SAMPLES):
            demo.skewed(prompt.text, 100 + i).save(pregenerated / prompt.id / f"{i}.png")
    run = root / "run"
    calls = []

    def mine(prompt, seed):
        calls.append((prompt, seed))
        return demo.mixed(prompt, seed)

    images = generate(suite, {"mine": mine, "baseline": f"folder:{pregenerated}"}, out=run,
                      samples=SAMPLES, seed=0, progress=False)
    observations = biaskit.tag_run(run, progress=False)
    bias = biaskit.measure_run(run, suite=suite, baseline="baseline", n_boot=50)
    return {"suite": suite, "run": run, "images": images, "calls": calls, "observations": observations,
            "bias": bias, "pregenerated": pregenerated}


def test_load_suite_returns_the_smoke_prompts(quickstart):
    suite = quickstart["suite"]
    assert isinstance(suite, biaskit.Suite) and suite.name and suite.samples == 3
    assert [p.kind for p in suite].count("ahistorical") == 1
    with pytest.raises(biaskit.SuiteError):
        biaskit.load_suite(quickstart["run"] / "run.json")  # JSON is YAML, but not a suite


def test_generate_with_a_callable_and_a_folder(quickstart):
    images, suite = quickstart["images"], quickstart["suite"]
    assert len(quickstart["calls"]) == len(suite) * SAMPLES  # the callable, once per sample
    assert (images["status"] == "ok").all() and len(images) == 2 * len(suite) * SAMPLES
    baseline = images[images["model"] == "baseline"]
    first = baseline[(baseline["prompt_id"] == suite.prompts[0].id) & (baseline["sample"] == 0)].iloc[0]
    source = quickstart["pregenerated"] / suite.prompts[0].id / "0.png"
    assert (quickstart["run"] / first["path"]).read_bytes() == source.read_bytes()  # sample i = i-th file
    pd.testing.assert_frame_equal(biaskit.ImageStore(quickstart["run"]).images(), images)


def test_tag_run_gives_one_row_per_person_and_attribute(quickstart):
    observations = quickstart["observations"]
    assert set(observations["attribute"]) == {"gender", "age", "age_group", "skin_tone"}
    per_person = observations.groupby(["model", "prompt_id", "sample", "person"])["attribute"].count()
    assert (per_person == 4).all()
    assert set(observations["model"]) == {"mine", "baseline"}
    on_disk = pd.read_parquet(quickstart["run"] / "observations.parquet")
    pd.testing.assert_frame_equal(on_disk, observations)


def test_measure_run_overall_and_compare(quickstart):
    bias = quickstart["bias"]
    overall = bias.overall
    gender = overall[(overall["attribute"] == "gender") & (overall["kind"] == "individual")]
    assert set(gender["model"]) == {"mine", "baseline"}
    assert ((gender["hof_ci_low"] <= gender["hof"]) & (gender["hof"] <= gender["hof_ci_high"])).all()
    compare = bias.compare(baseline="baseline")
    assert set(compare["model"]) == {"mine"} and set(compare["baseline"]) == {"baseline"}
    assert compare["q_value"].dropna().between(0, 1).all()
    assert (compare["q_value"].dropna() >= compare.loc[compare["q_value"].notna(), "p_value"] - 1e-12).all()
    saved = pd.read_parquet(quickstart["run"] / "metrics" / "overall.parquet")
    pd.testing.assert_frame_equal(saved.reset_index(drop=True), overall.reset_index(drop=True),
                                  check_dtype=False)


def test_summary_figure_draws_the_measured_hof_of_every_model(quickstart):
    overall = quickstart["bias"].overall
    figure = plots.summary_figure(overall, models=["baseline", "mine"])
    bars = [c for c in figure.axes[0].containers if isinstance(c, BarContainer)]  # not the error bars
    assert [c.get_label() for c in bars] == ["baseline", "mine"]
    for container, model in zip(bars, ["baseline", "mine"]):
        drawn = sorted(round(bar.get_height(), 9) for bar in container.patches)
        measured = overall[overall["model"] == model]["hof"].dropna()
        assert drawn and set(drawn) <= {round(v, 9) for v in measured}


def test_write_report_shows_the_measured_headline(quickstart):
    paths = biaskit.write_report(quickstart["run"])
    assert set(paths) >= {"html", "markdown"}
    markdown = paths["markdown"].read_text(encoding="utf-8")
    overall = quickstart["bias"].overall
    row = overall[(overall["model"] == "mine") & (overall["attribute"] == "gender")
                  & (overall["kind"] == "individual")].iloc[0]
    assert f"{row['hof']:.2f} [{row['hof_ci_low']:.2f}, {row['hof_ci_high']:.2f}]" in markdown
    html = paths["html"].read_text(encoding="utf-8")
    assert html.count('src="data:image/jpeg;base64,') >= 2 * len(quickstart["suite"])


def test_every_lazy_export_resolves():
    for name in biaskit.__all__:
        assert getattr(biaskit, name) is not None, name
    with pytest.raises(AttributeError):
        biaskit.no_such_thing  # noqa: B018


def test_biasframe_from_a_plain_table_as_the_readme_shows():
    suite = biaskit.load_suite("prompts/smoke.yaml")
    prompt = next(p for p in suite if p.kind == "individual")
    rows = [("m", prompt.id, s, 0, "gender", label) for s, label in enumerate(["Male", "Female", "Male"])]
    observations = pd.DataFrame(rows, columns=["model", "prompt_id", "sample", "person", "attribute", "label"])
    bias = biaskit.BiasFrame(observations, suite=suite, n_boot=0, seed=0)
    shares = bias.distribution.query("prompt_id == @prompt.id").set_index("label")["share"]
    assert shares["Male"] == pytest.approx(2 / 3) and shares["Female"] == pytest.approx(1 / 3)
    assert bool(bias.summary.query("prompt_id == @prompt.id")["heterogeneous"].iloc[0])
