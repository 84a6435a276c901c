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

and prints one line per module (killed, survived, score) and the changed lines of every
surviving mutant (``--show``: whole diffs), and appends to ``build/mutation/scores.csv``.
"""

from __future__ import annotations

import argparse
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

#: target -> (modules to mutate, the fast tests that decide them)
TARGETS = {
    "store": (["biaskit/store.py"], ["tests/test_store_contract.py", "tests/test_store.py"]),
    "suite": (["biaskit/suite.py"], ["tests/test_suite.py", "tests/test_suite_errors.py"]),
    "secrets": (["biaskit/generate/base.py"],
                ["tests/test_secret_masking.py", "tests/test_generate_results.py", "tests/test_generate.py"]),
    "report-tables": (["biaskit/report/data.py"], ["tests/test_report_tables.py"]),
    "metrics": (["biaskit/metrics/entropy.py", "biaskit/metrics/measures.py"],
                ["tests/test_entropy_contract.py", "tests/test_metrics.py", "tests/test_metrics_stats.py"]),
    "metrics-tests": (["biaskit/metrics/compare.py", "biaskit/metrics/stats.py"],
                      ["tests/test_metrics.py", "tests/test_metrics_stats.py"]),
    # the colour science, painted faces, a real photograph, the demo's faces at three sizes, and the
    # recoloured photograph read through tag_run (none of the slow neural tests)
    "skin-tone": (["biaskit/perception/skin_tone.py"], ["tests/test_skin_tone.py", "tests/test_skin_tone_promise.py"]),
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
    lines = ["[mutmut]", "source_paths = biaskit", "only_mutate =", *(f"    {m}" for m in modules),
             "also_copy = prompts", "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in tests),
             "pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -q"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return work


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
    from mutmut.__main__ import status_by_exit_code

    out = {}
    for module in modules:
        meta = work / "mutants" / f"{module}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        out[module] = {name: status_by_exit_code.get(code, str(code)) for name, code in codes.items()}
    return out


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
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.list:
        for name, (modules, tests) in TARGETS.items():
            print(f"{name}: {' '.join(modules)}  <-  {' '.join(tests)}")
        return 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    rows = []
    for target in args.targets or list(TARGETS):
        work = prepare(target)
        run_mutmut(work, jobs=args.jobs)
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
            for name in survived:
                print(f"    {name}: {found[name]}")
                print("        " + diff(work, name, full=args.show).replace("\n", "\n        "))
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
