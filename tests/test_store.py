"""The image store: content addressing, resume after crashes (kill -9 included), baselines."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from biaskit.generate import Result, derive_seed, generate
from biaskit.store import JOURNAL, LOCK_FILE, ImageStore
from biaskit.suite import suite_from_dict
from biaskit.tables import IMAGES_TABLE

SUITE_DICT = {"name": "t", "samples": 3, "prompts": [
    {"id": "doctor", "text": "a doctor"},
    {"id": "two-nurses", "text": "two nurses", "kind": "group", "count": 2},
]}
SUITE = suite_from_dict(SUITE_DICT)


def draw(prompt: str, seed: int) -> Image.Image:
    return Image.new("RGB", (16, 16), (seed & 255, (seed >> 8) & 255, len(prompt)))


class Counting:
    """A callable generator that counts its calls."""

    def __init__(self, fn=draw):
        self.calls: list[tuple[str, int]] = []
        self.fn = fn

    def __call__(self, prompt, seed):
        self.calls.append((prompt, seed))
        return self.fn(prompt, seed)


def assert_complete(run: Path, *, models=("m",), samples=3) -> pd.DataFrame:
    """Every sample once, every ok file present with the recorded sha256."""
    images = ImageStore(run).images()
    keys = list(zip(images["model"], images["prompt_id"], images["sample"]))
    assert len(keys) == len(set(keys)) == len(models) * len(SUITE) * samples
    for row in images[images["status"] == "ok"].itertuples():
        assert hashlib.sha256((run / row.path).read_bytes()).hexdigest() == row.sha256
    return images


def resume_with(generator, run: Path, **options) -> pd.DataFrame:
    """Resume model "m" of ``run`` with another generator: a deliberate change (allow_changed)."""
    return generate(SUITE, {"m": generator}, out=run, progress=False, allow_changed=True, **options)


# A child process that runs the same generation and dies at a chosen point.
CHILD = textwrap.dedent("""
    import os, sys, threading
    from PIL import Image
    from biaskit.generate import generate
    from biaskit.store import ImageStore
    from biaskit.suite import suite_from_dict

    suite, run, crash, HANG_AT = {suite!r}, sys.argv[1], sys.argv[2], int(sys.argv[3])

    calls = [0]

    def draw(prompt, seed):
        calls[0] += 1
        if crash == "hang" and calls[0] == HANG_AT:  # tell the parent, then wait to be killed
            print("hanging", flush=True)
            threading.Event().wait()
        return Image.new("RGB", (16, 16), (seed & 255, (seed >> 8) & 255, len(prompt)))

    def die(*args, **kwargs):
        os._exit(3)

    if crash == "before-table":      # every image and journal line written, no images.parquet
        ImageStore.flush = die
    elif crash == "before-image":    # 4th sample: journal line written, image file not
        original, count = ImageStore._write_image, [0]
        def write_then_die(self, final, blob):
            count[0] += 1
            if count[0] == 4:
                die()
            original(self, final, blob)
        ImageStore._write_image = write_then_die
    elif crash == "before-rename":   # 2nd sample: complete temporary file, never renamed
        real_replace, count = os.replace, [0]
        def replace_then_die(src, dst):
            if str(src).endswith(".tmp") and "/images/" in str(src):
                count[0] += 1
                if count[0] == 2:
                    die()
            real_replace(src, dst)
        os.replace = replace_then_die
    generate(suite_from_dict(suite), {{"m": draw}}, out=run, samples=int(sys.argv[4]),
             concurrency=1, progress=False)
""")


def child(tmp_path: Path, run: Path, crash: str, *, hang_at=0, samples=3, wait=True):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(suite=SUITE_DICT))
    args = [sys.executable, str(script), str(run), crash, str(hang_at), str(samples)]
    if not wait:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == (0 if crash == "none" else 3), done.stderr
    return done


def test_rerun_after_finish_regenerates_nothing(tmp_path):
    first = generate(SUITE, {"m": Counting()}, out=tmp_path, progress=False)
    again = Counting()
    second = generate(SUITE, {"m": again}, out=tmp_path, progress=False)
    assert again.calls == []
    pd.testing.assert_frame_equal(first, second)
    assert_complete(tmp_path)


def test_crash_between_image_writes_and_table_write_regenerates_nothing(tmp_path):
    run = tmp_path / "run"
    child(tmp_path, run, "before-table")
    assert not (run / IMAGES_TABLE).exists()
    resume = Counting()
    resume_with(resume, run)
    assert resume.calls == []
    images = assert_complete(run)
    assert (images["status"] == "ok").all()
    # The rows recovered from the journal are the ones the child generated.
    for row in images.itertuples():
        assert row.seed == derive_seed(0, "m", row.prompt_id, row.sample)


def test_crash_after_journal_line_before_image_regenerates_only_that_sample(tmp_path):
    run = tmp_path / "run"
    child(tmp_path, run, "before-image")
    assert len(ImageStore(run).images()) == 3  # the 4th line has no file: not counted
    resume = Counting()
    resume_with(resume, run)
    assert len(resume.calls) == 3  # the interrupted sample and the two never started
    assert_complete(run)


def test_crash_before_rename_leaves_no_partial_file_counted(tmp_path):
    run = tmp_path / "run"
    child(tmp_path, run, "before-rename")
    assert list((run / "images").glob(".*.tmp"))  # the complete temporary file is there...
    assert len(ImageStore(run).images()) == 1      # ...but only the first sample counts
    resume = Counting()
    resume_with(resume, run)
    assert len(resume.calls) == 5
    assert not list((run / "images").glob(".*.tmp"))  # cleaned by the next writer
    assert_complete(run)


def test_kill_9_mid_run_then_resume_completes_without_duplicates(tmp_path):
    run = tmp_path / "run"
    samples = 20
    # One worker: the 6th generator call starts only after the 5th sample is stored; the
    # child says so and hangs inside that call, so the kill lands mid-run, never too late.
    process = child(tmp_path, run, "hang", hang_at=6, samples=samples, wait=False)
    try:
        # Wait for the child's word, not for a duration; 120 s only bounds a child that hangs early.
        ready, _, _ = select.select([process.stdout], [], [], 120)
        assert ready and process.stdout.readline() == "hanging\n", "the child never reached sample 6"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert len(ImageStore(run).images()) == 5
    resume = Counting()
    resume_with(resume, run, samples=samples)
    assert len(resume.calls) == len(SUITE) * samples - 5
    assert_complete(run, samples=samples)


def test_partial_journal_line_is_ignored_and_repaired(tmp_path):
    generate(SUITE, {"m": draw}, out=tmp_path, samples=1, progress=False)
    (tmp_path / IMAGES_TABLE).unlink()
    assert (tmp_path / JOURNAL).read_text() == ""  # compacted into images.parquet at the end
    store = ImageStore(tmp_path)
    assert len(store.images()) == 0
    with open(tmp_path / JOURNAL, "ab") as handle:
        handle.write(b'{"model": "m", "prompt_id": "doc')  # a kill mid-write
    resume = Counting()
    resume_with(resume, tmp_path, samples=1)
    assert len(resume.calls) == 2  # table deleted: both regenerate, the cut line counts for nothing
    assert_complete(tmp_path, samples=1)


def test_errors_are_retried_on_resume_but_refusals_are_final(tmp_path):
    def flaky(prompt, seed):
        if "nurses" in prompt:
            raise TimeoutError("try later")
        return Result.refused("policy")

    first = generate(SUITE, {"m": flaky}, out=tmp_path, progress=False)
    assert set(first["status"]) == {"error", "refused"}
    resume = Counting()
    images = resume_with(resume, tmp_path)
    assert sorted(p for p, _ in resume.calls) == ["two nurses"] * 3
    assert list(images["status"]) == ["refused"] * 3 + ["ok"] * 3


def test_identical_images_share_one_file(tmp_path):
    images = generate(SUITE, {"m": lambda p, s: Image.new("RGB", (8, 8))}, out=tmp_path,
                      progress=False)
    assert images["sha256"].nunique() == 1
    assert len(list((tmp_path / "images").iterdir())) == 1


def test_path_of_row_and_sha_and_missing_things(tmp_path):
    images = generate(SUITE, {"m": draw}, out=tmp_path, samples=1, progress=False)
    store = ImageStore(tmp_path)
    row = images.iloc[0]
    assert store.path_of(row) == store.path_of(row["sha256"]) == tmp_path / row["path"]
    assert store.path_of(row).is_file()
    with pytest.raises(KeyError, match="no stored image"):
        store.path_of("0" * 64)
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        ImageStore(tmp_path / "missing")


def test_second_writer_on_the_same_run_is_refused(tmp_path):
    generate(SUITE, {"m": draw}, out=tmp_path, samples=1, progress=False)
    first = ImageStore(tmp_path)
    first._append({"model": "x", "prompt_id": "doctor", "sample": 0, "seed": 1, "status": "error",
                   "error": "e", "revised_prompt": None, "path": None, "sha256": None,
                   "width": None, "height": None})
    with pytest.raises(RuntimeError, match="another biaskit process is writing"):
        generate(SUITE, {"m": draw}, out=tmp_path, samples=2, progress=False)
    first.close()
    generate(SUITE, {"m": draw}, out=tmp_path, samples=2, progress=False)  # lock released


def test_run_json_records_the_config(tmp_path):
    generate(SUITE, {"m": draw}, out=tmp_path, seed=4, samples=1, progress=False)
    generate(SUITE, {"f": f"folder:{tmp_path}"}, out=tmp_path, seed=4, samples=2, progress=False)
    config = json.loads((tmp_path / "run.json").read_text())
    assert config["seed"] == 4 and config["samples"] == 2 and config["suite_name"] == "t"
    assert config["models"]["m"].endswith("test_store:draw")  # python:MODULE:draw, stable
    assert config["models"]["f"] == f"folder:{tmp_path}"      # models accumulate across calls


# -- baseline from an earlier run ------------------------------------------------------------
def test_baseline_imported_from_an_earlier_run(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    earlier = generate(SUITE, {"base": draw}, out=old, seed=9, samples=2, progress=False)
    candidate = Counting()
    images = generate(SUITE, {"cand": candidate, "base": f"run:{old}"}, out=new, seed=1,
                      samples=3, progress=False)
    assert len(candidate.calls) == 6
    base = images[images["model"] == "base"].set_index(["prompt_id", "sample"])
    before = earlier.set_index(["prompt_id", "sample"])
    ok = base[base["status"] == "ok"]
    assert len(ok) == 4
    pd.testing.assert_series_equal(ok["sha256"], before["sha256"], check_names=False)
    pd.testing.assert_series_equal(ok["seed"], before["seed"], check_names=False)  # original seeds
    assert all((new / path).is_file() for path in ok["path"])  # copied: the new run is movable
    missing = base.loc[("doctor", 2)]
    assert missing["status"] == "error"
    assert missing["error"] == f"sample 2 of prompt 'doctor' is not in run {old} (model 'base')"


def test_baseline_run_spec_errors(tmp_path):
    generate(SUITE, {"a": draw, "b": draw}, out=tmp_path / "old", samples=1, progress=False)
    with pytest.raises(ValueError, match="holds several models"):
        generate(SUITE, {"x": f"run:{tmp_path / 'old'}"}, out=tmp_path / "new", progress=False)
    with pytest.raises(ValueError, match="no model 'c' in this run"):
        generate(SUITE, {"x": f"run:{tmp_path / 'old'}#c"}, out=tmp_path / "new", progress=False)
    images = generate(SUITE, {"x": f"run:{tmp_path / 'old'}#b"}, out=tmp_path / "new", samples=1,
                      progress=False)
    assert (images["status"] == "ok").all()


def test_corrupt_run_json_is_named_and_nothing_is_generated(tmp_path):
    (tmp_path / "run.json").write_text('{"seed": 0, "models": ', encoding="utf-8")
    calls = Counting()
    with pytest.raises(ValueError, match=r"run\.json: not valid JSON"):
        generate(SUITE, {"m": calls}, out=tmp_path, samples=1, progress=False)
    assert calls.calls == []


# -- tables read back are checked (issue 13) ----------------------------------------------------
@pytest.mark.parametrize("sample", [2.5, -1, "two"])
def test_images_table_with_a_bad_sample_is_named_by_file_and_row(tmp_path, sample):
    generate(SUITE, {"m": draw}, out=tmp_path, samples=2, progress=False)
    images = pd.read_parquet(tmp_path / IMAGES_TABLE)
    column = images["sample"].tolist()
    column[2] = sample
    images["sample"] = pd.Series(column, dtype=type(sample) if not isinstance(sample, int) else "int64")
    images.to_parquet(tmp_path / IMAGES_TABLE, index=False)
    with pytest.raises(ValueError, match=r"images\.parquet: row 3: sample .* is not a whole number"):
        ImageStore(tmp_path)


def test_a_journal_line_missing_fields_is_ignored_with_a_warning_and_regenerated(tmp_path, caplog):
    generate(SUITE, {"m": draw}, out=tmp_path, samples=1, progress=False)
    with open(tmp_path / JOURNAL, "a") as journal:
        journal.write(json.dumps({"model": "m", "prompt_id": "doctor", "status": "ok"}) + "\n")
    assert len(ImageStore(tmp_path).images()) == 2
    assert f"{tmp_path / JOURNAL}: line 1: sample None is not a whole number" in caplog.text
    assert "line ignored, its sample is generated again" in caplog.text


def test_an_unwritable_run_is_one_line_naming_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    generate(SUITE, {"m": draw}, out=tmp_path, samples=1, progress=False)
    config = (tmp_path / "run.json").read_bytes()

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match=r"cannot write in the run directory: No space left.*run\.json"):
        generate(SUITE, {"m": draw}, out=tmp_path, samples=2, progress=False)
    monkeypatch.undo()
    assert (tmp_path / "run.json").read_bytes() == config
    assert not list(tmp_path.glob(".*.tmp"))
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(LOCK_FILE):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError, match=r"cannot write in the run directory: Permission denied.*\.biaskit\.lock"):
        generate(SUITE, {"m": draw}, out=tmp_path, samples=2, progress=False)


def test_ctrl_c_mid_run_keeps_every_finished_sample_and_a_resume_completes(tmp_path):
    calls = []

    def interrupted(prompt, seed):
        calls.append(seed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return draw(prompt, seed)

    with pytest.raises(KeyboardInterrupt):
        generate(SUITE, {"m": interrupted}, out=tmp_path, concurrency=1, progress=False)
    # Compacted on the way out: every call that finished (the one running when the interrupt
    # came included) is a row with its file, the interrupted one is not.
    stored = pd.read_parquet(tmp_path / IMAGES_TABLE)
    assert (stored["status"] == "ok").all() and len(stored) == len(calls) - 1
    assert len(list((tmp_path / "images").iterdir())) == len(stored)
    resume = Counting()
    resume_with(resume, tmp_path)
    assert len(resume.calls) == len(SUITE) * 3 - len(stored)
    assert_complete(tmp_path)


def test_out_naming_an_existing_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"file: is a file, not a run directory"):
        generate(SUITE, {"m": draw}, out=tmp_path / "file", progress=False)
