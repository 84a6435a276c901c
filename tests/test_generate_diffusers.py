"""The diffusers adapter: one seeded torch.Generator per sample, batched calls; a real tiny pipeline from a folder."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from biaskit.generate import Request, generate, make_generator
from biaskit.generate.adapters.diffusers import DiffusersGenerator
from biaskit.suite import suite_from_dict

SUITE = suite_from_dict({"name": "t", "samples": 3, "prompts": [
    {"id": "doctor", "text": "a doctor"},
    {"id": "nsfw", "text": "NSFW thing"},
    {"id": "two-nurses", "text": "two nurses", "kind": "group", "count": 2},
]})


def colour_for(generator: torch.Generator) -> tuple[int, int, int]:
    return tuple(torch.randint(0, 256, (3,), generator=generator).tolist())


class FakePipeline:
    """Same call signature as a diffusers text-to-image pipeline; draws from each generator."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = []

    def __call__(self, *, prompt, generator, **kwargs):
        self.calls.append({"prompts": list(prompt), "seeds": [g.initial_seed() for g in generator],
                           "kwargs": kwargs})
        images = [Image.new("RGB", (8, 8), colour_for(g)) for g in generator]
        return SimpleNamespace(images=images, nsfw_content_detected=["NSFW" in p for p in prompt])


def test_each_sample_gets_its_own_seeded_generator_in_batches(tmp_path):
    pipe = FakePipeline()
    gen = DiffusersGenerator(pipe, batch_size=2, num_inference_steps=3, guidance_scale=0.0)
    images = generate(SUITE, {"sd": gen}, out=tmp_path, seed=5, progress=False)
    assert len(pipe.calls) == 5  # 3 prompts x 3 samples = 9 requests in batches of 2
    assert sorted(len(c["prompts"]) for c in pipe.calls) == [1, 2, 2, 2, 2]
    assert all(c["kwargs"] == {"num_inference_steps": 3, "guidance_scale": 0.0} for c in pipe.calls)
    called = {(p, s) for c in pipe.calls for p, s in zip(c["prompts"], c["seeds"])}
    recorded = {(SUITE[r.prompt_id].text, r.seed) for r in images.itertuples()}
    assert called == recorded and len(recorded) == 9
    for row in images[images["status"] == "ok"].itertuples():
        # Independently: what a fresh generator seeded with the recorded seed draws.
        expected = colour_for(torch.Generator().manual_seed(row.seed))
        assert Image.open(tmp_path / row.path).getpixel((0, 0)) == expected
    nsfw = images[images["prompt_id"] == "nsfw"]
    assert (nsfw["status"] == "refused").all()
    assert (nsfw["error"] == "the pipeline's safety checker flagged the image as NSFW").all()
    assert (images.loc[images["prompt_id"] != "nsfw", "status"] == "ok").all()


def test_pipeline_exception_fails_its_batch_only(tmp_path):
    class Fussy(FakePipeline):
        def __call__(self, *, prompt, generator, **kwargs):
            if any("nurses" in p for p in prompt):
                raise RuntimeError("CUDA out of memory")
            return super().__call__(prompt=prompt, generator=generator, **kwargs)

    images = generate(SUITE, {"sd": DiffusersGenerator(Fussy(), batch_size=3)}, out=tmp_path,
                      progress=False)
    nurses = images[images["prompt_id"] == "two-nurses"]
    assert (nurses["error"] == "pipeline call failed for the batch: RuntimeError: CUDA out of memory").all()
    assert (images.loc[images["prompt_id"] == "doctor", "status"] == "ok").all()


def test_defaults_on_cpu_and_spec_options():
    gen = make_generator("diffusers:org/model?batch_size=8&num_inference_steps=2&guidance_scale=1.5")
    assert isinstance(gen, DiffusersGenerator)
    assert gen.batch_size == 8 and gen.call_kwargs == {"num_inference_steps": 2, "guidance_scale": 1.5}
    if not torch.cuda.is_available():
        assert gen.device == "cpu" and gen.dtype == torch.float32
    assert DiffusersGenerator(FakePipeline(), device="cuda").dtype == torch.float16


def test_unloadable_hub_id_stops_the_run_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"diffusers:no-such/model: cannot load the pipeline"):
        generate(SUITE, {"sd": "diffusers:no-such/model"}, out=tmp_path, samples=1, progress=False)


def test_generators_are_independent_of_batch_mates():
    pipe = FakePipeline()
    gen = DiffusersGenerator(pipe, batch_size=4)
    alone = gen.generate_batch([Request("p", "a", 0, 123)])[0].image.getpixel((0, 0))
    batched = gen.generate_batch([Request("p", "b", 1, 9), Request("p", "a", 0, 123)])[1]
    assert batched.image.getpixel((0, 0)) == alone


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    """A real Stable Diffusion pipeline, randomly initialised and tiny, saved as a user would have it.

    The tokenizer's vocabulary is written here (a hub tokenizer cannot be fetched offline).
    """
    import json

    import diffusers
    import transformers
    folder = tmp_path_factory.mktemp("tiny-sd")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    vocab.update({f"{word}</w>": 3 + k for k, word in enumerate("a doctor two nurses nsfw thing".split())})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                           model_max_length=16)
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=16, projection_dim=16,
        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
    vae = diffusers.AutoencoderKL(
        latent_channels=4, block_out_channels=(8,), layers_per_block=1, norm_num_groups=4, sample_size=8,
        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",))
    scheduler = diffusers.DDIMScheduler(clip_sample=False, steps_offset=1)
    pipeline = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def test_a_real_pipeline_from_a_local_folder_generates_seeded_images(tmp_path, tiny_pipeline_dir):
    import numpy as np

    from biaskit.tables import read_table

    spec = f"diffusers:{tiny_pipeline_dir}?batch_size=2&num_inference_steps=2&height=16&width=16&guidance_scale=1.0"
    images = generate(SUITE, {"tiny": spec}, out=tmp_path, samples=2, progress=False)
    assert (images["status"] == "ok").all() and len(images) == 3 * 2
    assert images.equals(read_table(tmp_path / "images.parquet").loc[:, images.columns])
    files = {(r.prompt_id, r.sample): Image.open(tmp_path / r.path) for r in images.itertuples()}
    assert {f.size for f in files.values()} == {(16, 16)}
    # A sample's image is its seed's, whatever its batch-mates: regenerate one alone.
    first = images.iloc[0]
    alone = make_generator(spec).generate_batch([Request(first.prompt_id, SUITE[first.prompt_id].text,
                                                         int(first["sample"]), int(first.seed))])[0].image
    stored = np.asarray(files[(first.prompt_id, first["sample"])], dtype=int)
    assert np.abs(stored - np.asarray(alone, dtype=int)).max() <= 1  # batched float rounding at most
    assert len({np.asarray(f).tobytes() for f in files.values()}) == len(files)  # seeds differ
