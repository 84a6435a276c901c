"""The source-level mutation engine of benchmarks/mutation.py (the numba kernels' target), on tiny
modules whose mutants are listed by hand."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mutation.py"


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


SOURCE = '''"""Doc: 1 < 2 is not mutated."""
LIMIT = 3


@njit(cache=True, fastmath=1)
def f(a, b):
    """a < b, nor this."""
    if a < b and not a:  # a comment: < +
        a += 1
    return (a - b) * 2.0 ** -b
'''


def test_mutants_of_a_tiny_module_by_hand(mutation):
    found = [(m.line, m.old, m.new) for m in mutation.source_mutants(SOURCE)]
    assert found == [
        (2, "3", "4"),
        (8, "<", "<="), (8, "and", "or"), (8, "not ", ""),
        (9, "+=", "-="), (9, "1", "0"),
        (10, "-", "+"), (10, "*", "/"), (10, "2.0", "3.0"), (10, "2.0 ** -b", "(2.0 * -b)"), (10, "-", ""),
    ]


def test_a_mutant_changes_its_span_only(mutation):
    mutants = mutation.source_mutants(SOURCE, prefix="tiny")
    assert [m.name for m in mutants[:2]] == ["tiny-000", "tiny-001"]
    power = mutants[9]
    mutated = power.apply(SOURCE)
    assert mutated == SOURCE.replace("* 2.0 ** -b", "* (2.0 * -b)")
    assert mutation.changed_line(SOURCE, power) == ("-    return (a - b) * 2.0 ** -b\n"
                                                    "+    return (a - b) * (2.0 * -b)")


def test_positions_are_characters_after_non_ascii_text(mutation):
    # ast gives UTF-8 byte columns; the text is cut at characters.
    source = 's = "é" + t == "ü"\n'
    assert [m.apply(source) for m in mutation.source_mutants(source)] == [
        's = "é" - t == "ü"\n', 's = "é" + t != "ü"\n']


def test_constants_keep_their_notation_and_no_op_mutants_are_dropped(mutation):
    source = "A = 0xFF\nB = 9007199254740992.0\nC = 0\nD = 1.0\nE = True\n"
    assert [m.new for m in mutation.source_mutants(source)] == ["0x100", "1", "0.0"]


def test_each_swap_keeps_the_tree_but_for_its_operator(mutation):
    # & binds tighter than | and ^: the swapped expression is parenthesised, and its operands
    # too where they would regroup (a ^ b & c | d is (a ^ (b & c)) | d).
    source = "x = a ^ b & c | d\ny = a >> 2 << b\nz = a // b % c\nw = a <= b > c != d\n"
    for mutant in mutation.source_mutants(source):
        mutation.ast.parse(mutant.apply(source))  # the engine checked its tree already
    news = [m.new for m in mutation.source_mutants(source)]
    assert {"(b | c)", "(a | b & c)", "((a ^ b & c) & (d))"} <= set(news)
    assert {"<<", ">>", "*", "//", "<", ">=", "=="} <= set(news)


def test_run_one_reads_pytest_outcomes(mutation, tmp_path):
    # A mutant survives when the tests pass, is killed when one fails, and a hang is a timeout.
    (tmp_path / "pkg").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_pkg.py").write_text(
        "from pkg.mod import value\n\ndef test_value():\n    assert value() == 2\n")
    outcomes = []
    for body, timeout in (("return 2", 60), ("return 3", 60), ("import time; time.sleep(60)", 1.5),
                          ("import os; os.abort()", 60)):
        status, _ = mutation.run_one(tmp_path, "pkg/mod.py", f"def value():\n    {body}\n",
                                     ["tests/test_pkg.py"], timeout=timeout)
        outcomes.append(status)
    assert outcomes == ["survived", "killed", "timeout", "crashed"]
