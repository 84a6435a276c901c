"""Every user error is one line naming the file, row or option, with its documented exit code.

Issue 13, items 12 and 13: real files, real processes (Ctrl-C), a really read-only run
directory; never a traceback.
"""

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from biaskit import cli
from biaskit.cli import main

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: errors
samples: 2
prompts:
  - {id: doctor, text: a doctor}
  - {id: founders, text: the US founding fathers, kind: ahistorical, expected: {gender: Male}}
"""


def run_cli(argv, capsys):
    """(exit code, stderr lines) of ``biaskit ARGV`` run in this process."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert "Traceback" not in err
    return code, lines


def one_error(argv, capsys, *, code, contains):
    got, lines = run_cli(argv, capsys)
    assert got == code, lines
    assert len(lines) == 1 and lines[0].startswith("biaskit "), lines
    for text in contains:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A small real run: generated, tagged (skin tone) and measured."""
    root = tmp_path_factory.mktemp("errors")
    suite = root / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = root / "run"
    assert main(["generate", str(suite), "--model", "a=python:biaskit.demo:mixed",
                 "--model", "b=python:biaskit.demo:skewed", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["tag", str(out), "--tagger", "skin", "--no-progress"]) == 0
    assert main(["measure", str(out / "observations.parquet"), "--prompts", str(suite),
                 "--images", str(out / "images.parquet"), "--n-boot", "20",
                 "--out", str(out / "metrics")]) == 0
    return {"suite": suite, "run": out}


@pytest.fixture()
def run_copy(measured, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(measured["run"], copy)
    return copy


# ---------------------------------------------------------------------------- exit codes

def test_exit_codes_are_distinct_and_documented_in_help(capsys):
    codes = [cli.EXIT_OK, cli.EXIT_FAILED_ITEMS, cli.EXIT_BAD_INPUT, cli.EXIT_SYSTEM,
             cli.EXIT_INTERNAL, cli.EXIT_INTERRUPTED]
    assert len(set(codes)) == len(codes)
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    for code in codes:
        assert f"\n  {code} " in help_text
    assert "some samples failed" in help_text and "Ctrl-C" in help_text


def test_a_crash_is_not_some_samples_failed(monkeypatch, capsys):
    def crash(args):
        raise TypeError("unsupported operand")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["report"].set_defaults(func=crash)
    line = one_error(["report", "x"], capsys, code=cli.EXIT_INTERNAL,
                     contains=["internal error: TypeError: unsupported operand", "-v"])
    assert cli.EXIT_INTERNAL != cli.EXIT_FAILED_ITEMS, line
    # -v (before or after the command) shows the traceback for the bug report.
    assert main(["report", "x", "-v"]) == cli.EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


def test_keyerrors_of_biaskit_are_input_errors_a_bare_key_is_a_bug():
    code, message = cli.describe_error(KeyError("unknown attribute 'height'; known: age"))
    assert (code, message) == (cli.EXIT_BAD_INPUT, "unknown attribute 'height'; known: age")
    code, message = cli.describe_error(KeyError("hof"))
    assert code == cli.EXIT_INTERNAL and "KeyError: 'hof'" in message


def test_ctrl_c_exits_130_in_one_line_and_keeps_stored_images(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "biaskit", "generate", str(suite), "--model",
         "slow=python:pipeline_support:slow", "--samples", "6", "--concurrency", "2",
         "--out", str(tmp_path / "run"), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a suite started in the background (`pytest &`, nohup) ignores SIGINT, and so would the
        # child, which then never sees Ctrl-C: give it the default disposition, as a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = tmp_path / "run" / "images.journal.jsonl"
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait until at least one image is stored
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"biaskit generate: error: {cli.INTERRUPTED}"
    from biaskit import ImageStore
    stored = ImageStore(tmp_path / "run").images()
    assert 1 <= (stored["status"] == "ok").sum() < 12  # kept, and it was really interrupted


# ---------------------------------------------------------------------------- files

def test_out_that_is_an_existing_file(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    (tmp_path / "taken").write_text("not a folder")
    one_error(["generate", suite, "--model", "a=python:biaskit.demo:mixed", "--out",
               tmp_path / "taken", "--no-progress"], capsys, code=cli.EXIT_BAD_INPUT,
              contains=[str(tmp_path / "taken")])


@contextlib.contextmanager
def read_only(folder: Path):
    """Make every folder under ``folder`` unwritable, for real, also for root (chattr +i)."""
    folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    if os.geteuid() != 0:
        for path in folders:
            path.chmod(0o555)
        undo = [["chmod", "-R", "u+w", str(folder)]]
    else:
        done = subprocess.run(["chattr", "+i", *map(str, folders)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("cannot make a folder read-only here (root without chattr)")
        undo = [["chattr", "-i", *map(str, folders)]]
    try:
        yield
    finally:
        for command in undo:
            subprocess.run(command, check=True)


@pytest.mark.parametrize("command", ["tag", "measure", "report"])
def test_read_only_run_directory(command, measured, run_copy, capsys):
    argv = {"tag": ["tag", run_copy, "--tagger", "skin", "--no-cache", "--no-progress"],
            "measure": ["measure", run_copy / "observations.parquet", "--prompts",
                        measured["suite"], "--n-boot", "10", "--out", run_copy / "metrics"],
            "report": ["report", run_copy]}[command]
    before = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*"))
    with read_only(run_copy):
        line = one_error(argv, capsys, code=cli.EXIT_SYSTEM, contains=[str(run_copy)])
    assert any(reason in line for reason in ("operation not permitted", "permission denied"))
    assert sorted(p.relative_to(run_copy) for p in run_copy.rglob("*")) == before  # no .tmp left


@pytest.mark.parametrize("content, words", [
    ("[1, 2]", ["run.json", "expected a JSON object", "list"]),
    ('{"seed": "abc"}', ["run.json", "'seed' must be an integer", "'abc'"]),
    ('{"models": ["a"]}', ["run.json", "'models' must be an object"]),
    ('{"seed": 0', ["run.json", "not valid JSON"]),
])
def test_bad_run_json(content, words, run_copy, measured, capsys):
    (run_copy / "run.json").write_text(content)
    one_error(["report", run_copy], capsys, code=cli.EXIT_BAD_INPUT, contains=words)
    one_error(["generate", measured["suite"], "--model", "a=python:biaskit.demo:mixed",
               "--out", run_copy, "--no-progress"], capsys, code=cli.EXIT_BAD_INPUT,
              contains=words)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", ["pickle", "text"])
def test_clip_weights_that_are_not_a_checkpoint(kind, run_copy, tmp_path, capsys):
    weights = tmp_path / ("weights.pt" if kind == "pickle" else "weights.txt")
    if kind == "pickle":
        weights.write_bytes(pickle.dumps({"state_dict": {}, "hook": print}))  # code, not tensors
    else:
        weights.write_text("these are not weights\n")
    one_error(["tag", run_copy, "--tagger", "clip", "--clip-weights", weights, "--no-progress"],
              capsys, code=cli.EXIT_BAD_INPUT, contains=[f"--clip-weights {weights}",
                                                         "not a ViT-B-32 checkpoint"])


def test_suite_not_utf8_and_duplicate_key(tmp_path, run_copy, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(SUITE.replace("a doctor", "un m\xe9decin").encode("latin-1"))
    one_error(["measure", run_copy / "observations.parquet", "--prompts", latin, "--out",
               tmp_path / "m"], capsys, code=cli.EXIT_BAD_INPUT,
              contains=[str(latin), "not UTF-8", "0xe9"])
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text(SUITE.replace("samples: 2\n", "samples: 2\nsamples: 20\n"))
    one_error(["measure", run_copy / "observations.parquet", "--prompts", duplicate, "--out",
               tmp_path / "m"], capsys, code=cli.EXIT_BAD_INPUT,
              contains=[str(duplicate), "line 3: key 'samples' is given twice (first at line 2)"])


def test_duplicate_key_in_a_flow_mapping_and_in_clip_prompts(tmp_path):
    from biaskit.perception.clip import read_prompts
    from biaskit.suite import SuiteError, load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nprompts:\n  - {id: a, text: x, id: b}\n")
    with pytest.raises(SuiteError, match=r"line 3: key 'id' is given twice"):
        load_suite(suite)
    prompts = tmp_path / "clip.yaml"
    prompts.write_text("hair:\n  long: [long hair]\n  short: [short hair]\n  long: [a ponytail]\n")
    with pytest.raises(ValueError, match=r"clip\.yaml: line 4: key 'long' is given twice"):
        read_prompts(prompts)


@pytest.mark.parametrize("content, words", [
    ("", ["cannot be read as a table", "No columns"]),
    ("model,prompt_id,sample,person,attribute,label\n", ["no observation rows"]),
])
def test_empty_and_header_only_observations(content, words, tmp_path, measured, capsys):
    path = tmp_path / "obs.csv"
    path.write_text(content)
    one_error(["measure", path, "--prompts", measured["suite"], "--out", tmp_path / "m"], capsys,
              code=cli.EXIT_BAD_INPUT, contains=[str(path), *words])


def test_images_table_errors_name_the_file(tmp_path, run_copy, measured, capsys):
    images = pd.read_parquet(run_copy / "images.parquet")
    images.loc[2, "status"] = "lost"
    images.to_parquet(tmp_path / "images.parquet")
    one_error(["measure", run_copy / "observations.parquet", "--prompts", measured["suite"],
               "--images", tmp_path / "images.parquet", "--out", tmp_path / "m"], capsys,
              code=cli.EXIT_BAD_INPUT,
              contains=[f"{tmp_path / 'images.parquet'}: row 3: status 'lost'"])


# ---------------------------------------------------------------------------- options (item 13)

def test_threshold_for_an_attribute_nothing_tags(run_copy, capsys):
    one_error(["tag", run_copy, "--tagger", "skin", "--threshold", "foo=0.5", "--no-progress"],
              capsys, code=cli.EXIT_BAD_INPUT,
              contains=["--threshold", "'foo'", "tagged: skin_tone"])


def test_negative_min_face(run_copy, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tag", str(run_copy), "--min-face", "-1", "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == cli.EXIT_BAD_INPUT
    assert "argument --min-face: -1 is not a whole number >= 0" in err and "Traceback" not in err
    from biaskit.perception.pipeline import tag_images
    with pytest.raises(ValueError, match=r"min_face \(--min-face\) must be .* >= 0, got -1"):
        tag_images(pd.read_parquet(run_copy / "images.parquet"), root=run_copy, tagger="skin",
                   min_face=-1, progress=False)


def test_a_full_disk_leaves_no_temporary_file_and_names_the_file(tmp_path, capsys):
    import errno

    from biaskit.tables import write_atomic

    target = tmp_path / "metrics" / "summary.parquet"
    target.parent.mkdir()

    def fill_then_fail(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        write_atomic(target, fill_then_fail)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # no .summary.parquet.tmp left
    code, message = cli.describe_error(info.value)
    assert code == cli.EXIT_SYSTEM
    assert message == f"{target}: cannot write: no space left on device"
