"""OpenAI Images API (gpt-image-1, dall-e-3, ...) through the official ``openai`` SDK.

The key and the base URL come from the SDK's own environment variables
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL``); nothing here stores either.
"""

from __future__ import annotations

import base64
import random
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from biaskit.generate.base import BaseGenerator, Request, Result, describe_exception
from biaskit.paths import MAX_IMAGE_BYTES

#: Error codes with which the API declines a prompt on content-policy grounds.
REFUSAL_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
SDK_MISSING = "the OpenAI adapter needs the openai package: pip install 'biaskit[openai]'"
GAVE_UP = "{reason} (gave up after {attempts} attempt(s))"
EMPTY_RESPONSE = "the API returned no image"
CLIENT_FAILED = "openai:{model}: cannot create the OpenAI client: {reason}"
#: The only URL schemes an answer's image may come from (never file:, ftp:, data:...).
URL_SCHEMES = ("http", "https")
TOO_BIG = "{what}: {size} bytes, more than the " + f"{MAX_IMAGE_BYTES}-byte limit for an image"
BAD_URL = "the API answered with a {scheme!r} URL; only base64 images and http(s) URLs are accepted"


class OpenAIGenerator(BaseGenerator):
    """One image per request from the Images API, with retries and refusal handling.

    Parameters
    ----------
    model : str
        ``gpt-image-1``, ``dall-e-3``, ...
    client : openai.OpenAI, optional
        A configured client; by default one is built from the environment.
    max_retries : int
        Retries after a 429, a 5xx, a timeout or a connection error.
    backoff : float
        First retry delay in seconds, doubled at each retry (with jitter); a
        ``Retry-After`` header from the server takes precedence, up to ``max_backoff``.
    timeout : float
        Seconds per HTTP request.
    options
        Passed on to ``client.images.generate`` (``size``, ``quality``, ...).

    Notes
    -----
    A 400 with code ``content_policy_violation`` or ``moderation_blocked`` is a
    refusal (status ``refused``, the API's message as reason), not an error.
    DALL-E models are asked for ``b64_json``; GPT image models always answer so.

    Examples
    --------
    >>> gen = OpenAIGenerator("gpt-image-1", size="1024x1024", quality="low")  # doctest: +SKIP
    """

    def __init__(self, model: str, *, client: Any = None, max_retries: int = 4,
                 backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 180.0,
                 **options: Any):
        try:
            import openai
        except ImportError:
            raise RuntimeError(SDK_MISSING) from None
        self._openai = openai
        self.model = model
        # Retries are ours (counted, with a test-friendly backoff), not the SDK's.
        try:
            self.client = client or openai.OpenAI(max_retries=0, timeout=timeout)
        except openai.OpenAIError as exc:  # typically: OPENAI_API_KEY is not set
            raise RuntimeError(CLIENT_FAILED.format(model=model, reason=exc)) from None
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.options = dict(options)
        if model.startswith("dall-e") and "response_format" not in self.options:
            self.options["response_format"] = "b64_json"

    def generate_one(self, request: Request) -> Result:
        openai = self._openai
        retryable = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.images.generate(
                    model=self.model, prompt=request.text, n=1, **self.options)
            except openai.BadRequestError as exc:
                if _error_code(exc) in REFUSAL_CODES:
                    return Result.refused(_error_message(exc))
                return Result.from_exception(exc)
            except retryable as exc:
                if attempt == self.max_retries:
                    return Result.error(GAVE_UP.format(reason=describe_exception(exc), attempts=attempt + 1))
                time.sleep(self._delay(attempt, exc))
            else:
                return self._to_result(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, exc: Exception) -> float:
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        return min(self.backoff * 2**attempt * (0.75 + 0.5 * random.random()), self.max_backoff)

    def _to_result(self, response: Any) -> Result:
        if not getattr(response, "data", None):
            return Result.error(EMPTY_RESPONSE)
        item = response.data[0]
        revised = getattr(item, "revised_prompt", None)
        if getattr(item, "b64_json", None):
            size = len(item.b64_json) * 3 // 4  # decoded size, known before decoding
            if size > MAX_IMAGE_BYTES:
                return Result.error(TOO_BIG.format(what="base64 answer", size=size))
            return Result.ok(data=base64.b64decode(item.b64_json), revised_prompt=revised)
        if getattr(item, "url", None):
            return self._download(str(item.url), revised_prompt=revised)
        return Result.error(EMPTY_RESPONSE)

    def _download(self, url: str, *, revised_prompt: str | None) -> Result:
        """The image at an http(s) URL, at most MAX_IMAGE_BYTES; any other scheme is refused."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in URL_SCHEMES:
            return Result.error(BAD_URL.format(scheme=scheme or url[:20]))
        opener = urllib.request.build_opener(_HttpOnlyRedirects)
        with opener.open(url, timeout=self.timeout) as handle:
            data = handle.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            return Result.error(TOO_BIG.format(what=f"image at {scheme} URL", size=f"over {MAX_IMAGE_BYTES}"))
        return Result.ok(data=data, revised_prompt=revised_prompt)

    def __repr__(self) -> str:
        return f"OpenAIGenerator({self.model!r})"


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib would not go to file:, but say so plainly)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urlsplit(newurl).scheme.lower()
        if scheme not in URL_SCHEMES:
            raise ValueError(BAD_URL.format(scheme=scheme))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _error_code(exc: Any) -> str | None:
    code = getattr(exc, "code", None)
    if code is None and isinstance(getattr(exc, "body", None), dict):
        code = exc.body.get("code")
    return code


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return describe_exception(exc)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
    return None
