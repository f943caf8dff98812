"""What `run` and `extender` share: both are configured by the MODELJOB_* settings, and --kubeconfig."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from modeljob.commands import UsageError

if TYPE_CHECKING:
    from modeljob.settings import Settings

CONFIGURED_BY = (
    "Configured by MODELJOB_* environment variables (docs/settings.md); the flags below override them."
)


def add_configured_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    """A subcommand read from the settings, with the flag every such command has: --kubeconfig."""
    parser = subparsers.add_parser(name, help=summary, description=f"{description} {CONFIGURED_BY}")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (MODELJOB_KUBERNETES__KUBECONFIG)")
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    """The settings from the environment with --kubeconfig applied; a bad variable is a UsageError
    that names it (MODELJOB_SECTION__FIELD) in one line."""
    from modeljob.settings import Settings  # noqa: PLC0415 - pydantic-settings only when running

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "MODELJOB_" + "__".join(str(part) for part in first["loc"]).upper()
        raise UsageError(f"{where}: {first['msg']}") from None
    if args.kubeconfig is None:
        return settings
    kubernetes = settings.kubernetes.model_copy(update={"kubeconfig": args.kubeconfig})
    return settings.model_copy(update={"kubernetes": kubernetes})
