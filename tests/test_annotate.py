"""biaskit annotate: the sample's design, the files for annotators, import, agreement, accuracy."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from biaskit.accuracy import confusion_table, weighted_share, wilson_interval
from biaskit.annotate import export_annotation, import_annotations
from biaskit.annotate.agreement import agreement_table, cohen_kappa, krippendorff_alpha
from biaskit.annotate.sample import inclusion_probabilities, size_measure, systematic_draw
from biaskit.cli import main
from report_support import make_run

HEADER = "export_id,annotator,face_id,attribute,label\n"


@pytest.fixture
def exported(tmp_path):
    run = tmp_path / "run"
    make_run(run)
    export = export_annotation(run, out=tmp_path / "out", n=12, seed=1)
    truth = pd.read_parquet(run / "annotation" / "predictions.parquet")
    return {"run": run, "export": export, "out": tmp_path / "out", "tmp": tmp_path,
            "predicted": truth.set_index(["face_id", "attribute"])["label"].to_dict()}


def write_csv(path, export_id, rows):
    path.write_text(HEADER + "".join(f"{export_id},{a},{f},{attr},{label}\n"
                                     for a, f, attr, label in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the sampling design

def test_systematic_draw_takes_exactly_n_with_the_stated_probabilities():
    size = np.array([1.0, 1.0, 2.0, 4.0, 8.0, 0.5, 0.5, 3.0])
    pi = inclusion_probabilities(size, 4)
    assert pi.sum() == pytest.approx(4) and pi.max() == 1.0  # the largest unit is taken for sure
    rng = np.random.default_rng(0)
    hits = np.zeros(len(size))
    totals = []
    y = np.arange(1.0, 9.0)
    for _ in range(20000):
        drawn = systematic_draw(pi, rng)
        assert len(drawn) == 4
        hits[drawn] += 1
        totals.append((y[drawn] / pi[drawn]).sum())  # Horvitz-Thompson estimate of sum(y)
    assert np.abs(hits / 20000 - pi).max() < 0.015
    assert np.mean(totals) == pytest.approx(y.sum(), rel=0.01)


def test_rare_labels_and_low_confidence_are_drawn_more_often():
    labels = pd.DataFrame({"gender": ["Male"] * 99 + ["Female"]})
    confidence = pd.DataFrame({"gender": [0.9] * 98 + [0.3, 0.9]})
    size = size_measure(labels, confidence)
    male = (99 / 100) ** -0.5 * 1.1
    assert size[0] == pytest.approx(male)
    assert size[-1] == pytest.approx((1 / 100) ** -0.5 * 1.1)  # 10x rarer label: sqrt(99) x more
    assert size[98] == pytest.approx((99 / 100) ** -0.5 * 1.7)  # low confidence


def test_export_keeps_labels_in_the_run_and_out_of_the_annotators_files(exported):
    export, run, out = exported["export"], exported["run"], exported["out"]
    sample = export.sample
    assert len(sample) == 12 and sample["face_id"].is_unique
    assert set(sample["model"]) == {"base", "cand"} and (sample["model"] == "base").sum() == 6
    assert np.allclose(sample["weight"], 1 / sample["inclusion_probability"])
    # 10 faces per model; weights sum to each model's population (Horvitz-Thompson)
    assert sample.groupby("model")["weight"].sum().to_dict() == pytest.approx({"base": 10, "cand": 10})
    html = export.page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="biaskit-data" type="application/json">(.*?)</script>',
                                html, re.S).group(1))
    assert [f["id"] for f in data["faces"]] == list(sample["face_id"])
    assert all(set(f) == {"id", "crop", "image"} for f in data["faces"])
    assert all(f["crop"].startswith("data:image/jpeg;base64,") for f in data["faces"])
    assert "confidence" not in html and "embedded" not in html and "colorimetry" not in html
    assert "http://" not in html and "https://" not in html and "src=\"file" not in html
    tasks = json.loads(export.tasks.read_text(encoding="utf-8"))
    assert [t["data"]["face_id"] for t in tasks] == list(sample["face_id"])
    assert all(set(t["data"]) == {"face_id", "export_id", "face", "image"} for t in tasks)
    config = export.config.read_text(encoding="utf-8")
    assert '<Choices name="gender" toName="face"' in config and '<Choice value="no person"/>' in config
    assert (run / "annotation" / "sample.parquet").exists()
    with pytest.raises(ValueError, match="already has an annotation sample"):
        export_annotation(run, out=out, n=12)


def test_per_model_draws_n_from_every_model(tmp_path):
    run = tmp_path / "run"
    make_run(run)
    export = export_annotation(run, out=tmp_path / "out", n=8, per_model=True)
    sample = export.sample
    assert sample["model"].value_counts().to_dict() == {"base": 8, "cand": 8}
    rows = [("ann", f, "gender", "Male") for f in sample["face_id"]]
    result = import_annotations([write_csv(tmp_path / "a.csv", export.export_id, rows)], run=run,
                                n_boot=20, min_per_model=8)
    by_model = result.tables["confusion_by_model"]
    assert set(by_model["model"]) == {"base", "cand"}
    cand = by_model[(by_model["model"] == "cand") & (by_model["true"] == "Male")].set_index("predicted")
    truth = pd.read_parquet(run / "annotation" / "predictions.parquet")
    cand_truth = truth[(truth["model"] == "cand") & (truth["attribute"] == "gender")]
    assert cand.loc["Female", "count"] > 0 and (cand_truth["label"] == "Female").any()
    assert set(result.tables["summary_by_model"]["model"]) == {"base", "cand"}
    assert result.source["models_with_own_confusion"] == ["base", "cand"]
    from biaskit.report.validation import validation_section

    accuracy_rows = validation_section(run)["accuracy"]["rows"]
    assert [r[1] for r in accuracy_rows] == ["all", "base", "cand"]
    # a model with fewer labelled faces than min_per_model gets no table of its own
    fewer = import_annotations([tmp_path / "a.csv"], run=run, n_boot=20, min_per_model=9)
    assert fewer.tables["confusion_by_model"].empty


# ---------------------------------------------------------------- agreement

def test_alpha_matches_the_krippendorff_package_examples():
    n = np.nan
    readme = [[n, n, n, n, n, 3, 4, 1, 2, 1, 1, 3, 3, n, 3],  # the krippendorff package's README
              [1, n, 2, 1, 3, 3, 4, 3, n, n, n, n, n, n, n],
              [n, n, 2, 1, 3, 4, 4, n, 2, 1, 1, 3, 3, n, 4]]
    assert krippendorff_alpha(np.array(readme) - 1, n_values=4) == pytest.approx(0.691, abs=5e-4)
    paper = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],  # Krippendorff (2011), nominal alpha 0.743
             [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
             [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
             [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    assert krippendorff_alpha(np.array(paper) - 1, n_values=5) == pytest.approx(0.743, abs=5e-4)


def test_agreement_table_against_hand_computed_values():
    # Two annotators, four faces: (M, M), (M, F), (F, F), (F, F).
    # Coincidences: o_MM = 2, o_MF = o_FM = 1, o_FF = 4; n_M = 3, n_F = 5, n = 8.
    # alpha = 1 - (2/8) / (2*3*5 / (8*7)) = 8/15.  kappa: p_o = 3/4, p_e = (2*1 + 2*3)/16 = 1/2 -> 1/2.
    a, b = ["Male", "Male", "Female", "Female"], ["Male", "Female", "Female", "Female"]
    answers = pd.DataFrame([(who, f"f{i}", "gender", label) for who, labels in (("ann", a), ("bob", b))
                            for i, label in enumerate(labels)],
                           columns=["annotator", "face_id", "attribute", "label"])
    # A third annotator who only says unclear adds nothing (missing values).
    answers.loc[len(answers)] = ("cy", "f0", "gender", "unclear")
    table = agreement_table(answers, {"gender": ["Male", "Female"]}, n_boot=200, seed=0)
    alpha = table[table["statistic"] == "krippendorff_alpha"].iloc[0]
    assert alpha["value"] == pytest.approx(8 / 15) and alpha["n_faces"] == 4
    assert alpha["ci_low"] <= alpha["value"] <= alpha["ci_high"]
    kappa = table[(table["statistic"] == "cohen_kappa") & (table["annotator_a"] == "ann")
                  & (table["annotator_b"] == "bob")].iloc[0]
    assert kappa["value"] == pytest.approx(0.5) and kappa["n_faces"] == 4
    assert kappa["ci_low"] <= 0.5 <= kappa["ci_high"]
    assert cohen_kappa([0, 0, 1, 1, 0, 1], [0, 1, 1, 1, 0, 0], n_values=2) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- import

def test_import_with_disagreement_skips_no_person_and_bad_rows(exported, capsys):
    export, run, tmp = exported["export"], exported["run"], exported["tmp"]
    faces = list(export.sample["face_id"])
    eid = export.export_id
    alice, bob, carol = [], [], []
    for face in faces[:8]:  # everyone agrees with each other on gender: Female
        for rows in (alice, bob, carol):
            rows.append(("x", face, "gender", "Female"))
    for rows, label in ((alice, "Male"), (bob, "Male"), (carol, "Female")):  # 2 : 1 -> Male
        rows.append(("x", faces[8], "gender", label))
    for rows, label in ((alice, "Male"), (bob, "Female")):  # carol skips; 1 : 1 -> a tie
        rows.append(("x", faces[9], "gender", label))
    for rows, label in ((alice, "no person"), (bob, "no person"), (carol, "Male")):  # a false detection
        rows.append(("x", faces[10], "gender", label))
        rows.append(("x", faces[10], "skin_tone", label if label == "no person" else "MST3"))
    files = [write_csv(tmp / f"{who}.csv", eid, [(who, f, a, l) for _, f, a, l in rows])
             for who, rows in (("alice", alice), ("bob", bob), ("carol", carol))]
    bad = write_csv(tmp / "bad.csv", eid, [("dan", "fnope", "gender", "Male"),
                                           ("dan", faces[0], "gender", "Robot"),
                                           ("dan", faces[0], "hair", "Male")])
    bad.write_text(bad.read_text() + f"stale0export,dan,{faces[0]},gender,Male\n")
    assert main(["annotate", "import", *map(str, files), str(bad), "--run", str(run),
                 "--n-boot", "100"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4
    assert f"{bad}: row 2: face 'fnope' is not in this run's annotation sample" in err[0]
    assert "row 3: label 'Robot' is not an answer to 'gender'" in err[1]
    assert "row 4: attribute 'hair' was not asked" in err[2]
    assert "row 5: answers to another sample (export 'stale0export')" in err[3]
    validation = run / "validation"
    majority = pd.read_parquet(validation / "majority.parquet").set_index(["face_id", "attribute"])
    assert majority.loc[(faces[8], "gender"), "label"] == "Male"
    assert majority.loc[(faces[8], "gender"), "n_agree"] == 2
    assert majority.loc[(faces[9], "gender"), "status"] == "tie"
    assert majority.loc[(faces[10], "gender"), "status"] == "no person"
    predictions = pd.read_parquet(validation / "predictions.parquet")
    assert set(predictions["file"]) == set(faces[:9])  # tie, no person and unanswered faces left out
    # accuracy against the majority, weighted by the design, by hand
    sample = export.sample.set_index("face_id")
    truth = {f: "Female" for f in faces[:8]} | {faces[8]: "Male"}
    hits = np.array([exported["predicted"][(f, "gender")] == truth[f] for f in truth])
    weights = np.array([sample.loc[f, "weight"] for f in truth])
    share = (hits * weights).sum() / weights.sum()
    n_eff = weights.sum() ** 2 / (weights**2).sum()
    low, high = map(float, wilson_interval(share * n_eff, n_eff))
    summary = pd.read_parquet(validation / "summary.parquet").set_index("attribute")
    assert summary.loc["gender", "accuracy"] == pytest.approx(share)
    assert summary.loc["gender", "n_effective"] == pytest.approx(n_eff)
    assert (summary.loc["gender", "ci_low"], summary.loc["gender", "ci_high"]) == pytest.approx((low, high))
    detector = pd.read_parquet(validation / "detector.parquet").set_index("model")
    model = sample.loc[faces[10], "model"]
    assert detector.loc[model, "n_no_person"] == 1 and detector.loc["all", "n_no_person"] == 1
    assert detector.loc["all", "n_faces"] == 11  # faces[11] was not answered
    assert detector.loc["all", "estimated_false_detections"] == pytest.approx(sample.loc[faces[10], "weight"])
    annotators = pd.read_parquet(validation / "annotators.parquet").set_index("annotator")
    assert annotators.loc["carol", "n_faces"] == 10 and annotators.loc["alice", "n_no_person"] == 1
    assert "dan" not in annotators.index
    confusion = pd.read_parquet(validation / "confusion.parquet")
    gender = confusion[confusion["attribute"] == "gender"]
    assert gender["count"].sum() == pytest.approx(n_eff)  # rescaled to the effective sample size
    right = gender[gender["true"] == gender["predicted"]]["count"].sum()
    known = gender[gender["predicted"] != "unclear"]["count"].sum()
    assert right / known == pytest.approx(share)  # the table's accuracy is the weighted one
    agreement = pd.read_parquet(validation / "agreement.parquet")
    pairs = agreement[agreement["statistic"] == "cohen_kappa"]
    assert len(pairs[pairs["attribute"] == "gender"]) == 3  # alice-bob, alice-carol, bob-carol
    assert json.loads((validation / "source.json").read_text())["n_annotators"] == 3


def test_weighted_confusion_is_the_design_unbiased_joint_sized_by_effective_n():
    predictions = pd.DataFrame({
        "attribute": "gender", "true": ["Male"] * 4 + ["Female"],
        "predicted": ["Male", "Male", "Female", "unclear", "Female"],
        "weight": [1.0, 1.0, 4.0, 2.0, 2.0]})
    table = confusion_table(predictions).set_index(["true", "predicted"])["count"]
    n_eff = 10.0**2 / 26.0  # (sum w)^2 / sum w^2
    assert table.sum() == pytest.approx(n_eff)
    # each cell: its share of the weight (the population's joint share) times n_eff
    assert table[("Male", "Male")] == pytest.approx(2 / 10 * n_eff)
    assert table[("Male", "Female")] == pytest.approx(4 / 10 * n_eff)
    assert table[("Male", "unclear")] == pytest.approx(2 / 10 * n_eff)
    assert table[("Female", "Female")] == pytest.approx(2 / 10 * n_eff)
    assert table[("Female", "Male")] == 0
    unweighted = confusion_table(predictions.drop(columns="weight"))
    assert unweighted["count"].dtype == "int64" and unweighted["count"].sum() == 5
    share, low, high, n = weighted_share([1, 1, 0], [1.0, 1.0, 4.0])
    assert share == pytest.approx(1 / 3) and n == pytest.approx(36 / 18) and low < share < high


def test_label_studio_export_round_trip(exported):
    """A file in Label Studio's documented JSON export format, as two users answered the tasks."""
    export, run, tmp = exported["export"], exported["run"], exported["tmp"]
    tasks = json.loads(export.tasks.read_text(encoding="utf-8"))
    answers = {}
    for number, task in enumerate(tasks, start=1):
        task.update(id=number, project=3, created_at="2026-11-30T10:00:00.000000Z")
        task["annotations"] = []
        for user, gender in ((7, "Male" if number % 3 else "Female"), (9, "Male")):
            cancelled = user == 9 and number == 2  # user 9 skipped task 2
            result = [] if cancelled else [
                {"id": f"r{number}{user}", "from_name": "gender", "to_name": "face", "type": "choices",
                 "origin": "manual", "value": {"choices": [gender]}},
                {"id": f"s{number}{user}", "from_name": "skin_tone", "to_name": "face", "type": "choices",
                 "origin": "manual", "value": {"choices": ["MST4"]}}]
            task["annotations"].append({
                "id": 1000 * user + number, "completed_by": user, "result": result,
                "was_cancelled": cancelled, "ground_truth": False, "lead_time": 3.2, "task": number,
                "created_at": "2026-11-30T10:01:00.000000Z", "updated_at": "2026-11-30T10:01:00.000000Z"})
            if not cancelled:
                answers[(f"labelstudio-{user}", task["data"]["face_id"])] = gender
        task["predictions"] = []
    path = tmp / "project-3-at-2026-11-30.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    result = import_annotations([path], run=run, n_boot=50)
    assert result.errors == []
    labels = result.tables["labels"]
    gender = labels[labels["attribute"] == "gender"]
    assert dict(zip(zip(gender["annotator"], gender["face_id"]), gender["label"])) == answers
    assert len(labels[labels["attribute"] == "skin_tone"]) == len(answers)
    assert result.source["n_annotators"] == 2


def test_validate_and_import_write_the_same_tables(exported):
    from biaskit.perception.validate import VALIDATION_TABLES

    export, run, tmp = exported["export"], exported["run"], exported["tmp"]
    rows = [("ann", f, "gender", "Male") for f in export.sample["face_id"]]
    result = import_annotations([write_csv(tmp / "a.csv", export.export_id, rows)], run=run, n_boot=20)
    from biaskit.accuracy import SUMMARY_COLUMNS, RECALL_COLUMNS, PRECISION_COLUMNS, CONFUSION_COLUMNS
    for name, columns in (("summary", SUMMARY_COLUMNS), ("recall", RECALL_COLUMNS),
                          ("precision", PRECISION_COLUMNS), ("confusion", CONFUSION_COLUMNS)):
        assert list(result.tables[name].columns)[:len(columns)] == list(columns), name
    assert set(VALIDATION_TABLES) <= set(result.tables)
    for name in VALIDATION_TABLES:
        assert (run / "validation" / f"{name}.parquet").exists()


def test_import_with_no_valid_row_names_every_problem(exported, capsys):
    run, tmp = exported["run"], exported["tmp"]
    bad = write_csv(tmp / "bad.csv", exported["export"].export_id, [("ann", "fnope", "gender", "Male")])
    assert main(["annotate", "import", str(bad), str(exported["out"] / "labelstudio_config.xml"),
                 "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no valid answers to import; 2 problem(s):" in err
    assert f"{bad}: row 2: face 'fnope' is not in this run's annotation sample" in err
    assert "labelstudio_config.xml: not an answer file" in err
    assert "Traceback" not in err


def test_import_refuses_a_run_without_a_sample(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run)
    assert main(["annotate", "import", str(tmp_path), "--run", str(run)]) == 2
    assert "no annotation sample in this run; run `biaskit annotate export` first" in capsys.readouterr().err


def test_measure_picks_up_the_runs_validation(exported, capsys):
    export, run, tmp = exported["export"], exported["run"], exported["tmp"]
    rows = [("ann", f, "gender", exported["predicted"][(f, "gender")]) for f in export.sample["face_id"]]
    import_annotations([write_csv(tmp / "a.csv", export.export_id, rows)], run=run, n_boot=20)
    out = tmp / "metrics"
    assert main(["measure", str(run / "observations.parquet"), "--prompts", str(run / "suite.yaml"),
                 "--n-boot", "20", "--out", str(out)]) == 0
    assert "correcting for tagger error with" in capsys.readouterr().out
    corrected = pd.read_parquet(out / "corrected_entropy.parquet")
    assert set(corrected["attribute"]) == {"gender"}
    # the tagger agrees with the annotator on every face: the correction changes nothing
    assert np.allclose(corrected["entropy"], corrected["observed_entropy"], equal_nan=True)
    assert main(["measure", str(run / "observations.parquet"), "--prompts", str(run / "suite.yaml"),
                 "--n-boot", "20", "--no-confusion", "--out", str(tmp / "plain")]) == 0
    assert not (tmp / "plain" / "corrected_entropy.parquet").exists()


def test_export_names_an_unreadable_image_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run)
    broken = sorted((run / "images").glob("*.png"))[0]
    broken.write_bytes(b"not a png")
    assert main(["annotate", "export", str(run), "--n", "20", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{broken}: cannot read this image for the annotation page" in err and "Traceback" not in err
    assert not (run / "annotation").exists() and not (tmp_path / "out").exists()


def test_page_escapes_labels_in_markup_and_data(tmp_path):
    from biaskit.annotate.export import write_page

    evil = '</script><script>alert(1)</script>'
    sample = pd.DataFrame({"face_id": ["f1"]})
    page = write_page(tmp_path / "p.html", export_id="e1", sample=sample, crops={"f1": "data:,"},
                      wholes={"f1": "data:,"}, choices={"mood": ["calm", evil, "unclear"]})
    html = page.read_text(encoding="utf-8")
    assert html.count("<script") == 2 and evil not in html  # the data block and the page's code
    data = json.loads(re.search(r'<script id="biaskit-data" type="application/json">(.*?)</script>',
                                html, re.S).group(1))
    assert data["attributes"][0]["labels"] == ["calm", evil, "unclear"]
    assert data["attributes"][0]["hotkeys"] == ["1", "2", "u"]
