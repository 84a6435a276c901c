"""``biaskit run SUITE --model NAME=SPEC --baseline NAME=SPEC --out RUN``: the whole pipeline."""

from __future__ import annotations

from biaskit.cli import add_command
from biaskit.cli.generate import DUPLICATE_MODEL, parse_models
from biaskit.cli.tag import add_face_policy_arguments


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "run", help="generate, tag, measure and report in one resumable command",
        description="Generate N resamples per prompt with every model, tag every person, "
                    "measure against the baseline and write the report. Re-running resumes: "
                    "stored images are never regenerated and tags come from the cache.")
    parser.add_argument("suite", metavar="SUITE", help="prompt suite YAML")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=SPEC",
                        help="candidate model (repeatable); SPEC is folder:PATH, openai:MODEL, "
                             "diffusers:HUB_ID or python:module:function")
    parser.add_argument("--baseline", required=True, metavar="NAME=SPEC",
                        help="the baseline model, compared against every --model")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory")
    parser.add_argument("--samples", type=int, default=None,
                        help="resamples per prompt (default: the suite's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default %(default)s)")
    parser.add_argument("--attributes", nargs="+", default=None, metavar="ATTRIBUTE",
                        help="attributes to tag (default: the tagger's)")
    parser.add_argument("--tagger", action="append", default=None, metavar="SPEC",
                        help="tagger backend, as for `biaskit tag` (repeatable; default: embedded); "
                             "e.g. --tagger embedded --tagger clip adds race from CLIP")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: automatic)")
    add_face_policy_arguments(parser, suite=False)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="generator calls in flight (default %(default)s)")
    parser.add_argument("--thumbnails", type=int, default=8,
                        help="gallery thumbnails per prompt and model (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=handle)


def handle(args) -> int:
    from biaskit.pipeline import run_pipeline

    baseline = parse_models([args.baseline], option="--baseline")
    candidates = parse_models(args.model, option="--model")
    name = next(iter(baseline))
    if name in candidates:
        raise ValueError(DUPLICATE_MODEL.format(option="--baseline", value=args.baseline, name=name))
    result = run_pipeline(args.suite, models={**candidates, **baseline}, baseline=name,
                          out=args.out, samples=args.samples, seed=args.seed,
                          attributes=args.attributes, tagger=args.tagger, device=args.device,
                          faces=args.faces, concurrency=args.concurrency, thumbnails=args.thumbnails,
                          progress=not args.no_progress)
    print(f"wrote {result.report['html']} and {result.report['markdown']}")
    return 0
