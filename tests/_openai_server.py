"""A local HTTP server on 127.0.0.1 speaking the OpenAI Images API, for tests and benchmarks.

What it answers depends on words in the prompt, so concurrent requests behave
deterministically:

* ``REFUSE`` -- 400 ``content_policy_violation`` (a refusal);
* ``FLAKY``  -- 429 with ``retry-after-ms: 10`` on the first request of that prompt, then success;
* ``BROKEN`` -- 500 every time;
* ``SLOW``   -- answers only when the server shuts down, so a client timeout always fires
  first, however loaded the machine (no race between two durations);
* ``LEAK``   -- 400 whose message echoes the bearer token (a hostile server), to test redaction;
  ``LEAKLOWER`` echoes it lower-cased, ``LEAKB64`` base64-encoded;
* ``FILEURL`` -- 200 whose image ``url`` is ``api.file_url`` (say ``file:///etc/passwd``);
* otherwise  -- 200 with a PNG (``b64_json``, or a ``url`` served by this server when the
  request asked for ``response_format: url``) and ``revised_prompt = "REVISED: " + prompt``.

Every request waits ``latency_s`` first (200 ms in the benchmark).  With ``gate=N`` every
request is held until N requests are in flight at once (or ``gate_timeout_s`` passes), so a
test sees a bounded concurrency reached without relying on requests overlapping in time.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

REFUSAL_MESSAGE = "Your request was rejected as a result of our safety system."


class FakeImagesAPI:
    """Start with ``with FakeImagesAPI(api_key=...) as api:``; ``api.base_url`` ends in ``/v1``."""

    def __init__(self, *, api_key: str, latency_s: float = 0.0, size: int = 32,
                 gate: int | None = None, gate_timeout_s: float = 30.0, gate_grace_s: float = 0.2):
        self.api_key = api_key
        self.latency_s = latency_s
        self.size = size
        self.gate = gate
        self.gate_timeout_s = gate_timeout_s
        self.gate_grace_s = gate_grace_s
        self.gate_opened = False  # True once ``gate`` requests were in flight together
        self._closing = threading.Event()  # set on exit: releases SLOW requests
        self.requests: list[dict] = []  # bodies of image requests, in arrival order
        self.prompt_hits: Counter = Counter()
        self.files: dict[str, bytes] = {}
        self.file_url = "file:///etc/passwd"  # what a FILEURL prompt is answered with
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once (bounded concurrency)
        self._counter = itertools.count()
        self._mutex = threading.Lock()
        self._arrived = threading.Condition(self._mutex)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeImagesAPI":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def png(self) -> bytes:
        """A distinct small PNG per call (its pixels encode a counter)."""
        n = next(self._counter)
        image = Image.new("RGB", (self.size, self.size), (n % 256, (n // 256) % 256, 77))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def answer(self, body: dict, authorization: str) -> tuple[int, dict, dict]:
        """Status, JSON body and extra headers for one image request."""
        if authorization != f"Bearer {self.api_key}":
            return 401, _error("invalid_api_key", "Incorrect API key provided."), {}
        prompt = body.get("prompt", "")
        with self._mutex:
            self.requests.append(body)
            self.prompt_hits[prompt] += 1
            hits = self.prompt_hits[prompt]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._hold_at_gate()
        try:
            time.sleep(self.latency_s)
            return self._respond(body, prompt, hits, authorization)
        finally:
            with self._mutex:
                self.in_flight -= 1

    def _hold_at_gate(self) -> None:
        """Wait (mutex held) until ``gate`` requests are in flight; the first batch only."""
        if self.gate is None or self.gate_opened:
            return
        if self.in_flight < self.gate:
            self._arrived.wait_for(lambda: self.gate_opened, timeout=self.gate_timeout_s)
            return
        # The bound is reached; a client that ignores it gets time to send one request more
        # (only a broken client is timed: a bounded one cannot exceed the bound meanwhile).
        self._arrived.wait(timeout=self.gate_grace_s)
        self.gate_opened = True
        self._arrived.notify_all()

    def _respond(self, body: dict, prompt: str, hits: int, authorization: str) -> tuple[int, dict, dict]:
        if "REFUSE" in prompt:
            return 400, _error("content_policy_violation", REFUSAL_MESSAGE), {}
        if "LEAKLOWER" in prompt:
            return 400, _error("invalid_request", f"bad request with key {authorization.lower()}"), {}
        if "LEAKB64" in prompt:
            echoed = base64.b64encode(authorization.encode()).decode()
            return 400, _error("invalid_request", f"bad request, header {echoed}"), {}
        if "FILEURL" in prompt:
            return 200, {"created": int(time.time()), "data": [{"url": self.file_url}]}, {}
        if "LEAK" in prompt:
            return 400, _error("invalid_request", f"bad request with key {authorization}"), {}
        if "BROKEN" in prompt:
            return 500, _error("server_error", "The server had an error."), {}
        if "FLAKY" in prompt and hits == 1:
            return 429, _error("rate_limit_exceeded", "Slow down."), {"retry-after-ms": "10"}
        if "SLOW" in prompt:
            self._closing.wait()
        png = self.png()
        item = {"revised_prompt": f"REVISED: {prompt}"}
        if body.get("response_format") == "url":
            name = f"{len(self.files)}.png"
            self.files[name] = png
            item["url"] = f"{self.base_url.rsplit('/v1', 1)[0]}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(png).decode("ascii")
        return 200, {"created": int(time.time()), "data": [item]}, {}

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else header + body writes meet delayed ACKs: +40 ms

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/images/generations"):
                    return self._send(404, _error("not_found", self.path), {})
                status, payload, headers = api.answer(body, self.headers.get("authorization", ""))
                self._send(status, payload, headers)

            def do_GET(self):  # noqa: N802
                name = self.path.rsplit("/", 1)[-1]
                data = api.files.get(name)
                if data is None:
                    return self._send(404, _error("not_found", self.path), {})
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status, payload, headers):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "type": "invalid_request_error", "param": None}}


def main() -> None:
    """Serve in a process of its own (the benchmark): prints the base URL, then serves."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="fake OpenAI Images API on 127.0.0.1")
    parser.add_argument("--key", required=True)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with FakeImagesAPI(api_key=args.key, latency_s=args.latency, size=args.size) as api:
        print(api.base_url, flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin


if __name__ == "__main__":
    main()
