"""Helpers shared by every stage for one-line error messages.

Kept free of heavy imports: the command line uses them before pandas loads.
"""

from __future__ import annotations


def one_line(message) -> str:
    """``message`` (text or an exception) on one line: library messages often span several."""
    return " ".join(str(message).split()) or type(message).__name__
