"""Per-prompt galleries: small JPEG thumbnails with each person's box and labels."""

from __future__ import annotations

import base64
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
from PIL import Image, ImageDraw

from biaskit import taxonomy, tables
from biaskit.paths import MAX_IMAGE_BYTES, read_verified, resolve_inside
from biaskit.report.data import RunData

log = logging.getLogger(__name__)
THUMB_SIZE = 160
JPEG_QUALITY = 70
BOX_COLOR = (255, 215, 0)
#: A face the face policy does not count (background, poster): drawn thin, unnumbered.
UNCOUNTED_COLOR = (160, 160, 160)
NOT_COUNTED = "{n} face(s) not counted (face policy)"
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
UNREADABLE = "{path}: cannot make a thumbnail ({problem})"


@dataclass
class Thumbnail:
    """One sample: its data URI (None when unreadable) and one label line per person."""

    model: str
    sample: int
    status: str
    src: str | None = None
    people: list[str] = field(default_factory=list)
    note: str = ""


def _boxes(run: RunData) -> dict[str, list[tuple]]:
    """sha256 -> [(person, x0, y0, x1, y1)]."""
    people = run.people
    if people.empty:
        return {}
    # One set of boxes per image file, even if the table repeats a file's rows; coordinates
    # stored as text (e.g. a CSV round trip) are read as numbers, unreadable ones skipped.
    people = people.drop_duplicates(["sha256", "person"])
    coords = people[list(BOX_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    keep = coords.notna().all(axis=1)
    grouped: dict[str, list[tuple]] = {}
    for sha, person, box in zip(people["sha256"][keep], people["person"][keep],
                                coords[keep].itertuples(index=False)):
        grouped.setdefault(sha, []).append((int(person), *map(float, box)))
    return grouped


def counted_people(observations: pd.DataFrame) -> dict[tuple, set[int]]:
    """(model, prompt_id, sample) -> the persons with observations (those the face policy counts)."""
    if observations.empty:
        return {}
    keys = observations[["model", "prompt_id", "sample", "person"]].drop_duplicates()
    counted: dict[tuple, set[int]] = {}
    for model, prompt_id, sample, person in keys.itertuples(index=False):
        counted.setdefault((model, prompt_id, int(sample)), set()).add(int(person))
    return counted


def person_labels(observations: pd.DataFrame) -> dict[tuple, list[str]]:
    """(model, prompt_id, sample) -> one line per person, e.g. ``"1: Female, White, MST3"``.

    Persons are numbered from 1 as drawn on the thumbnail; an abstention shows
    as ``"<attribute>?"``.
    """
    if observations.empty:
        return {}
    order = {a: i for i, a in enumerate(dict.fromkeys(observations["attribute"]))}
    frame = observations.assign(_order=observations["attribute"].map(order))
    frame = frame.sort_values(["model", "prompt_id", "sample", "person", "_order"])
    lines: dict[tuple, list[str]] = {}
    for (model, prompt_id, sample, person), rows in frame.groupby(
            ["model", "prompt_id", "sample", "person"], sort=False):
        words = [f"{a}?" if label == taxonomy.UNCLEAR else str(label)
                 for a, label in zip(rows["attribute"], rows["label"])]
        lines.setdefault((model, prompt_id, int(sample)), []).append(
            f"{int(person) + 1}: {', '.join(words)}")
    return lines


def thumbnail_uri(path, *, boxes=(), size: int = THUMB_SIZE, counted=None) -> str:
    """A ``data:image/jpeg;base64`` thumbnail of the image at ``path`` with numbered boxes.

    ``path`` may be a file-like object (the bytes read and checked by the caller).
    Persons not in ``counted`` (None: all count) get a thin grey box and no number,
    so a number always matches a label line.
    """
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = size / max(image.size)
        thumb = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(thumb)
    for person, x0, y0, x1, y1 in boxes:
        box = [v * scale for v in (x0, y0, x1, y1)]
        if counted is not None and int(person) not in counted:
            draw.rectangle(box, outline=UNCOUNTED_COLOR, width=1)
            continue
        draw.rectangle(box, outline=BOX_COLOR, width=2)
        draw.text((box[0] + 2, box[1] + 1), str(int(person) + 1), fill=BOX_COLOR)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def galleries(run: RunData, *, per_prompt: int = 8, size: int = THUMB_SIZE) -> list[dict]:
    """One entry per prompt: ``{"prompt_id", "text", "models": [{"model", "thumbnails"}]}``.

    Up to ``per_prompt`` samples per model, lowest sample index first; refused and
    failed samples appear as notes, so a gallery never hides them.
    """
    if run.images.empty or per_prompt <= 0:
        return []
    labels = person_labels(run.observations)
    boxes, counted = _boxes(run), counted_people(run.observations)
    images = run.images.sort_values(["prompt_id", "sample"], kind="stable")
    prompt_ids = list(dict.fromkeys(images["prompt_id"]))
    if run.suite is not None:  # suite order, as the reader knows the prompts
        order = {p.id: i for i, p in enumerate(run.suite)}
        prompt_ids.sort(key=lambda p: order.get(p, len(order)))
    shown = (images[images["model"].isin(run.models)]
             .groupby(["prompt_id", "model"], sort=False).head(per_prompt))
    # Decoding and encoding release the GIL: a few threads make thumbnails faster.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        thumbs = list(pool.map(lambda row: _thumbnail(run, row, labels=labels, boxes=boxes,
                                                      counted=counted, size=size),
                               shown.itertuples(index=False)))
    by_key: dict[tuple, list[Thumbnail]] = {}
    for row, thumb in zip(shown.itertuples(index=False), thumbs):
        by_key.setdefault((row.prompt_id, row.model), []).append(thumb)
    return [{"prompt_id": prompt_id, "text": run.prompt_text(prompt_id),
             "models": [{"model": model, "thumbnails": by_key[(prompt_id, model)]}
                        for model in run.models if (prompt_id, model) in by_key]}
            for prompt_id in prompt_ids]


def _thumbnail(run: RunData, row, *, labels, boxes, counted, size) -> Thumbnail:
    thumb = Thumbnail(model=row.model, sample=int(row.sample), status=row.status)
    if row.status != tables.STATUS_OK:
        thumb.note = row.status
        return thumb
    path = run.run_dir / str(row.path)
    faces = boxes.get(row.sha256, ())
    kept = counted.get((row.model, row.prompt_id, int(row.sample)), set())
    try:  # inside the run's image store only, and the bytes must match their sha256
        path = resolve_inside(run.run_dir / tables.IMAGES_DIR, str(row.path), root=run.run_dir)
        data = read_verified(path, sha256=row.sha256, max_bytes=MAX_IMAGE_BYTES)
        thumb.src = thumbnail_uri(io.BytesIO(data), boxes=faces, size=size, counted=kept)
    except (OSError, ValueError) as exc:  # a missing, corrupt or refused file costs one thumbnail
        log.warning(UNREADABLE.format(path=path, problem=exc))
        thumb.note = "image unreadable"
    thumb.people = labels.get((row.model, row.prompt_id, int(row.sample)), [])
    uncounted = sum(int(face[0]) not in kept for face in faces)
    if uncounted and thumb.src:
        thumb.note = NOT_COUNTED.format(n=uncounted)
    elif not thumb.people and thumb.src:
        thumb.note = "no person found"
    return thumb
