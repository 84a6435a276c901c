"""CLIP zero-shot (random-init open_clip), FairFace checkpoint, linear probe, missing weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _faces import astronaut, make_run
from biaskit import taxonomy
from biaskit.perception import (
    BiaskitWeightsError, CenterFaceDetector, ClipTagger, Face, FairFaceTagger, ProbeTagger, train_probe,
)
from biaskit.perception.crops import aligned_crop, similarity_transform, template

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def faces():
    image = astronaut()
    found = CenterFaceDetector().detect(image)
    mirrored = image[:, ::-1].copy()
    x0, y0, x1, y1 = found.boxes[0]
    return [Face(image, found.boxes[0], found.landmarks[0]), Face(mirrored, np.array([512 - x1, y0, 512 - x0, y1]))]


@pytest.fixture(scope="module")
def clip_tagger():
    # two templates (not the default five) keep the random-init text encoder quick on CPU
    return ClipTagger(pretrained=None, allow_random_weights=True, batch_size=2,
                      templates=("a photo of {}.", "a portrait of {}."))


def test_random_weights_are_refused_unless_asked_for():
    with pytest.raises(ValueError, match="allow_random_weights"):
        ClipTagger(pretrained=None)


def test_clip_shapes_labels_and_race4_fold(clip_tagger, faces):
    out = clip_tagger.tag(faces, attributes=("race", "race4", "gender"))
    for attribute in ("race", "race4", "gender"):
        labels, confidence = out[attribute]
        assert len(labels) == 2 and confidence.shape == (2,)
        assert set(labels) <= set(taxonomy.labels(attribute)) | {"unclear"}
    embeddings = clip_tagger.embed(faces)
    assert embeddings.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    race = clip_tagger.probabilities(embeddings, "race")
    race4 = clip_tagger.probabilities(embeddings, "race4")
    assert race.shape == (2, 7) and race4.shape == (2, 4)
    np.testing.assert_allclose(race4[:, 2], race[:, 3] + race[:, 4], atol=1e-6)  # Asian = East + Southeast
    np.testing.assert_allclose(race4.sum(axis=1), 1, atol=1e-5)
    assert "weights=random" in clip_tagger.name and "race=0.4" in clip_tagger.name


def test_prompt_ensemble_is_the_renormalised_mean_of_every_template(clip_tagger):
    model, tokenizer = clip_tagger._model(("gender",))
    sentences = clip_tagger.sentences("gender")
    assert list(sentences) == ["Male", "Female"]  # taxonomy order
    assert len(sentences["Male"]) == len(clip_tagger.templates) * 2
    assert "a photo of a woman." in sentences["Female"]
    with torch.inference_mode():
        text = model.encode_text(tokenizer(sentences["Female"]))
    text = text / text.norm(dim=-1, keepdim=True)
    expected = text.mean(0) / text.mean(0).norm()
    np.testing.assert_allclose(clip_tagger.class_vectors("gender")[1].numpy(), expected.numpy(), atol=1e-5)


def test_label_order_follows_the_prompts_yaml(tmp_path, faces):
    yaml_a = tmp_path / "a.yaml"
    yaml_a.write_text("hat:\n  hat: ['a photo of a person wearing a hat']\n  no hat: ['a photo of a bare head']\n")
    yaml_b = tmp_path / "b.yaml"  # same labels, prompts swapped
    yaml_b.write_text("hat:\n  hat: ['a photo of a bare head']\n  no hat: ['a photo of a person wearing a hat']\n")
    a = ClipTagger(pretrained=None, allow_random_weights=True, prompts=yaml_a)
    b = ClipTagger(pretrained=None, allow_random_weights=True, prompts=yaml_b)
    assert taxonomy.labels("hat") == ("hat", "no hat")
    embeddings = a.embed(faces)
    pa, pb = a.probabilities(embeddings, "hat"), b.probabilities(embeddings, "hat")
    np.testing.assert_allclose(pa, pb[:, ::-1], atol=1e-5)
    labels, _ = a.tag(faces, attributes=("hat",))["hat"]
    best = np.array(["hat", "no hat"])[pa.argmax(1)]
    assert [l if l == "unclear" else l for l in labels] == [
        b_ if p.max() >= 0.5 else "unclear" for b_, p in zip(best, pa)]
    assert "hat" in a.attributes and a.name != b.name  # prompts are part of the recorded settings


def test_bad_prompts_file_names_the_attribute(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hat:\n  only: ['one label']\n")
    with pytest.raises(ValueError, match="bad.yaml.*'hat'.*at least two labels"):
        ClipTagger(pretrained=None, allow_random_weights=True, prompts=bad)


def test_local_weights_file_is_loaded(tmp_path, clip_tagger, faces):
    model, _ = clip_tagger._model(("race",))
    path = tmp_path / "clip.pt"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["visual.proj"] = state["visual.proj"] * 2.0  # distinguishable from the random init
    torch.save(state, path)
    local = ClipTagger(pretrained=path)
    loaded, _ = local._model(("race",))
    assert torch.equal(loaded.state_dict()["visual.proj"], state["visual.proj"])
    np.testing.assert_allclose(local.embed(faces), clip_tagger.embed(faces), atol=1e-4)  # scale-invariant


def test_missing_weights_file_is_a_clear_error():
    with pytest.raises(BiaskitWeightsError, match="race.*no such file.*--clip-weights"):
        ClipTagger(pretrained="/nowhere/clip.pt").tag([Face(astronaut(), np.array([180, 60, 270, 180]))],
                                                      attributes=("race",))
    assert issubclass(BiaskitWeightsError, RuntimeError)


def test_weights_that_name_nothing_are_refused_not_randomly_initialised(tmp_path):
    # open_clip alone would build a random model here and only log a warning.
    with pytest.raises(BiaskitWeightsError, match="race"):
        ClipTagger(pretrained="").class_vectors("race")
    empty = tmp_path / "clip-folder"
    empty.mkdir()
    (empty / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.get_model_config("ViT-B-32")}))
    with pytest.raises(BiaskitWeightsError, match="race"):
        ClipTagger(model=f"local-dir:{empty}").class_vectors("race")


def test_missing_hub_weights_offline_error_names_attribute_weights_and_remedy(tmp_path):
    run = tmp_path / "run"
    make_run(run, {"a.png": astronaut()})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-m", "biaskit", "tag", str(run), "--attributes", "race", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("biaskit tag: error: CLIP weights ViT-B-32/laion2b_s34b_b79k")
    assert "attribute(s) race" in message and "--clip-weights" in message and "--clip-cache" in message
    assert not (run / "observations.parquet").exists()


# ---- FairFace ------------------------------------------------------------------------------------

def _fairface_checkpoint(path: Path, *, race: int, gender: int, age: int, wrap: bool = False) -> Path:
    import torchvision

    network = torchvision.models.resnet34(weights=None)
    network.fc = torch.nn.Linear(512, 18)
    with torch.no_grad():
        network.fc.weight.zero_()
        bias = torch.zeros(18)
        bias[[race, 7 + gender, 9 + age]] = 5.0
        network.fc.bias.copy_(bias)
    state = network.state_dict()
    if wrap:  # as saved from nn.DataParallel inside a training checkpoint
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("race, gender, age, wrap", [(3, 1, 4, False), (5, 0, 0, True)])
def test_fairface_output_mapping(tmp_path, faces, race, gender, age, wrap):
    path = _fairface_checkpoint(tmp_path / "ff.pt", race=race, gender=gender, age=age, wrap=wrap)
    tagger = FairFaceTagger(checkpoint=path)
    out = tagger.tag(faces, attributes=("race", "race4", "gender", "age", "age_group"))
    assert out["race"][0] == [taxonomy.RACE7[race]] * 2
    assert out["race4"][0] == [taxonomy.RACE7_TO_RACE4[taxonomy.RACE7[race]]] * 2
    assert out["gender"][0] == [taxonomy.GENDER[gender]] * 2
    assert out["age"][0] == [taxonomy.AGE_BINS[age]] * 2
    assert out["age_group"][0] == ["child" if age <= 1 else "adult"] * 2
    expected = np.exp(5) / (np.exp(5) + 6)  # softmax of one 5 among seven zeros
    np.testing.assert_allclose(out["race"][1], expected, rtol=1e-4)


def test_fairface_bad_checkpoints_named(tmp_path):
    import torchvision

    small = torchvision.models.resnet18(weights=None)
    torch.save(small.state_dict(), tmp_path / "r18.pt")
    with pytest.raises(ValueError, match="r18.pt.*does not fit a ResNet-34 with 18 outputs"):
        FairFaceTagger(checkpoint=tmp_path / "r18.pt")
    torch.save({"weights": Path("x")}, tmp_path / "pickled.pt")  # needs full unpickling: refused
    with pytest.raises(ValueError, match="pickled.pt.*cannot be loaded safely"):
        FairFaceTagger(checkpoint=tmp_path / "pickled.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        FairFaceTagger(checkpoint=tmp_path / "absent.pt")


def test_alignment_puts_landmarks_on_the_template(faces):
    landmarks = faces[0].landmarks
    matrix = similarity_transform(landmarks, template(224))
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - template(224)).max() < 8  # a similarity fits five real landmarks closely
    crop = aligned_crop(faces[0].image, landmarks, size=224)
    assert crop.shape == (224, 224, 3)
    found = CenterFaceDetector().detect(crop)
    assert len(found) == 1
    eyes = found.landmarks[0][:2]
    np.testing.assert_allclose(eyes, template(224)[:2], atol=10)


# ---- linear probe ---------------------------------------------------------------------------------

COLOURS = {"White": (200, 40, 40), "Black": (40, 160, 40), "Indian": (40, 40, 200)}


def _colour_folder(folder: Path, *, per_class: int, seed: int) -> pd.DataFrame:
    """Images of distinct colours (race) and brightness (gender), with noise: separable classes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for race, colour in COLOURS.items():
        for gender, gain in (("Male", 0.5), ("Female", 1.2)):
            for i in range(per_class):
                pixels = np.clip(np.array(colour) * gain + rng.normal(0, 20, (64, 64, 3)), 0, 255)
                name = f"{race}_{gender}_{i}.png"
                Image.fromarray(pixels.astype(np.uint8)).save(folder / name)
                rows.append({"file": name, "race": race, "gender": gender, "age": "20-29"})
    return pd.DataFrame(rows)


def test_probe_trains_to_high_accuracy_and_tags_like_any_tagger(tmp_path):
    train = _colour_folder(tmp_path / "train", per_class=4, seed=0)
    train.to_csv(tmp_path / "train.csv", index=False)
    summary = train_probe(labels=tmp_path / "train.csv", images=tmp_path / "train", out=tmp_path / "probe.pt",
                          attributes=("race", "gender"), pretrained=None, allow_random_weights=True)
    assert summary["faces"] == len(train) and summary["train_accuracy"]["race"] == 1.0
    test = _colour_folder(tmp_path / "test", per_class=2, seed=1)
    tagger = ProbeTagger(path=tmp_path / "probe.pt", allow_random_weights=True)
    assert tagger.attributes == ("race", "gender")
    faces = [Face(np.asarray(Image.open(tmp_path / "test" / f)), np.array([0, 0, 64, 64])) for f in test["file"]]
    out = tagger.tag(faces)
    for attribute in ("race", "gender"):
        accuracy = np.mean(np.array(out[attribute][0]) == test[attribute].to_numpy())
        assert accuracy >= 0.9, (attribute, accuracy)


def test_probe_file_needs_random_permission_and_bad_files_are_named(tmp_path):
    train = _colour_folder(tmp_path / "train", per_class=2, seed=0)
    train.to_csv(tmp_path / "train.csv", index=False)
    train_probe(labels=tmp_path / "train.csv", images=tmp_path / "train", out=tmp_path / "p.pt",
                attributes=("race",), pretrained=None, allow_random_weights=True)
    with pytest.raises(ValueError, match="allow_random_weights"):
        ProbeTagger(path=tmp_path / "p.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt.*not a biaskit-linear-probe-1 file"):
        ProbeTagger(path=tmp_path / "other.pt")
    bad = train.assign(race=["Martian"] + list(train["race"][1:]))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="bad.csv: row 2, column 'race': 'Martian'"):
        train_probe(labels=tmp_path / "bad.csv", images=tmp_path / "train", out=tmp_path / "q.pt",
                    pretrained=None, allow_random_weights=True)
