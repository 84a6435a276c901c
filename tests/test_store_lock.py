"""One writer per run: two real ``biaskit generate`` processes on one run directory.

The generator of the first process stops inside its first call until the test
lets it go (two named pipes, no sleeps): the second process is started while the
first holds the run, and must be refused before it reads or generates anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from biaskit.generate import generate
from biaskit.store import JOURNAL, ImageStore
from biaskit.suite import suite_from_dict
from biaskit.tables import IMAGES_TABLE, RUN_CONFIG

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and named pipes")

SUITE = {"name": "lock", "samples": 3, "prompts": [{"id": "doctor", "text": "a doctor"},
                                                   {"id": "nurse", "text": "a nurse"}]}
SAMPLES = 3
# The generator module the processes load (python:lockgen:draw).  Every call is logged
# to calls-<NAME>; with LOCKTEST_BLOCK the first call waits on the test's pipes.
GENERATOR = textwrap.dedent("""
    import os
    from PIL import Image

    _blocked = []

    def draw(prompt, seed):
        here = os.environ["LOCKTEST_DIR"]
        with open(os.path.join(here, "calls-" + os.environ["LOCKTEST_NAME"]), "a") as log:
            log.write(f"{seed}\\n")
        if os.environ.get("LOCKTEST_BLOCK") and not _blocked:
            _blocked.append(True)
            with open(os.path.join(here, "started"), "w") as pipe:  # until the test listens
                pipe.write("in the generator\\n")
            with open(os.path.join(here, "go")) as pipe:            # until the test lets go
                pipe.read()
        return Image.new("RGB", (16, 16), (seed & 255, (seed >> 8) & 255, (seed >> 16) & 255))
""")
TIMEOUT = 120


@pytest.fixture
def place(tmp_path):
    (tmp_path / "lockgen.py").write_text(GENERATOR)
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    os.mkfifo(tmp_path / "started")
    os.mkfifo(tmp_path / "go")
    return tmp_path


def start(place: Path, name: str, *, block: bool = False) -> subprocess.Popen:
    """``biaskit generate`` as a real process (cwd: the folder holding lockgen.py)."""
    env = {**os.environ, "LOCKTEST_DIR": str(place), "LOCKTEST_NAME": name,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    env.pop("LOCKTEST_BLOCK", None)
    if block:
        env["LOCKTEST_BLOCK"] = "1"
    command = [sys.executable, "-m", "biaskit", "generate", "suite.yaml", "--model", "m=python:lockgen:draw",
               "--samples", str(SAMPLES), "--out", "run", "--concurrency", "1", "--no-progress"]
    return subprocess.Popen(command, cwd=place, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_on_pipe(path: Path, *, writer: subprocess.Popen) -> str:
    """Read the pipe ``writer`` writes to; fail (not hang) if it ends without writing."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(path.read_text()), daemon=True)
    reader.start()
    while reader.is_alive():
        reader.join(timeout=1.0)  # wakes up to notice a writer that died instead
        if writer.poll() is not None and reader.is_alive():
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # release the reader
            reader.join()
            pytest.fail(f"the first process ended before its generator ran: {writer.communicate()}")
    return got[0]


def calls(place: Path, name: str) -> int:
    log = place / f"calls-{name}"
    return len(log.read_text().splitlines()) if log.exists() else 0


def assert_nothing_lost(run: Path) -> pd.DataFrame:
    """Images table rows == stored files == every sample, and an empty journal."""
    images = pd.read_parquet(run / IMAGES_TABLE)
    files = sorted(p.name for p in (run / "images").iterdir())
    assert len(images) == len(SUITE["prompts"]) * SAMPLES
    assert (images["status"] == "ok").all()
    assert sorted(Path(p).name for p in images["path"]) == files
    assert (run / JOURNAL).read_text() == ""
    return images


def test_second_generate_is_refused_before_reading_or_generating(place):
    first = start(place, "a", block=True)
    try:
        assert wait_on_pipe(place / "started", writer=first) == "in the generator\n"
        config = (place / "run" / RUN_CONFIG).read_text()
        second = start(place, "b")
        out, err = second.communicate(timeout=TIMEOUT)
        assert (place / "run" / RUN_CONFIG).read_text() == config  # the refused one wrote nothing
    finally:
        with open(place / "go", "w"):
            pass  # lets the first process go on
        first_out, first_err = first.communicate(timeout=TIMEOUT)
    assert second.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "another biaskit process is writing to this run" in lines[0]
    assert f"(pid {first.pid})" in lines[0] and str(Path("run")) in lines[0]
    assert calls(place, "b") == 0  # the refused process never called its generator
    assert first.returncode == 0, first_err
    assert calls(place, "a") == len(SUITE["prompts"]) * SAMPLES
    assert_nothing_lost(place / "run")


def test_two_identical_commands_started_together_lose_nothing(place):
    one, two = start(place, "a"), start(place, "b")
    results = [process.communicate(timeout=TIMEOUT) for process in (one, two)]
    codes = sorted((one.returncode, two.returncode))
    # Either one was refused (exit 2, one line), or the second came after the first had
    # finished and found nothing left to do.  Never a sample generated twice.
    assert codes in ([0, 0], [0, 2]), results
    for process, (_, err) in zip((one, two), results):
        if process.returncode == 2:
            assert "another biaskit process is writing to this run" in err and "Traceback" not in err
    assert calls(place, "a") + calls(place, "b") == len(SUITE["prompts"]) * SAMPLES
    assert_nothing_lost(place / "run")


def test_generate_refused_by_a_held_lock_calls_no_generator_and_writes_nothing(tmp_path):
    suite = suite_from_dict(SUITE)
    holder = ImageStore(tmp_path, lock=True)
    drawn = []
    try:
        with pytest.raises(RuntimeError, match="another biaskit process is writing to this run"):
            generate(suite, {"m": lambda p, s: drawn.append(s)}, out=tmp_path, progress=False)
    finally:
        holder.close()
    assert drawn == [] and not (tmp_path / RUN_CONFIG).exists()


def test_a_store_opened_before_another_writer_reads_the_table_again_at_its_first_write(tmp_path):
    suite = suite_from_dict(SUITE)
    early = ImageStore(tmp_path, create=True)  # no lock: reads an empty run now
    from PIL import Image

    generate(suite, {"m": lambda p, s: Image.new("RGB", (8, 8), (s % 256, 0, 0))}, out=tmp_path,
             samples=2, progress=False)
    early.record("x", _request(), _refusal())  # takes the lock, reads the 4 rows written meanwhile
    early.close()
    images = ImageStore(tmp_path).images()
    assert len(images) == 5 and set(images["model"]) == {"m", "x"}


def _request():
    from biaskit.generate import Request

    return Request("doctor", "a doctor", 0, 1)


def _refusal():
    from biaskit.generate import Result

    return Result.refused("no")
