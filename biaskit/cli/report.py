"""``biaskit report RUN``: write RUN/report.html (self-contained) and RUN/report.md."""

from __future__ import annotations

from biaskit.cli import add_command, fraction, whole_number
from biaskit.report.data import DEFAULT_ALPHA


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "report", help="write the HTML and Markdown report of a measured run",
        description="Write RUN/report.html (one self-contained file: figures and thumbnails "
                    "embedded) and RUN/report.md (with figures in RUN/figures/).")
    parser.add_argument("run", metavar="RUN", help="run directory with metrics/ (biaskit measure)")
    parser.add_argument("--prompts", metavar="SUITE", default=None,
                        help="prompt suite YAML, for prompt texts (default: the one in run.json)")
    parser.add_argument("--baseline", metavar="MODEL", default=None,
                        help="baseline model (default: the one `measure --baseline` compared against, "
                             "else run.json's)")
    parser.add_argument("--confusion", metavar="TABLE", default=None,
                        help="validation confusion table (CSV/parquet) to include")
    parser.add_argument("--alpha", type=fraction, default=DEFAULT_ALPHA,
                        help="q-value threshold for significant differences (default %(default)s)")
    parser.add_argument("--thumbnails", type=whole_number(0), default=8,
                        help="gallery thumbnails per prompt and model (default %(default)s)")
    parser.add_argument("--title", default=None, help="report title")
    parser.set_defaults(func=handle)


def handle(args) -> int:
    from biaskit.report import write_report

    paths = write_report(args.run, suite=args.prompts, baseline=args.baseline,
                         confusion=args.confusion, alpha=args.alpha,
                         thumbnails=args.thumbnails, title=args.title)
    print(f"wrote {paths['html']} and {paths['markdown']}")
    return 0
