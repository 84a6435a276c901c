"""Seeds, the folder and callable adapters, model specs and the resampling runner."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from PIL import Image

from biaskit.generate import MAX_SEED, Request, Result, derive_seed, generate, make_generator
from biaskit.generate.adapters import CallableGenerator, FolderGenerator
from biaskit.generate.adapters.folder import natural_key
from biaskit.suite import load_suite, suite_from_dict
from biaskit.tables import IMAGES_COLUMNS

SUITE = suite_from_dict({"name": "t", "samples": 3, "prompts": [
    {"id": "doctor", "text": "a doctor"},
    {"id": "two-nurses", "text": "two nurses", "kind": "group", "count": 2},
]})


def seed_colour(prompt: str, seed: int) -> Image.Image:
    """A callable generator whose image encodes its seed: pixel (r, g, b) = seed's low bytes."""
    return Image.new("RGB", (16, 16), (seed & 255, (seed >> 8) & 255, (seed >> 16) & 255))


# -- seeds ---------------------------------------------------------------------------
def test_seed_is_stable_across_processes_with_hash_randomisation():
    code = "from biaskit.generate import derive_seed; print(derive_seed(5, 'gpt', 'doctor', 3))"
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(int(run.stdout))
    assert outputs == {derive_seed(5, "gpt", "doctor", 3)}


def test_seed_matches_an_independent_blake2b_computation():
    import hashlib as h
    import json

    digest = h.blake2b(json.dumps([5, "gpt", "doctor", 3]).encode(), digest_size=8).digest()
    assert derive_seed(5, "gpt", "doctor", 3) == int.from_bytes(digest, "big") % 2**31


def test_seeds_are_distinct_across_every_input_and_in_range():
    seeds = {derive_seed(b, m, p, s) for b in (0, 1) for m in ("a", "b") for p in ("doctor", "nurse")
             for s in range(50)}
    assert len(seeds) == 2 * 2 * 2 * 50
    assert all(0 <= s <= MAX_SEED for s in seeds)
    # Field boundaries are unambiguous: ("ab", "c") and ("a", "bc") differ.
    assert derive_seed(0, "ab", "c", 0) != derive_seed(0, "a", "bc", 0)


# -- folder adapter ----------------------------------------------------------------------
def make_folder(root, counts: dict[str, int], fmt="PNG", suffix=".png"):
    for pid, n in counts.items():
        (root / pid).mkdir(parents=True)
        for i in range(n):
            # Names 1..n sort naturally (2 before 10), and colours say which file it was.
            Image.new("RGB", (20, 10), (i * 20, 0, 0)).save(root / pid / f"img{i + 1}{suffix}", format=fmt)


def test_natural_sort_orders_numbers_as_numbers():
    assert sorted(["img10.png", "img2.png", "img1.png"], key=natural_key) == ["img1.png", "img2.png", "img10.png"]


def test_folder_run_keeps_original_bytes_in_natural_order(tmp_path):
    src = tmp_path / "src"
    make_folder(src, {"doctor": 12, "two-nurses": 3}, fmt="JPEG", suffix=".jpg")
    images = generate(SUITE, {"ext": f"folder:{src}"}, out=tmp_path / "run", samples=12, progress=False)
    doctor = images[images["prompt_id"] == "doctor"].set_index("sample")
    assert (doctor["status"] == "ok").all()
    for sample in (1, 9, 10, 11):  # img2, img10, img11, img12: natural order, not lexical
        source = (src / "doctor" / f"img{sample + 1}.jpg").read_bytes()
        assert doctor.loc[sample, "sha256"] == hashlib.sha256(source).hexdigest()
        assert doctor.loc[sample, "path"].endswith(".jpg")
        assert (tmp_path / "run" / doctor.loc[sample, "path"]).read_bytes() == source
    assert (doctor["width"] == 20).all() and (doctor["height"] == 10).all()


def test_folder_with_too_few_images_reports_each_missing_sample(tmp_path, caplog):
    src = tmp_path / "src"
    make_folder(src, {"doctor": 3, "two-nurses": 1})
    with caplog.at_level(logging.WARNING):
        images = generate(SUITE, {"ext": f"folder:{src}"}, out=tmp_path / "run", progress=False)
    nurses = images[images["prompt_id"] == "two-nurses"].set_index("sample")
    assert list(nurses["status"]) == ["ok", "error", "error"]
    assert nurses.loc[2, "error"] == f"no image for sample 2 in {src / 'two-nurses'} (it holds 1 image(s))"
    assert "1 image(s) for prompt 'two-nurses'" in caplog.text


def noisy_png(size=64) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("corrupt", [
    lambda data: data[:-12],                   # IEND chunk lost
    lambda data: noisy_png()[:5000],           # pixel data cut mid-stream
    lambda data: b"this is a text file named .png",
])
def test_folder_corrupt_file_is_an_error_naming_the_file_and_the_run_goes_on(tmp_path, corrupt):
    src = tmp_path / "src"
    make_folder(src, {"doctor": 3, "two-nurses": 3})
    bad = src / "doctor" / "img2.png"
    bad.write_bytes(corrupt(bad.read_bytes()))
    (src / "doctor" / "notes.txt").write_text("not an image, not listed")
    images = generate(SUITE, {"ext": f"folder:{src}"}, out=tmp_path / "run", progress=False)
    doctor = images[images["prompt_id"] == "doctor"].set_index("sample")
    assert list(doctor["status"]) == ["ok", "error", "ok"]
    assert doctor.loc[1, "error"].startswith(f"{bad}: not a readable image")
    assert (images["status"] == "ok").sum() == 5


def test_folder_without_a_prompt_folder_and_missing_root(tmp_path):
    (tmp_path / "src" / "doctor").mkdir(parents=True)
    result = FolderGenerator(tmp_path / "src").generate_batch([Request("nope", "x", 0, 1)])[0]
    assert result.status == "error" and "no folder" in result.message and "'nope'" in result.message
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        make_generator(f"folder:{tmp_path / 'missing'}")


# -- callable adapter, specs, runner ------------------------------------------------------------
def test_callable_gets_prompt_text_and_recorded_seed(tmp_path):
    seen = []

    def draw(prompt, seed):
        seen.append((prompt, seed))
        return seed_colour(prompt, seed)

    images = generate(SUITE, {"m": draw}, out=tmp_path, seed=11, progress=False)
    assert list(images.columns) == list(IMAGES_COLUMNS)
    assert len(images) == 6 and sorted(seen) == sorted(
        (SUITE[r.prompt_id].text, r.seed) for r in images.itertuples())
    for row in images.itertuples():
        assert row.seed == derive_seed(11, "m", row.prompt_id, row.sample)
        pixel = Image.open(tmp_path / row.path).getpixel((0, 0))
        assert pixel == (row.seed & 255, (row.seed >> 8) & 255, (row.seed >> 16) & 255)
    table = pd.read_parquet(tmp_path / "images.parquet")
    pd.testing.assert_frame_equal(table, images)


def test_generator_exceptions_and_refusals_are_recorded_and_the_run_goes_on(tmp_path):
    def moody(prompt, seed):
        if "nurses" in prompt:
            raise ConnectionError("backend unreachable")
        if seed % 2:
            return Result.refused("declined by policy")
        return seed_colour(prompt, seed)

    images = generate(SUITE, {"m": moody}, out=tmp_path, progress=False)
    nurses = images[images["prompt_id"] == "two-nurses"]
    assert (nurses["status"] == "error").all()
    assert (nurses["error"] == "ConnectionError: backend unreachable").all()
    doctor = images[images["prompt_id"] == "doctor"]
    expected = ["refused" if s % 2 else "ok" for s in doctor["seed"]]
    assert list(doctor["status"]) == expected
    assert (doctor.loc[doctor["status"] == "refused", "error"] == "declined by policy").all()


def test_bad_return_values_become_errors(tmp_path):
    class Short:
        batch_size = 2

        def generate_batch(self, requests):
            return [Result.error("x")]  # one result for two requests

    images = generate(SUITE, {"s": Short(), "n": lambda p, s: "not an image"}, out=tmp_path,
                      samples=2, progress=False)
    assert (images["status"] == "error").all()
    assert set(images.loc[images["model"] == "s", "error"]) == {
        "generator returned 1 results for a batch of 2 requests"}
    assert set(images.loc[images["model"] == "n", "error"]) == {
        "generator returned str, expected a PIL.Image, image bytes or a Result"}


def test_python_spec_imports_module_function(tmp_path, monkeypatch):
    (tmp_path / "mygen.py").write_text(textwrap.dedent("""
        from PIL import Image
        def draw(prompt, seed):
            return Image.new("RGB", (8, 8), (len(prompt), 0, 0))
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    gen = make_generator("python:mygen:draw")
    assert isinstance(gen, CallableGenerator)
    assert gen.generate_batch([Request("p", "abc", 0, 1)])[0].image.getpixel((0, 0)) == (3, 0, 0)
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        make_generator("python:mygen:nope")
    with pytest.raises(ValueError, match="No module named 'not_a_module_xyz'"):
        make_generator("python:not_a_module_xyz:draw")


@pytest.mark.parametrize("spec, message", [
    ("gpt-image-1", "missing KIND:TARGET"),
    ("replicate:sdxl", "unknown kind 'replicate'"),
    ("python:justmodule", "use python:module:function"),
])
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        make_generator(spec)


def test_bad_model_name_and_seed_change_are_refused(tmp_path):
    with pytest.raises(ValueError, match="model name 'a b'"):
        generate(SUITE, {"a b": seed_colour}, out=tmp_path, progress=False)
    generate(SUITE, {"m": seed_colour}, out=tmp_path, seed=1, samples=1, progress=False)
    with pytest.raises(ValueError, match="generated with seed 1"):
        generate(SUITE, {"m": seed_colour}, out=tmp_path, seed=2, samples=1, progress=False)



@pytest.mark.parametrize("samples", [0, -2, 2.5, True])
def test_samples_below_one_or_not_whole_are_refused_before_anything_is_generated(tmp_path, samples):
    with pytest.raises(ValueError, match=f"samples must be a whole number from 1 to 10000.*got {samples!r}"):
        generate(SUITE, {"m": seed_colour}, out=tmp_path / "run", samples=samples, progress=False)
    assert not (tmp_path / "run").exists()


def test_progress_bar_shows_status_counts(tmp_path, capsys):
    generate(SUITE, {"m": lambda p, s: Result.refused("no") if "nurses" in p else seed_colour(p, s)},
             out=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "ok=3, refused=3, error=0" in err


def test_shipped_smoke_suite_runs_through_a_callable(tmp_path):
    suite = load_suite("prompts/smoke.yaml")
    images = generate(suite, {"m": seed_colour}, out=tmp_path, progress=False)
    assert len(images) == len(suite) * suite.samples == 12
    assert set(images["prompt_id"]) == {p.id for p in suite}


# -- names and ids are matched whole (issue 13) ----------------------------------------------
@pytest.mark.parametrize("name", ["abc\n", "abc\r\n", "a/b", "evil/../x", "$x$", "", " a"])
def test_model_names_are_matched_whole(tmp_path, name):
    with pytest.raises(ValueError, match="model name"):
        generate(SUITE, {name: seed_colour}, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_images_table_records_prompt_text_and_spec_per_sample(tmp_path):
    images = generate(SUITE, {"m": seed_colour}, out=tmp_path, samples=2, progress=False)
    assert list(images.columns) == list(IMAGES_COLUMNS)
    assert dict(zip(images["prompt_id"], images["prompt_text"])) == {"doctor": "a doctor",
                                                                     "two-nurses": "two nurses"}
    assert set(images["model_spec"]) == {"python:test_generate:seed_colour"}


def test_a_changed_generator_object_is_refused_and_allowed_explicitly(tmp_path):
    generate(SUITE, {"m": seed_colour}, out=tmp_path, samples=1, progress=False)
    calls = []
    other = lambda p, s: calls.append(s) or seed_colour(p, s)  # noqa: E731
    with pytest.raises(ValueError, match=r"model 'm' was generated with 'python:test_generate:seed_colour'"):
        generate(SUITE, {"m": other}, out=tmp_path, samples=2, progress=False)
    assert calls == []
    images = generate(SUITE, {"m": other}, out=tmp_path, samples=2, progress=False, allow_changed=True)
    assert len(calls) == 2 and len(images) == 4  # only the new samples were generated


def test_stored_rows_without_prompt_text_from_older_runs_still_resume(tmp_path):
    generate(SUITE, {"m": seed_colour}, out=tmp_path, samples=1, progress=False)
    old = pd.read_parquet(tmp_path / "images.parquet").drop(columns=["prompt_text", "model_spec"])
    old.to_parquet(tmp_path / "images.parquet", index=False)
    images = generate(SUITE, {"m": seed_colour}, out=tmp_path, samples=2, progress=False)
    assert len(images) == 4 and images["prompt_text"].isna().sum() == 2


def test_a_bad_spec_of_a_later_model_stops_the_run_before_any_model_generates(tmp_path):
    calls = []
    with pytest.raises(FileNotFoundError, match="missing: image folder not found"):
        generate(SUITE, {"a": lambda p, s: calls.append(s) or seed_colour(p, s), "b": "folder:missing"},
                 out=tmp_path / "run", progress=False)
    assert calls == [] and not (tmp_path / "run").exists()


def test_a_finished_run_resumed_shows_no_empty_progress_bar(tmp_path, capsys):
    generate(SUITE, {"m": seed_colour}, out=tmp_path, samples=1, progress=False)
    capsys.readouterr()
    generate(SUITE, {"m": seed_colour}, out=tmp_path, samples=1, progress=True)
    assert "generate" not in capsys.readouterr().err
