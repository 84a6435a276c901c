"""Reading observations: clear errors naming the item; the measure CLI and measure_run end to end."""

import pandas as pd
import pytest

from biaskit.cli import main
from biaskit.metrics import BiasFrame, measure_run, read_observations
from biaskit.suite import suite_from_dict
from biaskit.tables import read_table

SUITE_DICT = {"name": "io", "samples": 2, "prompts": [
    {"id": "doctor", "text": "a doctor"},
    {"id": "fathers", "text": "the founding fathers", "kind": "ahistorical",
     "expected": {"gender": "Male"}},
]}
SUITE = suite_from_dict(SUITE_DICT)
COLUMNS = ["model", "prompt_id", "sample", "person", "attribute", "label"]


def observations(rows=None):
    rows = rows or [
        ("a", "doctor", 0, 0, "gender", "Male"), ("a", "doctor", 1, 0, "gender", "Female"),
        ("a", "fathers", 0, 0, "gender", "Male"), ("b", "doctor", 0, 0, "gender", "Male"),
        ("b", "fathers", 0, 0, "gender", "Male"), ("b", "doctor", 0, 0, "skin_tone", "MST2"),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture()
def suite_file(tmp_path):
    import yaml
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE_DICT))
    return path


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "obs.csv"
    observations().drop(columns="label").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"obs.csv: missing column\(s\) \['label'\]"):
        read_observations(path, suite=SUITE)


def test_label_outside_taxonomy_names_row_label_and_attribute():
    obs = observations()
    obs.loc[3, "label"] = "Robot"
    with pytest.raises(ValueError, match=r"observations: row 4: label 'Robot' is not in the "
                                         r"'gender' taxonomy"):
        BiasFrame(obs, suite=SUITE, n_boot=0)


def test_prompt_missing_from_suite_is_named():
    obs = observations()
    obs.loc[2, "prompt_id"] = "astronaut"
    with pytest.raises(ValueError, match=r"row 3: prompt_id 'astronaut' is not in suite 'io'"):
        BiasFrame(obs, suite=SUITE, n_boot=0)


def test_unknown_attribute_and_empty_field_and_duplicate_are_named():
    obs = observations()
    obs.loc[1, "attribute"] = "height"
    with pytest.raises(KeyError, match=r"row 2: unknown attribute 'height'"):
        BiasFrame(obs, suite=SUITE, n_boot=0)
    obs = observations()
    obs.loc[4, "sample"] = None
    with pytest.raises(ValueError, match=r"row 5: column 'sample' is empty"):
        BiasFrame(obs, suite=SUITE, n_boot=0)
    obs = pd.concat([observations(), observations().iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"row 7: duplicate row for model 'a', prompt_id 'doctor', "
                                         r"sample 1, person 0, attribute 'gender'"):
        BiasFrame(obs, suite=SUITE, n_boot=0)


def test_images_table_errors_are_named():
    images = pd.DataFrame([("a", "doctor", 0, "ok"), ("a", "doctor", 1, "lost")],
                          columns=["model", "prompt_id", "sample", "status"])
    with pytest.raises(ValueError, match=r"images: row 2: status 'lost' is not one of"):
        BiasFrame(observations(), suite=SUITE, images=images, n_boot=0)


# The join checks, with the tables of issue 13 (item 7): one model, one prompt, 12 samples.
JOIN_SUITE = suite_from_dict({"name": "join", "samples": 12,
                              "prompts": [{"id": "doctor", "text": "a doctor"}]})


def one_face_each(samples):
    return pd.DataFrame([("a", "doctor", s, 0, "gender", "Male" if s % 2 else "Female")
                         for s in samples], columns=COLUMNS)


def image_rows(samples, *, refused=()):
    return pd.DataFrame([("a", "doctor", s, "refused" if s in refused else "ok") for s in samples],
                        columns=["model", "prompt_id", "sample", "status"])


def join_files(tmp_path, observations, images):
    observations.to_csv(tmp_path / "obs.csv", index=False)
    images.to_parquet(tmp_path / "images.parquet")
    return tmp_path / "obs.csv", tmp_path / "images.parquet"


def test_join_observed_samples_marked_refused_fail_naming_both_files(tmp_path):
    # Was: n_samples 15 for 12 samples (the 3 refused ones counted again as generated).
    obs, images = join_files(tmp_path, one_face_each(range(12)), image_rows(range(12), refused=(4, 5, 6)))
    with pytest.raises(ValueError, match=r"obs\.csv: row 5: model 'a', prompt_id 'doctor', sample 4 "
                                         r"is observed, but .*images\.parquet marks it 'refused'"):
        BiasFrame(read_table(obs), suite=JOIN_SUITE, images=read_table(images), n_boot=0,
                  name=str(obs))


def test_join_disjoint_samples_fail_naming_both_files(tmp_path):
    # Was: n_images 12 for 6 images (observed 0-5, images table 6-11).
    obs, images = join_files(tmp_path, one_face_each(range(6)), image_rows(range(6, 12)))
    with pytest.raises(ValueError, match=r"obs\.csv: row 1: model 'a', prompt_id 'doctor', sample 0 "
                                         r"is not in .*images\.parquet"):
        BiasFrame(read_table(obs), suite=JOIN_SUITE, images=read_table(images), n_boot=0,
                  name=str(obs))


@pytest.mark.parametrize("text_in", ["observations", "images"])
def test_join_sample_stored_as_text_is_coerced(tmp_path, text_in):
    # Was: every image counted twice (24 samples, 24 images for 12).
    observations, images = one_face_each(range(12)), image_rows(range(12), refused=(11,))
    observations = observations[observations["sample"] != 11]
    table = observations if text_in == "observations" else images
    table["sample"] = table["sample"].astype(str)
    bf = BiasFrame(observations, suite=JOIN_SUITE, images=images, n_boot=0)
    rates = bf.rates.set_index("model")
    assert rates.loc["a", "n_samples"] == 12 and rates.loc["a", "n_images"] == 11
    assert rates.loc["a", "refusal_rate"] == pytest.approx(1 / 12)
    assert bf.summary["n_images"].tolist() == [11]


def test_join_text_samples_that_are_not_numbers_fail_naming_the_file_and_row(tmp_path):
    # Sample ids are whole numbers (issue 13, item 9): text such as 's0' is refused, not matched.
    observations = one_face_each(range(3)).assign(sample=["s0", "s1", "s2"])
    obs, images = join_files(tmp_path, observations, image_rows(range(3)))
    with pytest.raises(ValueError, match=r"obs\.csv: row 1: sample 's0' is not a whole number"):
        BiasFrame(read_table(obs), suite=JOIN_SUITE, images=read_table(images), n_boot=0,
                  name=str(obs))


def test_measure_cli_join_error_is_one_line_naming_both_files(tmp_path, capsys):
    import yaml
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"name": "join", "prompts": [
        {"id": "doctor", "text": "a doctor"}]}))
    obs, images = join_files(tmp_path, one_face_each(range(6)), image_rows(range(6, 12)))
    code = main(["measure", str(obs), "--prompts", str(tmp_path / "suite.yaml"), "--images",
                 str(images), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "obs.csv: row 1" in err and "images.parquet" in err and "Traceback" not in err


def test_skin_tone_numbers_are_normalised():
    obs = observations([("a", "doctor", 0, 0, "skin_tone", 3), ("a", "doctor", 1, 0, "skin_tone", 3)])
    dist = BiasFrame(obs, suite=SUITE, n_boot=0).distribution
    assert dist.loc[dist.label == "MST3", "count"].tolist() == [2, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_boot"):
        BiasFrame(observations(), suite=SUITE, n_boot=-1)
    with pytest.raises(ValueError, match="confidence"):
        BiasFrame(observations(), suite=SUITE, confidence=1.5)
    with pytest.raises(ValueError, match=r"taxonomies\['hair'\]: needs at least two"):
        BiasFrame(observations(), suite=SUITE, taxonomies={"hair": ["long"]})


def test_cli_writes_every_table(tmp_path, suite_file, capsys):
    obs_path = tmp_path / "obs.csv"
    observations().to_csv(obs_path, index=False)
    images_path = tmp_path / "images.parquet"
    pd.DataFrame([("a", "doctor", s, "ok") for s in range(3)] + [("a", "fathers", 0, "ok")]
                 + [("b", "doctor", 0, "ok"), ("b", "doctor", 1, "ok"), ("b", "fathers", 0, "ok"),
                    ("b", "fathers", 1, "refused")],
                 columns=["model", "prompt_id", "sample", "status"]).to_parquet(images_path)
    confusion = tmp_path / "confusion.csv"
    pd.DataFrame([("gender", "Male", "Male", 90), ("gender", "Male", "Female", 10),
                  ("gender", "Female", "Female", 80), ("gender", "Female", "unclear", 5),
                  ("gender", "Female", "Male", 20)],
                 columns=["attribute", "true", "predicted", "count"]).to_csv(confusion, index=False)
    out = tmp_path / "metrics"
    code = main(["measure", str(obs_path), "--prompts", str(suite_file), "--images",
                 str(images_path), "--baseline", "b", "--confusion", str(confusion),
                 "--n-boot", "50", "--out", str(out)])
    assert code == 0
    assert ("wrote comparison, corrected, corrected_entropy, corrected_overall, distribution, overall, "
            "rates, summary"
            in capsys.readouterr().out)
    for name in ("distribution", "summary", "overall", "rates", "comparison", "corrected", "corrected_entropy",
                 "corrected_overall"):
        assert (out / f"{name}.parquet").exists() and (out / f"{name}.csv").exists()
    rates = pd.read_csv(out / "rates.csv").set_index("model")
    assert rates.loc["a", "no_person_share"] == pytest.approx(1 / 4)  # a/doctor/2: no person
    assert rates.loc["b", "refusal_rate"] == pytest.approx(1 / 4)
    corrected = pd.read_csv(out / "corrected.csv")
    assert set(corrected.attribute) == {"gender"}


def test_cli_bad_input_is_one_line_exit_2(tmp_path, suite_file, capsys):
    obs_path = tmp_path / "obs.csv"
    obs = observations()
    obs.loc[0, "label"] = "Robot"
    obs.to_csv(obs_path, index=False)
    code = main(["measure", str(obs_path), "--prompts", str(suite_file), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "obs.csv: row 1: label 'Robot'" in err and "Traceback" not in err


def test_measure_run_reads_run_dir_and_writes_metrics(tmp_path, suite_file):
    observations().to_parquet(tmp_path / "observations.parquet")
    bf = measure_run(tmp_path, suite=suite_file, baseline="a", n_boot=20)
    names = sorted(p.stem for p in (tmp_path / "metrics").glob("*.parquet"))
    assert names == ["comparison", "distribution", "overall", "rates", "summary"]
    assert set(pd.read_parquet(tmp_path / "metrics" / "comparison.parquet").model) == {"b"}
    assert bf.n_boot == 20


def test_measure_run_names_the_images_file_of_a_bad_images_row(tmp_path, suite_file):
    observations().to_parquet(tmp_path / "observations.parquet")
    images = pd.DataFrame({"model": ["a", "a"], "prompt_id": ["doctor", "doctor"], "sample": [0, 1],
                           "status": ["ok", "lost"]})
    images.to_parquet(tmp_path / "images.parquet")
    with pytest.raises(ValueError, match=r"images\.parquet: row 2: status 'lost'"):
        measure_run(tmp_path, suite=suite_file, n_boot=5)


@pytest.mark.parametrize("column, value", [("sample", -1), ("sample", 1.5), ("sample", "two"),
                                           ("person", -2), ("person", 0.5), ("person", "first")])
def test_negative_fractional_or_text_sample_and_person_are_refused_naming_the_row(tmp_path, column, value):
    frame = observations()
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    path = tmp_path / "obs.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"obs\.csv: row 4: {column} .* is not a whole number of at least 0"):
        read_observations(path, suite=SUITE)


def test_sample_and_person_written_as_whole_number_text_are_read_as_numbers():
    from biaskit.metrics.io import validate_observations

    obs = validate_observations(observations().astype({"sample": str, "person": str}), suite=SUITE)
    assert obs["sample"].dtype == "int64" and obs["person"].dtype == "int64"
    assert obs["sample"].tolist() == observations()["sample"].tolist()
