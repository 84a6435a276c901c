"""``biaskit run SUITE --model NAME=SPEC --baseline NAME=SPEC --out RUN``: the whole pipeline.

It takes the options of every stage it runs: those of ``generate``, of ``tag``
(taggers, weights, thresholds, detector, minimum face size) and of ``measure``
(replicates, confidence, entropy correction, confusion table).
"""

from __future__ import annotations

from biaskit.cli import EXIT_FAILED_ITEMS, add_command, whole_number
from biaskit.cli.generate import DUPLICATE_MODEL, FAILED_SAMPLES, parse_models
from biaskit.cli.measure import add_metric_arguments, metric_options
from biaskit.cli.tag import add_tag_run_arguments, tag_run_options
from biaskit.generate.specs import SPEC_KINDS

EXAMPLES = """\
examples:
  biaskit run prompts/smoke.yaml --model mixed=python:biaskit.demo:mixed \\
      --baseline skewed=python:biaskit.demo:skewed --out runs/demo
  biaskit run prompts/system_card.yaml --model new=openai:gpt-image-1 \\
      --baseline old=run:runs/2024#gpt-image-1 --out runs/card \\
      --tagger embedded --tagger clip --clip-weights open_clip_vit_b32.bin --threshold race=0.4

Re-running the same command resumes: stored images are never regenerated and tags
come from the cache.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "run", help="generate, tag, measure and report in one resumable command",
        description="Generate N resamples per prompt with every model, tag every person, "
                    "measure against the baseline and write the report. Re-running resumes: "
                    "stored images are never regenerated and tags come from the cache.",
        examples=EXAMPLES)
    parser.add_argument("suite", metavar="SUITE", help="prompt suite YAML")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=SPEC",
                        help=f"candidate model (repeatable); SPEC is one of {SPEC_KINDS}")
    parser.add_argument("--baseline", required=True, metavar="NAME=SPEC",
                        help="the baseline model, compared against every --model (any SPEC, "
                             "e.g. run:PATH#MODEL reuses an earlier run's images)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory")
    parser.add_argument("--samples", type=whole_number(1), default=None,
                        help="resamples per prompt (default: the suite's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="base seed of generation and of the bootstrap (default %(default)s)")
    parser.add_argument("--concurrency", type=whole_number(1), default=8,
                        help="generator calls in flight (default %(default)s)")
    add_tag_run_arguments(parser)
    add_metric_arguments(parser)
    parser.add_argument("--thumbnails", type=whole_number(0), default=8,
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
                          concurrency=args.concurrency, thumbnails=args.thumbnails,
                          progress=not args.no_progress, tagging=tag_run_options(args),
                          metrics=metric_options(args))
    print(f"wrote {result.report['html']} and {result.report['markdown']}")
    failed = int((result.images["status"] == "error").sum())
    if failed:
        print(FAILED_SAMPLES.format(failed=failed))
        return EXIT_FAILED_ITEMS
    return 0
