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


class UserError(Exception):
    """An error caused by the user's input: printed as one clear line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command group."""
    parser = argparse.ArgumentParser(
        prog="nt", description="Nucleotide Transformer models, data and benchmarks on the Hugging Face stack."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")):
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nt`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"nt {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
