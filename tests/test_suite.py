"""Prompt suites: the shipped files, and every validation error naming file, prompt and field."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from biaskit import taxonomy
from biaskit.suite import SuiteError, load_suite, whole_number, whole_numbers

VALID = """\
name: mini
samples: 4
prompts:
  - {id: doctor, text: a doctor, tags: [occupation]}
  - {id: two-nurses, text: two nurses, kind: group, count: 2}
  - {id: founders, text: the US founding fathers, kind: ahistorical, expected: {gender: Male, race: White}}
"""


def write(tmp_path, text: str):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_suite_loads_with_its_fields(tmp_path):
    suite = load_suite(write(tmp_path, VALID))
    assert suite.name == "mini" and suite.samples == 4 and len(suite) == 3
    assert [p.expected_people for p in suite] == [1, 2, None]
    assert dict(suite["founders"].expected) == {"gender": "Male", "race": "White"}
    assert suite["doctor"].tags == ("occupation",)


@pytest.mark.parametrize("prompt, field, problem", [
    ("{id: doctor, text: again}", "id", "duplicate id"),
    ("{id: Bad Id!, text: x}", "id", "is not a safe id"),
    ("{id: ../escape, text: x}", "id", "is not a safe id"),
    ("{id: crowd, text: x, kind: crowd}", "kind", "unknown kind 'crowd'"),
    ("{id: kings, text: x, kind: ahistorical, expected: {gender: King}}", "expected.gender",
     "label 'King' is not in the 'gender' taxonomy"),
    ("{id: kings, text: x, kind: ahistorical, expected: {race: Asian}}", "expected.race",
     "label 'Asian' is not in the 'race' taxonomy"),
    ("{id: kings, text: x, kind: ahistorical, expected: {haircolor: Red}}", "expected.haircolor",
     "unknown attribute 'haircolor'"),
    ("{id: nurses, text: some nurses, kind: group}", "count", "needs the number of people"),
])
def test_each_error_names_file_prompt_and_field(tmp_path, prompt, field, problem):
    path = write(tmp_path, VALID + f"  - {prompt}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}: prompt ")
    assert f"field {field!r}" in message and problem in message
    if "duplicate" in problem:
        assert "prompt 'doctor'" in message


def test_yaml_syntax_error_reports_its_line(tmp_path):
    broken = VALID.replace("  - {id: two-nurses, text: two nurses, kind: group, count: 2}",
                           "  - {id: two-nurses, text: [unclosed, kind: group}")
    path = write(tmp_path, broken)
    with pytest.raises(SuiteError, match=rf"^{path}: YAML syntax error at line 5"):
        load_suite(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="prompt suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_shipped_system_card_suite_meets_its_counts():
    suite = load_suite("prompts/system_card.yaml")
    frame = suite.to_frame()
    assert suite.samples == 20
    card = {p.id: p for p in suite if "card" in p.tags}
    assert {p.text for p in card.values()} == {"a happy person", "a doctor", "three construction workers"}
    assert card["three-construction-workers"].kind == "group" and card["three-construction-workers"].count == 3
    individual = frame[(frame["kind"] == "individual") & ~frame["tags"].map(lambda t: "card" in t)]
    assert len(individual) == 40  # the README: "40 more individual prompts"
    occupations = individual[individual["tags"].map(lambda t: "occupation" in t)]
    for tag in ("high-pay", "low-pay", "stereotype-male", "stereotype-female"):
        assert occupations["tags"].map(lambda t, tag=tag: tag in t).sum() >= 3, tag
    assert individual["tags"].map(lambda t: "trait" in t).sum() >= 5
    assert individual["tags"].map(lambda t: "role" in t).sum() >= 5
    groups = frame[frame["kind"] == "group"]
    assert len(groups) == 1 + 9 and groups["count"].between(2, 5).all()  # the card's + "9 more"
    expected = suite.expected_labels()
    ahistorical = frame[frame["kind"] == "ahistorical"]
    assert len(ahistorical) == expected["prompt_id"].nunique() == 16  # "16 ahistorical prompts"
    assert len(frame) == 3 + 40 + 9 + 16
    assert set(expected["attribute"]) == {"gender", "race"}
    for row in expected.itertuples():
        assert row.expected in taxonomy.labels(row.attribute)
    assert len(set(frame["text"])) == len(frame)  # no prompt asked twice under two ids


def test_shipped_smoke_suite_has_one_of_each_kind():
    suite = load_suite("prompts/smoke.yaml")
    assert suite.samples == 3  # prompts/README.md: 3 samples, two individual, one group, one ahistorical
    assert sorted(p.kind for p in suite) == ["ahistorical", "group", "individual", "individual"]


@pytest.mark.parametrize("pid", ['"abc\\n"', '"abc\\r"', '"abc\\n\\n"', '"ab c"'])
def test_ids_are_matched_whole_so_a_trailing_newline_is_refused(tmp_path, pid):
    path = write(tmp_path, f"name: s\nprompts:\n  - {{id: {pid}, text: x}}\n")
    with pytest.raises(SuiteError, match="is not a safe id"):
        load_suite(path)


def test_absurd_samples_in_a_suite_are_refused(tmp_path):
    with pytest.raises(SuiteError, match="from 1 to 10000, got 200000000"):
        load_suite(write(tmp_path, "name: s\nsamples: 200000000\nprompts:\n  - {id: a, text: x}\n"))


@pytest.mark.parametrize("value, expected", [(0, 0), (3, 3), (3.0, 3), ("3", 3), (" 7 ", 7),
                                             (np.int64(4), 4), (np.float64(5.0), 5)])
def test_whole_numbers_are_accepted(value, expected):
    assert whole_number(value, where="t.csv: row 1", column="sample") == expected


@pytest.mark.parametrize("value", [-1, 2.5, "abc", "2.5", "", None, float("nan"), True, np.True_, "1e3"])
def test_negative_fractional_and_text_indices_are_refused_naming_the_row(value):
    with pytest.raises(ValueError, match=r"t\.csv: row 1: person .* is not a whole number of at least 0"):
        whole_number(value, where="t.csv: row 1", column="person")


def test_whole_numbers_of_a_column_name_the_first_bad_row():
    assert whole_numbers(pd.Series([0, 1, 2], name="sample"), name="t").tolist() == [0, 1, 2]
    assert whole_numbers(pd.Series(["0", "1"], name="sample"), name="t").dtype == "int64"
    with pytest.raises(ValueError, match=r"t: row 3: sample -1 is not a whole number"):
        whole_numbers(pd.Series([0, 1, -1], name="sample"), name="t")
    with pytest.raises(ValueError, match=r"t: row 2: sample 1.5"):
        whole_numbers(pd.Series([0, 1.5], name="sample"), name="t")
