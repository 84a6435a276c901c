"""Reading observations: clear errors naming the item; the measure CLI and measure_run end to end."""

import pandas as pd
import pytest

from biaskit.cli import main
from biaskit.metrics import BiasFrame, measure_run, read_observations
from biaskit.suite import suite_from_dict

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


def test_observed_image_missing_from_images_table_warns_and_counts():
    images = pd.DataFrame([("a", "doctor", 0, "ok")], columns=["model", "prompt_id", "sample", "status"])
    with pytest.warns(UserWarning, match="not 'ok' in the images table"):
        bf = BiasFrame(observations(), suite=SUITE, images=images, n_boot=0)
    doctor = bf.summary.query("model == 'a' and prompt_id == 'doctor' and attribute == 'gender'")
    assert doctor.n_images.item() == 2


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
