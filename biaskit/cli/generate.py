"""``biaskit generate``: resample every prompt of a suite with one or more models."""

from __future__ import annotations

import argparse
from pathlib import Path

from biaskit.cli import EXIT_FAILED_ITEMS, add_command
from biaskit.generate.specs import SPEC_KINDS

BAD_MODEL_ARG = "{option} {value!r}: expected NAME=SPEC, e.g. dalle3=openai:dall-e-3"
FAILED_SAMPLES = ("{failed} sample(s) failed (see the 'error' column of the images table); "
                  "re-run the same command to retry them")
DUPLICATE_MODEL = "{option} {value!r}: model name {name!r} is given twice"
EXAMPLES = """\
examples:
  biaskit generate prompts/system_card.yaml --model gpt=openai:gpt-image-1 \\
      --model dalle=openai:dall-e-3 --samples 20 --seed 0 --out runs/card
  biaskit generate prompts/smoke.yaml --model mine=folder:pregenerated/ --out runs/mine
  biaskit generate prompts/system_card.yaml --model sd=diffusers:stabilityai/sdxl-turbo \\
      --model old=run:runs/2024#sd --out runs/sd

Re-running the same command resumes: nothing stored is generated again.
One process per run directory: a second one on the same --out is refused.
The API key comes from OPENAI_API_KEY (and OPENAI_BASE_URL); it is never written.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "generate", help="generate N resamples per prompt per model into a run directory",
        description="Resample every prompt of a suite with one or more models into a run directory.",
        examples=EXAMPLES)
    parser.add_argument("suite", help="prompt suite YAML file (see prompts/README.md)")
    parser.add_argument("--model", "-m", action="append", required=True, metavar="NAME=SPEC",
                        help=f"a model to sample; SPEC is one of {SPEC_KINDS} (repeatable)")
    parser.add_argument("--samples", type=int, default=None,
                        help="resamples per prompt (default: the suite's, 20 for system_card)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the run (default 0)")
    parser.add_argument("--out", required=True, type=Path, help="run directory (created or resumed)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="generator calls in flight at once (default 8)")
    parser.add_argument("--allow-changed", action="store_true",
                        help="keep stored samples although their prompt text or model spec changed "
                             "(default: an error naming the prompt or model)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=handle)


def parse_models(values, *, option: str = "--model") -> dict[str, str]:
    """``["a=folder:x", ...]`` -> ``{"a": "folder:x", ...}``, refusing malformed or repeated names.

    ``option`` is the flag the values came from, named in the error messages.
    """
    models: dict[str, str] = {}
    for value in values or ():
        name, sep, spec = value.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise ValueError(BAD_MODEL_ARG.format(option=option, value=value))
        if name in models:
            raise ValueError(DUPLICATE_MODEL.format(option=option, value=value, name=name))
        models[name] = spec
    return models


def handle(args: argparse.Namespace) -> int:
    from biaskit.generate import generate
    from biaskit.tables import IMAGES_TABLE

    models = parse_models(args.model)
    images = generate(args.suite, models, out=args.out, samples=args.samples, seed=args.seed,
                      concurrency=max(1, args.concurrency), progress=not args.no_progress,
                      allow_changed=args.allow_changed)
    mine = images[images["model"].isin(list(models))]
    counts = mine.groupby(["model", "status"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=["ok", "refused", "error"], fill_value=0)
    print(counts.to_string())
    print(f"images table: {Path(args.out) / IMAGES_TABLE}")
    failed = int(counts["error"].sum())
    if failed:
        print(FAILED_SAMPLES.format(failed=failed))
        return EXIT_FAILED_ITEMS
    return 0
