"""The ``biaskit`` command line: one sub-command per pipeline stage.

Each sub-command lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace and
returning an exit code).  Modules are imported lazily by :func:`main` so that
``biaskit --help`` does not pay for torch.

Errors take one path: a sub-command raises, :func:`main` maps the exception's
type to an exit code (the ``EXIT_*`` constants) and prints one line naming the file,
row or option.  No sub-command catches errors of its own.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import textwrap
import traceback

from biaskit.errors import one_line

# Order is the order of the pipeline; each name is a module of this package.
SUBCOMMANDS = ("generate", "tag", "validate", "train_probe", "annotate", "measure", "report", "run")

EXIT_OK = 0
EXIT_FAILED_ITEMS = 1   # finished, but some samples failed (error rows); re-run to retry them
EXIT_BAD_INPUT = 2      # bad input or option (also argparse's usage errors)
EXIT_SYSTEM = 3         # the system refused: permission, read-only or full disk
EXIT_INTERNAL = 70      # a bug in biaskit (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}    success
  {EXIT_FAILED_ITEMS}    finished, but some samples failed (see the 'error' column); re-run to retry
  {EXIT_BAD_INPUT}    bad input: a file, row or option is wrong (the message names it)
  {EXIT_SYSTEM}    the system refused: permission denied, read-only or full disk
  {EXIT_INTERNAL}   internal error (a bug): run again with -v for the traceback and report it
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); re-run the same command to resume

Every error is one line on stderr: "biaskit COMMAND: error: ...".
"""

INTERRUPTED = "interrupted; re-run the same command to resume (stored images are kept)"
INTERNAL_ERROR = "internal error: {error} (a bug; run again with -v for the traceback and report it)"
SYSTEM_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EBUSY}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biaskit",
        description="Measure demographic bias in text-to-image models.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    # The raw formatter (kept for the examples' line breaks) does not wrap the description.
    paragraphs = description.strip().replace("``", "").split("\n\n")
    description = "\n\n".join(textwrap.fill(" ".join(p.split()), width=79) for p in paragraphs)
    parser = subparsers.add_parser(name, help=help, description=description,
                                   epilog=examples, formatter_class=formatter)
    # -v also after the command; SUPPRESS keeps the top-level value when it is not given here.
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages (and the traceback of an error)")
    return parser


def whole_number(minimum: int):
    """An argparse ``type``: an integer >= ``minimum`` (the error names the value)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is not a whole number >= {minimum}")
        return value
    return parse


def fraction(text: str) -> float:
    """An argparse ``type``: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except BaseException as exc:  # noqa: BLE001 -- the one place errors become exit codes
        if isinstance(exc, SystemExit):
            raise
        code, message = describe_error(exc)
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"biaskit {args.command}: error: {message}", file=sys.stderr)
        return code


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code of an exception and its message on one line.

    Input errors (ValueError -- which includes suite, JSON and table errors --,
    KeyError, a missing file, a missing weights file or SDK: RuntimeError) are
    the user's to fix; an OSError refused by the system (permission, read-only
    or full disk) is the machine's; anything else is a bug.
    """
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, INTERRUPTED
    if isinstance(exc, OSError):
        code = EXIT_SYSTEM if exc.errno in SYSTEM_ERRNOS else EXIT_BAD_INPUT
        return code, one_line(_os_error(exc))
    if isinstance(exc, KeyError) and exc.args and " " in str(exc.args[0]):
        # biaskit's own KeyErrors (unknown attribute, model, prompt) are sentences; a bare
        # key ('hof') is a lookup that failed inside biaskit: a bug, reported as one.
        return EXIT_BAD_INPUT, one_line(exc.args[0])
    if isinstance(exc, (ValueError, RuntimeError, UnicodeError)):
        return EXIT_BAD_INPUT, one_line(exc)
    return EXIT_INTERNAL, INTERNAL_ERROR.format(error=one_line(f"{type(exc).__name__}: {exc}"))


def _os_error(exc: OSError) -> str:
    """``PATH: reason`` for an OSError that names a file (its own text otherwise)."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    target = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"{exc.filename}{target}: {exc.strerror.lower()}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
