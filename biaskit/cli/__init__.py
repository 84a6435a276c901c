"""The ``biaskit`` command line: one sub-command per pipeline stage.

Each sub-command lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace and
returning an exit code).  Modules are imported lazily by :func:`main` so that
``biaskit --help`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Order is the order of the pipeline; each name is a module of this package.
SUBCOMMANDS = ("generate", "tag", "validate", "train_probe", "annotate", "measure", "report", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biaskit",
        description="Measure demographic bias in text-to-image models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"biaskit.cli.{name}").register(subparsers)
    return parser


def add_command(subparsers, name: str, *, help: str, description: str, examples: str | None = None):
    """A sub-command's parser.

    ``description`` may be the module docstring (its ``double backquotes`` are
    dropped); ``examples``, shown after the options, keep their line breaks.
    """
    formatter = argparse.RawDescriptionHelpFormatter if examples else argparse.HelpFormatter
    return subparsers.add_parser(name, help=help, description=description.strip().replace("``", ""),
                                 epilog=examples, formatter_class=formatter)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        # Input problems are reported as one clear line, not a traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"biaskit {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
