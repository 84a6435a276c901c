"""The report's tagger-sensitivity and unchecked-expectations tables (biaskit.report.data) on
hand-made inputs, every value worked by hand.  Fast: no run directory, no rendering."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest

from biaskit.report.data import (
    NO_KNOWN_LABEL, NO_SUITE, NOT_MEASURED, NOT_TAGGED, UNCHECKED_COLUMNS, hof_sensitivity,
    unchecked_expectations,
)
from biaskit.suite import Prompt, Suite

SENSITIVITY_COLUMNS = ["kind", "attribute", "model", "prompts", "heterogeneous", "single_face",
                       "median_flips", "hof", "hof_single_faces_wrong"]

# (model, prompt, kind, attribute, {label: count}); "unclear" faces never count as a label.
PROMPTS = [
    # base, gender: flips = known - largest
    ("base", "p1", "individual", "gender", {"Male": 3, "Female": 0, "unclear": 5}),  # 0
    ("base", "p2", "individual", "gender", {"Male": 2, "Female": 1, "unclear": 0}),  # 1
    ("base", "p7", "individual", "gender", {"Male": 0, "Female": 1, "unclear": 0}),  # 0: one face
    ("base", "p3", "group", "gender", {"Male": 2, "Female": 2, "unclear": 1}),       # 2
    ("base", "p5", "group", "gender", {"Male": 4, "Female": 3, "unclear": 0}),       # 3
    ("base", "p4", "group", "gender", {"Male": 0, "Female": 0, "unclear": 4}),       # nobody known
    ("base", "p6", "ahistorical", "gender", {"Male": 1, "Female": 1, "unclear": 0}),  # never pooled
    ("base", "p2", "individual", "age", {"20-29": 1, "30-39": 1, "unclear": 2}),      # 1
    # cand: every prompt homogeneous (no median)
    ("cand", "p1", "individual", "gender", {"Male": 2, "Female": 0, "unclear": 1}),
    ("cand", "p3", "group", "gender", {"Male": 0, "Female": 3, "unclear": 0}),
    # a model the report does not show
    ("other", "p1", "individual", "gender", {"Male": 1, "Female": 1, "unclear": 0}),
]


def frames(prompts):
    distribution = pd.DataFrame(
        [(model, prompt, attribute, label, count)
         for model, prompt, _, attribute, labels in prompts for label, count in labels.items()],
        columns=["model", "prompt_id", "attribute", "label", "count"])
    summary = pd.DataFrame([(model, prompt, kind, attribute, 0.5)
                            for model, prompt, kind, attribute, _ in prompts],
                           columns=["model", "prompt_id", "kind", "attribute", "entropy"])
    return distribution, summary


def test_hof_sensitivity_counts_flips_per_kind_with_the_pooled_kind_first():
    table = hof_sensitivity(*frames(PROMPTS), models=["cand", "base"])
    assert list(table.columns) == SENSITIVITY_COLUMNS
    assert list(table.index) == list(range(len(table)))
    # pooled (individual + group; not ahistorical, not p4 with nobody known):
    #   base gender flips 0, 1, 0, 2, 3 -> 3 heterogeneous of 5, one single face, median(1, 2, 3)
    nan = np.nan
    expected = pd.DataFrame([
        ("ambiguous", "age", "base", 1, 1, 1, 1.0, 1.0, 0.0),
        ("ambiguous", "gender", "cand", 2, 0, 0, nan, 0.0, 0.0),
        ("ambiguous", "gender", "base", 5, 3, 1, 2.0, 3 / 5, 2 / 5),
        ("individual", "age", "base", 1, 1, 1, 1.0, 1.0, 0.0),
        ("individual", "gender", "cand", 1, 0, 0, nan, 0.0, 0.0),
        ("individual", "gender", "base", 3, 1, 1, 1.0, 1 / 3, 0.0),
        ("group", "gender", "cand", 1, 0, 0, nan, 0.0, 0.0),
        ("group", "gender", "base", 2, 2, 0, 2.5, 1.0, 1.0),
    ], columns=SENSITIVITY_COLUMNS)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert all(isinstance(v, (int, np.integer)) for v in table["prompts"])


def test_hof_sensitivity_a_minority_of_two_is_not_a_single_face():
    prompts = [("m", "a", "individual", "gender", {"Male": 5, "Female": 2}),  # 2 flips
               ("m", "b", "individual", "gender", {"Male": 1, "Female": 1}),  # 1 flip
               ("m", "c", "individual", "gender", {"Male": 1, "Female": 1, "Other": 1})]  # 2 flips
    table = hof_sensitivity(*frames(prompts), models=["m"])
    row = table[table["kind"] == "individual"].iloc[0]
    assert (row["prompts"], row["heterogeneous"], row["single_face"]) == (3, 3, 1)
    assert row["median_flips"] == 2.0
    assert row["hof"] == 1.0 and row["hof_single_faces_wrong"] == pytest.approx(2 / 3)


def test_hof_sensitivity_unclear_faces_are_left_out_and_a_prompt_without_known_faces_is_dropped():
    # 9 unclear faces against 1 Male: homogeneous on the one known face, not 1 flip from 10
    prompts = [("m", "a", "group", "gender", {"Male": 1, "Female": 0, "unclear": 9}),
               ("m", "b", "group", "gender", {"Male": 0, "Female": 0, "unclear": 3})]
    table = hof_sensitivity(*frames(prompts), models=["m"])
    assert list(table["kind"]) == ["ambiguous", "group"]
    assert list(table["prompts"]) == [1, 1] and list(table["heterogeneous"]) == [0, 0]
    assert table["median_flips"].isna().all()


def test_hof_sensitivity_without_known_faces_is_an_empty_table_with_its_columns():
    prompts = [("m", "a", "individual", "gender", {"Male": 0, "Female": 0, "unclear": 2})]
    table = hof_sensitivity(*frames(prompts), models=["m"])
    assert table.empty and list(table.columns) == SENSITIVITY_COLUMNS


def test_hof_sensitivity_a_prompt_without_a_summary_row_is_not_counted():
    distribution, summary = frames(PROMPTS)
    summary = summary[~((summary["model"] == "base") & (summary["prompt_id"] == "p5"))]
    table = hof_sensitivity(distribution, summary, models=["base"])
    group = table[(table["kind"] == "group") & (table["attribute"] == "gender")].iloc[0]
    assert (group["prompts"], group["heterogeneous"], group["median_flips"]) == (1, 1, 2.0)


def prompt(prompt_id, kind="ahistorical", **expected):
    return Prompt(id=prompt_id, text=f"a {prompt_id}", kind=kind, expected=MappingProxyType(expected))


SUITE = Suite(name="t", prompts=(
    prompt("doctor", kind="individual"),
    prompt("nurse", gender="Female", race="Black"),  # gender checked (one model knows), race not tagged
    prompt("ceo", gender="Male"),                    # no summary row
    prompt("pope", gender="Male"),                   # nobody with a known label
    prompt("king", race="White", gender="Male"),     # race first: order kept
))


def summary_rows(rows):
    return pd.DataFrame(rows, columns=["model", "prompt_id", "attribute", "expected", "match_rate"])


def test_unchecked_expectations_lists_each_reason_in_suite_order():
    summary = summary_rows([
        ("base", "doctor", "gender", None, np.nan),
        ("base", "nurse", "gender", "Female", np.nan), ("cand", "nurse", "gender", "Female", 0.5),
        ("base", "pope", "gender", "Male", np.nan), ("cand", "pope", "gender", "Male", np.nan),
        ("base", "king", "gender", "Male", 1.0),
    ])
    table = unchecked_expectations(summary, SUITE)
    expected = pd.DataFrame([
        ("nurse", "race", "Black", NOT_TAGGED.format(attribute="race")),
        ("ceo", "gender", "Male", NOT_MEASURED),
        ("pope", "gender", "Male", NO_KNOWN_LABEL.format(attribute="gender")),
        ("king", "race", "White", NOT_TAGGED.format(attribute="race")),
    ], columns=list(UNCHECKED_COLUMNS))
    pd.testing.assert_frame_equal(table, expected)
    assert "'race' was not tagged" in table["reason"].iloc[0]
    assert table["reason"].iloc[2] == "no person with a known 'gender' label in any model's images"


def test_unchecked_expectations_match_rates_read_back_as_text_or_none():
    # A table read back with an object column: None and "nan" are missing, "0.25" is a rate.
    summary = summary_rows([("base", "ceo", "gender", "Male", None), ("cand", "ceo", "gender", "Male", "x"),
                            ("base", "pope", "gender", "Male", "0.25")])
    suite = Suite(name="t", prompts=(prompt("ceo", gender="Male"), prompt("pope", gender="Male")))
    table = unchecked_expectations(summary.astype({"match_rate": object}), suite)
    assert list(table["prompt_id"]) == ["ceo"]
    assert table["reason"].iloc[0] == NO_KNOWN_LABEL.format(attribute="gender")


def test_unchecked_expectations_with_nothing_measured_lists_every_expectation_as_untagged():
    table = unchecked_expectations(summary_rows([]), SUITE)
    assert list(zip(table["prompt_id"], table["attribute"])) == [
        ("nurse", "gender"), ("nurse", "race"), ("ceo", "gender"), ("pope", "gender"),
        ("king", "race"), ("king", "gender")]
    assert list(table["reason"]) == [NOT_TAGGED.format(attribute=a) for a in table["attribute"]]


def test_unchecked_expectations_everything_checked_is_an_empty_table_with_its_columns():
    suite = Suite(name="t", prompts=(prompt("doctor", kind="individual"), prompt("pope", gender="Male")))
    table = unchecked_expectations(summary_rows([("m", "pope", "gender", "Male", 0.0)]), suite)
    assert table.empty and list(table.columns) == list(UNCHECKED_COLUMNS)


def test_unchecked_expectations_without_a_suite_is_one_row_saying_why():
    table = unchecked_expectations(summary_rows([("m", "pope", "gender", "Male", 0.0)]), None)
    expected = pd.DataFrame([("all", "–", "–", NO_SUITE)], columns=list(UNCHECKED_COLUMNS))
    pd.testing.assert_frame_equal(table, expected)
