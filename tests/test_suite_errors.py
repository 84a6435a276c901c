"""Every suite validation error, word for word: one line naming the file, the prompt and the field.

prompts/README.md lists what loading refuses; each case below is one of them, and the
whole message is compared, so a check that stops firing or a message that loses its
place (file, prompt, field) fails here.
"""

from __future__ import annotations

import pytest
import yaml

from biaskit.suite import SuiteError, load_suite, suite_from_dict

GOOD = {"id": "doctor", "text": "a doctor"}
SAFE_ID = ("is not a safe id (lower-case letters, digits, '_' and '-', starting with a letter or digit, "
           "at most 80 characters)")


def refused(data, source="s.yaml") -> str:
    with pytest.raises(SuiteError) as error:
        suite_from_dict(data, source=source)
    message = str(error.value)
    assert "\n" not in message
    return message


def suite_with(*prompts, **fields):
    return {"name": "t", "prompts": list(prompts), **fields}


@pytest.mark.parametrize("prompt, message", [
    ({"id": "x", "text": "t", "colour": "red", "age": 3},
     "s.yaml: prompt 'x': field 'age': unknown field"),  # the first unknown field, sorted
    ({"id": "Bad Id", "text": "t"}, f"s.yaml: prompt 'Bad Id': field 'id': 'Bad Id' {SAFE_ID}"),
    ({"id": "a" * 81, "text": "t"}, f"s.yaml: prompt '{'a' * 81}': field 'id': '{'a' * 81}' {SAFE_ID}"),
    ({"id": "-x", "text": "t"}, f"s.yaml: prompt '-x': field 'id': '-x' {SAFE_ID}"),
    ({"text": "t"}, f"s.yaml: prompt '#2': field 'id': None {SAFE_ID}"),
    ({"id": 7, "text": "t"}, f"s.yaml: prompt '#2': field 'id': 7 {SAFE_ID}"),
    ({"id": "x"}, "s.yaml: prompt 'x': field 'text': a non-empty string is required"),
    ({"id": "x", "text": "   "}, "s.yaml: prompt 'x': field 'text': a non-empty string is required"),
    ({"id": "x", "text": 5}, "s.yaml: prompt 'x': field 'text': a non-empty string is required"),
    ({"id": "x", "text": "t", "kind": "crowd"},
     "s.yaml: prompt 'x': field 'kind': unknown kind 'crowd'; expected one of individual, group, ahistorical"),
    ({"id": "x", "text": "t", "kind": "group", "count": 0},
     "s.yaml: prompt 'x': field 'count': must be a positive integer, got 0"),
    ({"id": "x", "text": "t", "kind": "group", "count": True},
     "s.yaml: prompt 'x': field 'count': must be a positive integer, got True"),
    ({"id": "x", "text": "t", "kind": "group", "count": "3"},
     "s.yaml: prompt 'x': field 'count': must be a positive integer, got '3'"),
    ({"id": "x", "text": "t", "kind": "group"},
     "s.yaml: prompt 'x': field 'count': a group prompt needs the number of people it asks for"),
    ({"id": "x", "text": "t", "count": 2},
     "s.yaml: prompt 'x': field 'count': an individual prompt shows one person; use kind 'group'"),
    ({"id": "x", "text": "t", "kind": "ahistorical"},
     "s.yaml: prompt 'x': field 'expected': an ahistorical prompt needs expected labels, e.g. {gender: Male}"),
    ({"id": "x", "text": "t", "expected": {"gender": "Male"}},
     "s.yaml: prompt 'x': field 'expected': only ahistorical prompts have expected labels (kind is 'individual')"),
    ({"id": "x", "text": "t", "kind": "group", "count": 2, "expected": {"gender": "Male"}},
     "s.yaml: prompt 'x': field 'expected': only ahistorical prompts have expected labels (kind is 'group')"),
    ({"id": "x", "text": "t", "kind": "ahistorical", "expected": {}},
     "s.yaml: prompt 'x': field 'expected': must be a mapping of attribute -> label"),
    ({"id": "x", "text": "t", "kind": "ahistorical", "expected": ["Male"]},
     "s.yaml: prompt 'x': field 'expected': must be a mapping of attribute -> label"),
    ({"id": "x", "text": "t", "kind": "ahistorical", "expected": {"gender": "unclear"}},
     "s.yaml: prompt 'x': field 'expected.gender': label 'unclear' is not in the 'gender' taxonomy "
     "('Male', 'Female')"),
    ({"id": "x", "text": "t", "tags": "occupation"},
     "s.yaml: prompt 'x': field 'tags': must be a list of strings"),
    ({"id": "x", "text": "t", "tags": ["a", 3]},
     "s.yaml: prompt 'x': field 'tags': must be a list of strings"),
])
def test_prompt_errors_word_for_word(prompt, message):
    assert refused(suite_with(GOOD, prompt)) == message


def test_a_prompt_that_is_not_a_mapping_is_named_by_position():
    assert refused(suite_with(GOOD, "a nurse")) == "s.yaml: prompt #2: must be a mapping, got str"


def test_duplicate_id_names_the_prompt():
    assert refused(suite_with(GOOD, {**GOOD, "text": "another doctor"})) == \
        "s.yaml: prompt 'doctor': field 'id': duplicate id"


@pytest.mark.parametrize("data, message", [
    (["not", "a", "mapping"], "s.yaml: a suite must be a mapping with 'name' and 'prompts'"),
    ({"name": "t", "prompts": [GOOD], "zebra": 1, "author": "me"}, "s.yaml: field 'author': unknown field"),
    ({"prompts": [GOOD]}, "s.yaml: field 'name': a non-empty string is required"),
    ({"name": " ", "prompts": [GOOD]}, "s.yaml: field 'name': a non-empty string is required"),
    ({"name": "t", "samples": 0, "prompts": [GOOD]}, "s.yaml: field 'samples': must be a whole number from 1 to 10000, got 0"),
    ({"name": "t", "samples": 2.5, "prompts": [GOOD]},
     "s.yaml: field 'samples': must be a whole number from 1 to 10000, got 2.5"),
    ({"name": "t", "prompts": []}, "s.yaml: field 'prompts': a non-empty list is required"),
    ({"name": "t", "prompts": {"id": "x"}}, "s.yaml: field 'prompts': a non-empty list is required"),
])
def test_suite_errors_word_for_word(data, message):
    assert refused(data) == message


def test_valid_fields_are_kept_as_given():
    suite = suite_from_dict(suite_with(
        {"id": "a_1", "text": "  a nurse  ", "tags": ["occupation", "low-pay"]},
        {"id": "crew", "text": "a crew", "kind": "group", "count": 4},
        {"id": "one", "text": "one person", "count": 1},
        {"id": "nun", "text": "a nun", "kind": "ahistorical", "expected": {"gender": "Female", "skin_tone": 3}},
        {"id": "z" * 80, "text": "longest id"},
        samples=7, description="free text"), source="here.yaml")
    assert suite.name == "t" and suite.samples == 7 and suite.path == "here.yaml"
    assert [p.id for p in suite] == ["a_1", "crew", "one", "nun", "z" * 80]
    assert suite["a_1"].text == "a nurse" and suite["a_1"].tags == ("occupation", "low-pay")
    assert suite["a_1"].kind == "individual" and suite["a_1"].count is None
    assert (suite["crew"].kind, suite["crew"].count) == ("group", 4)
    assert suite["one"].count == 1
    assert dict(suite["nun"].expected) == {"gender": "Female", "skin_tone": "MST3"}  # normalised
    assert suite_from_dict({"name": "t", "prompts": [GOOD]}).samples == 20  # the default
    assert suite_from_dict({"name": "t", "prompts": [GOOD]}).path == "<suite>"


def test_suite_lookup_errors(tmp_path):
    suite = suite_from_dict(suite_with(GOOD))
    assert "doctor" in suite and "nurse" not in suite and 3 not in suite
    with pytest.raises(KeyError) as error:
        suite["nurse"]
    assert error.value.args[0] == "prompt id 'nurse' is not in suite 't'"
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nprompts:\n  - {id: a, text: x\n")
    with pytest.raises(SuiteError) as syntax:
        load_suite(path)
    with pytest.raises(yaml.YAMLError) as parsed:  # PyYAML's own account of the problem
        yaml.safe_load(path.read_text())
    assert str(syntax.value) == f"{path}: YAML syntax error at line 4, column 1: {parsed.value.problem}"


def test_a_suite_built_directly_refuses_duplicate_ids():
    from biaskit.suite import Prompt, Suite

    single, one, other = Prompt(id="c", text="z"), Prompt(id="a", text="x"), Prompt(id="b", text="y")
    with pytest.raises(SuiteError) as named:
        Suite(name="mine", prompts=(single, one, other, one, other, other))
    assert str(named.value) == "mine: duplicate prompt id 'a'"  # the first repeated id, by the suite's name
    with pytest.raises(SuiteError) as located:
        Suite(name="mine", prompts=(other, one, other), path="p.yaml")
    assert str(located.value) == "p.yaml: duplicate prompt id 'b'"
    assert len(Suite(name="mine", prompts=(one, other))) == 2


def test_to_frame_columns_and_types():
    suite = suite_from_dict(suite_with(
        GOOD, {"id": "crew", "text": "a crew", "kind": "group", "count": 3, "tags": ["t"]},
        {"id": "nun", "text": "a nun", "kind": "ahistorical", "expected": {"gender": "Female"}}))
    frame = suite.to_frame()
    assert list(frame.columns) == ["prompt_id", "text", "kind", "count", "expected_people", "expected", "tags"]
    assert list(frame["prompt_id"]) == ["doctor", "crew", "nun"]
    assert str(frame["count"].dtype) == "Int64" and str(frame["expected_people"].dtype) == "Int64"
    assert frame["count"].isna().tolist() == [True, False, True] and frame["count"][1] == 3
    assert frame["expected_people"].tolist()[:2] == [1, 3] and frame["expected_people"].isna().tolist()[2]
    assert frame["expected"].tolist() == [{}, {}, {"gender": "Female"}] and frame["tags"].tolist() == [[], ["t"], []]


def test_yaml_errors_without_a_position_and_non_ascii_text(tmp_path):
    control = tmp_path / "control.yaml"
    control.write_bytes(b"name: t\x07\nprompts: []\n")  # a character YAML refuses, found by its reader
    with pytest.raises(SuiteError) as error:
        load_suite(control)
    message = str(error.value)
    assert message.startswith(f"{control}: YAML syntax error: ") and "#x0007" in message
    assert " at line " not in message
    accents = tmp_path / "accents.yaml"
    accents.write_text("name: t\nprompts:\n  - {id: nurse, text: une infirmière}\n", encoding="utf-8")
    assert load_suite(accents)["nurse"].text == "une infirmière"
