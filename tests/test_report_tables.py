"""The report's tables (biaskit.report.data) on hand-made inputs: which rows, in which order,
with which values; and ``load_run``'s choices and errors.  Fast: no rendering."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from biaskit.report.data import (
    COMPARISON_COLUMNS, RunData, ahistorical, headline, load_run, significant_differences,
)
from biaskit.tables import write_table
from report_support import SUITE, make_run

OVERALL_COLUMNS = ["model", "attribute", "kind", "hof"]


def test_headline_orders_kinds_attributes_and_models_and_drops_the_rest():
    overall = pd.DataFrame([
        ("b", "gender", "group", 0.1), ("a", "gender", "group", 0.2),
        ("a", "skin_tone", "individual", 0.3), ("b", "gender", "individual", 0.4),
        ("a", "gender", "individual", 0.5), ("a", "gender", "ambiguous", 0.6),
        ("a", "gender", "ahistorical", 0.7), ("c", "gender", "individual", 0.8),
    ], columns=OVERALL_COLUMNS)
    table = headline(overall, models=["b", "a"])
    assert list(table.columns) == OVERALL_COLUMNS  # helper columns gone
    assert list(zip(table["kind"], table["attribute"], table["model"])) == [
        ("ambiguous", "gender", "a"),
        ("individual", "gender", "b"), ("individual", "gender", "a"), ("individual", "skin_tone", "a"),
        ("group", "gender", "b"), ("group", "gender", "a")]
    assert list(table["hof"]) == [0.6, 0.4, 0.5, 0.3, 0.1, 0.2]
    assert list(table.index) == list(range(6))


def comparison_rows(rows):
    frame = pd.DataFrame(rows, columns=["prompt_id", "attribute", "metric", "value", "baseline_value",
                                        "delta", "ci_low", "ci_high", "p_value", "q_value"])
    return frame.assign(model="cand", baseline="base")[list(COMPARISON_COLUMNS)]


def test_significant_differences_filter_on_q_strictly_below_alpha_and_pick_the_largest_shift():
    comparison = comparison_rows([
        # nurse: significant; entropy row and two share rows, Female moved most
        ("nurse", "gender", "entropy", 0.9, 0.3, 0.6, 0.4, 0.8, 0.004, 0.02),
        ("nurse", "gender", "share:Male", 0.4, 0.7, -0.3, -0.5, -0.1, 0.004, 0.02),
        ("nurse", "gender", "share:Female", 0.6, 0.3, 0.35, 0.1, 0.6, 0.004, 0.02),
        ("nurse", "gender", "share:Other", np.nan, 0.0, np.nan, np.nan, np.nan, 0.004, 0.02),
        # ceo: p under alpha, q not: left out
        ("ceo", "gender", "entropy", 0.5, 0.4, 0.1, 0.0, 0.2, 0.01, 0.2),
        # pilot: q == alpha: left out (strictly below)
        ("pilot", "gender", "entropy", 0.5, 0.4, 0.1, 0.0, 0.2, 0.05, 0.05),
        # judge: q under alpha though p is not (a hand-made row: only q decides)
        ("judge", "skin_tone", "share:MST3", 0.2, 0.5, -0.3, -0.4, -0.2, 0.07, 0.001),
        # no q at all: left out
        ("cook", "gender", "entropy", 0.5, 0.4, 0.1, 0.0, 0.2, np.nan, np.nan),
        # a kind aggregate: never a per-prompt difference
        ("all:individual", "gender", "hof", 0.5, 0.1, 0.4, 0.3, 0.5, 0.0001, 0.0001),
    ])
    table = significant_differences(comparison)
    assert list(table["prompt_id"]) == ["judge", "nurse"]  # smallest q first
    judge, nurse = table.iloc[0], table.iloc[1]
    assert (nurse["entropy"], nurse["baseline_entropy"], nurse["delta"], nurse["ci_low"], nurse["ci_high"]) == \
        (0.9, 0.3, 0.6, 0.4, 0.8)
    assert (nurse["shift_label"], nurse["shift"], nurse["shift_ci_low"], nurse["shift_ci_high"]) == \
        ("Female", 0.35, 0.1, 0.6)
    assert (nurse["p_value"], nurse["q_value"], nurse["model"], nurse["baseline"]) == (0.004, 0.02, "cand", "base")
    assert np.isnan(judge["entropy"]) and np.isnan(judge["delta"]) and judge["shift_label"] == "MST3"
    assert (judge["p_value"], judge["q_value"]) == (0.07, 0.001)
    assert list(significant_differences(comparison, alpha=0.3)["prompt_id"]) == ["judge", "nurse", "pilot", "ceo"]
    assert significant_differences(comparison, alpha=0.001).empty


def test_significant_differences_ties_on_q_sort_by_prompt_and_report_the_smallest_values():
    comparison = comparison_rows([
        ("zeta", "gender", "entropy", 0.5, 0.4, 0.1, 0.0, 0.2, 0.003, 0.01),
        ("zeta", "gender", "share:Male", 0.5, 0.6, -0.1, -0.2, 0.0, 0.001, 0.02),
        ("alpha", "gender", "share:Male", 0.5, 0.6, -0.1, -0.2, 0.0, 0.002, 0.01),
    ])
    table = significant_differences(comparison)
    assert list(table["prompt_id"]) == ["alpha", "zeta"]
    zeta = table.iloc[1]
    assert (zeta["p_value"], zeta["q_value"]) == (0.001, 0.01)
    assert list(table["attribute"]) == ["gender", "gender"] and list(table["model"]) == ["cand", "cand"]
    assert list(table.columns)[-2:] == ["p_value", "q_value"] and len(table.columns) == 15


def test_equal_q_keeps_the_comparison_tables_order():
    comparison = comparison_rows([
        ("doctor", "skin_tone", "share:MST3", 0.5, 0.6, -0.1, -0.2, 0.0, 0.001, 0.01),
        ("doctor", "gender", "share:Male", 0.5, 0.6, -0.1, -0.2, 0.0, 0.001, 0.01),
    ])
    assert list(significant_differences(comparison)["attribute"]) == ["skin_tone", "gender"]


def test_ahistorical_keeps_rows_with_an_expected_label():
    summary = pd.DataFrame({"prompt_id": ["a", "b", "c", "d"],
                            "expected": ["Male", None, "", np.nan]})
    table = ahistorical(summary)
    assert list(table["prompt_id"]) == ["a"] and list(table.index) == [0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    make_run(root)
    return root


def copy(run_dir, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def test_load_run_reads_models_baseline_first_and_the_suite(run_dir):
    data = load_run(run_dir)
    assert data.models == ["base", "cand"] and data.baseline == "base" and data.candidates == ["cand"]
    assert data.run_dir == run_dir and data.config == json.loads((run_dir / "run.json").read_text())
    assert data.prompt_text("workers") == "three construction workers"
    assert data.prompt_text("unknown-id") == "unknown-id"
    # The comparison was measured against base: another baseline would mislabel it.
    with pytest.raises(ValueError, match=r"--baseline 'cand': the comparison in .* was measured against 'base'"):
        load_run(run_dir, baseline="cand")
    assert len(data.comparison) and len(data.images) and len(data.people) and len(data.observations)
    assert len(data.perception_errors) == 1 and data.confusion.empty


def test_load_run_suite_argument_and_config_forms(run_dir, tmp_path):
    renamed = {**SUITE, "prompts": [{**SUITE["prompts"][0], "text": "a vet"}, *SUITE["prompts"][1:]]}
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(renamed))
    assert load_run(run_dir, suite=path).prompt_text("doctor") == "a vet"
    run = copy(run_dir, tmp_path)
    config = json.loads((run / "run.json").read_text())
    for form in ({"suite": str(path)}, {"suite": {"file": str(path)}}, {"suite_path": str(path)}):
        rest = {k: v for k, v in config.items() if k not in ("suite", "suite_path")}
        (run / "run.json").write_text(json.dumps({**rest, **form}))
        assert load_run(run).prompt_text("doctor") == "a vet", form
    # Without a measured comparison, run.json's baseline (either form) decides.
    (run / "metrics" / "comparison.parquet").unlink()
    (run / "run.json").write_text(json.dumps({**rest, "baseline": {"name": "cand", "spec": "x"}}))
    (run / "suite.yaml").unlink()
    data = load_run(run)
    assert data.baseline == "cand" and data.suite is None and data.prompt_text("doctor") == "doctor"
    (run / "run.json").write_text(json.dumps({k: v for k, v in rest.items() if k != "baseline"}))
    assert load_run(run).baseline is None and load_run(run).candidates == ["base", "cand"]


def test_load_run_without_comparison_and_with_validation_tables(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    (run / "metrics" / "comparison.parquet").unlink()
    confusion = pd.DataFrame([("gender", "Male", "Male", 3)], columns=["attribute", "true", "predicted", "count"])
    write_table(confusion, run / "validation" / "confusion.parquet")
    write_table(pd.DataFrame({"attribute": ["gender"], "accuracy": [0.9]}), run / "validation" / "summary.parquet")
    data = load_run(run)
    assert data.comparison.empty and list(data.comparison.columns) == list(COMPARISON_COLUMNS)
    pd.testing.assert_frame_equal(data.confusion, confusion)
    given = confusion.assign(count=7)
    csv = tmp_path / "confusion.csv"
    given.to_csv(csv, index=False)
    assert list(load_run(run, confusion=csv).confusion["count"]) == [7]
    assert list(load_run(run, confusion=given).confusion["count"]) == [7]


def test_load_run_errors_name_the_run_and_what_is_wrong(run_dir, tmp_path):
    with pytest.raises(ValueError) as error:
        load_run(run_dir, baseline="dalle")
    assert str(error.value) == f"{run_dir}: baseline 'dalle' is not a model of this run; models: ['base', 'cand']"
    run = copy(run_dir, tmp_path)
    (run / "metrics" / "rates.parquet").unlink()
    with pytest.raises(FileNotFoundError) as missing:
        load_run(run)
    assert str(missing.value) == (f"{run}: no metrics tables in {run / 'metrics'} (missing ['rates']); "
                                  "run `biaskit measure` or `biaskit run` first")
    empty = tmp_path / "empty"
    (empty / "metrics").mkdir(parents=True)
    for name in ("distribution", "summary", "overall", "rates"):
        write_table(pd.DataFrame({"model": pd.Series(dtype=str)}), empty / "metrics" / f"{name}.parquet")
    with pytest.raises(ValueError) as none:
        load_run(empty)
    assert str(none.value) == f"{empty}: the metrics tables name no model"


def test_models_come_from_the_summary_then_the_images(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    images = pd.read_parquet(run / "images.parquet")
    extra = images.iloc[[0]].assign(model="zz")
    write_table(pd.concat([images, extra], ignore_index=True), run / "images.parquet")
    assert load_run(run).models == ["base", "cand", "zz"]
    assert isinstance(load_run(run), RunData)


def test_headline_follows_the_models_order_given():
    overall = pd.DataFrame([("b", "gender", "individual", 0.4), ("a", "gender", "individual", 0.5)],
                           columns=OVERALL_COLUMNS)
    assert list(headline(overall, models=["a", "b"])["model"]) == ["a", "b"]
    assert list(headline(overall, models=["b", "a"])["model"]) == ["b", "a"]


def test_ahistorical_keeps_the_summary_columns():
    summary = pd.DataFrame({"prompt_id": ["a", "b"], "expected": [None, "Male"], "match_rate": [np.nan, 0.5]})
    table = ahistorical(summary)
    assert list(table.columns) == list(summary.columns) and list(table.index) == [0]


def test_models_of_the_summary_come_first_even_without_images(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    images = pd.read_parquet(run / "images.parquet")
    write_table(images[images["model"] == "cand"], run / "images.parquet")
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({k: v for k, v in config.items() if k != "baseline"}))
    assert load_run(run).models == ["base", "cand"]  # base is in the summary only


@pytest.mark.parametrize("name", ["suite.yaml", "prompts.yaml", "path"])
def test_the_suite_is_found_where_a_run_keeps_it(run_dir, tmp_path, name):
    run = copy(run_dir, tmp_path)
    config = json.loads((run / "run.json").read_text())
    rest = {k: v for k, v in config.items() if k not in ("suite", "suite_path")}
    renamed = {**SUITE, "prompts": [{**SUITE["prompts"][0], "text": "a vet"}, *SUITE["prompts"][1:]]}
    (run / "suite.yaml").unlink()
    if name == "path":
        (tmp_path / "elsewhere.yaml").write_text(yaml.safe_dump(renamed))
        rest["suite"] = {"path": str(tmp_path / "elsewhere.yaml")}
    else:
        (run / name).write_text(yaml.safe_dump(renamed))
    (run / "run.json").write_text(json.dumps(rest))
    assert load_run(run).prompt_text("doctor") == "a vet"


def test_significant_differences_keep_a_label_holding_a_colon_and_skip_a_q_value_that_is_no_number():
    comparison = comparison_rows([
        ("nurse", "race", "share:Asian: East", 0.6, 0.3, 0.3, 0.1, 0.5, 0.001, 0.01),
        ("ceo", "race", "share:White", 0.6, 0.3, 0.3, 0.1, 0.5, 0.001, "–"),  # text, e.g. from a CSV
    ]).astype({"q_value": object})
    table = significant_differences(comparison)
    assert list(table["prompt_id"]) == ["nurse"] and list(table["shift_label"]) == ["Asian: East"]


def test_load_run_refuses_a_comparison_against_two_baselines_naming_them(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    path = run / "metrics" / "comparison.parquet"
    comparison = pd.read_parquet(path)
    comparison.loc[comparison.index[-1], "baseline"] = "cand"
    write_table(comparison, path)
    with pytest.raises(ValueError) as error:
        load_run(run)
    assert str(error.value) == (f"{run / 'metrics' / 'comparison.parquet'}: several baselines "
                                "['base', 'cand']; measure one")


def test_the_measured_baseline_wins_over_run_json_and_a_different_one_given_is_refused(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "baseline": "cand"}))
    assert load_run(run).baseline == "base"  # the comparison was measured against base
    with pytest.raises(ValueError) as error:
        load_run(run, baseline="cand")
    assert str(error.value) == (f"--baseline 'cand': the comparison in {run / 'metrics'} was measured "
                                "against 'base'; run `biaskit measure ... --baseline cand` first")


def test_models_come_from_the_images_when_the_summary_names_none(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    write_table(pd.DataFrame({"prompt_id": pd.Series(dtype=str)}), run / "metrics" / "summary.parquet")
    assert load_run(run).models == ["base", "cand"]  # the summary has no model column at all


def test_a_recorded_baseline_that_is_no_model_is_named_and_a_known_one_comes_first(run_dir, tmp_path):
    run = copy(run_dir, tmp_path)
    (run / "metrics" / "comparison.parquet").unlink()
    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "baseline": "dalle"}))
    with pytest.raises(ValueError) as error:
        load_run(run)
    assert str(error.value) == f"{run}: baseline 'dalle' is not a model of this run; models: ['base', 'cand']"
    (run / "run.json").write_text(json.dumps({**config, "baseline": "cand"}))
    assert load_run(run).models == ["cand", "base"]


def test_a_confusion_table_without_its_columns_is_named_by_its_file_or_as_a_table(run_dir, tmp_path):
    missing = r"missing column\(s\) \['true', 'predicted', 'count'\]"
    with pytest.raises(ValueError, match=rf"^confusion table: {missing}"):
        load_run(run_dir, confusion=pd.DataFrame({"attribute": ["gender"]}))
    path = tmp_path / "bad.parquet"
    write_table(pd.DataFrame({"attribute": ["gender"]}), path)
    with pytest.raises(ValueError, match=rf"bad\.parquet: {missing}"):
        load_run(run_dir, confusion=path)


def test_the_corrected_headline_is_read_when_measured(run_dir, tmp_path):
    assert load_run(run_dir).corrected_overall.empty
    run = copy(run_dir, tmp_path)
    corrected = pd.DataFrame({"model": ["base"], "attribute": ["gender"], "kind": ["individual"], "hof": [0.25]})
    write_table(corrected, run / "metrics" / "corrected_overall.parquet")
    assert load_run(run).corrected_overall["hof"].tolist() == [0.25]
