"""kopf handlers: log in, start and stop the watches and the scheduling loop, and the liveness probe.

kopf serves no resource: admission of each new spec generation is the scheduling loop's
(adapters/job_admission.py), so no handler writes a ModelJob and kopf persists nothing on one (no
progress or last-handled annotations), and a standby replica writes nothing at all. Handlers are
plain `def` (kopf runs them in threads) because they call the blocking client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf

from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.lease import LeaderElector
from modeljob.adapters.scheduling_loop import SchedulingLoop

logger = logging.getLogger(__name__)

SYNC_TIMEOUT_SECONDS = 60


@dataclass
class OperatorMemo:
    """What handlers share (kopf passes a shallow copy of it to each handler as `memo`)."""

    gateway: ClusterGateway
    view: ClusterView
    loop: SchedulingLoop
    in_cluster: bool = False
    elector: LeaderElector | None = None  # None: leader election off, this replica always acts


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to ``registry`` (never to kopf's global default registry)."""
    kopf.on.login(id="login-like-the-gateway", registry=registry)(login)
    kopf.on.startup(id="start-watches-and-scheduling-loop", registry=registry)(start)
    kopf.on.cleanup(id="stop-scheduling-loop", registry=registry)(stop)
    kopf.on.probe(id="scheduling-loop", registry=registry)(probe)


def login(memo: OperatorMemo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf talks to the API server the way the gateway does (our registry has no default login)."""
    if memo.in_cluster:
        return kopf.login_with_service_account(**kwargs)
    connection = memo.gateway.connection()
    return kopf.ConnectionInfo(**connection)


def start(memo: OperatorMemo, **_: Any) -> None:
    memo.view.start()
    if not memo.view.wait_synced(SYNC_TIMEOUT_SECONDS):
        raise kopf.PermanentError(f"the watches did not list the cluster within {SYNC_TIMEOUT_SECONDS} s")
    memo.loop.start()
    # Only now a candidate: a replica whose watches have not listed the cluster must not lead.
    if memo.elector is not None:
        memo.elector.start()
    logger.info(
        "watching %d nodes, %d pods, %d ModelJobs; scheduling loop started",
        len(memo.view.nodes),
        len(memo.view.pods),
        len(memo.view.jobs),
    )


def stop(memo: OperatorMemo, **_: Any) -> None:
    memo.loop.stop()
    memo.view.stop()


def probe(memo: OperatorMemo, **_: Any) -> dict[str, Any]:
    """Part of kopf's /healthz: fails (and so the liveness probe) if the scheduling loop died; says
    whether this replica leads or stands by, and who holds the Lease."""
    if not memo.loop.alive:
        raise kopf.PermanentError("the scheduling loop thread is not running")
    elector = memo.elector
    leads = elector is None or elector.leads()
    holder = elector.holder() if elector is not None else ""
    return {"role": "leader" if leads else "standby", "holder": holder, "cycles": memo.loop.cycles}
