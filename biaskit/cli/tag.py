"""``biaskit tag``: detect every face in a run's images and tag it (people + observations)."""

from __future__ import annotations

import argparse
from pathlib import Path

from biaskit.cli import add_command, whole_number

TAG_SUMMARY = ("tagged {images} image(s): {faces} with a face, {no_face} with no face; "
               "{people} person(s), {observations} observations -> {path}")
UNREADABLE = "{count} image(s) could not be read; see {path}"
BAD_THRESHOLD = "--threshold {value!r}: expected ATTRIBUTE=NUMBER between 0 and 1, e.g. race=0.4"
EXAMPLES = """\
examples:
  biaskit tag runs/card                                  # gender, age, age_group, skin_tone (offline)
  biaskit tag runs/card --attributes race race4 gender --tagger clip
  biaskit tag runs/card --tagger embedded --tagger clip  # race from CLIP, the rest embedded
  biaskit tag runs/card --tagger fairface:res34_fair_align_multi_7.pt
  biaskit tag runs/card --tagger probe:probe.pt --threshold race=0.5
  biaskit tag runs/card --tagger clip --clip-prompts my_attributes.yaml
  biaskit tag runs/card --faces all                      # count background faces too

taggers: embedded | dlib | skin | clip[:MODEL[:PRETRAINED]] | fairface:PATH | probe:PATH.
CLIP weights (default ViT-B-32 laion2b_s34b_b79k) download on first use; offline, give
--clip-weights FILE or --clip-cache DIR. Results are cached in RUN/cache/perception.

faces: every face found is in RUN/people.parquet; the observations count the main
subject(s) of individual prompts (faces at least half the largest face's size) and, in
other prompts, every face at least a quarter of the largest (--faces all: every face).
"""


def add_labelled_faces_arguments(parser: argparse.ArgumentParser) -> None:
    """--labels and --images: a labelled face folder in FairFace's CSV layout."""
    parser.add_argument("--labels", required=True, type=Path, help="labels CSV (file, race, gender, age)")
    parser.add_argument("--images", required=True, type=Path, help="folder the 'file' column is relative to")


def add_tagger_arguments(parser: argparse.ArgumentParser, *, attributes: bool = True) -> None:
    """Options shared by ``tag``, ``validate`` and ``train-probe``."""
    if attributes:
        parser.add_argument("--attributes", "-a", nargs="+", metavar="ATTR",
                            help="attributes to tag (default: the taggers', else gender age age_group skin_tone)")
        parser.add_argument("--tagger", "-t", action="append", metavar="SPEC",
                            help="tagger backend (repeatable; the first that provides an attribute tags it)")
        parser.add_argument("--threshold", action="append", default=[], metavar="ATTR=P",
                            help="minimum confidence for ATTR, else 'unclear' (repeatable)")
        parser.add_argument("--no-cautious", action="store_true",
                            help="age_group: likelier group wins (default: borderline faces are called child)")
        parser.add_argument("--clip-prompts", type=Path, metavar="YAML",
                            help="user attributes for CLIP: attribute -> label -> prompts")
        parser.add_argument("--detector", default="centerface", choices=("centerface", "hog"),
                            help="face detector (default centerface)")
    parser.add_argument("--clip-weights", metavar="TAG|FILE",
                        help="CLIP pretrained tag or local checkpoint file")
    parser.add_argument("--clip-cache", type=Path, metavar="DIR", help="folder holding downloaded CLIP weights")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=whole_number(1), default=16,
                        help="images per batch (default 16)")
    # Random CLIP weights are for tests and benchmarks only; never offered in --help.
    parser.add_argument("--allow-random-weights", action="store_true", help=argparse.SUPPRESS)


def add_face_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """--faces: which faces are counted (``tag`` adds --suite for the prompts' kinds)."""
    from biaskit.perception.subjects import POLICIES

    parser.add_argument("--faces", choices=POLICIES, default=None,
                        help="faces counted as observations: the main subject(s) of individual prompts "
                             "(subjects, the default) or every face found (all)")


def parse_thresholds(values: list[str]) -> dict[str, float]:
    thresholds = {}
    for value in values:
        name, sep, number = value.partition("=")
        name = name.strip()
        try:
            threshold = float(number)
        except ValueError:
            raise ValueError(BAD_THRESHOLD.format(value=value)) from None
        if not sep or not name or not 0 <= threshold <= 1:
            raise ValueError(BAD_THRESHOLD.format(value=value))
        thresholds[name] = threshold
    return thresholds


def clip_weights(args: argparse.Namespace):
    """``--clip-weights random`` means no weights (refused unless the hidden test flag is given)."""
    from biaskit.perception.taggers import RANDOM_WEIGHTS  # the word the taggers read too

    return None if args.clip_weights == RANDOM_WEIGHTS else args.clip_weights


def tagger_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for tag_images / validate from the shared options."""
    return dict(
        attributes=args.attributes, tagger=args.tagger, detector=args.detector,
        thresholds=parse_thresholds(args.threshold) or None, cautious=not args.no_cautious,
        device=args.device, clip_prompts=args.clip_prompts, clip_weights=args.clip_weights,
        clip_cache=args.clip_cache, allow_random_weights=args.allow_random_weights,
    )


def add_tag_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of tagging a run directory (``tag``, and ``run`` which tags too)."""
    add_tagger_arguments(parser)
    parser.add_argument("--min-face", type=whole_number(0), default=None, metavar="PX",
                        help="faces smaller than this (px) are 'unclear'")
    parser.add_argument("--no-cache", action="store_true", help="re-run every model (ignore the tag cache)")
    add_face_policy_arguments(parser)


def tag_run_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for :func:`biaskit.perception.tag_run` from :func:`add_tag_run_arguments`."""
    options = tagger_options(args)
    if args.min_face is not None:
        options["min_face"] = args.min_face
    return dict(options, cache=not args.no_cache, batch_size=args.batch_size, faces=args.faces)


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "tag", help="find every person in a run's images and tag gender, age, race, skin tone",
        description=__doc__, examples=EXAMPLES)
    parser.add_argument("run", type=Path, help="run directory (with images.parquet)")
    add_tag_run_arguments(parser)
    parser.add_argument("--suite", type=Path, metavar="YAML",
                        help="prompt suite giving each prompt's kind (default: the one run.json names)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from biaskit.perception import tag_run

    observations = tag_run(args.run, progress=not args.no_progress, suite=args.suite,
                           **tag_run_options(args))
    print(tag_summary(args.run, observations))
    return 0


def tag_summary(run_dir: Path, observations) -> str:
    """What tagging found: images with and without a face, people, unreadable images."""
    import pandas as pd

    from biaskit import tables
    from biaskit.perception import ERRORS_TABLE

    run_dir = Path(run_dir)
    images = tables.read_table(run_dir / tables.IMAGES_TABLE)
    people = tables.read_table(run_dir / tables.PEOPLE_TABLE)
    errors = tables.read_table(run_dir / ERRORS_TABLE)
    ok = images[images["status"] == tables.STATUS_OK]
    with_face = ok["sha256"].isin(set(people["sha256"]))
    key = ["model", "prompt_id", "sample"]
    unreadable = pd.MultiIndex.from_frame(ok[key]).isin(pd.MultiIndex.from_frame(errors[key]))
    lines = [TAG_SUMMARY.format(images=len(ok), faces=int(with_face.sum()),
                                no_face=int((~with_face & ~unreadable).sum()),
                                people=len(people), observations=len(observations),
                                path=run_dir / tables.OBSERVATIONS_TABLE)]
    if len(errors):
        lines.append(UNREADABLE.format(count=len(errors), path=run_dir / ERRORS_TABLE))
    return "\n".join(lines)
