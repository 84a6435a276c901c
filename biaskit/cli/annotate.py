"""``biaskit annotate``: label a sample of the run's own faces, to validate the taggers in-domain.

``annotate export`` draws a design-weighted sample of the run's detected faces and
writes a self-contained annotation page (annotate.html: open it in any browser, no
server) and Label Studio tasks with their labelling config.  ``annotate import``
reads the annotators' CSVs and Label Studio JSON exports and writes RUN/validation/:
majority labels, agreement, the tagger's accuracy and the in-domain confusion table
that ``biaskit measure`` and ``biaskit report`` then use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from biaskit.cli import add_command

EXAMPLES = """\
examples:
  biaskit annotate export runs/card --n 300 --out to_annotate
  biaskit annotate export runs/card --n 200 --per-model --attributes gender race --out to_annotate
  biaskit annotate import answers/ --run runs/card
  biaskit annotate import alice.csv bob.csv labelstudio_export.json --run runs/card
"""


def register(subparsers) -> None:
    parser = add_command(subparsers, "annotate", help="annotate a sample of the run's faces by hand",
                         description=__doc__, examples=EXAMPLES)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the annotation page and Label Studio tasks")
    export.add_argument("run", type=Path, metavar="RUN", help="a tagged run directory")
    export.add_argument("--n", type=int, default=300, help="faces to sample (default 300)")
    export.add_argument("--per-model", action="store_true",
                        help="sample --n faces from every model (one confusion table per model)")
    export.add_argument("--attributes", nargs="+", metavar="ATTRIBUTE",
                        help="questions to ask (default: gender, race, age_group, skin_tone as tagged)")
    export.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    export.add_argument("--force", action="store_true", help="replace the run's earlier sample")
    export.add_argument("--out", required=True, type=Path, help="folder for the annotators' files")
    export.set_defaults(func=run_export)
    imports = actions.add_parser("import", help="read the answers into RUN/validation/")
    imports.add_argument("inputs", nargs="+", type=Path, metavar="DIR_OR_FILES",
                         help="the page's CSV exports, Label Studio JSON exports, or folders of them")
    imports.add_argument("--run", required=True, type=Path, help="the run the sample came from")
    imports.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    imports.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    imports.set_defaults(func=run_import)


def run_export(args: argparse.Namespace) -> int:
    from biaskit.annotate import export_annotation

    export = export_annotation(args.run, out=args.out, n=args.n, per_model=args.per_model,
                               attributes=args.attributes, seed=args.seed, force=args.force)
    counts = export.sample["model"].value_counts().sort_index()
    print(f"sampled {len(export.sample)} faces ({', '.join(f'{m}: {c}' for m, c in counts.items())}); "
          f"export {export.export_id}")
    print(f"annotation page: {export.page}\nLabel Studio: {export.tasks} with {export.config}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from biaskit.annotate import import_annotations

    result = import_annotations(args.inputs, run=args.run, n_boot=args.n_boot, seed=args.seed)
    for line in result.errors:
        print(f"biaskit annotate import: {line}", file=sys.stderr)
    source = result.source
    print(f"{source['n_annotators']} annotator(s), {source['n_faces_answered']} of "
          f"{source['n_faces_sampled']} sampled faces answered; {len(result.errors)} bad row(s) skipped")
    columns = ["attribute", "n", "accuracy", "ci_low", "ci_high", "unclear_rate"]
    print(result.tables["summary"][columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"tables written to {result.out}")
    return 0
