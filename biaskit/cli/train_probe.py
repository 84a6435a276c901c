"""``biaskit train-probe``: train a linear probe on CLIP embeddings of a labelled face folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from biaskit.cli import add_command
from biaskit.cli.tag import add_labelled_faces_arguments, add_tagger_arguments, clip_weights

EXAMPLES = """\
examples:
  biaskit train-probe --labels fairface_label_train.csv --images fairface/ --out probe.pt
  biaskit tag runs/card --tagger probe:probe.pt

The labels CSV has FairFace's layout: file (relative to --images), race, gender, age.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "train-probe", help="train a linear-probe tagger on CLIP embeddings of labelled faces",
        description=__doc__, examples=EXAMPLES)
    add_labelled_faces_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="probe file to write (.pt)")
    parser.add_argument("--attributes", "-a", nargs="+", metavar="ATTR",
                        help="label columns to learn (default: race gender age, those present)")
    parser.add_argument("--clip-model", default=None, help="open_clip architecture (default ViT-B-32)")
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 penalty of the heads (default 1e-4)")
    add_tagger_arguments(parser, attributes=False)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from biaskit.perception import train_probe
    from biaskit.perception.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED

    weights = clip_weights(args) if args.clip_weights is not None else DEFAULT_PRETRAINED
    summary = train_probe(
        labels=args.labels, images=args.images, out=args.out,
        attributes=tuple(args.attributes) if args.attributes else None,
        model=args.clip_model or DEFAULT_MODEL, pretrained=weights, device=args.device,
        cache_dir=args.clip_cache, allow_random_weights=args.allow_random_weights, l2=args.l2,
    )
    accuracy = ", ".join(f"{a} {v:.3f}" for a, v in summary["train_accuracy"].items())
    print(f"trained on {summary['faces']} face(s) ({len(summary['skipped'])} skipped); "
          f"training accuracy: {accuracy}; saved {summary['out']}")
    return 0
