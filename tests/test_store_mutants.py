"""The store's promises that mutation testing found untested (issue 15), on real files: the bytes
read back are checked (hash and size), bad stored rows are named exactly, a failed write names its
file and keeps its errno, the lock's refusal message, a flush while an image is still being written
keeps its row, and the journal is UTF-8 whatever the platform's default encoding.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import biaskit.store as store_module
from biaskit.generate import Request, Result
from biaskit.paths import MAX_IMAGE_BYTES
from biaskit.store import JOURNAL, LOCK_FILE, RUN_LOCKED, ImageStore, remove_empty_run
from biaskit.tables import IMAGES_TABLE

GOOD_ROW = {"model": "m", "prompt_id": "doctor", "sample": 0, "seed": 5, "status": "refused",
            "error": "policy", "revised_prompt": None, "path": None, "sha256": None, "width": None,
            "height": None, "prompt_text": "a doctor", "model_spec": None}


def jpeg(colour=(200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def request(sample=0, text="a doctor"):
    return Request("doctor", text, sample, 100 + sample)


def write_journal(run: Path, *lines: str | dict) -> Path:
    path = run / JOURNAL
    path.write_text("".join((json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines),
                    encoding="utf-8")
    return path


# -- rows read back ------------------------------------------------------------------------------
@pytest.mark.parametrize("column, value, message", [
    ("model", "", "column 'model' holds ''"),
    ("prompt_id", 7, "column 'prompt_id' holds 7"),
    ("model", np.nan, "column 'model' holds None"),  # NaN read back is None, as the docstring says
    ("status", "done", "column 'status' holds 'done'"),
    ("seed", "x", "seed 'x' is not a whole number"),  # no "of at least 0": seeds may be negative
])
def test_a_bad_table_row_is_named_by_file_row_column_and_value(tmp_path, column, value, message):
    pd.DataFrame([{**GOOD_ROW, column: value}]).to_parquet(tmp_path / IMAGES_TABLE)
    with pytest.raises(ValueError) as raised:
        ImageStore(tmp_path)
    assert str(raised.value) == f"{tmp_path / IMAGES_TABLE}: row 1: {message}"


def test_negative_seeds_are_read_back(tmp_path):
    write_journal(tmp_path, {**GOOD_ROW, "seed": -5}, {**GOOD_ROW, "sample": 1, "seed": "-6"})
    assert ImageStore(tmp_path).images()["seed"].tolist() == [-5, -6]


def test_a_journal_line_that_is_not_an_object_is_named(tmp_path, caplog):
    journal = write_journal(tmp_path, "[1, 2]", GOOD_ROW)
    with caplog.at_level(logging.WARNING, logger="biaskit.store"):
        assert len(ImageStore(tmp_path).images()) == 1
    assert f"{journal}: line 1: not a JSON object; line ignored, its sample is generated again" in caplog.text


def test_an_ok_line_without_a_path_is_not_final_and_one_leading_outside_is_kept_but_unreadable(tmp_path):
    write_journal(tmp_path, {**GOOD_ROW, "status": "ok", "error": None},
                  {**GOOD_ROW, "sample": 1, "status": "ok", "error": None, "path": "../run.json",
                   "sha256": "0" * 64})
    (tmp_path / "run.json").write_text("{}")
    store = ImageStore(tmp_path)
    assert store.images()["sample"].tolist() == [1] and store.done("m") == {("doctor", 1)}
    with pytest.raises(ValueError, match="leads outside"):
        store.read_image(store.images().iloc[0])


def test_a_cut_line_is_removed_whatever_the_line_before_it_holds(tmp_path):
    (tmp_path / JOURNAL).write_bytes(b"XX\nXX")  # a bad line, then one cut short by a kill
    with ImageStore(tmp_path) as store:
        store.record("m", request(0), Result.refused("no"))
        assert ImageStore(tmp_path).done("m") == {("doctor", 0)}  # read from the journal, as after a kill


# -- reading images ------------------------------------------------------------------------------
def test_read_image_checks_the_bytes_against_their_sha256(tmp_path):
    with ImageStore(tmp_path, create=True) as store:
        row = store.record("m", request(0), Result.ok(data=jpeg()))
        assert store.read_image(row) == jpeg()
        (tmp_path / row["path"]).write_bytes(jpeg((0, 0, 255)))
        with pytest.raises(ValueError, match="do not match its recorded sha256 " + row["sha256"]):
            store.read_image(row)
        with pytest.raises(ValueError, match="do not match"):
            store.read_image(store.images().iloc[0])


def test_read_image_refuses_a_file_over_the_size_limit_before_reading_it(tmp_path):
    with ImageStore(tmp_path, create=True) as store:
        (tmp_path / "images").mkdir()
        big = tmp_path / "images" / "big.png"
        with open(big, "wb") as handle:  # sparse: no disk used
            handle.truncate(MAX_IMAGE_BYTES + 1)
        with pytest.raises(ValueError, match=r"more than the \d+-byte limit"):
            store.read_image({"path": "images/big.png", "sha256": None})


def test_path_of_a_row_without_a_file_names_its_sha256(tmp_path):
    with ImageStore(tmp_path, create=True) as store:
        with pytest.raises(KeyError, match=f"abc: no stored image in run {re.escape(str(tmp_path))}"):
            store.path_of({"sha256": "abc", "path": None})


# -- rows written ----------------------------------------------------------------------------------
def test_the_model_spec_is_recorded_with_secrets_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "tok-0123456789abcdef")
    with ImageStore(tmp_path, create=True) as store:
        row = store.record("m", request(0), Result.refused("no"), spec="hf:model?key=tok-0123456789abcdef")
    assert row["model_spec"] == "hf:model?key=<HF_TOKEN>"
    assert ImageStore(tmp_path).images()["model_spec"].tolist() == ["hf:model?key=<HF_TOKEN>"]


def test_an_ok_result_carrying_a_message_has_no_error(tmp_path):
    with ImageStore(tmp_path, create=True) as store:
        row = store.record("m", request(0), Result("ok", data=jpeg(), message="left over"))
    assert row["status"] == "ok" and row["error"] is None


def test_flush_while_an_image_is_being_written_keeps_its_row(tmp_path, monkeypatch):
    entered, release, real_replace = threading.Event(), threading.Event(), os.replace

    def paused(src, dst):  # the image's rename waits until the flush has run
        if Path(dst).parent.name == "images":
            entered.set()
            assert release.wait(30)
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", paused)
    store = ImageStore(tmp_path, create=True)
    writer = threading.Thread(target=store.record, args=("m", request(0), Result.ok(data=jpeg())))
    writer.start()
    assert entered.wait(30)
    store.flush()
    release.set()
    writer.join()
    store.close()
    assert ImageStore(tmp_path).done("m") == {("doctor", 0)}


# -- failed writes: the file named, the errno kept ----------------------------------------------
def test_a_table_that_cannot_be_written_is_named_with_its_errno(tmp_path):
    store = ImageStore(tmp_path, create=True)
    store.record("m", request(0), Result.refused("no"))
    (tmp_path / IMAGES_TABLE).mkdir()
    with pytest.raises(OSError) as raised:
        store.flush()
    assert raised.value.errno == errno.EISDIR and raised.value.filename == str(tmp_path / IMAGES_TABLE)
    assert raised.value.strerror == "cannot write in the run directory: Is a directory"
    (tmp_path / IMAGES_TABLE).rmdir()
    store.close()


def test_an_error_without_an_errno_keeps_its_text(tmp_path, monkeypatch):
    def quota(*args, **kwargs):
        raise OSError("quota exceeded")

    store = ImageStore(tmp_path, create=True)
    monkeypatch.setattr(store_module, "write_table", quota)
    with pytest.raises(OSError, match="cannot write in the run directory: quota exceeded"):
        store.flush()


def test_a_run_directory_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as raised:
        ImageStore(tmp_path / "file" / "run", create=True)
    assert raised.value.filename == str(tmp_path / "file" / "run")
    assert raised.value.strerror.startswith("cannot write in the run directory: ")


def test_a_journal_that_cannot_be_opened_is_named(tmp_path):
    (tmp_path / JOURNAL).symlink_to(JOURNAL)  # a loop: opening it fails with ELOOP
    with ImageStore(tmp_path) as store:
        with pytest.raises(OSError) as raised:
            store.record("m", request(0), Result.refused("no"))
        assert raised.value.errno == errno.ELOOP and raised.value.filename == str(tmp_path / JOURNAL)
        (tmp_path / JOURNAL).unlink()


def test_a_journal_line_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    def full_journal(path, mode="r", **kwargs):  # the journal on a full disk (a real one: /dev/full)
        return open("/dev/full", mode, **kwargs) if mode == "a" else open(path, mode, **kwargs)

    monkeypatch.setattr(store_module, "open", full_journal, raising=False)
    store = ImageStore(tmp_path, create=True)
    with pytest.raises(OSError) as raised:
        store.record("m", request(0), Result.refused("no"))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / JOURNAL)
    journal, store._journal = store._journal, None
    with contextlib.suppress(OSError):
        journal.close()
    store.close()


def test_an_image_file_that_cannot_be_created_is_an_error_row_with_its_reason(tmp_path, monkeypatch):
    def no_space(path, mode="r", **kwargs):
        if mode == "wb":
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, **kwargs)

    monkeypatch.setattr(store_module, "open", no_space, raising=False)
    with ImageStore(tmp_path, create=True) as store:
        row = store.record("m", request(0), Result.ok(data=jpeg()))
    assert row["status"] == "error" and row["path"] is None
    assert row["error"].startswith("could not write the image file images/") and "No space left" in row["error"]
    assert not list((tmp_path / "images").iterdir())


def test_the_journal_is_utf8_whatever_the_platforms_default_encoding(tmp_path, monkeypatch):
    def windows_open(path, mode="r", *args, encoding=None, **kwargs):  # text files default to cp1252 there
        if "b" not in mode and encoding is None:
            encoding = "cp1252"
        return open(path, mode, *args, encoding=encoding, **kwargs)

    monkeypatch.setattr(store_module, "open", windows_open, raising=False)
    text = "a médica 医生"
    with ImageStore(tmp_path, create=True) as store:
        store.record("m", request(0, text=text), Result.refused(text))
    assert ImageStore(tmp_path).images()[["prompt_text", "error"]].values.tolist() == [[text, text]]


# -- the lock ------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, pid", [(b"4242", " (pid 4242)"), (b"", ""), (b"\xff\xfe", "")])
def test_a_locked_run_is_refused_with_the_holders_pid_when_it_is_one(tmp_path, content, pid):
    lock = tmp_path / LOCK_FILE
    lock.write_bytes(content)
    holder = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: flock refuses the store
        with pytest.raises(RuntimeError) as raised:
            ImageStore(tmp_path, lock=True)
        assert str(raised.value) == RUN_LOCKED.format(path=tmp_path, pid=pid, lock=lock)
    finally:
        os.close(holder)
    with ImageStore(tmp_path, lock=True):
        assert lock.read_text() == str(os.getpid())


# -- a run that failed to start ------------------------------------------------------------------
def test_remove_empty_run(tmp_path):
    remove_empty_run(tmp_path / "never made")  # nothing to remove, no error
    for names in ([], [LOCK_FILE]):
        run = tmp_path / f"run{len(names)}"
        run.mkdir()
        for name in names:
            (run / name).write_text("1")
        remove_empty_run(run)
        assert not run.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / LOCK_FILE).write_text("1")
    (kept / "run.json").write_text("{}")
    remove_empty_run(kept)
    assert sorted(p.name for p in kept.iterdir()) == [LOCK_FILE, "run.json"]

