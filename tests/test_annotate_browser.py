"""The annotation page as an annotator uses it, in headless Chromium driven by Selenium.

Uses Debian's ``chromium`` and ``chromium-driver`` (CI installs both; nothing is
downloaded).  Skipped, with the reason, when either is missing.
"""

import shutil
import time

import pandas as pd
import pytest

from biaskit.annotate import export_annotation
from biaskit.cli import main
from report_support import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture
def exported(tmp_path):
    run = tmp_path / "run"
    make_run(run)
    return run, export_annotation(run, out=tmp_path / "out", n=6, seed=2)


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def choice(driver, attribute, label):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR,
                               f'.question[data-attribute="{attribute}"] .choice[data-label="{label}"]')


def press(driver, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def wait_for_file(folder, pattern, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} downloaded into {folder}")


def test_annotate_page_click_keyboard_reload_export_import(browser, exported, tmp_path):
    from selenium.webdriver.common.keys import Keys

    run, export = exported
    faces = list(export.sample["face_id"])
    browser.get(export.page.as_uri())
    assert by_id(browser, "login").is_displayed() and not by_id(browser, "work").is_displayed()
    by_id(browser, "annotator").send_keys("alice")
    by_id(browser, "start").click()
    assert by_id(browser, "who").text == "alice"
    assert by_id(browser, "position").text == "1"
    assert browser.execute_script("return document.getElementById('crop').naturalWidth") == 256
    # The whole image, on demand.
    assert not by_id(browser, "whole").is_displayed()
    by_id(browser, "toggle-whole").click()
    assert by_id(browser, "whole").is_displayed()
    # Face 1 by clicking: gender Female, skin tone MST5 -> complete, moves on to face 2.
    choice(browser, "gender", "Female").click()
    assert choice(browser, "gender", "Female").get_attribute("aria-pressed") == "true"
    choice(browser, "skin_tone", "MST5").click()
    assert by_id(browser, "position").text == "2"
    assert by_id(browser, "progress").text == "1 of 6 faces answered"
    # Face 2 by keyboard: 1 (Male), then 0 (the 10th skin tone, MST10).
    press(browser, "1", "0")
    assert by_id(browser, "position").text == "3"
    # Face 3: skipped with the right arrow.  Face 4: "u" twice (unclear).  Face 5: "n" (no person).
    press(browser, Keys.ARROW_RIGHT)
    press(browser, "u", "u")
    assert by_id(browser, "position").text == "5"
    press(browser, "n")
    assert by_id(browser, "position").text == "6"
    # Face 6: only gender, then leave it half answered.
    press(browser, "2")
    assert by_id(browser, "progress").text == "4 of 6 faces answered"
    # Reload: the id is not asked again and every answer is still there.
    browser.refresh()
    assert not by_id(browser, "login").is_displayed()
    assert by_id(browser, "position").text == "6" and by_id(browser, "who").text == "alice"
    assert by_id(browser, "progress").text == "4 of 6 faces answered"
    assert choice(browser, "gender", "Female").get_attribute("aria-pressed") == "true"  # face 6's answer
    press(browser, Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    assert by_id(browser, "position").text == "1"
    assert choice(browser, "skin_tone", "MST5").get_attribute("aria-pressed") == "true"
    # Export: the CSV is saved by the browser as a download.
    by_id(browser, "export").click()
    saved = wait_for_file(browser.downloads, "*.csv")
    rows = pd.read_csv(saved, dtype=str, keep_default_na=False)
    expected = [(faces[0], "gender", "Female"), (faces[0], "skin_tone", "MST5"),
                (faces[1], "gender", "Male"), (faces[1], "skin_tone", "MST10"),
                (faces[3], "gender", "unclear"), (faces[3], "skin_tone", "unclear"),
                (faces[4], "gender", "no person"), (faces[4], "skin_tone", "no person"),
                (faces[5], "gender", "Female")]
    assert list(zip(rows["face_id"], rows["attribute"], rows["label"])) == expected
    assert set(rows["annotator"]) == {"alice"} and set(rows["export_id"]) == {export.export_id}
    # And back into the run.
    assert main(["annotate", "import", str(saved), "--run", str(run), "--n-boot", "20"]) == 0
    labels = pd.read_parquet(run / "validation" / "labels.parquet")
    assert list(zip(labels["face_id"], labels["attribute"], labels["label"])) == expected
    detector = pd.read_parquet(run / "validation" / "detector.parquet").set_index("model")
    assert detector.loc["all", "n_no_person"] == 1 and detector.loc["all", "n_faces"] == 5


def test_the_page_never_shows_the_taggers_labels(browser, exported):
    run, export = exported
    predicted = pd.read_parquet(run / "annotation" / "predictions.parquet")
    browser.get(export.page.as_uri())
    by_id(browser, "annotator").send_keys("bob")
    by_id(browser, "start").click()
    # Labels appear as the questions' choices, and nowhere else: not in the rest of the page,
    # not pre-selected, not in the page's data.
    outside = browser.execute_script("""
        var page = document.body.cloneNode(true);
        page.querySelectorAll('.choice, script').forEach(function (e) { e.remove(); });
        return page.textContent;""")
    data = browser.execute_script("return JSON.stringify(JSON.parse("
                                  "document.getElementById('biaskit-data').textContent).faces)")
    for label in set(predicted["label"]):
        assert label not in outside and f'"{label}"' not in data, label
    assert browser.execute_script("return document.querySelectorAll('.choice.selected').length") == 0


# Six faces leave most skin-tone rows of the confusion table empty; the correction warns of each.
@pytest.mark.filterwarnings("ignore:confusion.*no validation example:UserWarning")
def test_export_page_import_measure_report_end_to_end(browser, exported, tmp_path, capsys):
    """annotate export -> the page in a browser -> annotate import -> measure -> report."""
    run, export = exported
    faces = list(export.sample["face_id"])
    browser.get(export.page.as_uri())
    by_id(browser, "annotator").send_keys("alice")
    by_id(browser, "start").click()
    for _ in faces:  # every face: Male (1), MST3 (3)
        press(browser, "1", "3")
    assert by_id(browser, "progress").text == "6 of 6 faces answered"
    by_id(browser, "export").click()
    alice = wait_for_file(browser.downloads, "*.csv")
    # A second annotator, with their own copy of the page, disagrees on the first face's gender.
    bob = tmp_path / "bob.csv"
    bob.write_text("export_id,annotator,face_id,attribute,label\n" + "".join(
        f"{export.export_id},bob,{f},gender,{'Female' if i == 0 else 'Male'}\n"
        for i, f in enumerate(faces)), encoding="utf-8")
    assert main(["annotate", "import", str(alice), str(bob), "--run", str(run), "--n-boot", "50"]) == 0
    majority = pd.read_parquet(run / "validation" / "majority.parquet")
    first = majority[(majority["face_id"] == faces[0]) & (majority["attribute"] == "gender")].iloc[0]
    assert first["status"] == "tie"
    assert main(["measure", str(run / "observations.parquet"), "--prompts", str(run / "suite.yaml"),
                 "--images", str(run / "images.parquet"), "--baseline", "base", "--n-boot", "50",
                 "--out", str(run / "metrics")]) == 0
    assert (run / "metrics" / "corrected_entropy.parquet").exists()
    corrected = pd.read_parquet(run / "metrics" / "corrected_overall.parquet")
    assert len(corrected) and corrected["attribute"].eq("gender").any()
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert '<h2 id="validation">Tagger validation</h2>' in html
    assert "in-domain: this run&#39;s own faces, labelled by people" in html
    assert "People labelled 6 of the 6 faces sampled from this run (2 annotator(s)" in html
    assert '<table class="annotators">' in html and '<table class="agreement">' in html
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert "## Tagger validation" in markdown and "| alice | 6 | 12 | 0 | 0 |" in markdown
    # The headline uses the in-domain correction: corrected columns, naming where they come from.
    headline = markdown.split("\n## ")[1]
    assert "The *corrected* columns correct the tagger's errors" in headline
    assert "(validation/confusion.parquet)" in headline  # the table measure recorded using
    assert "Not corrected for tagger error" not in markdown
