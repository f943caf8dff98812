"""`modeljob run`: the operator (kopf handlers, the scheduling loop, liveness and /metrics)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from modeljob.commands import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator",
        description=(
            "Run the operator: size, queue, gang-place and bind ModelJobs cluster-wide. Configured by "
            "MODELJOB_* environment variables (docs/settings.md); the flags below override them."
        ),
    )
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (MODELJOB_KUBERNETES__KUBECONFIG)")
    parser.add_argument(
        "--standalone", action="store_true", help="no peering: act even if other replicas run (development)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: `modeljob estimate` and friends need neither kopf nor the client.
    from modeljob import wiring  # noqa: PLC0415
    from modeljob.settings import Settings  # noqa: PLC0415

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "MODELJOB_" + "__".join(str(part) for part in first["loc"]).upper()
        raise UsageError(f"{where}: {first['msg']}") from None
    overrides: dict[str, object] = {}
    if args.kubeconfig is not None:
        overrides["kubernetes"] = settings.kubernetes.model_copy(update={"kubeconfig": args.kubeconfig})
    if args.standalone:
        overrides["peering"] = settings.peering.model_copy(update={"enabled": False})
    if overrides:
        settings = settings.model_copy(update=overrides)
    return wiring.run_operator(settings)
