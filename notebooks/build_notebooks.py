"""Build the notebooks of this folder from the cells below (run: python notebooks/build_notebooks.py).

The .ipynb files are committed without outputs; edit the cells here and rebuild,
so that the notebooks stay reviewable as code.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP_SOURCE = '''%matplotlib inline
import matplotlib.pyplot as plt

from biaskit import plots'''

FIND_REPO = '''
def find_in_repo(relative):
    """A file of the biaskit checkout, whether this runs from notebooks/ or the repository root."""
    for base in (Path.cwd(), Path.cwd().parent, Path(biaskit.__file__).resolve().parents[1]):
        if (base / relative).exists():
            return base / relative
    raise FileNotFoundError(f"{relative}: not found; set the path in the parameters cell")
'''

QUICKSTART = [
    new_markdown_cell("""# biaskit quickstart: from a folder of images to tags, metrics and figures

This notebook takes a small folder of images laid out `FOLDER/<prompt_id>/*.png` (the way
a team brings in images it generated elsewhere), finds every face, tags perceived gender,
age and Monk Skin Tone with the embedded offline models, and measures how varied the
outputs of each prompt are.

Leave `IMAGE_FOLDER` empty to build a small demo folder from photos that ship with
scikit-image (no network needed)."""),
    new_code_cell('''import os
from pathlib import Path

# Parameters: a folder laid out FOLDER/<prompt_id>/*.png; empty -> a demo folder is made.
IMAGE_FOLDER = os.environ.get("BIASKIT_IMAGE_FOLDER", "")
WORK_DIR = Path(os.environ.get("BIASKIT_WORK_DIR", "quickstart"))
N_BOOT = int(os.environ.get("BIASKIT_N_BOOT", "500"))  # bootstrap replicates for intervals''',
                  metadata={"tags": ["parameters"]}),
    new_code_cell(SETUP_SOURCE),
    new_code_cell('''from biaskit import demo

if not IMAGE_FOLDER:
    IMAGE_FOLDER = WORK_DIR / "images-in"
    for prompt_id in ("doctor", "nurse", "teacher"):
        (IMAGE_FOLDER / prompt_id).mkdir(parents=True, exist_ok=True)
        for sample in range(4):
            demo.mixed(f"a {prompt_id}", sample).save(IMAGE_FOLDER / prompt_id / f"{sample}.png")
IMAGE_FOLDER = Path(IMAGE_FOLDER)
sorted(p.relative_to(IMAGE_FOLDER).as_posix() for p in IMAGE_FOLDER.rglob("*.png"))'''),
    new_markdown_cell("""## 1. A prompt suite for the folder

Each sub-folder is one prompt. Here the suite is built in code; for real evaluations
write it as YAML (see `prompts/README.md`)."""),
    new_code_cell('''from biaskit.suite import suite_from_dict

prompt_ids = sorted(p.name for p in IMAGE_FOLDER.iterdir() if p.is_dir())
n_images = max(len(list((IMAGE_FOLDER / p).glob("*"))) for p in prompt_ids)
suite = suite_from_dict({
    "name": "quickstart",
    "samples": n_images,
    "prompts": [{"id": p, "text": f"a {p.replace('-', ' ')}"} for p in prompt_ids],
})
suite.to_frame()[["prompt_id", "text", "kind"]]'''),
    new_markdown_cell("## 2. Bring the images into a run directory"),
    new_code_cell('''from biaskit.generate import generate

RUN = WORK_DIR / "run"
images = generate(suite, {"my-model": f"folder:{IMAGE_FOLDER}"}, out=RUN, progress=False)
images[["model", "prompt_id", "sample", "status", "width", "height"]]'''),
    new_markdown_cell("""## 3. Find every face and tag it

`tag_run` writes `people.parquet` (one box per face) and `observations.parquet` (one row per
person and attribute; `unclear` when the tagger abstains)."""),
    new_code_cell('''from biaskit.perception import tag_run

observations = tag_run(RUN, progress=False)
observations.head(8)'''),
    new_code_cell('''observations.pivot_table(index="attribute", columns="label", values="person",
                         aggfunc="count", fill_value=0)'''),
    new_markdown_cell("""## 4. Metrics

`BiasFrame` computes every metric of
[docs/DESIGN.md §4](../docs/DESIGN.md#4-metric-definitions-one-model-one-prompt-one-attribute-with-k-categories)
with bootstrap intervals over images: category shares per prompt, normalized entropy
(0 = one category only, 1 = uniform), heterogeneous-output frequency (HOF) and rates of
unclear labels and images with no person."""),
    new_code_cell('''from biaskit.metrics import BiasFrame

bias = BiasFrame(observations, suite=suite, images=images, n_boot=N_BOOT, seed=0)
bias.distribution.query("attribute == 'gender'")'''),
    new_code_cell('''bias.summary[["prompt_id", "attribute", "n_images", "n_known", "entropy",
              "entropy_ci_low", "entropy_ci_high", "heterogeneous"]]'''),
    new_code_cell('''bias.overall'''),
    new_markdown_cell("## 5. Figures"),
    new_code_cell('''fig, axes = plt.subplots(1, 2, figsize=(13, 3.5), layout="constrained")
plots.category_shares(bias.distribution, attribute="gender", ax=axes[0])
plots.category_shares(bias.distribution, attribute="skin_tone", ax=axes[1])
plt.show()'''),
    new_code_cell('''plots.summary_figure(bias.overall)'''),
    new_code_cell('''plots.rate_bars(bias.rates)
plt.show()'''),
    new_markdown_cell("""Next: `system_card_replication.ipynb` compares two generators the way a model
release's system card does, and writes the HTML report."""),
]

SYSTEM_CARD = [
    new_markdown_cell("""# Replicating a system card's bias evaluation

The GPT-4o image-generation system card measures demographic bias like this: ambiguous
prompts ("a happy person", "a doctor", "three construction workers") are resampled 20
times per model, every person is tagged for perceived gender, race and Monk Skin Tone,
and the card reports per attribute the **heterogeneous-output frequency** (share of
prompts whose resamples show more than one category) and the **normalized entropy** of
the category distribution, for the new model beside a baseline, plus an *ahistorical*
check (prompts like "the US founding fathers" should stay consistent).

This notebook runs that evaluation end to end for **any two generators**:

* offline (default): two folders of images laid out `FOLDER/<prompt_id>/*` — here made
  from photos shipped with scikit-image when no folders are given;
* an API model, e.g. `openai:gpt-image-1` (key from `OPENAI_API_KEY`), or a local
  diffusers pipeline, e.g. `diffusers:stabilityai/sd-turbo` — where available.

Everything resumes: re-running never regenerates stored images."""),
    new_code_cell('''import os
from pathlib import Path

import biaskit

# Parameters. Generator specs: folder:PATH, openai:MODEL, diffusers:HUB_ID, python:module:function.
CANDIDATE = os.environ.get("BIASKIT_CANDIDATE", "")  # e.g. "openai:gpt-image-1"; "" -> demo folder
BASELINE = os.environ.get("BIASKIT_BASELINE", "")    # e.g. "folder:/data/dalle3"; "" -> demo folder
SUITE = os.environ.get("BIASKIT_SUITE", "")          # "" -> prompts/system_card.yaml
SAMPLES = int(os.environ.get("BIASKIT_SAMPLES", "20"))
OUT = Path(os.environ.get("BIASKIT_OUT", "runs/system-card"))
SEED = 0''', metadata={"tags": ["parameters"]}),
    new_code_cell(SETUP_SOURCE),
    new_code_cell(FIND_REPO.strip() + '''


from biaskit.suite import load_suite

suite = load_suite(SUITE or find_in_repo("prompts/system_card.yaml"))
print(f"{suite.name}: {len(suite)} prompts, {SAMPLES} samples each")
suite.to_frame()["kind"].value_counts()'''),
    new_markdown_cell("""## 1. Two generators

With no specs given, two image folders are made offline: the *candidate* shows one of two
photographed people per image, the *baseline* always the same one. Replace them with your
own folders, or with an API or diffusers model where you have one."""),
    new_code_cell('''from biaskit import demo


def demo_folder(root, make_image):
    """Write SAMPLES images per prompt as root/<prompt_id>/<sample>.png (once)."""
    for prompt in suite:
        folder = Path(root) / prompt.id
        folder.mkdir(parents=True, exist_ok=True)
        for sample in range(SAMPLES):
            path = folder / f"{sample:03d}.png"
            if not path.exists():
                make_image(prompt.text, sample).save(path)
    return f"folder:{root}"


CANDIDATE = CANDIDATE or demo_folder(OUT.parent / "candidate-images", demo.mixed)
BASELINE = BASELINE or demo_folder(OUT.parent / "baseline-images", demo.skewed)
models = {"candidate": CANDIDATE, "baseline": BASELINE}
MODELS = ["baseline", "candidate"]  # drawing order: the baseline first
models'''),
    new_markdown_cell("""## 2. Generate, tag, measure, report

`run_pipeline` is what `biaskit run` does: it generates `SAMPLES` resamples per prompt per
model, tags every face with the embedded offline models, writes the metric tables to
`OUT/metrics/` and the report to `OUT/report.html`."""),
    new_code_cell('''from biaskit.pipeline import run_pipeline

result = run_pipeline(suite, models=models, baseline="baseline", out=OUT, samples=SAMPLES,
                      seed=SEED, progress=False)
bias = result.bias
result.images["status"].groupby(result.images["model"]).value_counts().unstack(fill_value=0)'''),
    new_markdown_cell("""## 3. The headline: heterogeneity and entropy per attribute

Higher is more diverse. 95% intervals with images as the unit: for HOF, the Jeffreys interval
of the share of heterogeneous prompts; for mean entropy, a posterior-predictive interval that
carries the plug-in entropy's bias (every estimate lies inside its interval; see the README's
Uncertainty section).

These numbers are **not corrected for tagger error** unless the run holds a validation confusion
table (`biaskit validate --out OUT/validation`, then measure again): HOF and entropy amplify
tagger errors, since one mis-tagged face makes a homogeneous prompt heterogeneous."""),
    new_code_cell('''from biaskit.report.data import headline, hof_sensitivity

headline(bias.overall, models=MODELS)[
    ["kind", "attribute", "model", "n_prompts", "hof", "hof_ci_low", "hof_ci_high",
     "mean_entropy", "mean_entropy_ci_low", "mean_entropy_ci_high"]].round(3)'''),
    new_code_cell('''# How many heterogeneous prompts hinge on a single face (the report shows this too).
if bias.corrected_overall is not None:
    display(bias.corrected_overall.round(3))
else:
    display(hof_sensitivity(bias.distribution, bias.summary, models=MODELS).round(2))'''),
    new_code_cell('''plots.summary_figure(bias.overall, models=MODELS)'''),
    new_markdown_cell("""## 4. Per prompt: where do the models differ?

A test of equal category distributions per prompt and attribute, with Benjamini-Hochberg
q-values across prompts."""),
    new_code_cell('''from biaskit import tables
from biaskit.report.data import significant_differences

# run_pipeline already compared the models (bias.compare) and stored the table the report uses.
comparison = tables.read_table(result.run_dir / tables.METRICS_DIR / "comparison.parquet")
significant_differences(comparison, alpha=0.05)'''),
    new_code_cell('''attributes = [a for a in ("gender", "skin_tone") if a in set(bias.summary["attribute"])]
fig, axes = plt.subplots(1, len(attributes), figsize=(6 * len(attributes), 6), layout="constrained",
                         squeeze=False)
for ax, attribute in zip(axes[0], attributes):
    plots.entropy_scatter(bias.summary, attribute=attribute, model="candidate",
                          baseline="baseline", ax=ax)
plt.show()'''),
    new_code_cell('''plots.category_shares(bias.distribution, attribute="skin_tone", models=MODELS)
plt.show()'''),
    new_markdown_cell("""## 5. Ahistorical and unrealistic prompts

Prompts whose subject implies a label: the ideal is a match rate of 100%."""),
    new_code_cell('''plots.ahistorical_match(bias.summary, models=MODELS)
plt.show()'''),
    new_markdown_cell("## 6. Unclear labels, images without a person, refusals"),
    new_code_cell('''plots.rate_bars(bias.rates, models=MODELS)
plt.show()
bias.rates'''),
    new_markdown_cell("""## 7. The report

One self-contained HTML file (figures and thumbnails embedded) and a Markdown summary,
with the methods section and the caveats of perceived-attribute classification."""),
    new_code_cell('''print(result.report["html"])
print(result.report["markdown"].read_text(encoding="utf-8")[:1500])'''),
]


def build(cells, path: Path) -> None:
    for index, cell in enumerate(cells):  # stable ids: a rebuild only diffs what changed
        cell["id"] = f"{path.stem[:20]}-{index:02d}"
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(notebook)
    nbformat.write(notebook, path)


def main() -> None:
    build(QUICKSTART, HERE / "quickstart.ipynb")
    build(SYSTEM_CARD, HERE / "system_card_replication.ipynb")


if __name__ == "__main__":
    main()
