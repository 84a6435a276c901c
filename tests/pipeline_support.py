"""Counting wrappers around the demo generators, importable as ``python:pipeline_support:NAME``."""

from collections import Counter

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
