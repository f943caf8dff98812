"""`modeljob extender`: the scheduler extender alone (kube-scheduler's filter, prioritize and bind verbs).

It reads the operator's settings (MODELJOB_KUBERNETES__*, MODELJOB_SCORING__*, MODELJOB_NODE_LABELS__*,
MODELJOB_LOGGING__* and MODELJOB_EXTENDER__*), so it
scores nodes exactly as `modeljob run` does. docs/extender.md has the kube-scheduler side.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from modeljob.commands import UsageError
from modeljob.commands.settings_flags import add_configured_command, load_settings

if TYPE_CHECKING:
    from modeljob.adapters.extender.settings import ExtenderSettings
    from modeljob.settings import Settings

EXIT_CLUSTER_ERROR = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_configured_command(
        subparsers,
        "extender",
        summary="run the kube-scheduler extender alone",
        description=(
            "Serve kube-scheduler's extender verbs (POST <prefix>/filter, /prioritize, /bind; GET /healthz, "
            "/metrics) with the operator's node scoring, from a watch of nodes and pods."
        ),
    )
    parser.add_argument("--host", help="listen address (MODELJOB_EXTENDER__HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="listen port (MODELJOB_EXTENDER__PORT, default 8888)")
    parser.set_defaults(handler=_run)


def extender_settings(settings: Settings, args: argparse.Namespace) -> ExtenderSettings:
    """The `extender` section of the settings, with the command line's flags applied."""
    from modeljob.adapters.extender.settings import ExtenderSettings  # noqa: PLC0415

    base: dict[str, Any] = settings.extender.model_dump()
    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    try:
        return ExtenderSettings.model_validate({**base, **overrides})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise UsageError(f"--{first['loc'][0]}: {first['msg']}") from None


def _run(args: argparse.Namespace) -> int:
    # Imported here: `modeljob estimate` and friends need neither aiohttp nor the client.
    from modeljob import wiring  # noqa: PLC0415
    from modeljob.adapters.cluster_errors import ClusterError  # noqa: PLC0415
    from modeljob.adapters.extender import server  # noqa: PLC0415

    settings = load_settings(args)
    extender = extender_settings(settings, args)
    wiring.configure_logging(settings.logging)
    try:
        gateway = wiring.connect(settings)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER_ERROR
    labels = wiring.node_label_keys(settings)
    with gateway:
        return server.serve(gateway, weights=settings.scoring.weights(), labels=labels, settings=extender)


def main(argv: Sequence[str] | None = None) -> int:
    """`modeljob extender` without the CLI's registry (bench/extender.py starts it this way)."""
    parser = argparse.ArgumentParser(prog="modeljob")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["extender", *(argv if argv is not None else sys.argv[1:])])
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code
