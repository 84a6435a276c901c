"""generate -> tag -> measure -> report in one call, on real photos, and resumed."""

import json

import pandas as pd
import pytest

from biaskit.cli import main
from biaskit.pipeline import run_pipeline
import pipeline_support

SUITE = """
name: pipeline-test
samples: 2
prompts:
  - {id: doctor, text: a doctor}
  - {id: two-workers, text: two construction workers, kind: group, count: 2}
  - {id: founders, text: the US founding fathers, kind: ahistorical, expected: {gender: Male}}
"""
ARGS = ["--model", "mixed=python:pipeline_support:mixed",
        "--baseline", "skewed=python:pipeline_support:skewed", "--seed", "3", "--no-progress",
        "--tagger", "embedded", "--tagger", "skin"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    suite = root / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = root / "run"
    pipeline_support.CALLS.clear()
    assert main(["run", str(suite), *ARGS, "--out", str(out)]) == 0
    return {"suite": suite, "out": out, "calls": dict(pipeline_support.CALLS)}


def test_every_stage_wrote_its_tables(run):
    out = run["out"]
    assert run["calls"] == {"mixed": 6, "skewed": 6}  # 3 prompts x 2 samples each
    images = pd.read_parquet(out / "images.parquet")
    assert len(images) == 12 and set(images["status"]) == {"ok"}
    people = pd.read_parquet(out / "people.parquet")
    observations = pd.read_parquet(out / "observations.parquet")
    # Every image shows the astronaut and/or the cameraman: at least one face each.
    assert set(people["sha256"]) == set(images["sha256"])
    assert {"gender", "skin_tone"} <= set(observations["attribute"])
    for name in ("distribution", "summary", "overall", "comparison", "rates"):
        assert (out / "metrics" / f"{name}.parquet").exists(), name
    comparison = pd.read_parquet(out / "metrics" / "comparison.parquet")
    assert set(comparison["model"]) == {"mixed"} and set(comparison["baseline"]) == {"skewed"}
    assert (out / "report.html").stat().st_size > 10_000 and (out / "report.md").exists()


def test_run_json_records_the_baseline_beside_generation_settings(run):
    config = json.loads((run["out"] / "run.json").read_text())
    assert config["baseline"] == "skewed"
    assert config["seed"] == 3 and config["samples"] == 2  # written by the generate stage
    assert config["tagging"]["min_face_px"] > 0 and config["metrics"]["n_boot"] == 1000
    assert config["tagging"]["tagger"] == ["embedded", "skin"]  # --tagger is repeatable
    assert config["tagging"]["detector"] == "centerface"  # the default by its name, not "default"
    assert config["models"] == {"mixed": "python:pipeline_support:mixed",
                                "skewed": "python:pipeline_support:skewed"}


def test_report_shows_the_measured_numbers(run):
    out = run["out"]
    overall = pd.read_parquet(out / "metrics" / "overall.parquet")
    markdown = (out / "report.md").read_text()
    # gender may have no kept label here (the demo's upscaled faces sit under its calibrated threshold)
    measured = overall[(overall["model"] == "mixed") & (overall["kind"] == "individual")].dropna(subset=["hof"])
    row = measured.iloc[0]
    assert f"{row['hof']:.2f} [{row['hof_ci_low']:.2f}, {row['hof_ci_high']:.2f}]" in markdown
    html = (out / "report.html").read_text()
    assert "Baseline: <strong>skewed</strong>" in html
    # The gallery shows every image's thumbnail (2 samples x 3 prompts x 2 models).
    assert html.count('src="data:image/jpeg;base64,') == 12


def test_rerun_resumes_without_regenerating(run):
    out = run["out"]
    before = {
        "images": pd.read_parquet(out / "images.parquet"),
        "observations": pd.read_parquet(out / "observations.parquet"),
        "journal": (out / "images.journal.jsonl").read_bytes(),
        "report": (out / "report.html").stat().st_mtime_ns,
    }
    pipeline_support.CALLS.clear()
    assert main(["run", str(run["suite"]), *ARGS, "--out", str(out)]) == 0
    assert sum(pipeline_support.CALLS.values()) == 0  # nothing generated again
    assert (out / "images.journal.jsonl").read_bytes() == before["journal"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "images.parquet"), before["images"])
    pd.testing.assert_frame_equal(pd.read_parquet(out / "observations.parquet"),
                                  before["observations"])
    assert (out / "report.html").stat().st_mtime_ns > before["report"]


def test_more_samples_generates_only_the_new_ones(run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run["out"], out)
    pipeline_support.CALLS.clear()
    result = run_pipeline(run["suite"], models={"mixed": "python:pipeline_support:mixed",
                                                "skewed": "python:pipeline_support:skewed"},
                          baseline="skewed", out=out, samples=3, seed=3, progress=False,
                          thumbnails=1)
    assert dict(pipeline_support.CALLS) == {"mixed": 3, "skewed": 3}
    assert len(result.images) == 18
    assert set(result.bias.summary["n_images"]) == {3}


def test_baseline_must_be_a_model_and_cannot_change_on_resume(run):
    with pytest.raises(ValueError, match="baseline 'other' is not one of the models"):
        run_pipeline(run["suite"], models={"mixed": "python:pipeline_support:mixed"},
                     baseline="other", out=run["out"])
    with pytest.raises(ValueError, match="baseline is 'skewed'"):
        run_pipeline(run["suite"], models={"mixed": "python:pipeline_support:mixed",
                                           "skewed": "python:pipeline_support:skewed"},
                     baseline="mixed", out=run["out"], seed=3)


def test_cli_rejects_malformed_model_arguments(run, capsys):
    assert main(["run", str(run["suite"]), "--model", "nospec", "--baseline", "b=folder:x",
                 "--out", str(run["out"])]) == 2
    assert "--model 'nospec': expected NAME=SPEC" in capsys.readouterr().err
    assert main(["run", str(run["suite"]), "--model", "b=folder:y", "--baseline", "b=folder:x",
                 "--out", str(run["out"])]) == 2
    assert "model name 'b' is given twice" in capsys.readouterr().err


def test_report_cli_rewrites_the_report(run, capsys):
    target = run["out"] / "report.md"
    target.unlink()
    assert main(["report", str(run["out"]), "--thumbnails", "0", "--title", "Release <check>"]) == 0
    assert target.exists() and "# Release \\<check\\>" in target.read_text()
    html = (run["out"] / "report.html").read_text()
    assert "<title>Release &lt;check&gt;</title>" in html and "data:image/jpeg" not in html


# ---- issue 13 ----------------------------------------------------------------------------------

@pytest.fixture()
def run_copy(run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run["out"], out)
    return out


def test_run_takes_the_options_of_the_stages_it_runs(run, run_copy, tmp_path, capsys):
    # Item 15: --threshold, --min-face, --n-boot, --confusion (and the CLIP options) reach
    # their stages; nothing is generated again.
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in ("--clip-weights", "--clip-cache", "--threshold", "--detector", "--min-face",
                   "--n-boot", "--confusion", "--confidence", "run:PATH"):
        assert option in help_text, option
    confusion = tmp_path / "confusion.csv"
    pd.DataFrame({"attribute": ["gender"] * 4, "true": ["Male", "Male", "Female", "Female"],
                  "predicted": ["Male", "Female", "Female", "Male"],
                  "count": [90, 10, 80, 20]}).to_csv(confusion, index=False)
    pipeline_support.CALLS.clear()
    assert main(["run", str(run["suite"]), *ARGS, "--out", str(run_copy), "--threshold",
                 "gender=0.999", "--min-face", "30", "--n-boot", "37", "--confusion",
                 str(confusion)]) == 0
    assert sum(pipeline_support.CALLS.values()) == 0
    observations = pd.read_parquet(run_copy / "observations.parquet")
    gender = observations[observations["attribute"] == "gender"]
    assert gender["tagger"].str.contains("0.999").all() and (gender["label"] == "unclear").any()
    config = json.loads((run_copy / "run.json").read_text())
    assert config["tagging"]["min_face_px"] == 30
    assert config["tagging"]["thresholds"] == {"gender": 0.999}
    assert config["metrics"]["n_boot"] == 37 and config["metrics"]["confusion"] is True
    assert (run_copy / "metrics" / "corrected.parquet").exists()
    # --clip-weights reaches the CLIP tagger: its error names the file given.
    code = main(["run", str(run["suite"]), *ARGS, "--tagger", "clip", "--out", str(run_copy),
                 "--clip-weights", str(tmp_path / "nowhere.pt")])
    assert code == 2 and str(tmp_path / "nowhere.pt") in capsys.readouterr().err


def test_measure_baseline_reaches_the_report(run, run_copy, capsys):
    # Item 14: the README's step-by-step CLI, and biaskit.write_report(run) in Python.
    import biaskit

    config = json.loads((run_copy / "run.json").read_text())
    del config["baseline"]  # as after `biaskit generate` + `biaskit tag`
    (run_copy / "run.json").write_text(json.dumps(config))
    import shutil

    shutil.rmtree(run_copy / "metrics")
    shutil.rmtree(run_copy / "figures")
    assert main(["measure", str(run_copy / "observations.parquet"), "--prompts", str(run["suite"]),
                 "--images", str(run_copy / "images.parquet"), "--baseline", "skewed",
                 "--n-boot", "20", "--out", str(run_copy / "metrics")]) == 0
    assert main(["report", str(run_copy), "--thumbnails", "0"]) == 0
    html = (run_copy / "report.html").read_text()
    assert "Baseline: <strong>skewed</strong>" in html
    attributes = set(pd.read_parquet(run_copy / "metrics" / "summary.parquet")["attribute"])
    assert {"gender", "skin_tone"} <= attributes
    assert sorted(p.name for p in (run_copy / "figures").glob("entropy_*.png")) == sorted(
        f"entropy_{attribute}_mixed.png" for attribute in attributes)
    shutil.rmtree(run_copy / "figures")
    biaskit.measure_run(run_copy, suite=run["suite"], baseline="skewed", n_boot=20)
    biaskit.write_report(run_copy, thumbnails=0)
    assert "Baseline: <strong>skewed</strong>" in (run_copy / "report.html").read_text()
    assert len(list((run_copy / "figures").glob("entropy_*.png"))) == len(attributes)


def test_tag_says_how_many_images_had_no_face(run, run_copy, capsys):
    # Item 19: "tagged 15 image(s)" after a 30/30 bar; now the images with no face are counted.
    assert main(["generate", str(run["suite"]), "--model", "blank=python:pipeline_support:blank",
                 "--seed", "3", "--out", str(run_copy), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["tag", str(run_copy), "--tagger", "embedded", "--tagger", "skin",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    people = pd.read_parquet(run_copy / "people.parquet")
    assert f"tagged 18 image(s): 12 with a face, 6 with no face; {len(people)} person(s)" in out


def test_run_with_failed_samples_exits_1_not_like_a_crash(run, run_copy, capsys):
    from biaskit import cli

    code = main(["run", str(run["suite"]), *ARGS, "--model", "down=python:pipeline_support:broken",
                 "--out", str(run_copy)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAILED_ITEMS != cli.EXIT_INTERNAL
    assert "6 sample(s) failed" in out and (run_copy / "report.html").exists()
