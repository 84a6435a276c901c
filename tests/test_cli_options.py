"""Every option the README and ``--help`` document changes what the command does.

Each test looks at an observable effect (a table, a file, a recorded setting, calls in
flight), never only at the exit code, so an option the CLI stops passing on fails here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

import pipeline_support
from _faces import astronaut, make_run
from biaskit import tables
from biaskit.cli import main
from biaskit.generate import derive_seed
from biaskit.metrics import BiasFrame
from biaskit.suite import load_suite
from report_support import make_run as make_measured_run

SMOKE = "prompts/smoke.yaml"


# ---------------------------------------------------------------- generate
@pytest.mark.parametrize("concurrency", [1, 3])
def test_generate_concurrency_is_the_number_of_calls_in_flight(tmp_path, concurrency):
    pipeline_support.GATE.reset(parties=concurrency)
    assert main(["generate", SMOKE, "--model", "g=python:pipeline_support:gated", "--samples", "2",
                 "--concurrency", str(concurrency), "--out", str(tmp_path), "--no-progress"]) == 0
    assert pipeline_support.GATE.opened and pipeline_support.GATE.max_in_flight == concurrency


def test_generate_samples_and_seed_decide_rows_and_seeds(tmp_path):
    assert main(["generate", SMOKE, "--model", "g=python:pipeline_support:gated", "--samples", "2",
                 "--seed", "5", "--out", str(tmp_path), "--no-progress"]) == 0
    images = pd.read_parquet(tmp_path / tables.IMAGES_TABLE)
    assert len(images) == len(load_suite(SMOKE)) * 2 and set(images["sample"]) == {0, 1}
    for row in images.itertuples():
        assert row.seed == derive_seed(5, "g", row.prompt_id, row.sample)
    assert json.loads((tmp_path / "run.json").read_text())["seed"] == 5


# ---------------------------------------------------------------- measure
OBS_SUITE = {"name": "opts", "samples": 4, "prompts": [
    {"id": "doctor", "text": "a doctor"}, {"id": "nurse", "text": "a nurse"}]}


def measure_inputs(tmp_path):
    """Two models, two prompts, four images each: model a mixed, model b all Male."""
    rows = []
    for model in ("a", "b"):
        for prompt in ("doctor", "nurse"):
            for sample in range(4):
                label = "Female" if model == "a" and sample % 2 else "Male"
                rows.append((model, prompt, sample, 0, "gender", label))
    observations = tmp_path / "obs.csv"
    pd.DataFrame(rows, columns=["model", "prompt_id", "sample", "person", "attribute", "label"]
                 ).to_csv(observations, index=False)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(OBS_SUITE))
    return observations, suite


def measure(tmp_path, name, *options):
    observations, suite = measure_inputs(tmp_path)
    out = tmp_path / name
    assert main(["measure", str(observations), "--prompts", str(suite), "--out", str(out), *options]) == 0
    return {table: pd.read_parquet(out / f"{table}.parquet") for table in ("summary", "overall")}


def test_measure_entropy_correction_gives_the_miller_madow_value(tmp_path):
    plain = measure(tmp_path, "plain", "--n-boot", "0")["summary"].set_index(["model", "prompt_id"])
    corrected = measure(tmp_path, "mm", "--n-boot", "0", "--entropy-correction", "miller-madow")
    corrected = corrected["summary"].set_index(["model", "prompt_id"])
    # a/doctor: 2 Male, 2 Female -> H = ln 2; Miller-Madow adds (m - 1) / 2N = 1/8; K = 2.
    assert plain.loc[("a", "doctor"), "entropy"] == pytest.approx(1.0)
    assert corrected.loc[("a", "doctor"), "entropy"] == pytest.approx((math.log(2) + 1 / 8) / math.log(2))
    # b/doctor: one category only, m - 1 = 0: no correction.
    assert corrected.loc[("b", "doctor"), "entropy"] == plain.loc[("b", "doctor"), "entropy"] == 0.0


def test_measure_confidence_n_boot_and_seed_reach_the_intervals(tmp_path):
    observations, suite = measure_inputs(tmp_path)

    def expected(**settings):
        frame = BiasFrame(pd.read_csv(observations), suite=load_suite(suite), **settings)
        return frame.summary.set_index(["model", "prompt_id"])["entropy_ci_low"]

    def measured(name, *options):
        return measure(tmp_path, name, *options)["summary"].set_index(["model", "prompt_id"])["entropy_ci_low"]

    narrow = measured("narrow", "--confidence", "0.5", "--n-boot", "200", "--seed", "3")
    pd.testing.assert_series_equal(narrow, expected(confidence=0.5, n_boot=200, seed=3))
    wide = measured("wide", "--n-boot", "200", "--seed", "3")
    assert narrow[("a", "doctor")] > wide[("a", "doctor")]  # a 50 % interval is narrower
    other_seed = measured("seed", "--confidence", "0.5", "--n-boot", "200", "--seed", "4")
    pd.testing.assert_series_equal(other_seed, expected(confidence=0.5, n_boot=200, seed=4))
    no_boot = measured("none", "--n-boot", "0")
    assert no_boot.isna().all() and narrow.notna().all()


# ---------------------------------------------------------------- report
@pytest.fixture(scope="module")
def measured_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("measured")
    make_measured_run(run)
    return run


def report(run, *options):
    assert main(["report", str(run), *options]) == 0
    return (run / "report.md").read_text(encoding="utf-8"), (run / "report.html").read_text(encoding="utf-8")


def significant_prompts(markdown: str) -> list[str]:
    """Prompt ids of the significant-differences table (the first cell of its rows)."""
    section = markdown.split("ignificant", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1].strip() for line in section.splitlines()
            if line.startswith("|") and not set(line) <= set("|-: ")][1:]


def test_report_alpha_is_the_q_value_threshold(measured_run):
    # q: doctor 0.003, founders 0.049, workers 0.3 (report_support)
    markdown = report(measured_run, "--thumbnails", "0")[0]
    assert significant_prompts(markdown) == ["doctor", "founders"]
    assert "figures/confusion_gender.png" not in markdown  # no --confusion, no validation/ folder
    assert significant_prompts(report(measured_run, "--thumbnails", "0", "--alpha", "0.01")[0]) == ["doctor"]
    assert significant_prompts(report(measured_run, "--thumbnails", "0", "--alpha", "0.5")[0]) == [
        "doctor", "founders", "workers"]


def test_report_thumbnails_baseline_and_prompts(measured_run, tmp_path):
    _, html = report(measured_run, "--thumbnails", "1")
    one = html.count('src="data:image/jpeg;base64,')
    assert "Baseline: <strong>base</strong>" in html  # from run.json
    assert "three construction workers" in html and "three roofers on a ladder" not in html
    suite = yaml.safe_load((measured_run / "suite.yaml").read_text())
    suite["prompts"][1]["text"] = "three roofers on a ladder"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(suite))
    _, html = report(measured_run, "--thumbnails", "2", "--baseline", "base", "--prompts", str(other))
    assert html.count('src="data:image/jpeg;base64,') > one > 0
    assert "Baseline: <strong>base</strong>" in html
    assert "three roofers on a ladder" in html  # the gallery's prompt text
    # --baseline is read: one the comparison was not measured against is refused, in one line.
    assert main(["report", str(measured_run), "--baseline", "cand"]) == 2


def test_report_confusion_table_is_shown(measured_run, tmp_path):
    confusion = tmp_path / "confusion.csv"
    pd.DataFrame([("gender", "Male", "Male", 41), ("gender", "Male", "Female", 9),
                  ("gender", "Female", "Female", 37), ("gender", "Female", "Male", 13)],
                 columns=["attribute", "true", "predicted", "count"]).to_csv(confusion, index=False)
    with_it, _ = report(measured_run, "--thumbnails", "0", "--confusion", str(confusion))
    figure = "figures/confusion_gender.png"
    assert figure in with_it and (measured_run / figure).exists()


# ---------------------------------------------------------------- tag
@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("photo")
    make_run(root, {"astro.png": astronaut()})
    return root


def tag(run, *options):
    assert main(["tag", str(run), "--no-progress", "--tagger", "embedded", *options]) == 0
    return (tables.read_table(run / tables.PEOPLE_TABLE), tables.read_table(run / tables.OBSERVATIONS_TABLE))


def test_tag_min_face_keeps_small_faces_but_calls_them_unclear(photo_run):
    # The astronaut's gender confidence (0.83) is under the calibrated default threshold:
    # a threshold of 0 keeps every label, so only --min-face can make them unclear.
    people, observations = tag(photo_run, "--no-cache", "--threshold", "gender=0")
    assert len(people) == 1 and (observations["label"] != "unclear").all()
    people, observations = tag(photo_run, "--no-cache", "--threshold", "gender=0",
                               "--min-face", "4000")  # larger than the image
    assert len(people) == 1 and (observations["label"] == "unclear").all()


def test_tag_no_cautious_is_recorded_with_the_labels(photo_run):
    _, observations = tag(photo_run, "--no-cache")
    assert observations["tagger"].str.contains("cautious=True").any()
    _, observations = tag(photo_run, "--no-cache", "--no-cautious")
    age_group = observations[observations["attribute"] == "age_group"]
    assert age_group["tagger"].str.contains("cautious=False").all()


def test_tag_detector_hog_is_dlibs_not_centerfaces(photo_run):
    centerface, _ = tag(photo_run, "--no-cache")
    hog, _ = tag(photo_run, "--no-cache", "--detector", "hog")
    assert len(hog) >= 1
    box = ["x0", "y0", "x1", "y1"]
    assert not np.allclose(hog[box].to_numpy()[0], centerface[box].to_numpy()[0])


def test_tag_cache_is_written_and_no_cache_neither_reads_nor_writes_it(tmp_path):
    make_run(tmp_path, {"astro.png": astronaut()})
    cache = tmp_path / "cache" / "perception"
    tag(tmp_path, "--no-cache")
    assert not any(p.is_file() for p in cache.rglob("*"))
    tag(tmp_path)
    assert any(p.is_file() for p in cache.rglob("*"))


def test_tag_batch_size_sets_the_batches(photo_run, monkeypatch):
    from biaskit.perception import pipeline

    seen, original = [], pipeline.batch_slices
    monkeypatch.setattr(pipeline, "batch_slices", lambda count, size: seen.append(size) or original(count, size))
    tag(photo_run, "--no-cache", "--batch-size", "3")
    assert seen == [3]


@pytest.fixture(scope="module")
def clip_attributes(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "attributes.yaml"
    path.write_text(yaml.safe_dump({"hair": {"long": ["a photo of a person with long hair"],
                                             "short": ["a photo of a person with short hair"]}}))
    return path


CLIP_RANDOM = ["--tagger", "clip", "--clip-weights", "random", "--allow-random-weights"]


def test_tag_clip_prompts_add_the_users_attribute(photo_run, clip_attributes):
    pytest.importorskip("open_clip")
    assert main(["tag", str(photo_run), "--no-progress", *CLIP_RANDOM, "--clip-prompts", str(clip_attributes),
                 "--attributes", "hair"]) == 0
    observations = tables.read_table(photo_run / tables.OBSERVATIONS_TABLE)
    assert list(observations["attribute"]) == ["hair"]
    assert observations["label"].iloc[0] in {"long", "short", "unclear"}


def test_tag_device_reaches_the_model(photo_run, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: asking for it is not an error")
    assert main(["tag", str(photo_run), "--no-progress", *CLIP_RANDOM, "--device", "cuda",
                 "--attributes", "race"]) == 2
    assert "cuda" in capsys.readouterr().err.lower()


def test_tag_device_typo_is_refused_before_any_work(photo_run, capsys):
    # the embedded taggers never read the device: without the check a typo passed silently
    before = sorted((p.name, p.stat().st_mtime_ns) for p in photo_run.rglob("*"))
    assert main(["tag", str(photo_run), "--no-progress", "--device", "gpu0"]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and "'gpu0'" in err and len(err.strip().splitlines()) == 1
    assert sorted((p.name, p.stat().st_mtime_ns) for p in photo_run.rglob("*")) == before


def hub_cache(folder, torch, open_clip):
    """A Hugging Face cache in ``folder`` holding 'downloaded' ViT-B-32 LAION-2B weights.

    The weights are made up (a few hundred kB: every tensor is a strided view of one random
    vector, which torch.save stores once) but laid out where open_clip looks for the real
    ones: ``models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/REV/`` with
    ``refs/main`` naming REV.  Returns the weights file.
    """
    from biaskit.perception.clip import DEFAULT_MODEL

    with torch.device("meta"):  # shapes only: no 150M parameters to initialise
        shapes = {key: value.shape for key, value in
                  open_clip.create_model(DEFAULT_MODEL, pretrained=None, device="meta").state_dict().items()}
    values = torch.randn(max(sum(shape) for shape in shapes.values()), generator=torch.Generator().manual_seed(3))
    state = {key: values.as_strided(shape, (1,) * len(shape)) if len(shape) else values[0].clone()
             for key, shape in shapes.items()}
    repo = folder / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    weights = repo / "snapshots" / ("0" * 40) / "open_clip_pytorch_model.bin"
    weights.parent.mkdir(parents=True)
    torch.save(state, weights)
    return weights


@pytest.mark.slow  # builds ViT-B-32 and loads weights into it: ~30 s of CPU
def test_tag_clip_cache_is_where_the_default_weights_are_found(photo_run, tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    import huggingface_hub.constants

    from biaskit.perception.clip import BiaskitWeightsError, load_clip

    # offline, with an empty default cache: the weights are found in --clip-cache or nowhere
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    hub_cache(tmp_path / "hub", torch, open_clip)
    race = ["tag", str(photo_run), "--no-progress", "--no-cache", "--tagger", "clip", "--attributes", "race",
            "--threshold", "race=0"]
    with pytest.raises(BiaskitWeightsError, match="--clip-cache"):
        load_clip(attributes=("race",))
    assert main([*race, "--clip-cache", str(tmp_path / "hub")]) == 0, capsys.readouterr().err
    observations = tables.read_table(photo_run / tables.OBSERVATIONS_TABLE)
    assert observations.loc[0, "label"] != "unclear" and 1 / 7 < observations.loc[0, "confidence"] < 1


# ---------------------------------------------------------------- annotate export
def export(run, out, *options):
    from biaskit.annotate.export import ANNOTATION_DIR, EXPORT_JSON, SAMPLE_TABLE

    code = main(["annotate", "export", str(run), "--out", str(out), *options])
    if code:
        return code, None, None
    annotation = run / ANNOTATION_DIR
    return code, pd.read_parquet(annotation / SAMPLE_TABLE), json.loads((annotation / EXPORT_JSON).read_text())


def test_annotate_export_n_per_model_attributes_seed_and_force(tmp_path, capsys):
    run = tmp_path / "run"
    make_measured_run(run)
    _, sample, settings = export(run, tmp_path / "a", "--n", "6", "--seed", "1")
    assert len(sample) == 6 and settings["attributes"] == ["gender", "skin_tone"]
    assert 'name="skin_tone"' in (tmp_path / "a" / "labelstudio_config.xml").read_text()
    # a second sample would orphan the answers to the first: refused unless --force
    assert export(run, tmp_path / "b", "--n", "6")[0] == 2
    assert "--force" in capsys.readouterr().err
    _, again, _ = export(run, tmp_path / "b", "--n", "6", "--seed", "1", "--force")
    assert again["face_id"].tolist() == sample["face_id"].tolist()  # the seed decides the draw
    _, other, _ = export(run, tmp_path / "c", "--n", "6", "--seed", "2", "--force")
    assert other["face_id"].tolist() != sample["face_id"].tolist()
    _, per_model, settings = export(run, tmp_path / "d", "--n", "6", "--per-model", "--attributes", "gender",
                                    "--force")
    assert per_model["model"].value_counts().to_dict() == {"base": 6, "cand": 6}
    assert settings["attributes"] == ["gender"]
    config = (tmp_path / "d" / "labelstudio_config.xml").read_text()
    assert 'name="gender"' in config and 'name="skin_tone"' not in config


# ---------------------------------------------------------------- train-probe
@pytest.fixture(scope="module")
def labelled_faces(tmp_path_factory):
    from _faces import painted_face, swatch
    from PIL import Image

    folder = tmp_path_factory.mktemp("labelled")
    rows = []
    for tone in range(1, 9):
        image, _, _ = painted_face(swatch(tone), size=160)
        Image.fromarray(image).save(folder / f"f{tone}.png")
        rows.append({"file": f"f{tone}.png", "gender": "Male" if tone % 2 else "Female"})
    labels = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    return folder, labels


def train(labelled_faces, out, *options):
    torch = pytest.importorskip("torch")
    folder, labels = labelled_faces
    assert main(["train-probe", "--labels", str(labels), "--images", str(folder), "--attributes", "gender",
                 "--out", str(out), "--clip-weights", "random", "--allow-random-weights", *options]) == 0
    return torch.load(out, weights_only=True)


def test_train_probe_clip_model_and_l2(labelled_faces, tmp_path):
    pytest.importorskip("open_clip")
    loose = train(labelled_faces, tmp_path / "loose.pt", "--clip-model", "RN50", "--l2", "0")
    tight = train(labelled_faces, tmp_path / "tight.pt", "--clip-model", "RN50", "--l2", "10")
    assert loose["clip"]["model"] == tight["clip"]["model"] == "RN50"
    weight = {name: probe["heads"]["gender"]["weight"] for name, probe in (("loose", loose), ("tight", tight))}
    assert 1024 in weight["loose"].shape  # RN50 embeds in 1024 dimensions (ViT-B-32: 512)
    # a strong L2 penalty shrinks the head's weights
    assert float((weight["tight"] ** 2).sum()) < 0.1 * float((weight["loose"] ** 2).sum())


def test_train_probe_batch_size_sets_the_faces_per_forward_pass(labelled_faces, tmp_path, monkeypatch):
    pytest.importorskip("open_clip")
    from biaskit.perception import probe

    made, clip_tagger = [], probe.ClipTagger
    monkeypatch.setattr(probe, "ClipTagger", lambda **kw: made.append(clip_tagger(**kw)) or made[-1])
    train(labelled_faces, tmp_path / "batched.pt", "--clip-model", "RN50", "--batch-size", "3")
    train(labelled_faces, tmp_path / "whole.pt", "--clip-model", "RN50")
    # 8 faces: 3 + 3 + 2 with --batch-size 3; one pass at the default (16)
    assert [(tagger.batch_size, tagger.calls) for tagger in made] == [(3, 3), (16, 1)]


# ---------------------------------------------------------------- run
def test_run_passes_its_options_to_every_stage(tmp_path, monkeypatch):
    from biaskit import perception

    devices, tag_run = [], perception.tag_run  # --device leaves no trace on a CPU-only run: watch it
    monkeypatch.setattr(perception, "tag_run", lambda *a, **k: devices.append(k.get("device")) or tag_run(*a, **k))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "run-opts", "samples": 2, "prompts": [
        {"id": "doctor", "text": "a doctor"}]}))
    out = tmp_path / "run"
    pipeline_support.GATE.reset(parties=2)
    assert main(["run", str(suite), "--model", "mixed=python:pipeline_support:mixed",
                 "--baseline", "g=python:pipeline_support:gated", "--out", str(out), "--samples", "3",
                 "--seed", "4", "--concurrency", "2", "--attributes", "gender", "--tagger", "embedded",
                 "--device", "cpu", "--thumbnails", "1", "--no-progress"]) == 0
    assert pipeline_support.GATE.opened and pipeline_support.GATE.max_in_flight == 2
    images = pd.read_parquet(out / tables.IMAGES_TABLE)
    assert len(images) == 2 * 3
    assert set(images["seed"]) == {derive_seed(4, m, "doctor", s) for m in ("mixed", "g") for s in range(3)}
    observations = pd.read_parquet(out / tables.OBSERVATIONS_TABLE)
    assert set(observations["attribute"]) == {"gender"}
    html = (out / "report.html").read_text(encoding="utf-8")
    # one thumbnail per prompt and model (the gated baseline's 8 px images have no face, still shown)
    assert html.count('src="data:image/jpeg;base64,') == 2
    config = json.loads((out / "run.json").read_text())
    assert config["seed"] == 4 and config["samples"] == 3
    assert devices == ["cpu"]
