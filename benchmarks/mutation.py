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
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
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
    "store": (["biaskit/store.py"], ["tests/test_store_contract.py", "tests/test_store.py"]),
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
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    for module in modules:
        path = work / module
        path.write_text(undecorated(path.read_text(encoding="utf-8")), encoding="utf-8")
    lines = ["[mutmut]", "source_paths = biaskit", "only_mutate =", *(f"    {m}" for m in modules),
             "also_copy = prompts", "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in tests),
             "pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -q", "    -m", "    not slow"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "commit").write_text(measured_commit(), encoding="utf-8")
    return work


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"some of {', '.join(TARGETS)} (default: all)")
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
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.list:
        for name, (modules, tests) in TARGETS.items():
            print(f"{name}: {' '.join(modules)}  <-  {' '.join(tests)}")
        return 0
    rows = []
    for target in args.targets or list(TARGETS):
        work = WORK / target if args.results else prepare(target)
        if not args.results:
            run_mutmut(work, jobs=args.jobs)
        commit = (work / "commit").read_text(encoding="utf-8").strip() if (work / "commit").exists() else "unknown"
        for module, found in statuses(work, TARGETS[target][0]).items():
            killed = sum(s in KILLED for s in found.values())
            survived = sorted(n for n, s in found.items() if s in SURVIVED)
            other = len(found) - killed - len(survived)
            score = killed / max(1, killed + len(survived))
            rows.append({"commit": commit, "target": target, "module": module, "mutants": len(found),
                         "killed": killed, "survived": len(survived), "other": other,
                         "score": round(100 * score, 1)})
            print(f"{module}: {killed} killed, {len(survived)} survived, {other} other "
                  f"-> {100 * score:.1f} % (commit {commit})", flush=True)
            if args.results and args.recheck is not None:
                now = recheck(work, survived, args.recheck or TARGETS[target][1])
                print(f"{module}: {sum(now.values())} of {len(survived)} survivors killed by the tests now")
                survived = [name for name in survived if not now[name]]
            for name in survived:
                print(f"    {name}: {found[name]}")
                print("        " + diff(work, name, full=args.show).replace("\n", "\n        "))
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
