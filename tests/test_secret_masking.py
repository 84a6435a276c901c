"""Secrets in the environment (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``) never reach a table.

The README promises that every stored error message has them masked; each
suffix is checked on its own, so dropping one from the pattern fails a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from biaskit.generate import generate
from biaskit.generate.base import describe_exception, redact
from biaskit.suite import suite_from_dict

VALUE = "s3cr3t-value-0123456789"


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "HF_TOKEN", "GITHUB_TOKEN", "AWS_SECRET",
                                  "DB_PASSWORD", "hf_token", "REPLICATE_API_TOKEN"])
def test_each_secret_suffix_is_masked_with_its_name(monkeypatch, name):
    monkeypatch.setenv(name, VALUE)
    assert redact(f"request failed: Bearer {VALUE} rejected") == f"request failed: Bearer <{name}> rejected"


@pytest.mark.parametrize("name", ["HOME_DIR", "KEYBOARD_LAYOUT", "TOKENIZER_PATH", "SECRETS_FILE"])
def test_variables_that_only_look_secret_are_left_alone(monkeypatch, name):
    monkeypatch.setenv(name, VALUE)  # the suffix is what makes a secret, not a word inside
    assert redact(f"see {VALUE}") == f"see {VALUE}"


def test_short_values_are_not_masked(monkeypatch):
    # A value of fewer than 8 characters would mask ordinary words ("true", "1").
    monkeypatch.setenv("FLAG_TOKEN", "1234567")
    monkeypatch.setenv("LONG_TOKEN", "12345678")
    assert redact("codes 1234567 and 12345678") == "codes 1234567 and <LONG_TOKEN>"


def test_describe_exception_names_the_type_and_masks(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", VALUE)
    assert describe_exception(PermissionError(f"401 for token {VALUE}")) == \
        "PermissionError: 401 for token <HF_TOKEN>"
    assert describe_exception(TimeoutError()) == "TimeoutError"
    assert redact(None) is None and redact("") == ""


def test_a_token_in_a_generator_error_is_never_written(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", VALUE)

    def leaky(prompt, seed):
        raise ConnectionError(f"hub refused Authorization: Bearer {VALUE}")

    suite = suite_from_dict({"name": "s", "prompts": [{"id": "doctor", "text": "a doctor"}]})
    images = generate(suite, {"m": leaky}, out=tmp_path, samples=2, progress=False)
    assert list(images["error"]) == ["ConnectionError: hub refused Authorization: Bearer <HF_TOKEN>"] * 2
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert VALUE.encode() not in path.read_bytes(), path


def test_redact_passes_missing_values_read_back_from_a_table_through():
    import math

    # a missing cell reads back as NaN (a truthy float), or None, or an empty string
    assert math.isnan(redact(float("nan")))
    assert redact(None) is None and redact("") == "" and redact(7) == 7
