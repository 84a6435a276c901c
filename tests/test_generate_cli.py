"""``biaskit generate`` end to end, in process and as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from PIL import Image

from biaskit.cli import main
from biaskit.suite import load_suite

SMOKE = "prompts/smoke.yaml"


def folder(root, *, per_prompt=3):
    for prompt in load_suite(SMOKE):
        (root / prompt.id).mkdir(parents=True)
        for i in range(per_prompt):
            Image.new("RGB", (12, 12), (i, 40, 90)).save(root / prompt.id / f"{i}.png")
    return root


def test_generate_two_models_then_resume(tmp_path, capsys):
    src = folder(tmp_path / "src")
    run = tmp_path / "run"
    argv = ["generate", SMOKE, "--model", f"a=folder:{src}", "-m", f"b=folder:{src}",
            "--seed", "3", "--out", str(run), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "images table:" in out
    images = pd.read_parquet(run / "images.parquet")
    assert len(images) == 2 * 4 * 3 and (images["status"] == "ok").all()
    for path in src.rglob("*.png"):
        path.unlink()  # a resume must not need the sources any more
    assert main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(run / "images.parquet"), images)


def test_missing_images_give_exit_code_1_and_a_hint(tmp_path, capsys):
    src = folder(tmp_path / "src", per_prompt=2)
    code = main(["generate", SMOKE, "--model", f"a=folder:{src}", "--out", str(tmp_path / "r"),
                 "--no-progress"])
    assert code == 1
    out = capsys.readouterr().out
    assert "4 sample(s) failed" in out and "re-run the same command" in out


def test_bad_arguments_are_one_clear_line(tmp_path, capsys):
    assert main(["generate", SMOKE, "--model", "nospec", "--out", str(tmp_path)]) == 2
    assert "--model 'nospec': expected NAME=SPEC" in capsys.readouterr().err
    assert main(["generate", SMOKE, "--model", "a=folder:x", "--model", "a=folder:y",
                 "--out", str(tmp_path)]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["generate", SMOKE, "--model", "a=replicate:x", "--out", str(tmp_path)]) == 2
    assert "unknown kind 'replicate'" in capsys.readouterr().err


def test_console_entry_point_runs_as_a_subprocess(tmp_path):
    src = folder(tmp_path / "src")
    done = subprocess.run(
        [sys.executable, "-m", "biaskit", "generate", SMOKE, "--model", f"x=folder:{src}",
         "--samples", "2", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ok=8, refused=0, error=0" in done.stderr  # the progress bar's last state
    assert len(pd.read_parquet(tmp_path / "run" / "images.parquet")) == 8


# -- a run is never silently reused for another prompt text or model spec (issue 13) -----------
def _suite_file(tmp_path, text):
    path = tmp_path / f"suite-{len(list(tmp_path.glob('suite-*')))}.yaml"
    path.write_text(f"name: s\nsamples: 2\nprompts:\n  - {{id: doctor, text: {text}}}\n")
    return path


def test_changed_prompt_text_or_model_spec_is_refused_with_the_remedy(tmp_path, capsys):
    src_a, src_b = tmp_path / "a" / "doctor", tmp_path / "b" / "doctor"
    for folder, colour in ((src_a, 10), (src_b, 200)):
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 12), (colour, i, 0)).save(folder / f"{i}.png")
    run = tmp_path / "run"

    def generate(suite, src, *extra):
        return main(["generate", str(suite), "--model", f"m=folder:{src.parent}", "--out", str(run),
                     "--no-progress", *extra])

    assert generate(_suite_file(tmp_path, "a doctor"), src_a) == 0
    before = (run / "images.parquet").read_bytes(), (run / "run.json").read_bytes()
    capsys.readouterr()
    assert generate(_suite_file(tmp_path, "a surgeon"), src_a) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "prompt 'doctor'" in err and "'a doctor'" in err and "'a surgeon'" in err
    assert "new --out" in err and "--allow-changed" in err
    assert generate(_suite_file(tmp_path, "a doctor"), src_b) == 2
    err = capsys.readouterr().err.strip()
    assert "model 'm' was generated with" in err and f"folder:{src_b.parent}" in err
    assert "--allow-changed" in err
    assert ((run / "images.parquet").read_bytes(), (run / "run.json").read_bytes()) == before
    # Explicitly allowed: the stored samples stay, a new one records the new text.
    assert generate(_suite_file(tmp_path, "a surgeon"), src_a, "--samples", "3", "--allow-changed") == 0
    images = pd.read_parquet(run / "images.parquet")
    assert list(images["prompt_text"]) == ["a doctor", "a doctor", "a surgeon"]
    assert set(images["model_spec"]) == {f"folder:{src_a.parent}"}


def test_absurd_samples_are_refused_up_front_and_nothing_is_written(tmp_path, capsys):
    run = tmp_path / "run"
    suite = _suite_file(tmp_path, "a doctor")
    assert main(["generate", str(suite), "--model", "m=folder:.", "--samples", "200000000",
                 "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "samples must be a whole number from 1 to 10000" in err and "got 200000000" in err
    assert not run.exists()
    run.mkdir()
    assert main(["generate", str(suite), "--model", "m=folder:.", "--samples", "0",
                 "--out", str(run), "--no-progress"]) == 2
    assert not (run / "run.json").exists() and not (run / "images.parquet").exists()


def test_a_bad_spec_leaves_no_run_directory_behind(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["generate", str(_suite_file(tmp_path, "a doctor")), "--model", "m=folder:missing",
                 "--out", str(run), "--no-progress"]) == 2
    assert "missing: image folder not found" in capsys.readouterr().err
    assert not run.exists()


# ---- issue 13, item 19 -------------------------------------------------------------------------

def test_a_bad_spec_fails_before_anything_is_generated_or_recorded(tmp_path, capsys):
    import pipeline_support

    pipeline_support.CALLS.clear()
    run = tmp_path / "run"
    code = main(["generate", SMOKE, "--model", "a=python:pipeline_support:mixed",
                 "--model", f"b=folder:{tmp_path / 'missing'}", "--out", str(run), "--no-progress"])
    assert code == 2 and str(tmp_path / "missing") in capsys.readouterr().err
    assert not (run / "run.json").exists() and sum(pipeline_support.CALLS.values()) == 0


def test_python_generate_checks_a_folder_spec_before_the_first_model_runs(tmp_path):
    # The README's Python quickstart: a callable first, then a folder: baseline.
    import pytest

    from biaskit.generate import generate

    calls = []

    def mine(prompt, seed):
        calls.append(seed)
        return Image.new("RGB", (8, 8))

    with pytest.raises(FileNotFoundError, match="pregenerated"):
        generate(SMOKE, {"mine": mine, "baseline": f"folder:{tmp_path / 'pregenerated'}"},
                 out=tmp_path / "run", samples=1, progress=False)
    assert calls == [] and not (tmp_path / "run" / "run.json").exists()


def test_a_finished_run_resumed_shows_no_empty_progress_bar(tmp_path, capsys):
    src = folder(tmp_path / "src")
    argv = ["generate", SMOKE, "--model", f"a=folder:{src}", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert "generate: 100%" in capsys.readouterr().err  # the bar, on the first run
    assert main(argv) == 0
    assert "generate:" not in capsys.readouterr().err  # nothing to do: no "generate: 0img"


def test_run_json_records_the_suite_so_that_any_directory_finds_it(tmp_path, monkeypatch):
    # The report finds the suite through run.json (for prompt texts and the expectations it
    # could not check); a path relative to where `generate` ran was lost from anywhere else.
    import json
    from pathlib import Path

    src = folder(tmp_path / "src")
    assert main(["generate", SMOKE, "--model", f"a=folder:{src}", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["suite"]
    assert recorded == str(Path(SMOKE).resolve())
    monkeypatch.chdir(tmp_path)
    assert load_suite(recorded).name == "smoke"
