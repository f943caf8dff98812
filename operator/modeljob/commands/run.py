"""`modeljob run`: the operator (kopf handlers, the scheduling loop, liveness and /metrics)."""

from __future__ import annotations

import argparse

from modeljob.commands.settings_flags import add_configured_command, load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_configured_command(
        subparsers,
        "run",
        summary="run the operator",
        description="Run the operator: size, queue, gang-place and bind ModelJobs cluster-wide.",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no leader election: act even if other replicas run (one replica, development)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: `modeljob estimate` and friends need neither kopf nor the client.
    from modeljob import wiring  # noqa: PLC0415

    settings = load_settings(args)
    if args.standalone:
        settings = settings.model_copy(
            update={"leader_election": settings.leader_election.model_copy(update={"enabled": False})}
        )
    return wiring.run_operator(settings)
