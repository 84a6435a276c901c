"""Nothing written or read outside a run: hostile names, tampered tables, CSV cells, secrets."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biaskit import tables
from biaskit.generate import Request, generate
from biaskit.generate.adapters.folder import FolderGenerator
from biaskit.generate.base import redact
from biaskit.metrics import measure_run
from biaskit.paths import MAX_IMAGE_BYTES, read_verified, resolve_inside, slug
from biaskit.perception.detect import Faces
from biaskit.perception.pipeline import ERRORS_TABLE, tag_run
from biaskit.report import write_report
from biaskit.store import ImageStore
from biaskit.suite import suite_from_dict
from report_support import make_run

HOSTILE = ["evil/../../../../outside/PWNED", "stabilityai/sdxl-turbo", "$x$", "..", ".", "",
           "a b", "a-b", "a_b", "a/b", "a\\b", "a\nb", "x-0123456789", "=cmd|' /C calc'!A0",
           "é", "-rf", "...", "CON", "a" * 300]


# -- slugs ------------------------------------------------------------------------------------
def test_slugs_are_safe_file_names_unique_per_string_and_stay_in_their_folder(tmp_path):
    slugs = [slug(name) for name in HOSTILE]
    assert len(set(slugs)) == len(HOSTILE)  # one per string
    for name, made in zip(HOSTILE, slugs):
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", made), (name, made)
        assert (tmp_path / f"{made}.png").resolve().parent == tmp_path.resolve()
        assert slug(name) == made  # the same string, the same name
    assert slug("sdxl-turbo") == "sdxl-turbo" and slug("gpt_image_1") == "gpt_image_1"  # plain kept
    assert slug("x-0123456789") != "x-0123456789"  # looks like a hashed slug: hashed too


def _rename_models(run: Path, renames: dict[str, str]) -> None:
    """Give the models of a measured run other names, in every table and in run.json."""
    for path in [*run.glob("*.parquet"), *(run / "metrics").glob("*.parquet")]:
        frame = pd.read_parquet(path)
        for column in ("model", "baseline"):
            if column in frame.columns:
                frame[column] = frame[column].replace(renames)
        tables.write_table(frame, path)
    config = (run / "run.json").read_text()
    for old, new in renames.items():
        config = config.replace(f'"{old}"', f'"{new}"'.replace("\\", "\\\\"))
    (run / "run.json").write_text(config)


def test_report_with_hostile_model_names_writes_only_inside_its_figures_folder(tmp_path):
    run = tmp_path / "deep" / "er" / "run"
    make_run(run)
    _rename_models(run, {"base": "stabilityai/sdxl-turbo", "cand": "evil/../../../../outside/PWNED"})
    before = {p for p in tmp_path.rglob("*")}
    paths = write_report(run, thumbnails=1)
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.resolve().is_relative_to(run.resolve()) for p in created)
    assert not list(tmp_path.rglob("PWNED*")) and not (tmp_path / "outside").exists()
    figures = sorted(p.name for p in paths["figures"].iterdir())
    # the entropy figure of the candidate against the baseline, under slug names
    assert f"entropy_gender_{slug('evil/../../../../outside/PWNED')}.png" in figures
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+\.png", name) for name in figures)
    markdown = paths["markdown"].read_text()
    assert all(f"figures/{name}" in markdown for name in figures)


# -- image paths resolve inside the run's store and bytes match their sha256 ---------------------
def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_resolve_inside_refuses_absolute_parent_and_symlinked_paths(tmp_path):
    images = tmp_path / "run" / "images"
    images.mkdir(parents=True)
    (images / "a.png").write_bytes(_png((1, 2, 3)))
    (tmp_path / "secret.png").write_bytes(_png((9, 9, 9)))
    (images / "link.png").symlink_to(tmp_path / "secret.png")
    assert resolve_inside(images, "images/a.png") == (images / "a.png").resolve()
    for bad in ("../secret.png", "images/../../secret.png", str(tmp_path / "secret.png"),
                "images/link.png", "run.json", ""):
        with pytest.raises(ValueError, match="refused"):
            resolve_inside(images, bad)


def test_read_verified_checks_the_hash_and_refuses_a_big_file_by_its_size(tmp_path):
    path = tmp_path / "a.png"
    data = _png((1, 2, 3))
    path.write_bytes(data)
    assert read_verified(path, sha256=hashlib.sha256(data).hexdigest()) == data
    with pytest.raises(ValueError, match="do not match its recorded sha256"):
        read_verified(path, sha256="0" * 64)
    with pytest.raises(ValueError, match="more than the 10-byte limit"):
        read_verified(path, sha256=None, max_bytes=10)


def _tamper(run: Path, outside: Path) -> tuple[pd.DataFrame, dict]:
    """Point one ok row outside the run, and swap another row's file for other bytes."""
    images = pd.read_parquet(run / tables.IMAGES_TABLE)
    ok = images.index[images["status"] == "ok"]
    outside.write_bytes(_png((200, 10, 10)))
    images.loc[ok[0], "path"] = "images/../../" + outside.name
    swapped = run / images.loc[ok[1], "path"]
    swapped.write_bytes(_png((10, 200, 10)))
    tables.write_table(images, run / tables.IMAGES_TABLE)
    return images, {"outside": images.loc[ok[0]], "swapped": images.loc[ok[1]]}


class _NoFaces:
    """A detector that finds nobody (the test is about which files are read)."""

    name = "none"

    def __init__(self):
        self.seen = []

    def detect(self, image):
        self.seen.append(image.mean(axis=(0, 1)).round().tolist())
        return Faces(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32))


def test_tagging_refuses_a_path_outside_the_store_and_a_file_not_matching_its_hash(tmp_path):
    run = tmp_path / "run"
    make_run(run)
    images, rows = _tamper(run, tmp_path / "outside.png")
    detector = _NoFaces()
    tag_run(run, attributes=["skin_tone"], tagger="skin", detector=detector, progress=False, cache=False)
    errors = pd.read_parquet(run / ERRORS_TABLE).set_index(["model", "prompt_id", "sample"])
    outside = errors.loc[tuple(rows["outside"][["model", "prompt_id", "sample"]])]["error"]
    swapped = errors.loc[tuple(rows["swapped"][["model", "prompt_id", "sample"]])]["error"]
    assert "refused, the path leads outside" in outside
    assert "do not match its recorded sha256" in swapped
    assert [200.0, 10.0, 10.0] not in detector.seen and [10.0, 200.0, 10.0] not in detector.seen
    assert len(detector.seen) == len(set(images.loc[images["status"] == "ok", "sha256"])) - 2


def test_report_gallery_refuses_a_path_outside_the_store_and_a_file_not_matching_its_hash(tmp_path):
    run = tmp_path / "run"
    make_run(run)
    _tamper(run, tmp_path / "outside.png")
    html = write_report(run, thumbnails=2)["html"].read_text()
    assert html.count("image unreadable") == 2
    thumbnails = re.findall(r'src="(data:image/jpeg;base64,[^"]+)"', html)
    colours = [np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))).mean(axis=(0, 1))
               for uri in thumbnails]
    assert not any(abs(c - target).max() < 20 for c in colours for target in ((200, 10, 10), (10, 200, 10)))


def test_baseline_run_with_a_tampered_table_gives_error_rows_not_outside_bytes(tmp_path):
    suite = suite_from_dict({"name": "t", "samples": 2, "prompts": [{"id": "doctor", "text": "a doctor"}]})
    old = tmp_path / "old"
    generate(suite, {"b": lambda p, s: Image.new("RGB", (8, 8), (s % 256, 1, 2))}, out=old, progress=False)
    images = pd.read_parquet(old / tables.IMAGES_TABLE)
    (tmp_path / "outside.png").write_bytes(_png((200, 10, 10)))
    images.loc[0, "path"] = "../outside.png"
    (old / images.loc[1, "path"]).write_bytes(_png((10, 200, 10)))
    tables.write_table(images, old / tables.IMAGES_TABLE)
    new = generate(suite, {"b": f"run:{old}"}, out=tmp_path / "new", progress=False)
    assert list(new["status"]) == ["error", "error"]
    assert "refused, the path leads outside" in new["error"][0]
    assert "do not match its recorded sha256" in new["error"][1]
    assert not (tmp_path / "new" / "images").exists() or not any((tmp_path / "new" / "images").iterdir())


# -- folder inputs: a huge file is refused by its size, unread ----------------------------------
def test_a_huge_file_in_a_folder_input_is_refused_by_its_size_before_reading(tmp_path, monkeypatch):
    (tmp_path / "doctor").mkdir()
    huge = tmp_path / "doctor" / "1.png"
    with open(huge, "wb") as handle:  # sparse: MAX_IMAGE_BYTES + 1 bytes on no disk
        handle.truncate(MAX_IMAGE_BYTES + 1)
    read = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or real_read(self))
    result = FolderGenerator(tmp_path).generate_one(Request("doctor", "a doctor", 0, 1))
    assert result.status == "error" and f"more than the {MAX_IMAGE_BYTES}-byte limit" in result.message
    assert str(huge) in result.message and huge not in read


# -- CSV cells a spreadsheet would run ------------------------------------------------------------
FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "-"]


def test_write_csv_neutralises_formula_cells_and_keeps_numbers(tmp_path):
    frame = pd.DataFrame({"model": FORMULAS, "value": [-1.5, 2, 3, 4, 5, 6],
                          "=col": ["ok", "a=b", "", None, "plain", " =x"]})
    path = tables.write_csv(frame, tmp_path / "t.csv")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["model", "value", "'=col"]
    assert [r[0] for r in rows[1:]] == ["'" + f for f in FORMULAS]
    assert [r[1] for r in rows[1:]] == ["-1.5", "2.0", "3.0", "4.0", "5.0", "6.0"]  # numbers as numbers
    assert [r[2] for r in rows[1:]] == ["ok", "a=b", "", "", "plain", " =x"]


def test_every_csv_of_a_measured_run_is_safe_with_a_formula_model_name(tmp_path):
    run = tmp_path / "run"
    made = make_run(run)
    _rename_models(run, {"cand": "=HYPERLINK(\"http://evil\")"})
    measure_run(run, suite=made["suite_path"], baseline="base", n_boot=20)
    written = list(run.rglob("*.csv"))
    assert {p.name for p in written} >= {"summary.csv", "distribution.csv", "rates.csv", "comparison.csv"}
    for path in written:
        with open(path, newline="") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert "'=HYPERLINK(\"http://evil\")" in cells or path.name in ("overall.csv",), path
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")], path


def test_the_package_writes_csv_only_through_write_csv():
    root = Path(__file__).parents[1] / "biaskit"
    writers = [p for p in root.rglob("*.py") if re.search(r"\.to_csv\(|csv\.writer\(", p.read_text())]
    assert writers == [root / "tables.py"]


# -- secrets in any form ------------------------------------------------------------------------
def test_secrets_are_masked_in_any_case_in_base64_and_as_key_shaped_tokens(monkeypatch):
    key = "Zq9-secret-Value-42xy"
    monkeypatch.setenv("ACME_API_KEY", key)
    forms = {
        "exact": f"bad key {key}",
        "lower": f"bad key {key.lower()}",
        "upper": f"BAD KEY {key.upper()}",
        "base64": "echo " + base64.b64encode(key.encode()).decode(),
        "basic auth": "Authorization: Basic " + base64.b64encode(f"user:{key}".encode()).decode(),
        "urlsafe": base64.urlsafe_b64encode(f"ab{key}".encode()).decode(),
    }
    for what, text in forms.items():
        masked = redact(text)
        assert "<ACME_API_KEY>" in masked, what
        assert key.lower() not in masked.lower(), what
        assert not any(key.encode() in decoded for decoded in _base64_decodings(masked)), what
    assert redact("Bearer abcdefghijklmnopqrstuvwxyz012") == "<secret>"
    assert redact("used sk-live-abcdefghijklmnop1234 here") == "used <secret> here"
    assert redact("a doctor, smiling") == "a doctor, smiling"  # ordinary text untouched


def _base64_decodings(text: str):
    """Every decoding of every 4-aligned window of the base64-looking runs of ``text``."""
    for run in re.findall(r"[A-Za-z0-9+/_=-]{8,}", text):
        run = run.replace("-", "+").replace("_", "/").rstrip("=")
        for start in range(4):
            body = run[start:]
            body = body[: len(body) - len(body) % 4]
            if body:
                yield base64.b64decode(body)


def test_a_lower_cased_echo_of_the_key_never_reaches_the_images_table(tmp_path, monkeypatch):
    key = "sEcReT-tOkEn-0123456789"
    monkeypatch.setenv("MY_SERVICE_TOKEN", key)
    from biaskit.generate import Result

    suite = suite_from_dict({"name": "t", "samples": 1, "prompts": [{"id": "doctor", "text": "a doctor"}]})
    generate(suite, {"m": lambda p, s: Result.error(f"401: bad token {key.lower()}")}, out=tmp_path,
             progress=False)
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert key.lower().encode() not in stored.lower()
    assert "<MY_SERVICE_TOKEN>" in ImageStore(tmp_path).images()["error"][0]
