"""Counting wrappers around the demo generators, importable as ``python:pipeline_support:NAME``."""

import threading
from collections import Counter

from PIL import Image

from biaskit import demo

CALLS: Counter = Counter()


def mixed(prompt, seed):
    CALLS["mixed"] += 1
    return demo.mixed(prompt, seed)


def skewed(prompt, seed):
    CALLS["skewed"] += 1
    return demo.skewed(prompt, seed)


def slow(prompt, seed):
    """A generator that takes long enough to be interrupted mid-run."""
    import time

    time.sleep(2)
    return demo.mixed(prompt, seed)


def blank(prompt, seed):
    """An image with no face in it."""
    from PIL import Image

    return Image.new("RGB", (96, 96), (seed % 200, 120, 160))


def broken(prompt, seed):
    """A generator whose every call fails (an error row per sample)."""
    raise RuntimeError("the service is down")


class Gate:
    """Holds generator calls until ``parties`` are in flight together, then lets all through.

    A bounded pool reaches its bound however slowly its threads start, and cannot pass it;
    the call that completes the party waits ``grace_s`` first, so that a pool that ignores
    its bound has time to send one call more (only a broken pool is timed).
    """

    def __init__(self):
        self.reset(parties=1)

    def reset(self, *, parties: int, timeout_s: float = 30.0, grace_s: float = 0.2):
        self.parties, self.timeout_s, self.grace_s = parties, timeout_s, grace_s
        self.in_flight = self.max_in_flight = 0
        self.opened = False
        self._arrived = threading.Condition()

    def __enter__(self):
        with self._arrived:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if not self.opened and self.in_flight < self.parties:
                self._arrived.wait_for(lambda: self.opened, timeout=self.timeout_s)
            elif not self.opened:
                self._arrived.wait(timeout=self.grace_s)
                self.opened = True
                self._arrived.notify_all()
        return self

    def __exit__(self, *exc_info):
        with self._arrived:
            self.in_flight -= 1


GATE = Gate()


def gated(prompt, seed):
    """A tiny image per call, each call passing through :data:`GATE`."""
    with GATE:
        CALLS["gated"] += 1
        return Image.new("RGB", (8, 8), (seed % 256, 0, len(prompt) % 256))
