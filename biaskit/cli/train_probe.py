"""``biaskit train-probe``: train a linear probe on face embeddings (CLIP or the dlib descriptor) of labelled faces."""

from __future__ import annotations

import argparse
from pathlib import Path

from biaskit.cli import add_command
from biaskit.cli.tag import add_labelled_faces_arguments, add_tagger_arguments, clip_weights

EXAMPLES = """\
examples:
  biaskit train-probe --labels fairface_label_train.csv --images fairface/ --out probe.pt
  biaskit train-probe --backbone dlib --attributes race --labels fairface_label_train.csv \\
      --images fairface/ --out race-dlib.pt     # offline: pip install 'biaskit[dlib-probe]'
  biaskit tag runs/card --tagger probe:race-dlib.pt

The labels CSV has FairFace's layout: file (relative to --images), race, gender, age.
The probe file records its backbone; --tagger probe:PATH reads it back with that backbone.
"""
#: Options that choose CLIP embeddings: with --backbone dlib they would be ignored, so they are refused.
CLIP_OPTIONS = ("clip_model", "clip_weights", "clip_cache", "device")
CLIP_ONLY = "--{option} applies to --backbone clip only (the dlib descriptor runs on the CPU with its own weights)"


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "train-probe", help="train a linear-probe tagger on CLIP or dlib embeddings of labelled faces",
        description=__doc__, examples=EXAMPLES)
    add_labelled_faces_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="probe file to write (.pt)")
    parser.add_argument("--attributes", "-a", nargs="+", metavar="ATTR",
                        help="label columns to learn (default: race gender age, those present)")
    # not argparse choices: the list lives in biaskit.perception.probe (too heavy to import here), which
    # refuses any other name in one line
    parser.add_argument("--backbone", default="clip", metavar="{clip,dlib}",
                        help="embeddings to train on: clip (CLIP image embeddings, default) or dlib "
                             "(128-D dlib face descriptor, offline, CC0 weights: pip install 'biaskit[dlib-probe]')")
    parser.add_argument("--clip-model", default=None, help="open_clip architecture (default ViT-B-32)")
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 penalty of the heads (default 1e-4)")
    add_tagger_arguments(parser, attributes=False)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from biaskit.perception import train_probe
    from biaskit.perception.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED

    if args.backbone != "clip":
        given = next((o for o in CLIP_OPTIONS if getattr(args, o) is not None), None)
        if given is not None:
            raise ValueError(CLIP_ONLY.format(option=given.replace("_", "-")))
    weights = clip_weights(args) if args.clip_weights is not None else DEFAULT_PRETRAINED
    summary = train_probe(
        labels=args.labels, images=args.images, out=args.out, backbone=args.backbone,
        attributes=tuple(args.attributes) if args.attributes else None,
        model=args.clip_model or DEFAULT_MODEL, pretrained=weights, device=args.device,
        cache_dir=args.clip_cache, allow_random_weights=args.allow_random_weights, l2=args.l2,
        batch_size=args.batch_size,
    )
    accuracy = ", ".join(f"{a} {v:.3f}" for a, v in summary["train_accuracy"].items())
    print(f"trained on {summary['faces']} face(s) ({len(summary['skipped'])} skipped), {summary['backbone']} backbone; "
          f"training accuracy: {accuracy}; saved {summary['out']}")
    return 0
