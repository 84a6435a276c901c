"""Throughput of the OpenAI adapter + runner + store against a local fake Images API
(127.0.0.1, its own process, 200 ms latency per request) at concurrency 8.
Ideal: 8 / 0.2 s = 40 images/s; target: >= 32 images/s (80 %).

    python benchmarks/bench_openai.py [--n 320] [--latency 0.2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from biaskit.generate import generate
from biaskit.suite import suite_from_dict

TARGET = 32.0
KEY = "sk-bench-not-a-real-key-000000"
SERVER = Path(__file__).resolve().parents[1] / "tests" / "_openai_server.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=320, help="images (multiple of 20)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="side of the served PNGs")
    args = parser.parse_args()
    prompts = [{"id": f"p{i}", "text": f"person number {i}"} for i in range(max(1, args.n // 20))]
    suite = suite_from_dict({"name": "bench", "samples": 20, "prompts": prompts})
    # The server runs in its own process, as a real API would: it must not share our GIL.
    server = subprocess.Popen([sys.executable, str(SERVER), "--key", KEY, "--latency", str(args.latency),
                               "--size", str(args.size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        os.environ["OPENAI_API_KEY"], os.environ["OPENAI_BASE_URL"] = KEY, server.stdout.readline().strip()
        import openai  # noqa: F401 - a one-time import is not throughput
        with tempfile.TemporaryDirectory() as run:
            start = time.perf_counter()
            images = generate(suite, {"gpt": "openai:gpt-image-1"}, out=run, samples=20,
                              concurrency=args.concurrency, progress=False)
            elapsed = time.perf_counter() - start
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    ok = int((images["status"] == "ok").sum())
    rate = ok / elapsed
    ideal = args.concurrency / args.latency
    verdict = "PASS" if rate >= TARGET else "FAIL"
    print(f"{ok}/{len(images)} images ok in {elapsed:.2f} s: {rate:.1f} images/s "
          f"(ideal {ideal:.0f}, {rate / ideal:.0%}; target >= {TARGET:.0f})  {verdict}")


if __name__ == "__main__":
    main()
