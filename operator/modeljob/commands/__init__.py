"""Subcommands of the `modeljob` CLI; each module exposes `register(subparsers)`.

A handler returns the exit code, or raises `UsageError` with one line that names the file,
field or argument at fault; `modeljob.cli` prints it and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
from typing import Protocol


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class Command(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...
