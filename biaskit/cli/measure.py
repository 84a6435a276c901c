"""``biaskit measure``: observations (+ suite, + images) -> metric tables.

Usage::

    biaskit measure OBSERVATIONS --prompts SUITE [--images IMAGES] [--baseline MODEL]
                    [--confusion CSV] [--n-boot 1000] [--seed 0] [--confidence 0.95]
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

from biaskit.cli import add_command


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
    parser.add_argument("--confusion", type=Path, metavar="CSV",
                        help="confusion table (attribute, true, predicted, count) from "
                             "'biaskit validate': also write shares, entropy, HOF and mean "
                             "entropy corrected for classifier error")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="posterior draws per interval (default 1000; 0: no intervals)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="interval coverage (default 0.95)")
    parser.add_argument("--entropy-correction", choices=["miller-madow"],
                        help="bias-correct the entropy estimate")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the dispatcher imports every sub-command to
    # build its parser, and scipy (through biaskit.metrics) would slow them all.
    from biaskit.metrics.frame import BiasFrame
    from biaskit.metrics.run import as_table
    from biaskit.suite import load_suite
    from biaskit.tables import read_table

    suite = load_suite(args.prompts)
    frame = BiasFrame(read_table(args.observations), suite=suite,
                      images=as_table(args.images), n_boot=args.n_boot, seed=args.seed,
                      confidence=args.confidence, entropy_correction=args.entropy_correction,
                      confusion=as_table(args.confusion), name=str(args.observations))
    paths = frame.save(args.out, baseline=args.baseline)
    print(f"measured {len(frame.models)} model(s) x {len(frame.prompt_ids)} prompt(s) x "
          f"{len(frame.attributes)} attribute(s); wrote {', '.join(sorted(paths))} to {args.out}")
    return 0
