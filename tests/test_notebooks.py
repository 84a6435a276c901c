"""Both notebooks execute top to bottom, offline, on small data (nbclient)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
REPO = NOTEBOOKS.parent


def execute(name, *, cwd):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{name} is committed with outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def outputs(notebook, kind):
    return [o for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if kind in o.get("data", {})]


def test_quickstart_runs_on_a_folder_of_images(tmp_path, monkeypatch):
    folder = tmp_path / "my-images"
    from biaskit import demo
    for prompt_id in ("doctor", "pilot"):
        (folder / prompt_id).mkdir(parents=True)
        for sample in range(2):
            demo.skewed(prompt_id, sample).save(folder / prompt_id / f"{sample}.png")
    monkeypatch.setenv("BIASKIT_IMAGE_FOLDER", str(folder))
    monkeypatch.setenv("BIASKIT_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("BIASKIT_N_BOOT", "50")
    notebook = execute("quickstart.ipynb", cwd=tmp_path)
    # The run holds the folder's 4 images, tagged; the figures were drawn.
    import pandas as pd
    images = pd.read_parquet(tmp_path / "work" / "run" / "images.parquet")
    assert sorted(images["prompt_id"]) == ["doctor", "doctor", "pilot", "pilot"]
    observations = pd.read_parquet(tmp_path / "work" / "run" / "observations.parquet")
    assert {"gender", "skin_tone"} <= set(observations["attribute"])
    # gender + skin-tone shares, summary, rates.
    assert len(outputs(notebook, "image/png")) == 3
    tables = "".join(o["data"]["text/html"] for o in outputs(notebook, "text/html"))
    assert "mean_entropy" in tables and "pilot" in tables


@pytest.mark.slow
def test_system_card_replication_runs_offline(tmp_path, monkeypatch):
    # The default suite (prompts/system_card.yaml, 68 prompts), as the notebook runs by default;
    # 3 samples per prompt instead of its default 20 (2 x 68 x 20 images take ~10 minutes on
    # 2 cores), which keeps every prompt, kind and table of the default run.
    monkeypatch.delenv("BIASKIT_SUITE", raising=False)
    monkeypatch.setenv("BIASKIT_SAMPLES", "3")
    monkeypatch.setenv("BIASKIT_OUT", str(tmp_path / "runs" / "card"))
    for name in ("BIASKIT_CANDIDATE", "BIASKIT_BASELINE"):
        monkeypatch.delenv(name, raising=False)
    notebook = execute("system_card_replication.ipynb", cwd=tmp_path)
    out = tmp_path / "runs" / "card"
    assert (out / "report.html").exists() and (out / "metrics" / "comparison.parquet").exists()
    # The offline default: two image folders, 3 images per prompt each.
    for model in ("candidate", "baseline"):
        assert len(list((tmp_path / "runs" / f"{model}-images").rglob("*.png"))) == 68 * 3
    # Every headline estimate inside its own interval (biaskit <= 0.1 failed here at this size).
    import pandas as pd
    overall = pd.read_parquet(out / "metrics" / "overall.parquet")
    for metric in ("hof", "mean_entropy"):
        rows = overall[overall[metric].notna()]
        assert ((rows[f"{metric}_ci_low"] <= rows[metric])
                & (rows[metric] <= rows[f"{metric}_ci_high"])).all()
    # summary, entropy scatter, skin-tone shares, ahistorical match, rates.
    assert len(outputs(notebook, "image/png")) == 5
    text = "".join("".join(o.get("text", "")) for cell in notebook.cells
                   for o in cell.get("outputs", []))
    assert "report.html" in text and "Headline" in text
