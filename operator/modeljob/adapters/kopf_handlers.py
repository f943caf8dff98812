"""kopf handlers: per-object work on ModelJobs (validate, size, status, Events); start and stop.

Handlers are plain `def` (kopf runs them in threads) because they call the blocking client.
Placement is not theirs: the scheduling loop (adapters/scheduling_loop.py) owns it. A handler
judges one generation of one job's spec: Invalid (a condition naming the field), or sized for each
node type in the cluster and, if it was not placed or queued yet, Queued. Status writes are
conditional on the resourceVersion the handler read, so they never overwrite the loop's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from modeljob.adapters import kube_jobs
from modeljob.adapters.cluster import ClusterError, ClusterGateway, NotFoundError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.events import EventRecorder
from modeljob.adapters.kube_jobs import ObjectError
from modeljob.adapters.lease import LeaderElector
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.scheduling_loop import SchedulingLoop
from modeljob.api.v1alpha1 import GROUP, PLURAL, VERSION
from modeljob.core import status as job_status
from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.lifecycle import admission_phase, spec_problem
from modeljob.core.node_types import Sizing, size_for_cluster
from modeljob.core.resources import format_bytes

logger = logging.getLogger(__name__)

SYNC_TIMEOUT_SECONDS = 60
CONFLICT_RETRY_SECONDS = 0.2


@dataclass
class OperatorMemo:
    """What handlers share (kopf passes a shallow copy of it to each handler as `memo`)."""

    gateway: ClusterGateway
    view: ClusterView
    loop: SchedulingLoop
    metrics: OperatorMetrics
    events: EventRecorder
    in_cluster: bool = False
    elector: LeaderElector | None = None  # None: leader election off, this replica always acts


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to ``registry`` (never to kopf's global default registry)."""
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.login(id="login-like-the-gateway", registry=registry)(login)
    kopf.on.startup(id="start-watches-and-scheduling-loop", registry=registry)(start)
    kopf.on.cleanup(id="stop-scheduling-loop", registry=registry)(stop)
    kopf.on.probe(id="scheduling-loop", registry=registry)(probe)
    kopf.on.create(*resource, id="admit-created", registry=registry)(admit)
    kopf.on.update(*resource, id="admit-changed-spec", field="spec", registry=registry)(admit)
    kopf.on.resume(*resource, id="admit-on-resume", registry=registry)(admit)


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


def admit(body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """Judge the current generation of one ModelJob's spec and write what was found."""
    document: dict[str, Any] = dict(body)
    meta = document.get("metadata") or {}
    status = document.get("status") or {}
    generation = meta.get("generation")
    if status.get("observedGeneration") == generation and status.get("phase") not in (None, "Pending"):
        return
    facts, problem = _judge(document)
    sizing = size_for_cluster(facts, memo.view.nodes.values()) if facts is not None else None
    current = kube_jobs.job_phase(document)
    phase = admission_phase(current, valid=problem is None)
    best = sizing.candidates[0] if sizing is not None and sizing.candidates else None
    patch = job_status.admitted(
        status,
        generation=generation,
        problem=problem,
        phase=phase,
        queue=facts.queue if facts is not None else "",
        estimate=best.estimate if best is not None else None,
        replicas=facts.replicas if facts is not None else 1,
        now=datetime.now(UTC),
    )
    if not _write(memo, document, patch):
        return
    if "estimate" in patch and best is not None:
        memo.metrics.record_estimate(best.estimate)
    if problem is not None or facts is None or sizing is None:
        memo.events.record(document, "InvalidSpec", problem or "", warning=True)
        return
    # One Event per admission (each is an API call): where it queued, and how it was sized.
    if phase is JobPhase.QUEUED and current is not JobPhase.QUEUED:
        memo.events.record(document, "Queued", f"queued in {facts.queue}; sized: {_describe_sizing(sizing)}")
    else:
        memo.events.record(document, "Sized", f"generation {generation} sized: {_describe_sizing(sizing)}")
    memo.view.changed.set()


def _judge(document: dict[str, Any]) -> tuple[JobFacts | None, str | None]:
    """The job's facts and what makes its spec invalid, naming the field (None: nothing)."""
    try:
        facts = kube_jobs.job_facts(document)
    except ObjectError as exc:
        return None, str(exc)
    problem = spec_problem(facts.shape)
    return (facts, None) if problem is None else (None, problem)


def _write(memo: OperatorMemo, document: dict[str, Any], patch: dict[str, object]) -> bool:
    """The admission patch, conditional on the version judged; False if the job is gone."""
    meta = document.get("metadata") or {}
    try:
        reply = memo.gateway.patch_modeljob_status(
            str(meta.get("namespace")),
            str(meta.get("name")),
            {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch},
        )
    except NotFoundError:
        return False  # deleted meanwhile
    except ClusterError as exc:
        if exc.status == 409:
            raise kopf.TemporaryError(
                "the job changed meanwhile; judging it again", delay=CONFLICT_RETRY_SECONDS
            ) from None
        raise
    memo.view.jobs.observe(reply)
    return True


def _describe_sizing(sizing: Sizing) -> str:
    parts = [
        f"{c.node_type.describe()}: {c.estimate.gpus} GPU(s)/replica, "
        f"{format_bytes(c.estimate.gpu_memory_per_gpu_bytes)} per GPU"
        for c in sizing.candidates
    ]
    parts.extend(sizing.rejected)
    return "; ".join(parts) or "no GPU node types in the cluster yet"
