"""``biaskit measure``: observations (+ suite, + images) -> metric tables.

Usage::

    biaskit measure OBSERVATIONS --prompts SUITE [--images IMAGES] [--baseline MODEL]
                    [--confusion CSV | --no-confusion] [--n-boot 1000] [--seed 0] [--confidence 0.95]
                    [--entropy-correction miller-madow] --out DIR

OBSERVATIONS is a CSV or parquet file with the columns model, prompt_id, sample,
person, attribute, label (confidence and tagger optional), so labels from human
raters or any other classifier can be measured too.  Writes distribution,
summary, overall and rates (and comparison with --baseline; corrected,
corrected_entropy and corrected_overall with --confusion) as parquet + CSV under DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from biaskit.cli import add_command, fraction, whole_number


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "measure", help="compute bias metrics from an observations table",
        description="Compute bias metrics from an observations table: category distributions, "
                    "heterogeneous-output frequency, normalized entropy, ahistorical match, and "
                    "model vs baseline with intervals and tests.")
    parser.add_argument("observations", type=Path, metavar="OBSERVATIONS",
                        help="observations table (.csv or .parquet)")
    parser.add_argument("--prompts", required=True, type=Path, metavar="SUITE",
                        help="prompt suite YAML file")
    parser.add_argument("--images", type=Path, metavar="IMAGES",
                        help="images table, for no-person, refusal and error rates")
    parser.add_argument("--baseline", metavar="MODEL", help="compare every other model with it")
    add_metric_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.set_defaults(func=run)


def add_metric_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of measuring (``measure``, and ``run`` which measures too), but --seed."""
    parser.add_argument("--confusion", type=Path, metavar="CSV",
                        help="confusion table (attribute, true, predicted, count) from "
                             "'biaskit validate' or 'biaskit annotate import': also write classifier-error "
                             "corrected shares, entropy, HOF and mean entropy (default: the run's own "
                             "validation/confusion.parquet, when there is one)")
    parser.add_argument("--no-confusion", action="store_true",
                        help="do not correct with the run's own validation/confusion.parquet")
    parser.add_argument("--n-boot", type=whole_number(0), default=1000,
                        help="posterior draws per interval (default 1000; 0: no intervals)")
    parser.add_argument("--confidence", type=fraction, default=0.95,
                        help="interval coverage (default 0.95)")
    parser.add_argument("--entropy-correction", choices=["miller-madow"],
                        help="bias-correct the entropy estimate")


def metric_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of measuring from :func:`add_metric_arguments`.

    ``confusion`` is the path given (or None) and ``no_confusion`` whether the run's
    own ``validation/confusion.parquet`` is refused: see :func:`biaskit.tables.run_confusion`.
    """
    return dict(n_boot=args.n_boot, confidence=args.confidence,
                entropy_correction=args.entropy_correction, confusion=args.confusion,
                no_confusion=args.no_confusion)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the dispatcher imports every sub-command to
    # build its parser, and scipy (through biaskit.metrics) would slow them all.
    from biaskit.metrics.frame import BiasFrame
    from biaskit.metrics.run import as_table, confusion_table
    from biaskit.suite import load_suite
    from biaskit.tables import read_table, record_correction, run_confusion

    suite = load_suite(args.prompts)
    options = metric_options(args)
    confusion = run_confusion(args.observations.parent, given=options.pop("confusion"),
                              refuse=options.pop("no_confusion"))
    if confusion is not None and args.confusion is None:
        print(f"correcting for tagger error with {confusion} (--no-confusion to measure without)")
    frame = BiasFrame(read_table(args.observations), suite=suite, images=as_table(args.images),
                      seed=args.seed, name=str(args.observations), confusion=confusion_table(confusion),
                      **options)
    paths = frame.save(args.out, baseline=args.baseline)
    record_correction(args.out, confusion)
    print(f"measured {len(frame.models)} model(s) x {len(frame.prompt_ids)} prompt(s) x "
          f"{len(frame.attributes)} attribute(s); wrote {', '.join(sorted(paths))} to {args.out}")
    return 0
