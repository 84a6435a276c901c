"""Any Python callable ``(prompt, seed) -> PIL.Image`` as a generator."""

from __future__ import annotations

from typing import Callable

from biaskit.generate.base import BaseGenerator, Request, Result, as_result


class CallableGenerator(BaseGenerator):
    """Wrap ``fn(prompt, seed)``; it may return a PIL image, encoded bytes or a :class:`Result`.

    An exception raised by ``fn`` becomes that sample's error; the run goes on.

    Examples
    --------
    >>> from PIL import Image
    >>> gen = CallableGenerator(lambda prompt, seed: Image.new("RGB", (8, 8)))
    >>> gen.generate_batch([Request("p", "a doctor", 0, 42)])[0].status
    'ok'
    """

    def __init__(self, fn: Callable, *, max_concurrency: int | None = None):
        if not callable(fn):
            raise TypeError(f"expected a callable (prompt, seed) -> PIL.Image, got {fn!r}")
        self.fn = fn
        self.max_concurrency = max_concurrency

    def generate_one(self, request: Request) -> Result:
        return as_result(self.fn(request.text, request.seed))

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"CallableGenerator({getattr(self.fn, '__module__', '?')}:{name})"
