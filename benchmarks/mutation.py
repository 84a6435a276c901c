"""Mutation score of the modules that decide numbers and safety, one targeted test subset each.

A mutant is the module with one small change (``<`` for ``<=``, a constant changed, an
argument dropped...); it is *killed* when a test of the subset fails.  The score is
killed / (killed + survived); mutants no test covers count as survived, timeouts as killed.
Surviving mutants are listed so that each one is either killed by a new test or explained
as equivalent (README, Development).

Each target runs `mutmut <https://mutmut.readthedocs.io>`_ 3.x in a scratch copy of the
repository (``build/mutation/TARGET``), so the working tree is never touched:

    python -m pip install "mutmut>=3.8,<4"           # not a dependency of biaskit
    python benchmarks/mutation.py                    # every target (about an hour on 2 cores)
    python benchmarks/mutation.py store suite        # some targets
    python benchmarks/mutation.py --list             # targets, their files and tests
    python benchmarks/mutation.py --results metrics  # the last run's scores and survivors again

and prints one line per module (killed, survived, score) and the changed lines of every
surviving mutant (``--show``: whole diffs), and appends to ``build/mutation/scores.csv``.

mutmut leaves decorated functions alone, so the numba kernels (``biaskit/metrics/kernels.py``,
target ``kernels``) are mutated by a small engine of this script instead: one mutant per AST node
and classic operator (comparisons at their boundary or negated, arithmetic, shift and bit
swaps, ``and``/``or``, ``not``/unary minus dropped, numbers ``0 <-> 1`` else ``c + 1``), written as
a change of the module's text at the node's position, each run with ``pytest -x`` in a scratch
copy with an empty numba cache of its own; timeouts and crashes count as killed.  Its record
(``build/mutation/kernels/mutants.json``) lets a stopped run resume (``--limit N`` runs N more).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
COPIED = ("biaskit", "tests", "prompts")

#: every fast test of the numbers: the frame, its intervals, the correction and the CLI's tables
#: (a glob, so a new metrics test file is never left out of the runs, as two once were)
METRICS_TESTS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_metrics*.py")) + [
    "tests/test_entropy_contract.py"]
#: target -> (modules to mutate, the fast tests that decide them)
TARGETS = {
    "store": (["biaskit/store.py"], ["tests/test_store_contract.py", "tests/test_store.py",
                                    "tests/test_store_mutants.py"]),
    "suite": (["biaskit/suite.py"], ["tests/test_suite.py", "tests/test_suite_errors.py",
                                   "tests/test_suite_mutants.py"]),
    "secrets": (["biaskit/generate/base.py"],
                ["tests/test_secret_masking.py", "tests/test_generate_results.py", "tests/test_generate.py"]),
    "report-tables": (["biaskit/report/data.py"], ["tests/test_report_tables.py",
                                                   "tests/test_report_tables_sensitivity.py"]),
    "metrics": (["biaskit/metrics/entropy.py", "biaskit/metrics/measures.py"], METRICS_TESTS),
    "metrics-tests": (["biaskit/metrics/compare.py", "biaskit/metrics/stats.py"], METRICS_TESTS),
    "posterior": (["biaskit/metrics/posterior.py"], METRICS_TESTS),
    "correction": (["biaskit/metrics/correction.py"], METRICS_TESTS),
    # the colour science, painted faces, a real photograph, the demo's faces at three sizes, and the
    # recoloured photograph read through tag_run (none of the slow neural tests)
    "skin-tone": (["biaskit/perception/skin_tone.py"], ["tests/test_skin_tone.py", "tests/test_skin_tone_promise.py",
                                                       "tests/test_skin_tone_mutants.py"]),
}
# mutmut's exit-code classes (mutmut.__main__.status_by_exit_code) folded into the score's terms
KILLED = {"killed", "timeout"}
SURVIVED = {"survived", "no tests"}


def prepare(target: str) -> Path:
    """A fresh scratch copy with a setup.cfg telling mutmut what to mutate and which tests to run."""
    modules, tests = TARGETS[target]
    work = WORK / target
    shutil.rmtree(work, ignore_errors=True)
    copy_tree(work)
    for module in modules:
        path = work / module
        path.write_text(undecorated(path.read_text(encoding="utf-8")), encoding="utf-8")
    lines = ["[mutmut]", "source_paths = biaskit", "only_mutate =", *(f"    {m}" for m in modules),
             "also_copy = prompts", "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in tests),
             "pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -q", "    -m", "    not slow"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "commit").write_text(measured_commit(), encoding="utf-8")
    return work


def copy_tree(destination: Path) -> None:
    """biaskit, tests and prompts as they are now, into ``destination`` (replacing what is there)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        shutil.rmtree(destination / name, ignore_errors=True)
        shutil.copytree(ROOT / name, destination / name, ignore=ignore)


def score_row(*, commit: str, target: str, module: str, mutants: int, killed: int, survived: int,
              other: int, note: str = "") -> dict:
    """One row of ``scores.csv`` (score: killed / (killed + survived)), printed as it is made."""
    score = killed / max(1, killed + survived)
    print(f"{module}: {killed} killed, {survived} survived, {other} other{note} "
          f"-> {100 * score:.1f} % (commit {commit})", flush=True)
    return {"commit": commit, "target": target, "module": module, "mutants": mutants, "killed": killed,
            "survived": survived, "other": other, "score": round(100 * score, 1)}


#: Decorators :func:`undecorated` moves below their method, so that mutmut mutates the method.
PROPERTIES = ("cached_property", "property")


def undecorated(source: str) -> str:
    """``source`` with every ``@cached_property`` / ``@property`` method written as a plain method
    followed by ``name = cached_property(name)``: the same class, but mutmut 3 skips decorated
    functions (the metric definitions of ``measures.py`` are cached properties) and mutates these.
    """
    lines = source.splitlines(keepends=True)
    methods = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)
               and len(node.decorator_list) == 1 and isinstance(node.decorator_list[0], ast.Name)
               and node.decorator_list[0].id in PROPERTIES]
    for node in sorted(methods, key=lambda n: n.lineno, reverse=True):  # bottom up: lines stay put
        decorator = node.decorator_list[0]
        indent = " " * node.col_offset
        lines.insert(node.end_lineno, f"{indent}{node.name} = {decorator.id}({node.name})\n")
        del lines[decorator.lineno - 1]
    return "".join(lines)


def measured_commit() -> str:
    """HEAD's short hash, with ``+changes`` where the copied files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--", *COPIED) else "")


def run_mutmut(work: Path, *, jobs: int) -> None:
    env = dict(os.environ)
    # Tests and the child processes they start (the store's crash tests) import the mutated
    # tree; the folder must exist before Python starts, or its path finder is cached as absent.
    (work / "mutants").mkdir(exist_ok=True)
    env["PYTHONPATH"] = str(work / "mutants")
    with (work / "mutmut.log").open("w", encoding="utf-8") as log:  # progress bars: kept out of sight
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
                       cwd=work, env=env, check=False, stdout=log, stderr=subprocess.STDOUT)


def statuses(work: Path, modules: list[str]) -> dict[str, dict[str, str]]:
    """module -> mutant name -> status, from mutmut's per-file result files."""
    with contextlib.chdir(work):  # mutmut reads its setup.cfg from the working folder on import
        from mutmut.__main__ import status_by_exit_code

    out = {}
    for module in modules:
        meta = work / "mutants" / f"{module}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        out[module] = {name: status_by_exit_code.get(code, str(code)) for name, code in codes.items()}
    return out


#: Runs pytest once per mutant inside one process: the trampolines read the mutant's name
#: from the environment at each call, so the modules are imported once, not once per mutant.
RECHECK = """
import os, sys, pytest
tests, names = sys.argv[1].split(","), sys.argv[2:]
for name in names:
    os.environ["MUTANT_UNDER_TEST"] = name
    code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests])
    print(f"RECHECK {name} {int(code)}", flush=True)
"""


def recheck(work: Path, names: list[str], tests: list[str]) -> dict[str, bool]:
    """Mutant name -> whether the current ``tests`` kill it now (the tests are copied in afresh).

    Stops each mutant's run at its first failing test: a quick look at the survivors after
    tests were added, not a score (mutmut's own run decides that).
    """
    for folder in (work / "tests", work / "mutants" / "tests"):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(ROOT / "tests", folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = dict(os.environ, PYTHONPATH=str(work / "mutants"))
    done = subprocess.run([sys.executable, "-c", RECHECK, ",".join(tests), *names], cwd=work / "mutants",
                          env=env, capture_output=True, text=True, check=False)
    codes = dict(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("RECHECK "))
    killed = {name: codes.get(name, "0") != "0" for name in names}
    for name in names:
        print(f"    {name}: {'killed' if killed[name] else 'survives'}", flush=True)
    return killed


def diff(work: Path, name: str, *, full: bool = False) -> str:
    """The mutant's diff (``full``) or just its changed lines, ``-old`` then ``+new``."""
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work,
                          capture_output=True, text=True, check=False)
    if full:
        return done.stdout.strip()
    return "\n".join(line for line in done.stdout.splitlines()
                     if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def mutmut_rows(target: str, args) -> list[dict]:
    """Runs mutmut over a target (unless ``args.results``); its score rows, survivors printed."""
    rows = []
    work = WORK / target if args.results else prepare(target)
    if not args.results:
        run_mutmut(work, jobs=args.jobs)
    commit = (work / "commit").read_text(encoding="utf-8").strip() if (work / "commit").exists() else "unknown"
    for module, found in statuses(work, TARGETS[target][0]).items():
        killed = sum(s in KILLED for s in found.values())
        survived = sorted(n for n, s in found.items() if s in SURVIVED)
        rows.append(score_row(commit=commit, target=target, module=module, mutants=len(found),
                              killed=killed, survived=len(survived),
                              other=len(found) - killed - len(survived)))
        if args.results and args.recheck is not None:
            now = recheck(work, survived, args.recheck or TARGETS[target][1])
            print(f"{module}: {sum(now.values())} of {len(survived)} survivors killed by the tests now")
            survived = [name for name in survived if not now[name]]
        for name in survived:
            print(f"    {name}: {found[name]}")
            print("        " + diff(work, name, full=args.show).replace("\n", "\n        "))
    return rows


# ---------------------------------------------------------------- kernels: a source-level engine
# mutmut 3 mutates a function through a trampoline that it wraps around it, and leaves decorated
# functions alone: every numba kernel (``@njit``) of biaskit/metrics/kernels.py.  This small engine
# mutates such a module in its text: one mutant per AST node and operator, the rest of the file
# byte for byte the original, each mutant compiled afresh by numba and run against its tests.

#: target -> (module mutated in its text, the fast tests that decide it: the kernels' own tests
#: first, so that most mutants die within a few seconds)
ENGINE_TARGETS = {
    "kernels": ("biaskit/metrics/kernels.py",
                ["tests/test_metrics_kernels.py", "tests/test_metrics_posterior.py",
                 "tests/test_metrics_posterior_mutants.py", "tests/test_metrics_stats.py",
                 "tests/test_metrics_compare.py"]),
}
SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
           ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|",
           ast.BitXor: "^", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
           ast.NotEq: "!=", ast.And: "and", ast.Or: "or"}
#: the classic swaps: arithmetic, shifts and bits, comparisons at their boundary or negated, and/or
SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
         ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
         ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr, ast.Lt: ast.LtE,
         ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.And: ast.Or, ast.Or: ast.And}
#: swaps into another precedence level: the mutated expression is parenthesised to keep its tree
REGROUPED = {(ast.Pow, ast.Mult), (ast.BitAnd, ast.BitOr), (ast.BitOr, ast.BitAnd), (ast.BitXor, ast.BitOr)}
ENGINE_KILLED = {"killed", "timeout", "crashed"}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change of a module's text: ``source[start:end]`` becomes ``new``."""

    name: str
    line: int
    start: int
    end: int
    old: str
    new: str

    def apply(self, source: str) -> str:
        return source[:self.start] + self.new + source[self.end:]


class _Replace(ast.NodeTransformer):
    """Replaces the node at ``key`` (type and position) by ``replacement(node)``."""

    def __init__(self, key, replacement):
        self.key, self.replacement = key, replacement

    def generic_visit(self, node):
        node = super().generic_visit(node)
        return self.replacement(node) if _key(node) == self.key else node


def _key(node):
    return (type(node).__name__, getattr(node, "lineno", None), getattr(node, "col_offset", None),
            getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None))


class _Text:
    """Character offsets of a module's AST positions (UTF-8 byte columns) and its tokens."""

    def __init__(self, source: str):
        self.source = source
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.tokens = [(self.starts[t.start[0] - 1] + t.start[1], self.starts[t.end[0] - 1] + t.end[1], t.string)
                       for t in tokenize.generate_tokens(io.StringIO(source).readline)
                       if t.type in (tokenize.OP, tokenize.NAME)]

    def offset(self, line: int, byte_column: int) -> int:
        return self.starts[line - 1] + len(self.lines[line - 1].encode("utf-8")[:byte_column].decode("utf-8"))

    def span(self, node) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def token(self, after, before, symbol: str) -> tuple[int, int]:
        """The one token ``symbol`` between two nodes (parentheses and comments may sit there too)."""
        found = [(s, e) for s, e, text in self.tokens
                 if self.span(after)[1] <= s and e <= self.span(before)[0] and text == symbol]
        if len(found) != 1:
            raise ValueError(f"line {after.lineno}: {len(found)} '{symbol}' tokens between operands")
        return found[0]


def _constant(value):
    """The mutated number: 0 <-> 1, else c + 1 (None for a float that c + 1 does not change)."""
    new = 1 - value if value in (0, 1) else value + 1
    return None if new == value else type(value)(new)


def _edits(node, text: _Text):
    """(start, end, candidate new texts, the intended tree edit) of each mutant of one node: the
    first candidate that parses to the intended tree is the mutant."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
        new = SWAPS[type(node.op)]
        left, right = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
        suffix = "" if isinstance(node, ast.BinOp) else "="
        start, end = text.token(left, right, SYMBOLS[type(node.op)] + suffix)
        edit = lambda n, new=new: (setattr(n, "op", new()), n)[1]  # noqa: E731
        if isinstance(node, ast.BinOp) and (type(node.op), new) in REGROUPED:
            first, last = text.span(node)
            left, right = text.source[first:start].strip(), text.source[end:last].strip()
            yield first, last, [f"({left} {SYMBOLS[new]} {right})", f"(({left}) {SYMBOLS[new]} ({right}))"], edit
        else:
            yield start, end, [SYMBOLS[new] + suffix], edit
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAPS:
                left = node.left if i == 0 else node.comparators[i - 1]
                start, end = text.token(left, node.comparators[i], SYMBOLS[type(op)])
                new = SWAPS[type(op)]
                yield start, end, [SYMBOLS[new]], lambda n, i=i, new=new: (n.ops.__setitem__(i, new()), n)[1]
    elif isinstance(node, ast.BoolOp):
        start, end = text.token(node.values[0], node.values[1], SYMBOLS[type(node.op)])
        if len(node.values) == 2:
            new = SWAPS[type(node.op)]
            yield start, end, [SYMBOLS[new]], lambda n, new=new: (setattr(n, "op", new()), n)[1]
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield text.span(node)[0], text.span(node.operand)[0], [""], lambda n: n.operand
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        new = _constant(node.value)
        if new is not None:
            start, end = text.span(node)
            old = text.source[start:end]
            literal = f"0x{new:X}" if old.lower().startswith("0x") else repr(new)
            yield start, end, [literal], lambda n, new=new: (setattr(n, "value", new), n)[1]


def _skipped(tree) -> set[int]:
    """Nodes never mutated: docstrings, decorators, ``from __future__`` imports."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                skipped.update(map(id, ast.walk(node.body[0])))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                skipped.update(map(id, ast.walk(decorator)))
        if isinstance(node, ast.ImportFrom):
            skipped.update(map(id, ast.walk(node)))
    return skipped


def source_mutants(source: str, *, prefix: str = "m") -> list[Mutant]:
    """Every mutant of ``source``, in the order of the text.

    Each is checked: the mutated text parses to the original's tree with exactly the one intended
    edit (so a swap into another precedence level never regroups its neighbours).
    """
    tree, text = ast.parse(source), _Text(source)
    skipped = _skipped(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        for start, end, candidates, edit in _edits(node, text):
            intended = ast.dump(_Replace(_key(node), edit).visit(ast.parse(source)))
            new = next((c for c in candidates if ast.dump(ast.parse(source[:start] + c + source[end:])) == intended),
                       None)
            if new is None:
                raise ValueError(f"line {node.lineno}: no edit of {source[start:end]!r} gives the intended tree")
            found.append((start, end, new))
    found.sort()
    return [Mutant(name=f"{prefix}-{i:03d}", line=source.count("\n", 0, start) + 1, start=start, end=end,
                   old=source[start:end], new=new) for i, (start, end, new) in enumerate(found)]


def changed_line(source: str, mutant: Mutant) -> str:
    """``-old line`` and ``+new line`` of a mutant (its first line, where it spans several)."""
    mutated = mutant.apply(source)
    old = source.splitlines()[mutant.line - 1]
    new = mutated.splitlines()[mutant.line - 1]
    return f"-{old}\n+{new}"


def _source_hash(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0" + ((ROOT / path).read_bytes() if (ROOT / path).exists() else b""))
    return digest.hexdigest()[:16]


def _results_file(target: str) -> Path:
    return WORK / target / "mutants.json"


def load_engine_results(target: str) -> dict:
    path = _results_file(target)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def prepare_engine(target: str, *, jobs: int) -> dict:
    """The run's record, resumed where the module and its tests are unchanged since it started.

    A fresh record lists every mutant as ``pending``; each worker gets a scratch copy of
    biaskit, tests and prompts (``build/mutation/TARGET/worker-N``).
    """
    module, tests = ENGINE_TARGETS[target]
    work = WORK / target
    source = (ROOT / module).read_text(encoding="utf-8")
    stamp = _source_hash([module, *tests])
    record = load_engine_results(target)
    if record.get("stamp") != stamp:
        shutil.rmtree(work, ignore_errors=True)
        record = {"commit": measured_commit(), "stamp": stamp, "module": module, "source": _source_hash([module]),
                  "mutants": [dict(dataclasses.asdict(m), status="pending", seconds=None)
                              for m in source_mutants(source, prefix=target)]}
    copy_workers(target, jobs=jobs)
    (work / "commit").write_text(record["commit"], encoding="utf-8")
    _save(target, record)
    return record


def copy_workers(target: str, *, jobs: int) -> None:
    """A scratch copy of biaskit, tests and prompts as they are now for each worker."""
    for n in range(jobs):
        copy_tree(WORK / target / f"worker-{n}")


def _save(target: str, record: dict) -> None:
    path = _results_file(target)
    path.with_suffix(".tmp").write_text(json.dumps(record, indent=1), encoding="utf-8")
    path.with_suffix(".tmp").replace(path)


def run_one(worker: Path, module: str, source: str, tests: list[str], *, timeout: float) -> tuple[str, float]:
    """Status of ``source`` as ``module`` in ``worker``: killed (a test failed, or it does not
    import or compile), crashed (killed by a signal), timeout, survived, or error (pytest found
    no tests or was misused: the run itself is broken).

    Python's bytecode cache keys on the file's size and mtime, and numba's on-disk cache of the
    ``cache=True`` kernels on them too: a mutant of the same size written within the same second
    could read the previous one's code.  So no bytecode is written and each run gets an empty
    numba cache of its own.
    """
    path = worker / module
    path.write_text(source, encoding="utf-8")
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="numba-", dir=worker) as cache:
        env = dict(os.environ, PYTHONPATH=str(worker), PYTHONDONTWRITEBYTECODE="1", NUMBA_CACHE_DIR=cache,
                   NUMBA_DISABLE_JIT="0")
        began = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                   cwd=worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "timeout", time.monotonic() - began
    seconds = time.monotonic() - began
    if code < 0:
        return "crashed", seconds
    return {0: "survived", 1: "killed", 2: "killed", 3: "killed"}.get(code, "error"), seconds


def run_engine(target: str, record: dict, *, jobs: int, limit: int | None = None,
               names: list[str] | None = None, tests: list[str] | None = None) -> None:
    """Runs the pending mutants (or ``names`` again, against ``tests``), saving after each one."""
    module, default_tests = ENGINE_TARGETS[target]
    tests = [t for t in (tests or default_tests) if (ROOT / t).exists()]
    source = (ROOT / module).read_text(encoding="utf-8")
    work = WORK / target
    workers = [work / f"worker-{n}" for n in range(jobs)]
    baseline, seconds = run_one(workers[0], module, source, tests, timeout=600)
    if baseline != "survived":
        raise SystemExit(f"{target}: the unmutated module does not pass {' '.join(tests)} ({baseline})")
    timeout = 3 * seconds + 15  # a mutant's own compilation included; hangs count as killed
    print(f"{target}: baseline {seconds:.1f} s, timeout {timeout:.0f} s a mutant", flush=True)
    chosen = [m for m in record["mutants"] if (m["name"] in names if names is not None else m["status"] == "pending")]
    chosen = chosen[:limit] if limit else chosen
    free, lock = queue.Queue(), threading.Lock()
    for worker in workers:
        free.put(worker)

    def one(entry):
        worker = free.get()
        try:
            mutant = Mutant(**{f.name: entry[f.name] for f in dataclasses.fields(Mutant)})
            status, spent = run_one(worker, module, mutant.apply(source), tests, timeout=timeout)
        finally:
            (worker / module).write_text(source, encoding="utf-8")
            free.put(worker)
        with lock:
            if names is None:
                entry.update(status=status, seconds=round(spent, 1))
                _save(target, record)
            else:
                entry["recheck"] = status
            print(f"    {entry['name']} (line {entry['line']}): {status} in {spent:.0f} s", flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, chosen))


def engine_rows(target: str, *, recheck: list[str] | None, jobs: int, only: list[str] | None = None) -> list[dict]:
    """The score row of an engine target's record, its survivors printed with their changed lines."""
    record = load_engine_results(target)
    if not record:
        print(f"{target}: no run recorded in {_results_file(target)}")
        return []
    module = record["module"]
    source = (ROOT / module).read_text(encoding="utf-8")
    found = {m["name"]: m["status"] for m in record["mutants"]}
    killed = sum(s in ENGINE_KILLED for s in found.values())
    survived = [m for m in record["mutants"] if m["status"] == "survived"]
    pending = sum(s == "pending" for s in found.values())
    other = len(found) - killed - len(survived) - pending
    row = score_row(commit=record["commit"], target=target, module=module, mutants=len(found),
                    killed=killed, survived=len(survived), other=other + pending,
                    note=f" ({pending} of them not run)" if pending else "")
    if recheck is not None:
        if record["source"] != _source_hash([module]):
            raise SystemExit(f"{module} changed since the run: run {target} again")
        copy_workers(target, jobs=jobs)  # the tests as they are now
        names = [m["name"] for m in survived if only is None or m["name"] in only]
        run_engine(target, record, jobs=jobs, names=names, tests=recheck or None)
        now = [m for m in survived if m.get("recheck") in ENGINE_KILLED]
        print(f"{module}: {len(now)} of {len(survived)} survivors killed by the tests now")
        survived = [m for m in survived if m not in now]
    for mutant in survived:
        print(f"    {mutant['name']}: line {mutant['line']}")
        print("        " + changed_line(source, Mutant(**{f.name: mutant[f.name] for f in dataclasses.fields(Mutant)}))
              .replace("\n", "\n        "))
    return [row]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"some of {', '.join([*TARGETS, *ENGINE_TARGETS])} (default: all)")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="mutants tested at once (default: cores - 1)")
    parser.add_argument("--show", action="store_true",
                        help="print the whole diff of every surviving mutant (default: changed lines)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--recheck", nargs="*", metavar="TEST",
                        help="with --results: run the survivors again against these tests "
                             "(default: the target's tests) as they are now")
    parser.add_argument("--results", action="store_true",
                        help="report the last run of each target again, without running mutmut")
    parser.add_argument("--limit", type=int, metavar="N",
                        help=f"{', '.join(ENGINE_TARGETS)}: run only the next N pending mutants (a later run "
                             "resumes while the module and its tests are unchanged)")
    parser.add_argument("--mutants", nargs="+", metavar="NAME",
                        help=f"{', '.join(ENGINE_TARGETS)}, with --recheck: only these survivors")
    args = parser.parse_args(argv)
    names = [*TARGETS, *ENGINE_TARGETS]
    unknown = sorted(set(args.targets) - set(names))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.list:
        for name, (modules, tests) in TARGETS.items():
            print(f"{name}: {' '.join(modules)}  <-  {' '.join(tests)}")
        for name, (module, tests) in ENGINE_TARGETS.items():
            print(f"{name}: {module} (this script's engine)  <-  {' '.join(tests)}")
        return 0
    rows = []
    for target in args.targets or names:
        if target in ENGINE_TARGETS:
            if not args.results:
                run_engine(target, prepare_engine(target, jobs=args.jobs), jobs=args.jobs, limit=args.limit)
            rows += engine_rows(target, recheck=args.recheck if args.results else None, jobs=args.jobs,
                                only=args.mutants)
        else:
            rows += mutmut_rows(target, args)
    if args.results:
        return 0
    scores = WORK / "scores.csv"
    with scores.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["commit"])
        if handle.tell() == 0:
            writer.writeheader()
        writer.writerows(rows)
    print(f"scores appended to {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
