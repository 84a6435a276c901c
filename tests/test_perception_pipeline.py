"""tag_run / tag_images on hand-built run directories, the tag cache, validation, and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _faces import astronaut, collage, make_run, painted_face
from biaskit import tables
from biaskit.cli import main
from biaskit.perception import (
    CenterFaceDetector, EmbeddedTagger, SkinToneTagger, tag_images, tag_run, validate, wilson_interval,
)
from biaskit.perception.skin_tone import reference_colour
from biaskit.perception.embedded import EMBEDDED_THRESHOLDS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Astronaut; a four-face collage whose smallest face is tiny; a blank image; a broken file;
    a duplicate of the astronaut file; a refused row; a row whose file is missing."""
    root = tmp_path_factory.mktemp("run")
    group, _ = collage([220, 150, 100, 36], canvas=512)
    frame = make_run(root, {
        "astro.png": astronaut(), "group.png": group,
        "blank.png": np.full((256, 256, 3), 180, np.uint8), "broken.png": b"\x89PNG\r\n\x1a\n broken",
    }, extra_rows=[
        dict(model="m2", prompt_id="p0", sample=1, seed=9, status="ok", error=None, revised_prompt=None,
             path="images/astro.png", sha256=None, width=None, height=None),
        dict(model="m2", prompt_id="p9", sample=0, seed=9, status="refused", error="policy", revised_prompt=None,
             path=None, sha256=None, width=None, height=None),
        dict(model="m2", prompt_id="p8", sample=0, seed=9, status="ok", error=None, revised_prompt=None,
             path="images/gone.png", sha256=None, width=None, height=None),
    ])
    return root, frame


@pytest.fixture(scope="module")
def tagged(run):
    """Every face counted (the subject policy has its own tests, from the same cache)."""
    root, _ = run
    return tag_run(root, progress=False, faces="all")


def test_tables_written_with_exact_columns(run, tagged):
    root, _ = run
    people = tables.read_table(root / tables.PEOPLE_TABLE)
    observations = tables.read_table(root / tables.OBSERVATIONS_TABLE)
    assert tuple(people.columns) == tables.PEOPLE_COLUMNS
    assert tuple(observations.columns) == tables.OBSERVATION_COLUMNS
    # boxes and scores are numbers, in the image's own pixel frame
    for column in ("x0", "y0", "x1", "y1", "score"):
        assert people[column].dtype == "float64", column
    assert (people["x1"] > people["x0"]).all() and (people["y1"] > people["y0"]).all()
    pd.testing.assert_frame_equal(observations, tagged)


def test_every_face_counted_and_blank_image_has_no_rows(run, tagged):
    root, frame = run
    people = tables.read_table(root / tables.PEOPLE_TABLE)
    per_image = people.groupby("sha256").size()
    known = frame.dropna(subset=["sha256"])
    sha = dict(zip(known["path"], known["sha256"]))
    assert per_image[sha["images/astro.png"]] == 1
    assert per_image[sha["images/group.png"]] == 4
    assert sha["images/blank.png"] not in per_image.index
    assert set(tagged["prompt_id"]) == {"p0", "p1"}  # blank (p2) has no person, so no rows


def test_observations_default_attributes_and_labels(tagged):
    astro = tagged[(tagged["model"] == "m") & (tagged["prompt_id"] == "p0")]
    assert list(astro["attribute"]) == ["gender", "age", "age_group", "skin_tone"]
    labels = dict(zip(astro["attribute"], astro["label"]))
    gender = astro[astro["attribute"] == "gender"].iloc[0]
    threshold = EMBEDDED_THRESHOLDS["gender"]
    # the network says Female (0.83 here); the calibrated default keeps it only from the threshold on
    assert gender["confidence"] > 0.6 and labels["age_group"] == "adult"
    assert labels["gender"] == ("Female" if gender["confidence"] >= threshold else "unclear")
    assert gender["tagger"].startswith("dlib-age-gender(") and f"gender={threshold:g}" in gender["tagger"]
    # the same file under another model/prompt/sample gets the same labels
    again = tagged[(tagged["model"] == "m2") & (tagged["prompt_id"] == "p0")]
    assert list(again["label"]) == list(astro["label"]) and set(again["sample"]) == {1}


def test_tiny_face_kept_but_unclear(tagged):
    group = tagged[tagged["prompt_id"] == "p1"]
    tiny = group.groupby("person")["label"].apply(lambda s: (s == "unclear").all())
    assert tiny.sum() == 1  # the 36 px-wide head (~20 px face) is below min_face
    person = tiny.index[tiny][0]
    assert group[group["person"] == person]["confidence"].isna().all()


def test_broken_and_missing_files_recorded_and_run_goes_on(run, tagged):
    root, _ = run
    errors = tables.read_table(root / "perception_errors.parquet")
    assert sorted(errors["prompt_id"]) == ["p3", "p8"]
    broken = errors[errors["prompt_id"] == "p3"]["error"].iloc[0]
    missing = errors[errors["prompt_id"] == "p8"]["error"].iloc[0]
    assert "broken.png" in broken and "gone.png" in missing and "no such file" in missing
    assert (root / "perception_errors.csv").exists()
    assert "p9" not in set(tagged["prompt_id"])  # refused rows are not tagged


class _FailsOnBlank(CenterFaceDetector):
    """CenterFace that breaks on flat images, as a runtime might on an input it cannot take."""

    def detect_many(self, images, *, prepared=None):
        if any(image.std() == 0 for image in images):
            raise RuntimeError("runtime refused the input")
        return super().detect_many(images, prepared=prepared)


@pytest.mark.parametrize("threads", [None, 2])  # detection in the image tasks / for the whole batch
def test_an_image_the_detector_fails_on_is_an_error_row_and_the_others_are_tagged(run, tagged, caplog, threads):
    root, frame = run
    detector = _FailsOnBlank(threads=threads)
    assert detector.one_image_per_core == (threads is None)
    result = tag_images(frame, root=root, detector=detector, cache=None, progress=False, faces="all")
    failed = result.errors.set_index("prompt_id")["error"]
    assert "blank.png: face detection failed: runtime refused the input" in failed["p2"]
    assert sorted(failed.index) == ["p2", "p3", "p8"]  # the blank image, plus the broken and missing files
    assert result.people.equals(tables.read_table(root / "people.parquet"))  # the blank image had no people
    assert result.observations.equals(tagged)
    assert "face detection failed" in caplog.text


def test_cache_makes_retagging_run_no_model(run, tagged, tmp_path):
    root, frame = run
    images = frame.copy()
    detector, embedded, skin = CenterFaceDetector(), EmbeddedTagger(), SkinToneTagger()
    kwargs = dict(root=root, tagger=[embedded, skin], detector=detector, cache=tmp_path / "cache", progress=False,
                  faces="all")
    first = tag_images(images, **kwargs)
    assert detector.calls > 0 and embedded.calls > 0 and skin.calls > 0
    counts = (detector.calls, embedded.calls, skin.calls)
    second = tag_images(images, **kwargs)
    assert (detector.calls, embedded.calls, skin.calls) == counts  # nothing ran
    pd.testing.assert_frame_equal(first.observations, second.observations)
    pd.testing.assert_frame_equal(first.people, second.people)
    pd.testing.assert_frame_equal(first.errors, second.errors)
    pd.testing.assert_frame_equal(first.observations, tagged)
    # a different threshold is a different tagger: the models run again
    stricter = EmbeddedTagger(thresholds={"gender": 0.99})
    third = tag_images(images, root=root, tagger=[stricter, skin], detector=detector, cache=tmp_path / "cache",
                       progress=False)
    assert stricter.calls > 0
    gender = third.observations[third.observations["attribute"] == "gender"]
    assert (gender["label"] == "unclear").all()


def test_people_table_has_every_face_with_its_size(run, tagged):
    root, frame = run
    people = tables.read_table(root / tables.PEOPLE_TABLE)
    group = people[people["sha256"] == frame.set_index("path").loc["images/group.png", "sha256"]]
    group = group.sort_values("size_largest", ascending=False)
    # the collage's heads are 220, 150, 100 and 36 px wide: the faces scale with them
    np.testing.assert_allclose(group["size_largest"], [1, 150 / 220, 100 / 220, 36 / 220], atol=0.06)
    side = np.sqrt((group["x1"] - group["x0"]) * (group["y1"] - group["y0"]))
    np.testing.assert_allclose(group["size_image"], side / 512, rtol=1e-5)  # a 512 x 512 canvas
    astro = people[people["sha256"] == frame.set_index("path").loc["images/astro.png", "sha256"].iloc[0]]
    assert astro["size_largest"].tolist() == [1.0]


@pytest.mark.parametrize("kind, counted", [("individual", 2), ("group", 3)])
def test_face_policy_counts_main_subjects_from_the_cache(run, tagged, kind, counted, tmp_path):
    from biaskit.suite import Prompt, Suite

    root, _ = run
    suite = Suite(name="s", prompts=(Prompt(id="p0", text="an astronaut"),
                                     Prompt(id="p1", text="people", kind=kind, count=4)))
    detector = CenterFaceDetector()
    result = tag_run(root, progress=False, suite=suite, detector=detector)
    assert detector.calls == 0  # the labels of every face are cached: a policy runs no model
    people = tables.read_table(root / tables.PEOPLE_TABLE)
    assert len(people) == 5  # every face stays in the people table
    assert result.groupby("prompt_id")["person"].nunique().to_dict() == {"p0": 1, "p1": counted}
    # the 220 px head is counted either way, the 36 px one never (under a quarter of the largest)
    config = tables.read_run_config(root)
    assert config["face_policy"] == {"name": "subjects", "individual_min": 0.5, "group_min": 0.25}
    everyone = tag_run(root, progress=False, suite=suite, faces="all")
    assert everyone.groupby("prompt_id")["person"].nunique().to_dict() == {"p0": 1, "p1": 4}
    assert tables.read_run_config(root)["face_policy"] == {"name": "all"}


def test_without_a_suite_every_prompt_is_a_group_and_the_log_says_so(run, tagged, caplog):
    root, _ = run
    result = tag_run(root, progress=False)
    assert result.groupby("prompt_id")["person"].nunique().to_dict() == {"p0": 1, "p1": 3}
    assert "prompt kinds unknown" in caplog.text and "run.json names no suite" in caplog.text


def test_cache_only_tags_new_images(run, tmp_path):
    root, frame = run
    detector = CenterFaceDetector()
    ok = frame[frame["path"].isin(["images/astro.png", "images/group.png"])].drop_duplicates("path")
    tag_images(ok.iloc[:1], root=root, detector=detector, cache=tmp_path / "c", progress=False)
    assert detector.calls == 1  # 512 px: one pass
    both = tag_images(ok, root=root, detector=detector, cache=tmp_path / "c", progress=False)
    assert detector.calls == 2  # only the group image was new
    assert set(both.observations["prompt_id"]) == {"p0", "p1"}


def test_unknown_attribute_and_missing_columns_are_named(run):
    root, frame = run
    with pytest.raises(KeyError, match="unknown attribute 'halo'"):
        tag_images(frame, root=root, attributes=["halo"], progress=False)
    with pytest.raises(ValueError, match="images table: missing column"):
        tag_images(frame.drop(columns="status"), root=root, progress=False)


def test_clip_tagger_in_the_pipeline_with_random_weights(run):
    root, frame = run
    # gender only: its 20 prompt sentences keep the random-init text encoder quick (race: see test_perception_neural)
    result = tag_images(frame, root=root, attributes=["gender"], tagger="clip",
                        clip_weights="random", allow_random_weights=True, progress=False, faces="all")
    obs = result.observations
    assert set(obs["attribute"]) == {"gender"} and len(obs) == 6  # 1 + 4 faces + the duplicate file
    assert obs["tagger"].str.startswith("clip(").all() and obs["tagger"].str.contains("weights=random").all()
    assert set(obs["label"]) <= {"Male", "Female", "unclear"}


# ---- validation --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def skin_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    rows = []
    for tone in range(1, 11):
        image, _, _ = painted_face(reference_colour(tone), size=200)  # reads MST<tone> exactly
        Image.fromarray(image).save(folder / f"t{tone}.png")
        rows.append({"file": f"t{tone}.png", "skin_tone": f"MST{tone}"})
    rows[9]["skin_tone"] = "MST8"  # one wrong label: the tagger will say MST10
    rows.append({"file": "unreadable.png", "skin_tone": "MST1"})
    (folder / "unreadable.png").write_bytes(b"nope")
    labels = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    return folder, labels


def test_validate_accuracy_wilson_confusion_and_saved_tables(skin_folder, tmp_path):
    from scipy.stats import binomtest

    folder, labels = skin_folder
    result = validate(labels=labels, images=folder, tagger="skin", attributes=("skin_tone",), out=tmp_path / "v")
    summary = result.summary.iloc[0]
    assert (summary["n"], summary["n_correct"], summary["n_unclear"], summary["skipped_files"]) == (10, 9, 0, 1)
    assert summary["accuracy"] == pytest.approx(0.9)
    ci = binomtest(9, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((ci.low, ci.high))
    confusion = result.confusion
    assert list(confusion.columns) == ["attribute", "true", "predicted", "count"]
    assert len(confusion) == 10 * 11  # every true x (predicted + unclear), zeros included
    assert confusion["count"].sum() == 10
    cell = confusion[(confusion["true"] == "MST8") & (confusion["predicted"] == "MST10")]
    assert cell["count"].item() == 1
    recall = result.recall.set_index("true")
    assert recall.loc["MST8", "n"] == 2 and recall.loc["MST8", "recall"] == 0.5
    assert np.isnan(recall.loc["MST10", "recall"])  # no face truly labelled MST10
    for name in ("summary", "recall", "confusion", "predictions", "errors"):
        assert (tmp_path / "v" / f"{name}.parquet").exists() and (tmp_path / "v" / f"{name}.csv").exists()
    assert "unreadable.png" in result.errors["error"].iloc[0]


def test_validate_unclear_rate_with_a_strict_threshold(tmp_path):
    Image.fromarray(astronaut()).save(tmp_path / "a.png")
    Image.fromarray(astronaut()[:, ::-1]).save(tmp_path / "b.png")
    pd.DataFrame({"file": ["a.png", "b.png"], "gender": ["Female", "Female"]}).to_csv(tmp_path / "l.csv", index=False)
    loose = validate(labels=tmp_path / "l.csv", images=tmp_path, tagger="dlib",
                     thresholds={"gender": 0.6}).summary.iloc[0]
    assert (loose["accuracy"], loose["unclear_rate"]) == (1.0, 0.0)
    strict = validate(labels=tmp_path / "l.csv", images=tmp_path, tagger="dlib",
                      thresholds={"gender": 0.999}).summary.iloc[0]
    assert strict["unclear_rate"] == 1.0 and np.isnan(strict["accuracy"]) and strict["accuracy_all"] == 0.0


def test_wilson_interval_known_values():
    low, high = wilson_interval(np.array([0, 5]), np.array([10, 10]))
    assert low[0] == 0.0 and high[0] == pytest.approx(0.27753, abs=1e-4)
    assert (low[1], high[1]) == pytest.approx((0.23659, 0.76341), abs=1e-4)


# ---- CLI -----------------------------------------------------------------------------------------

def test_cli_tag_writes_tables_and_reports(run, tmp_path, capsys):
    root, _ = run
    assert main(["tag", str(root), "--attributes", "gender", "skin_tone", "--threshold", "gender=0.7",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "5 person(s)" in out and "could not be read" in out
    observations = tables.read_table(root / tables.OBSERVATIONS_TABLE)
    assert set(observations["attribute"]) == {"gender", "skin_tone"}
    assert observations["tagger"].str.contains("gender=0.7").any()


def test_cli_tag_face_policy_from_a_suite_file(run, tagged, tmp_path, capsys):
    root, _ = run
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nprompts:\n  - {id: p0, text: an astronaut}\n  - {id: p1, text: a person}\n")
    assert main(["tag", str(root), "--suite", str(suite), "--no-progress"]) == 0
    observations = tables.read_table(root / tables.OBSERVATIONS_TABLE)
    assert observations.groupby("prompt_id")["person"].nunique().to_dict() == {"p0": 1, "p1": 2}
    assert "5 person(s)" in capsys.readouterr().out  # every face is still in the people table
    assert main(["tag", str(root), "--faces", "all", "--no-progress"]) == 0
    assert tables.read_table(root / tables.OBSERVATIONS_TABLE)["person"].nunique() == 4
    assert tables.read_run_config(root)["face_policy"] == {"name": "all"}
    with pytest.raises(SystemExit):  # argparse's own one-line usage error
        main(["tag", str(root), "--faces", "some"])
    assert "--faces: invalid choice: 'some'" in capsys.readouterr().err


def test_cli_errors_are_one_line(run, tmp_path, capsys):

    assert main(["tag", str(tmp_path / "nowhere")]) == 2
    assert "images.parquet: no such file" in capsys.readouterr().err
    assert main(["tag", str(tmp_path), "--threshold", "gender=high"]) == 2
    assert "--threshold 'gender=high'" in capsys.readouterr().err
    # A real run (images.parquet present): the tagger's name is what is refused.
    root, _ = run
    assert (root / tables.IMAGES_TABLE).exists()
    assert main(["tag", str(root), "--tagger", "magic", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown tagger 'magic'" in err and len(err.strip().splitlines()) == 1


def test_cli_validate_and_train_probe(skin_folder, tmp_path, capsys):
    folder, labels = skin_folder
    assert main(["validate", "--labels", str(labels), "--images", str(folder), "--tagger", "skin",
                 "--attributes", "skin_tone", "--out", str(tmp_path / "val")]) == 0
    assert "skin_tone" in capsys.readouterr().out
    confusion = pd.read_csv(tmp_path / "val" / "confusion.csv")
    assert confusion["count"].sum() == 10
    train = pd.read_csv(labels).assign(race=lambda f: ["White", "Black"] * 5 + ["White"])
    train.to_csv(tmp_path / "train.csv", index=False)
    assert main(["train-probe", "--labels", str(tmp_path / "train.csv"), "--images", str(folder),
                 "--attributes", "race", "--out", str(tmp_path / "probe.pt"), "--clip-weights", "random"]) == 2
    assert "allow_random_weights" in capsys.readouterr().err
    assert main(["train-probe", "--labels", str(tmp_path / "train.csv"), "--images", str(folder),
                 "--attributes", "race", "--out", str(tmp_path / "probe.pt"), "--clip-weights", "random",
                 "--allow-random-weights"]) == 0
    assert "trained on 10 face(s) (1 skipped)" in capsys.readouterr().out
    assert (tmp_path / "probe.pt").exists()
