"""The OpenAI adapter against a real local HTTP server that speaks the Images API."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("openai")

from biaskit.generate import Request, generate, make_generator  # noqa: E402
from biaskit.generate.adapters.openai import OpenAIGenerator  # noqa: E402
from biaskit.suite import suite_from_dict  # noqa: E402
from _openai_server import REFUSAL_MESSAGE, FakeImagesAPI  # noqa: E402

API_KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"
FAST = "max_retries=2&backoff=0.01&timeout=5"


@pytest.fixture
def api(monkeypatch):
    with FakeImagesAPI(api_key=API_KEY) as server:
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


def one(generator, text: str, seed: int = 7):
    return generator.generate_batch([Request("p", text, 0, seed)])[0]


def test_success_returns_image_bytes_and_revised_prompt(api):
    result = one(make_generator(f"openai:gpt-image-1?{FAST}"), "a doctor")
    assert result.status == "ok"
    assert result.revised_prompt == "REVISED: a doctor"
    assert Image.open(io.BytesIO(result.data)).size == (32, 32)
    body = api.requests[0]
    assert body["model"] == "gpt-image-1" and body["prompt"] == "a doctor" and body["n"] == 1
    assert "response_format" not in body  # GPT image models reject it


def test_dalle_asks_for_b64_json_and_spec_options_reach_the_api(api):
    one(make_generator(f"openai:dall-e-3?size=1024x1024&quality=hd&{FAST}"), "a nurse")
    body = api.requests[0]
    assert body["response_format"] == "b64_json"
    assert body["size"] == "1024x1024" and body["quality"] == "hd"


def test_url_responses_are_downloaded(api):
    result = one(OpenAIGenerator("dall-e-3", response_format="url", max_retries=0), "a nurse")
    assert result.status == "ok"
    assert result.data == api.files["0.png"]


def test_content_policy_refusal_is_refused_not_error_and_not_retried(api):
    result = one(make_generator(f"openai:gpt-image-1?{FAST}"), "REFUSE this")
    assert result.status == "refused"
    assert result.message == REFUSAL_MESSAGE
    assert api.prompt_hits["REFUSE this"] == 1


def test_rate_limit_then_success_is_retried(api):
    result = one(make_generator(f"openai:gpt-image-1?{FAST}"), "FLAKY doctor")
    assert result.status == "ok"
    assert api.prompt_hits["FLAKY doctor"] == 2


def test_server_error_gives_up_after_the_retries(api):
    result = one(make_generator(f"openai:gpt-image-1?{FAST}"), "BROKEN doctor")
    assert result.status == "error"
    assert "InternalServerError" in result.message and "3 attempt(s)" in result.message
    assert api.prompt_hits["BROKEN doctor"] == 3


def test_timeout_is_retried_then_recorded_as_error(api):
    # The server never answers SLOW prompts while the test runs: the timeout always fires.
    gen = OpenAIGenerator("gpt-image-1", max_retries=1, backoff=0.01, timeout=0.5)
    result = one(gen, "SLOW doctor")
    assert result.status == "error"
    assert "Timeout" in result.message and "2 attempt(s)" in result.message
    assert api.prompt_hits["SLOW doctor"] == 2


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="openai:gpt-image-1: cannot create the OpenAI client"):
        make_generator("openai:gpt-image-1")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_is_bounded(api, tmp_path, concurrency):
    # The server holds the first requests until `concurrency` are in flight together, so the
    # bound is reached however slowly the client threads start; it is never passed.
    api.gate = concurrency
    suite = suite_from_dict({"name": "c", "prompts": [{"id": f"p{i}", "text": f"person {i}"}
                                                       for i in range(3)]})
    images = generate(suite, {"m": f"openai:gpt-image-1?{FAST}"}, out=tmp_path, samples=4,
                      concurrency=concurrency, progress=False)
    assert (images["status"] == "ok").sum() == 12
    assert api.gate_opened and api.max_in_flight == concurrency


def test_run_records_every_outcome_and_never_writes_the_key(api, tmp_path):
    suite = suite_from_dict({"name": "mixed", "prompts": [
        {"id": "ok", "text": "a doctor"},
        {"id": "refused", "text": "REFUSE a doctor"},
        {"id": "broken", "text": "BROKEN a doctor"},
        {"id": "leak", "text": "LEAK a doctor"},
        {"id": "leak-lower", "text": "LEAKLOWER a doctor"},
        {"id": "leak-b64", "text": "LEAKB64 a doctor"},
    ]})
    images = generate(suite, {"gpt": f"openai:gpt-image-1?{FAST}"}, out=tmp_path, samples=2,
                      seed=3, concurrency=4, progress=False)
    status = dict(zip(images["prompt_id"], images["status"]))
    assert status == {"ok": "ok", "refused": "refused", "broken": "error", "leak": "error",
                      "leak-lower": "error", "leak-b64": "error"}
    ok = images[images["status"] == "ok"]
    for row in ok.itertuples():
        data = (tmp_path / row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert row.revised_prompt == "REVISED: a doctor"
    leak_error = images.loc[images["prompt_id"] == "leak", "error"].iloc[0]
    assert "<OPENAI_API_KEY>" in leak_error  # the echoed key was masked
    written = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in written)
    echoed = {"exact": API_KEY.encode(), "lower": API_KEY.lower().encode(),
              "base64": base64.b64encode(f"Bearer {API_KEY}".encode())[12:-4]}
    for path in written:
        for form, secret in echoed.items():
            assert secret not in path.read_bytes(), (path, form)


@pytest.mark.parametrize("url", ["file://{secret}", "FILE://{secret}", "ftp://127.0.0.1/x.png",
                                 "data:image/png;base64,AAAA", "{secret}"])
def test_an_answer_with_a_non_http_url_is_refused_and_nothing_is_read(api, tmp_path, url):
    secret = tmp_path / "secret.png"
    secret.write_bytes(api.png())  # a real image: it would be stored as ok if it were read
    api.file_url = url.format(secret=secret)
    suite = suite_from_dict({"name": "f", "prompts": [{"id": "f", "text": "FILEURL a doctor"}]})
    images = generate(suite, {"gpt": f"openai:gpt-image-1?{FAST}"}, out=tmp_path / "run", samples=1,
                      progress=False)
    assert list(images["status"]) == ["error"]
    assert "only base64 images and http(s) URLs are accepted" in images["error"][0]
    assert not (tmp_path / "run" / "images").exists()
