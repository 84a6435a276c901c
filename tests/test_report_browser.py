"""The report as a person sees it: rendered by headless Chromium, offline.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it).  Without it
these tests skip, saying how to install it.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from biaskit.report import write_report
from report_support import make_run

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Runs after every image has loaded; writes what the browser decoded into the DOM.
PROBE = """<pre id="biaskit-probe"></pre><script>
window.addEventListener("load", function () {
  document.getElementById("biaskit-probe").textContent = JSON.stringify({
    images: Array.from(document.images).map(function (i) { return [i.naturalWidth, i.naturalHeight]; }),
    tables: Array.from(document.querySelectorAll("table")).map(function (t) {
      return [t.className, t.rows.length]; })
  });
});
</script>"""


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not found on PATH: the report's browser checks need it "
                    "(`apt-get install -y chromium`, as .ci/run does)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    make_run(run_dir)
    return write_report(run_dir, thumbnails=2)["html"]


def browse(chromium, tmp_path, *args):
    command = [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_browser_decodes_every_figure_and_thumbnail(chromium, report, tmp_path):
    probed = tmp_path / "probe.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                      encoding="utf-8")
    dom = browse(chromium, tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="biaskit-probe">(.*?)</pre>', dom, re.S)
    assert found and found.group(1), "the probe script did not run"
    seen = json.loads(found.group(1))
    sizes = seen["images"]
    assert len(sizes) == 7 + 12  # figures + 2 thumbnails x 2 models x 3 prompts
    assert all(w > 0 and h > 0 for w, h in sizes), sizes  # every image decoded
    assert sum(1 for w, h in sizes if max(w, h) == 160) == 12  # the thumbnails
    tables = dict(seen["tables"])
    assert tables["headline"] == 3 and tables["significant"] == 3 and tables["ahistorical"] == 2
    assert tables["rates"] == 3 and tables["versions"] > 5


def test_screenshot_is_not_blank(chromium, report, tmp_path):
    shot = tmp_path / "shot.png"
    browse(chromium, tmp_path, "--window-size=1200,1800", f"--screenshot={shot}", report.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (1800, 1200)
    ink = (np.abs(pixels - 255).sum(axis=2) > 60).mean()  # share of clearly non-white pixels
    assert ink > 0.03, ink
    # The summary figure's bars are drawn in matplotlib's C0 blue and C1 orange.
    blue = (np.abs(pixels - np.array([31, 119, 180])).sum(axis=2) < 30).mean()
    orange = (np.abs(pixels - np.array([255, 127, 14])).sum(axis=2) < 30).mean()
    assert blue > 0.002 and orange > 0.002, (blue, orange)
