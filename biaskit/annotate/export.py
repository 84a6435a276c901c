"""``annotate export``: draw the sample and write the annotation page and Label Studio files.

The sample, with every face's tagger labels, inclusion probability and weight,
stays inside the run (``RUN/annotation/``); what goes to annotators (``--out``)
holds face crops and whole images only -- never a tagger's label.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from biaskit import tables, taxonomy
from biaskit.annotate.sample import draw_sample
from biaskit.annotate import labelstudio
from biaskit.store import write_json_atomic
from biaskit.tables import write_atomic

ANNOTATION_DIR = "annotation"  # RUN/annotation: the sample and its settings
SAMPLE_TABLE = "sample.parquet"
PREDICTIONS_TABLE = "predictions.parquet"
EXPORT_JSON = "export.json"
PAGE_FILE = "annotate.html"
NO_PERSON = "no person"
CHOICE_EXTRAS = (taxonomy.UNCLEAR,)
#: Attributes offered by default (race4 is folded from race; age bins are too fine to ask).
DEFAULT_ATTRIBUTES = ("gender", "race", "age_group", "skin_tone")
KEYS = tuple("1234567890")
CROP_SIZE = 256
CROP_MARGIN = 0.35
WHOLE_SIZE = 512
JPEG_QUALITY = 80
BOX_COLOR = (255, 215, 0)  # the face asked about, on the whole image
QUESTIONS = {"gender": "Perceived gender", "race": "Perceived race (FairFace categories)",
             "age_group": "Perceived age: under 18 (child) or adult?",
             "skin_tone": "Skin tone (Monk scale, 1 lightest to 10 darkest)"}
NO_RUN_TABLE = "{path}: missing; run `biaskit tag` on this run first"
NO_ATTRIBUTE = ("--attributes: {attribute!r} has no tagger labels in {path} "
                "(tagged attributes: {tagged})")
ALREADY_EXPORTED = ("{path}: this run already has an annotation sample (export {export_id}); "
                    "answers to it would no longer import -- pass --force to draw a new one")
UNREADABLE_IMAGE = "{path}: cannot read this image for the annotation page ({problem})"


@dataclass
class Export:
    """What :func:`export_annotation` wrote: the sample and the paths of the files."""

    export_id: str
    sample: pd.DataFrame
    page: Path
    tasks: Path
    config: Path


def export_annotation(run_dir: str | Path, *, out: str | Path, n: int = 300, per_model: bool = False,
                      attributes=None, seed: int = 0, force: bool = False) -> Export:
    """Draw an annotation sample of a run's faces and write the page and Label Studio files.

    Parameters
    ----------
    run_dir : path
        A tagged run (``images``, ``people`` and ``observations`` tables).
    out : path
        Folder for the annotators' files: ``annotate.html``,
        ``labelstudio_tasks.json`` and ``labelstudio_config.xml``.
    n : int
        Faces to draw (per model with ``per_model``).
    per_model : bool
        Draw ``n`` faces from every model, enough for one confusion table per model.
    attributes : sequence of str, optional
        Questions to ask (default: those of :data:`DEFAULT_ATTRIBUTES` the run has).
    seed : int
        Seed of the draw.
    force : bool
        Replace an earlier sample of this run.

    Returns
    -------
    Export
    """
    run_dir, out = Path(run_dir), Path(out)
    annotation = run_dir / ANNOTATION_DIR
    if (annotation / EXPORT_JSON).exists() and not force:
        previous = json.loads((annotation / EXPORT_JSON).read_text(encoding="utf-8"))
        raise ValueError(ALREADY_EXPORTED.format(path=annotation, export_id=previous.get("export_id")))
    observations = _required(run_dir / tables.OBSERVATIONS_TABLE)
    attributes = _attributes(attributes, observations, run_dir / tables.OBSERVATIONS_TABLE)
    sample = draw_sample(run_faces(run_dir), observations, n=n, attributes=attributes,
                         per_model=per_model, seed=seed)
    export_id = uuid.uuid4().hex[:12]
    settings = {"export_id": export_id, "n": int(n), "per_model": bool(per_model), "seed": int(seed),
                "attributes": list(attributes), "n_faces": len(sample), "out": str(out)}
    predictions = _sample_predictions(sample, observations, attributes)
    crops, wholes = face_images(run_dir, sample)  # before writing anything: an unreadable image stops here
    tables.write_table(sample, annotation / SAMPLE_TABLE, csv=True)
    tables.write_table(predictions, annotation / PREDICTIONS_TABLE)
    write_json_atomic(annotation / EXPORT_JSON, settings)
    choices = {a: list(taxonomy.labels(a)) + list(CHOICE_EXTRAS) for a in attributes}
    out.mkdir(parents=True, exist_ok=True)
    page = write_page(out / PAGE_FILE, export_id=export_id, sample=sample, crops=crops, wholes=wholes,
                      choices=choices)
    tasks, config = labelstudio.write_project(out, export_id=export_id, sample=sample, crops=crops,
                                              wholes=wholes, choices=choices, no_person=NO_PERSON)
    return Export(export_id=export_id, sample=sample, page=page, tasks=tasks, config=config)


def _required(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(NO_RUN_TABLE.format(path=path))
    return tables.read_table(path)


def _attributes(attributes, observations: pd.DataFrame, path: Path) -> tuple[str, ...]:
    tagged = list(dict.fromkeys(observations["attribute"]))
    if not attributes:
        return tuple(a for a in DEFAULT_ATTRIBUTES if a in tagged)
    for attribute in attributes:
        if attribute not in tagged:
            raise ValueError(NO_ATTRIBUTE.format(attribute=attribute, path=path, tagged=tagged))
    return tuple(dict.fromkeys(attributes))


def run_faces(run_dir: Path) -> pd.DataFrame:
    """Every detected face of the run with its image's model, prompt, sample and path."""
    images = _required(run_dir / tables.IMAGES_TABLE)
    people = _required(run_dir / tables.PEOPLE_TABLE)
    images = images[images["status"] == tables.STATUS_OK][["model", "prompt_id", "sample", "sha256", "path"]]
    return images.merge(people.drop_duplicates(["sha256", "person"]), on="sha256")


def _sample_predictions(sample: pd.DataFrame, observations: pd.DataFrame, attributes) -> pd.DataFrame:
    """The tagger's labels of the sampled faces, frozen at export (a re-tag does not change them)."""
    keys = ["model", "prompt_id", "sample", "person"]
    rows = observations[observations["attribute"].isin(list(attributes))]
    merged = sample[["face_id", *keys]].merge(rows, on=keys)
    columns = ["face_id", "model", "attribute", "label", "confidence", "tagger"]
    return merged.reindex(columns=columns)


def face_images(run_dir: Path, sample: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """face_id -> crop data URI; sha256 -> whole-image data URI (the face boxed)."""
    crops, wholes = {}, {}
    for row in sample.itertuples(index=False):
        path = run_dir / str(row.path)
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except OSError as exc:
            raise ValueError(UNREADABLE_IMAGE.format(path=path, problem=exc)) from None
        box = (row.x0, row.y0, row.x1, row.y1)
        crops[row.face_id] = data_uri(_crop(image, box))
        whole = image.copy()
        whole.thumbnail((WHOLE_SIZE, WHOLE_SIZE))
        scale = whole.width / image.width
        ImageDraw.Draw(whole).rectangle([v * scale for v in box], outline=BOX_COLOR, width=3)
        wholes[row.face_id] = data_uri(whole)
    return crops, wholes


def _crop(image: Image.Image, box) -> Image.Image:
    x0, y0, x1, y1 = map(float, box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    square = image.crop((round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)))
    return square.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.LANCZOS)


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def write_page(path: Path, *, export_id: str, sample: pd.DataFrame, crops, wholes, choices) -> Path:
    """The self-contained annotation page (crops and images embedded; no label of the tagger)."""
    import jinja2

    attributes = [{"name": a, "labels": labels, "question": QUESTIONS.get(a, a),
                   "hotkeys": [KEYS[i] if i < len(KEYS) else "" for i in range(len(labels) - 1)] + ["u"]}
                  for a, labels in choices.items()]
    faces = [{"id": fid, "crop": crops[fid], "image": fid} for fid in sample["face_id"]]
    data = {"export_id": export_id, "attributes": attributes, "faces": faces, "images": wholes,
            "no_person": NO_PERSON}
    # "</script>" or "<!--" inside a script element would end or hide it: JSON allows "\u003c".
    data_json = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("page.html.j2").render(
        title=f"biaskit annotation · {export_id}", n_faces=len(faces), attributes=attributes,
        no_person=NO_PERSON, data_json=jinja2.utils.markupsafe.Markup(data_json))
    return write_atomic(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))
