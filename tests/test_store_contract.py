"""The image store's contract, in process and fast: what each kind of result becomes in the
images table, which samples are final, where files go, compaction, and the journal rules.

(The crash tests with real SIGKILLs are in test_store.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os

import pandas as pd
import pytest
from PIL import Image

from biaskit.generate import Request, Result
from biaskit.store import JOURNAL, ImageStore, encode_image
from biaskit.tables import IMAGES_COLUMNS, IMAGES_TABLE

SECRET = "tok-0123456789abcdef"


def jpeg(colour=(200, 10, 10), size=(6, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def request(sample=0, prompt="doctor", seed=None):
    return Request(prompt, f"a {prompt}", sample, 100 + sample if seed is None else seed)


@pytest.fixture
def store(tmp_path):
    with ImageStore(tmp_path, create=True) as opened:
        yield opened


def test_each_result_kind_becomes_its_row(store, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    data = jpeg()
    ok = store.record("m", request(0), Result.ok(data=data, revised_prompt=f"echo {SECRET}"))
    sha = hashlib.sha256(data).hexdigest()
    assert ok == {"model": "m", "prompt_id": "doctor", "sample": 0, "seed": 100, "status": "ok", "error": None,
                  "revised_prompt": "echo <HF_TOKEN>", "path": f"images/{sha}.jpg", "sha256": sha,
                  "width": 6, "height": 4, "prompt_text": "a doctor", "model_spec": None}
    assert (tmp_path / ok["path"]).read_bytes() == data  # the bytes as the generator returned them
    refused = store.record("m", request(1), Result.refused(f"policy {SECRET}", seed=7))
    assert refused == {"model": "m", "prompt_id": "doctor", "sample": 1, "seed": 7, "status": "refused",
                       "error": "policy <HF_TOKEN>", "revised_prompt": None, "path": None, "sha256": None,
                       "width": None, "height": None, "prompt_text": "a doctor", "model_spec": None}
    failed = store.record("m", request(2), Result.error("boom"))
    assert (failed["status"], failed["error"], failed["seed"], failed["path"]) == ("error", "boom", 102, None)
    bad = store.record("m", request(3), Result.ok(data=b"not an image"))
    assert bad["status"] == "error" and bad["path"] is None and bad["sha256"] is None and bad["width"] is None
    assert bad["error"].startswith("generator returned bytes that are not a readable image: UnidentifiedImageError")
    table = store.images()
    assert list(table.columns) == list(IMAGES_COLUMNS) and list(table["sample"]) == [0, 1, 2, 3]
    assert str(table["sample"].dtype) == "int64" and str(table["width"].dtype) == "Int64"


def test_a_pil_image_is_stored_as_png_and_identical_images_share_one_file(store, tmp_path):
    image = Image.new("RGB", (5, 3), (1, 2, 3))
    first = store.record("m", request(0), Result.ok(image))
    second = store.record("m", request(1), Result.ok(image.copy()))
    assert first["path"] == second["path"] and first["path"].endswith(".png")
    assert (first["width"], first["height"]) == (5, 3)
    stored = tmp_path / first["path"]
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first["sha256"]
    assert list((tmp_path / "images").iterdir()) == [stored]
    with Image.open(stored) as back:
        assert back.format == "PNG" and back.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("mode, stored_mode", [
    ("1", "1"), ("L", "L"), ("LA", "LA"), ("P", "P"), ("RGBA", "RGBA"), ("I", "I;16"), ("I;16", "I;16"),
    ("CMYK", "RGB"), ("F", "RGB")])
def test_encode_image_keeps_png_modes_and_converts_the_rest(mode, stored_mode):
    blob, ext, size = encode_image(Result.ok(Image.new(mode, (3, 2))))
    assert ext == "png" and size == (3, 2)
    with Image.open(io.BytesIO(blob)) as back:
        assert back.mode == stored_mode


def test_encoded_bytes_keep_their_format(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="WEBP")
    assert encode_image(Result.ok(data=buffer.getvalue()))[1:] == ("webp", (2, 2))
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="BMP")
    assert encode_image(Result.ok(data=buffer.getvalue()))[1] == "bmp"


def test_ok_and_refused_are_final_errors_are_retried(store):
    store.record("m", request(0), Result.ok(data=jpeg()))
    store.record("m", request(1), Result.refused("no"))
    store.record("m", request(2), Result.error("later"))
    store.record("other", request(3), Result.ok(data=jpeg()))
    assert store.done("m") == {("doctor", 0), ("doctor", 1)}
    assert store.done("m", retry_errors=False) == {("doctor", 0), ("doctor", 1), ("doctor", 2)}
    assert store.done("other") == {("doctor", 3)} and store.done("nobody") == set()


def test_path_of_a_row_or_a_hash(store, tmp_path):
    row = store.record("m", request(0), Result.ok(data=jpeg()))
    assert store.path_of(row) == tmp_path / row["path"] == store.path_of(row["sha256"])
    refused = store.record("m", request(1), Result.refused("no"))
    with pytest.raises(KeyError) as error:
        store.path_of("ab" * 32)
    assert error.value.args[0] == f"{'ab' * 32}: no stored image in run {tmp_path}"
    with pytest.raises(KeyError):
        store.path_of(refused)


def test_a_missing_run_directory_is_refused_unless_created(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        ImageStore(tmp_path / "nope")
    assert str(error.value) == f"{tmp_path / 'nope'}: no such run directory"
    ImageStore(tmp_path / "new" / "run", create=True)
    assert (tmp_path / "new" / "run").is_dir()


def test_flush_writes_the_table_and_empties_the_journal_and_a_reader_sees_both(tmp_path):
    with ImageStore(tmp_path, create=True) as store:
        store.record("m", request(0), Result.ok(data=jpeg()))
        assert (tmp_path / JOURNAL).read_text().count("\n") == 1 and not (tmp_path / IMAGES_TABLE).exists()
        store.flush()
        assert (tmp_path / JOURNAL).read_text() == ""
        store.record("m", request(1), Result.refused("no"))  # in the journal only
        reader = ImageStore(tmp_path)
        pd.testing.assert_frame_equal(reader.images(), store.images())
    assert len(pd.read_parquet(tmp_path / IMAGES_TABLE)) == 2 and (tmp_path / JOURNAL).read_text() == ""


def test_flush_by_a_reader_compacts_a_leftover_journal(tmp_path):
    row = {"model": "m", "prompt_id": "doctor", "sample": 0, "seed": 1, "status": "refused", "error": "no",
           "revised_prompt": None, "path": None, "sha256": None, "width": None, "height": None}
    (tmp_path / JOURNAL).write_text(json.dumps(row) + "\n")  # a writer died before compacting
    ImageStore(tmp_path).flush()
    assert (tmp_path / JOURNAL).read_text() == ""
    assert pd.read_parquet(tmp_path / IMAGES_TABLE)["status"].tolist() == ["refused"]


def test_journal_rules_when_reading(tmp_path, caplog):
    row = {"model": "m", "prompt_id": "doctor", "sample": 0, "seed": 1, "status": "refused", "error": "no",
           "revised_prompt": None, "path": None, "sha256": None, "width": None, "height": None}
    lost = {**row, "sample": 1, "status": "ok", "error": None, "path": "images/gone.png", "sha256": "ab" * 32,
            "width": 2, "height": 2}
    later = {**row, "sample": 2}
    (tmp_path / JOURNAL).write_text(json.dumps(row) + "\n{broken json\n" + json.dumps(lost) + "\n"
                                    + json.dumps(later) + "\n" + '{"model": "m", "cut')
    with caplog.at_level(logging.WARNING):
        images = ImageStore(tmp_path).images()
    assert list(images["sample"]) == [0, 2]  # bad line skipped, ok row without its file ignored, cut line too
    assert (f"{tmp_path / JOURNAL}: line 2: not valid JSON; line ignored, its sample is generated again"
            in caplog.messages)
    with ImageStore(tmp_path) as writer:  # a writer trims the cut line, and only it, before appending
        writer.record("m", request(3), Result.refused("no"))
        lines = (tmp_path / JOURNAL).read_text().splitlines()
        assert len(lines) == 5 and lines[1] == "{broken json" and json.loads(lines[-1])["sample"] == 3


def test_a_write_failure_is_the_samples_error(store, tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    row = store.record("m", request(0), Result.ok(data=jpeg()))
    assert row["status"] == "error"
    assert (row["path"], row["sha256"], row["width"], row["height"]) == (None, None, None, None)
    assert row["error"].startswith("could not write the image file images/") and "No space left" in row["error"]
    assert not list((tmp_path / "images").glob(".*.tmp"))  # the temporary file is removed
    assert store.done("m") == set()  # retried next time


def test_durable_stores_fsync_images_and_tables(tmp_path, monkeypatch):
    import os

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    with ImageStore(tmp_path / "fast", create=True, durable=False) as fast:
        fast.record("m", request(0), Result.ok(data=jpeg()))
        assert synced == []  # the image file: no fsync
    synced.clear()  # (closing compacts the table, durably)
    with ImageStore(tmp_path / "safe", create=True) as safe:
        safe.record("m", request(0), Result.ok(data=jpeg()))
        recorded = len(synced)
        assert recorded >= 1  # the image file, before its rename
        safe.flush()
        assert len(synced) >= recorded + 2  # the table (durable) and the emptied journal


def test_close_is_idempotent_and_the_lock_is_released(tmp_path):
    store = ImageStore(tmp_path, create=True)
    store.record("m", request(0), Result.refused("no"))
    lock = tmp_path / ".biaskit.lock"
    assert lock.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError) as error:
        ImageStore(tmp_path).record("m", request(1), Result.refused("no"))
    assert str(error.value) == (f"{tmp_path}: another biaskit process is writing to this run (pid {os.getpid()}); "
                                f"wait for it to end or use another --out (lock file {lock})")
    store.close()
    store.close()
    with ImageStore(tmp_path) as again:  # the lock is free again
        again.record("m", request(1), Result.refused("no"))
    assert len(ImageStore(tmp_path).images()) == 2


def test_a_table_missing_a_column_is_named(tmp_path):
    from biaskit.tables import write_table

    with ImageStore(tmp_path, create=True) as store:
        store.record("m", request(0), Result.refused("no"))
    write_table(pd.read_parquet(tmp_path / IMAGES_TABLE).drop(columns="seed"), tmp_path / IMAGES_TABLE)
    with pytest.raises(ValueError, match=rf"{IMAGES_TABLE}.*seed"):
        ImageStore(tmp_path)


def test_run_json_is_sorted_indented_json(tmp_path):
    from pathlib import Path

    from biaskit.store import write_json_atomic

    data = {"b": 1, "a": {"path": Path("x/y")}, "é": "ü"}
    write_json_atomic(tmp_path / "run.json", data)
    assert (tmp_path / "run.json").read_text(encoding="utf-8") == json.dumps(
        data, indent=2, sort_keys=True, default=str) + "\n"


def test_a_lone_surrogate_from_a_generator_neither_ends_the_run_nor_loses_the_image(tmp_path):
    # e.g. an API's revised prompt with a stray "\ud800", an exception naming an undecodable file
    data = jpeg()
    with ImageStore(tmp_path, create=True) as store:
        ok = store.record("m", request(0), Result.ok(data=data, revised_prompt="a doctor \ud800"))
        failed = store.record("m", request(1), Result.error("cannot read caf\udce9.png"))
    assert (tmp_path / ok["path"]).read_bytes() == data
    table = ImageStore(tmp_path).images()
    assert table["revised_prompt"].tolist()[0] == "a doctor ?" and table["error"].tolist()[1] == "cannot read caf?.png"
    assert table["status"].tolist() == ["ok", "error"] and failed["error"] == "cannot read caf?.png"


def test_path_of_a_refused_row_of_the_images_table_is_a_key_error(store):
    store.record("m", request(0), Result.refused("no"))
    row = store.images().iloc[0]  # its path is missing (NaN with pandas >= 3, None before)
    with pytest.raises(KeyError, match="no stored image"):
        store.path_of(row)
