"""``biaskit validate``: accuracy, recall, confusion matrix and unclear rate of a tagger on labelled faces."""

from __future__ import annotations

import argparse
from pathlib import Path

from biaskit.cli import add_command
from biaskit.cli.tag import add_labelled_faces_arguments, add_tagger_arguments, tagger_options

EXAMPLES = """\
examples:
  biaskit validate --labels fairface_label_val.csv --images fairface/ --tagger embedded --out val/embedded
  biaskit validate --labels val.csv --images faces/ --tagger clip --attributes race gender --out val/clip
  biaskit validate --labels val.csv --images faces/ --tagger probe:probe.pt --out val/probe

The labels CSV has FairFace's layout: file (relative to --images), race, gender, age.
Tables written to --out (parquet + csv): summary, recall, confusion, predictions, errors.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "validate", help="measure a tagger on a labelled face folder",
        description=__doc__, examples=EXAMPLES)
    add_labelled_faces_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="folder for the result tables")
    add_tagger_arguments(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from biaskit.perception import validate

    options = tagger_options(args)
    result = validate(labels=args.labels, images=args.images, out=args.out, batch_size=args.batch_size,
                      **options)
    columns = ["attribute", "n", "accuracy", "ci_low", "ci_high", "unclear_rate"]
    print(result.summary[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(result.errors):
        print(f"{len(result.errors)} image(s) could not be read; see {args.out / 'errors.csv'}")
    print(f"tables written to {args.out}")
    return 0
