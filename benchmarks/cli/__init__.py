"""The `nt` command line.

Each command group lives in its own module of this package and exposes ``register(subparsers)``, which adds
its sub-parser(s) and sets ``func`` (called with the parsed arguments; returns an exit code or None). Every
module of this package not starting with ``_`` is picked up, in alphabetical order.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import NoReturn


class UserError(Exception):
    """An error caused by the user's input: printed as one clear line, without a traceback."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2), naming the command and
    pointing to its ``--help``, instead of the usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command group."""
    parser = OneLineParser(
        prog="nt", description="Nucleotide Transformer models, data and benchmarks on the Hugging Face stack."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")):
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nt`` console script."""
    from benchmarks.progress import line_buffered_stdout, quiet_library_bars

    line_buffered_stdout()  # progress and summary lines reach a log file as they are printed
    quiet_library_bars()  # no "Map" / "Writing model shards" bars in a log, nor before an error line
    try:
        parser = build_parser()
    except KeyboardInterrupt:  # Ctrl-C while the command modules are imported
        print("nt: interrupted", file=sys.stderr)
        return 130
    args = expand_home(parser.parse_args(argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, OSError) as error:
        print(f"nt {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; resumable jobs continue when rerun
        print(f"nt {args.command}: interrupted", file=sys.stderr)
        return 130


def expand_home(args: argparse.Namespace) -> argparse.Namespace:
    """Expand a leading ``~`` in every path argument (``Path`` values, or lists of them). The shell leaves
    ``--out=~/x`` as it is; unexpanded, a folder named ``~`` was made here while pyarrow wrote under $HOME."""
    for name, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, name, value.expanduser())
        elif isinstance(value, list) and value and all(isinstance(item, Path) for item in value):
            setattr(args, name, [item.expanduser() for item in value])
    return args


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (an OSError names its file; newlines become "; ")."""
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in str(error):
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error) or type(error).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
