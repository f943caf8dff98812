"""`modeljob crd`: print or write the ModelJob (or Queue) CRD generated from the pydantic models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from modeljob.api.crd_schema import build_crd, build_queue_crd

HEADER = "# Generated from operator/modeljob/api/v1alpha1.py by `modeljob crd`; do not edit by hand.\n"
QUEUE_HEADER = (
    "# Generated from operator/modeljob/api/v1alpha1_queue.py by `modeljob crd --kind queue`; "
    "do not edit by hand.\n"
)


def render_crd() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def render_queue_crd() -> str:
    return QUEUE_HEADER + yaml.safe_dump(build_queue_crd(), sort_keys=False, width=100)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("crd", help="print the ModelJob (or Queue) CustomResourceDefinition")
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    parser.add_argument(
        "--kind", choices=("modeljob", "queue"), default="modeljob", help="which CRD (default modeljob)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    text = render_queue_crd() if args.kind == "queue" else render_crd()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
