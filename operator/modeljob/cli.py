"""The `modeljob` command line: one subcommand per module under `modeljob.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modeljob import __version__
from modeljob.commands import UsageError, crd, estimate, extender, nodes, run, simulate

EXIT_USAGE = 2
COMMANDS = (run, extender, estimate, simulate, crd, nodes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeljob",
        description="Size, queue and gang-place AI model jobs on Kubernetes GPU clusters.",
    )
    parser.add_argument("--version", action="version", version=f"modeljob {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Bad input prints one line naming what is wrong and exits 2."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `modeljob simulate ... | head` is not an error
        return 0
    return code
