"""Suite promises the mutation review found untested: where a run's suite is found, the
index columns' dtype/index/name, the message for signed columns, the samples bound."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biaskit.suite import MAX_SAMPLES, SuiteError, run_suite, suite_from_dict, whole_number, whole_numbers


def write_suite(path, name: str):
    """A one-prompt suite named ``name`` at ``path``: the name tells which file was loaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\nprompts:\n  - {{id: doctor, text: a doctor}}\n", encoding="utf-8")
    return path


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """An empty run folder, with the working directory elsewhere (relative paths are the run's)."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run = tmp_path / "run"
    run.mkdir()
    return run


def test_run_suite_follows_run_json_path_relative_to_the_run(run_dir):
    write_suite(run_dir / "mine.yaml", "recorded")
    write_suite(run_dir / "suite.yaml", "fallback")  # the recorded path wins over the fallback
    (run_dir / "run.json").write_text(json.dumps({"suite": "mine.yaml"}), encoding="utf-8")
    assert run_suite(str(run_dir)).name == "recorded"


@pytest.mark.parametrize("key", ["path", "file"])
def test_run_suite_takes_a_mapping_entry_from_the_given_config(run_dir, key):
    # run.json is absent, so the given config is the only place the path is named
    path = write_suite(run_dir.parent / "suites" / "given.yaml", "given")
    assert run_suite(run_dir, {"suite": {key: str(path)}}).name == "given"


def test_run_suite_takes_suite_path_then_the_run_folder_fallbacks_in_order(run_dir):
    write_suite(run_dir / "prompts.yaml", "prompts-file")
    assert run_suite(run_dir, {}).name == "prompts-file"
    write_suite(run_dir / "suite.yaml", "suite-file")
    assert run_suite(run_dir, {}).name == "suite-file"
    path = write_suite(run_dir.parent / "other.yaml", "suite-path")
    assert run_suite(run_dir, {"suite_path": str(path)}).name == "suite-path"


def test_run_suite_is_none_without_any_suite_file(run_dir):
    assert run_suite(run_dir, {"suite": {"path": "missing.yaml"}}) is None


def test_whole_number_message_for_a_signed_column_claims_no_lower_bound():
    with pytest.raises(ValueError) as err:
        whole_number("1.5", where="run.json", column="seed", negative=True)
    assert str(err.value) == "run.json: seed '1.5' is not a whole number"


def test_whole_numbers_keeps_index_and_name_of_a_checked_column():
    column = pd.Series(["3", 4.0], index=[10, 20], name="sample", dtype=object)
    out = whole_numbers(column, name="images.parquet")
    pd.testing.assert_series_equal(out, pd.Series([3, 4], index=[10, 20], name="sample", dtype="int64"))


@pytest.mark.parametrize("column", [
    pd.Series([], dtype=object, name="person"),  # an empty table: still an int64 column
    pd.Series(np.array([0, 2], dtype="int32"), name="person"),
    pd.Series([0, 2], dtype="Int64", name="person"),
])
def test_whole_numbers_is_always_int64(column):
    out = whole_numbers(column, name="faces.parquet")
    assert out.dtype == np.dtype("int64")
    assert out.tolist() == column.tolist()


def test_samples_may_be_exactly_the_maximum():
    prompts = [{"id": "doctor", "text": "a doctor"}]
    assert suite_from_dict({"name": "big", "samples": MAX_SAMPLES, "prompts": prompts}).samples == MAX_SAMPLES
    with pytest.raises(SuiteError, match="samples"):
        suite_from_dict({"name": "big", "samples": MAX_SAMPLES + 1, "prompts": prompts})


def test_to_frame_counts_are_nullable_integers_even_when_all_unstated():
    suite = suite_from_dict({"name": "past", "prompts": [
        {"id": "founders", "text": "the US founding fathers", "kind": "ahistorical",
         "expected": {"gender": "Male"}}]})
    frame = suite.to_frame()
    assert frame["count"].dtype == "Int64" and frame["expected_people"].dtype == "Int64"
    assert frame["count"].isna().all() and frame["expected_people"].isna().all()


@pytest.mark.parametrize("column, shown", [
    (pd.Series(np.array([1, 2**63], dtype="uint64"), name="sample"), "9223372036854775808"),  # int64 wraps it
    (pd.Series([1, str(2**63)], name="sample"), "'9223372036854775808'"),
])
def test_whole_numbers_refuses_an_index_int64_cannot_hold_naming_the_row(column, shown):
    with pytest.raises(ValueError) as err:
        whole_numbers(column, name="images.parquet")
    assert str(err.value) == ("images.parquet: row 2: sample " + shown + " is larger than "
                              "9223372036854775807, the largest index a table stores")


def test_whole_numbers_reads_small_unsigned_and_refuses_boolean_columns():
    out = whole_numbers(pd.Series(np.array([0, 3], dtype="uint8"), name="person"), name="faces.parquet")
    assert out.dtype == np.dtype("int64") and out.tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"faces.parquet: row 1: person True is not a whole number"):
        whole_numbers(pd.Series([True, False], name="person"), name="faces.parquet")


def test_whole_numbers_keeps_the_largest_int64_index():
    out = whole_numbers(pd.Series(np.array([2**63 - 1], dtype="uint64"), name="sample"), name="images.parquet")
    assert out.dtype == np.dtype("int64") and out.tolist() == [2**63 - 1]
