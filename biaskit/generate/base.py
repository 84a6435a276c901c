"""What a generator is: a request in, an image / refusal / error out."""

from __future__ import annotations

import base64
import functools
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from biaskit.tables import STATUS_ERROR, STATUS_OK, STATUS_REFUSED

WRONG_RESULT_COUNT = "generator returned {got} results for a batch of {expected} requests"
NOT_AN_IMAGE = "generator returned {type_name}, expected a PIL.Image, image bytes or a Result"


# Environment variables whose values must never reach a table, a file or a log.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
# Tokens that look like credentials whatever the environment holds: API keys
# (sk-..., hf_...) and bearer tokens a server may echo back.
_SECRET_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|Bearer\s+[A-Za-z0-9._~+/=-]{16,})")
SECRET_LIKE_MASK = "<secret>"


@dataclass(frozen=True)
class Request:
    """One sample to generate: which prompt, which resample, which seed."""

    prompt_id: str
    text: str
    sample: int
    seed: int


@dataclass(frozen=True)
class Result:
    """The outcome of one request.

    Exactly one of three: an image (``status == "ok"``, with ``image`` a PIL image
    or ``data`` its encoded file bytes, stored as given), a refusal (the model
    declined; ``message`` is its reason) or an error (``message`` says what failed).
    ``seed`` overrides the request's seed when the image came with its own
    (an imported earlier run).
    """

    status: str
    image: Any = None
    data: bytes | None = None
    message: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None

    @classmethod
    def ok(cls, image=None, *, data: bytes | None = None, revised_prompt: str | None = None,
           seed: int | None = None) -> "Result":
        """An image, as a PIL image or as encoded bytes (PNG, JPEG, WebP...)."""
        if (image is None) == (data is None):
            raise ValueError("Result.ok needs exactly one of image or data")
        return cls(STATUS_OK, image=image, data=data, revised_prompt=revised_prompt, seed=seed)

    @classmethod
    def refused(cls, reason: str, *, revised_prompt: str | None = None,
                seed: int | None = None) -> "Result":
        """The model declined the prompt (content policy, safety checker...)."""
        return cls(STATUS_REFUSED, message=str(reason), revised_prompt=revised_prompt, seed=seed)

    @classmethod
    def error(cls, message: str, *, seed: int | None = None) -> "Result":
        """Generation failed; the run records it and goes on."""
        return cls(STATUS_ERROR, message=str(message), seed=seed)

    @classmethod
    def from_exception(cls, exc: BaseException) -> "Result":
        return cls.error(describe_exception(exc))


@runtime_checkable
class Generator(Protocol):
    """Anything that turns a batch of requests into one result per request.

    Optional attributes read by the runner: ``batch_size`` (requests per call,
    default 1), ``max_concurrency`` (concurrent calls, default unbounded; 1 for a
    local GPU pipeline) and ``prepare()`` (called once before the first batch,
    e.g. to load weights; an exception there stops the run with its message).
    """

    def generate_batch(self, requests: Sequence[Request]) -> list[Result]:
        ...


class BaseGenerator:
    """Convenience base: implement :meth:`generate_one`; batches map over it."""

    batch_size = 1
    max_concurrency: int | None = None

    def generate_one(self, request: Request) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate_batch(self, requests: Sequence[Request]) -> list[Result]:
        return [self._guarded(request) for request in requests]

    def _guarded(self, request: Request) -> Result:
        # One failing sample must not take its batch-mates down with it.
        try:
            return as_result(self.generate_one(request))
        except Exception as exc:  # noqa: BLE001 - recorded as the sample's error
            return Result.from_exception(exc)


def as_result(value: Any) -> Result:
    """Wrap what a user callable returned (image, bytes or Result) as a :class:`Result`."""
    if isinstance(value, Result):
        return value
    if isinstance(value, (bytes, bytearray)):
        return Result.ok(data=bytes(value))
    if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image, duck-typed
        return Result.ok(value)
    return Result.error(NOT_AN_IMAGE.format(type_name=type(value).__name__))


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: message"`` with every secret from the environment masked."""
    text = str(exc).strip()
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def redact(text: str | None) -> str | None:
    """Mask secrets: values of secret-looking environment variables and credential-like tokens.

    An environment value (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``,
    8 characters or more) is masked as ``<NAME>`` in any letter case and in
    base64 (standard or URL-safe, at any offset of an encoded blob, as in an
    echoed ``Authorization: Basic`` header); tokens shaped like API keys
    (``sk-...``, ``hf_...``, ``Bearer ...``) are masked as ``<secret>``.
    """
    if not isinstance(text, str) or not text:
        return text  # None, or a missing value read back from a table
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name):
            text = _secret_pattern(value).sub(f"<{name}>", text)
    return _SECRET_LIKE.sub(SECRET_LIKE_MASK, text)


@functools.lru_cache(maxsize=64)
def _secret_pattern(value: str) -> re.Pattern:
    """One regex for every form of ``value`` to mask: itself (any case) and its base64 forms."""
    forms = [re.escape(value)]
    raw = value.encode("utf-8")
    for shift in range(3):
        # base64 of the value inside a longer payload, for each of the 3 byte offsets:
        # only the characters made from the value's bytes alone are fixed, keep those.
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        core = encoded[math.ceil(8 * shift / 6):(8 * (shift + len(raw))) // 6]
        for form in {core, core.replace("+", "-").replace("/", "_")}:
            forms.append(f"(?-i:{re.escape(form)})")
    return re.compile("|".join(forms), re.IGNORECASE)
