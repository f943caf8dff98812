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

from modeljob.adapters import kube_objects
from modeljob.adapters.cluster import ClusterError, ClusterGateway, NotFoundError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.kube_objects import ObjectError
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.scheduling_loop import SchedulingLoop
from modeljob.api.v1alpha1 import GROUP, PLURAL, VERSION
from modeljob.core.lifecycle import ConditionType, JobPhase, admission_phase, spec_problem
from modeljob.core.resources import format_bytes
from modeljob.core.scheduling_cycle import Sizing, size_for_cluster

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
    identity: str
    in_cluster: bool = False


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
    """Part of kopf's /healthz: fails (and so the liveness probe) if the scheduling loop died."""
    if not memo.loop.alive:
        raise kopf.PermanentError("the scheduling loop thread is not running")
    return {"acting": memo.loop.acting, "cycles": memo.loop.cycles}


def admit(body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    """Judge the current generation of one ModelJob's spec and write what was found."""
    document: dict[str, Any] = dict(body)
    meta = document.get("metadata") or {}
    status = document.get("status") or {}
    generation = meta.get("generation")
    if status.get("observedGeneration") == generation and status.get("phase") not in (None, "Pending"):
        return
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    now = datetime.now(UTC)
    problem: str | None
    sizing: Sizing | None = None
    try:
        facts = kube_objects.job_facts(document)
        problem = spec_problem(facts.shape)
    except ObjectError as exc:
        problem = str(exc)
    if problem is None:
        sizing = size_for_cluster(facts, memo.view.nodes.values())
    current = _phase(status.get("phase"))
    phase = admission_phase(current, valid=problem is None)
    conditions = kube_objects.set_condition(
        status.get("conditions") or [],
        type_=ConditionType.VALID,
        status=problem is None,
        reason="Valid" if problem is None else "InvalidSpec",
        message=problem or "the spec was validated and sized",
        now=now,
        generation=generation,
    )
    patch: dict[str, Any] = {"observedGeneration": generation, "phase": phase.value, "conditions": conditions}
    if problem is not None:
        patch["message"] = problem
        patch["queuePosition"] = None
    elif sizing is not None and sizing.candidates and not status.get("placement"):
        best = sizing.candidates[0]
        patch["estimate"] = kube_objects.estimate_status(best.estimate)
        patch["gpus"] = best.estimate.gpus * facts.replicas
        memo.metrics.record_estimate(best.estimate)
    if phase is JobPhase.QUEUED and current is not JobPhase.QUEUED:
        patch["message"] = f"queued in {facts.queue}"
    try:
        reply = memo.gateway.patch_modeljob_status(
            namespace, name, {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch}
        )
    except NotFoundError:
        return  # deleted meanwhile
    except ClusterError as exc:
        if exc.status == 409:
            raise kopf.TemporaryError(
                "the job changed meanwhile; judging it again", delay=CONFLICT_RETRY_SECONDS
            ) from None
        raise
    memo.view.jobs.observe(reply)
    if problem is not None:
        _event(memo, document, "InvalidSpec", problem, warning=True)
        return
    assert sizing is not None
    # One Event per admission (each is an API call): where it queued, and how it was sized.
    if phase is JobPhase.QUEUED and current is not JobPhase.QUEUED:
        _event(memo, document, "Queued", f"queued in {facts.queue}; sized: {_describe_sizing(sizing)}")
    else:
        _event(memo, document, "Sized", f"generation {generation} sized: {_describe_sizing(sizing)}")
    memo.view.changed.set()


def _phase(text: object) -> JobPhase | None:
    try:
        return JobPhase(str(text)) if text else None
    except ValueError:
        return None


def _describe_sizing(sizing: Sizing) -> str:
    parts = [
        f"{c.node_type.describe()}: {c.estimate.gpus} GPU(s)/replica, "
        f"{format_bytes(c.estimate.gpu_memory_per_gpu_bytes)} per GPU"
        for c in sizing.candidates
    ]
    parts.extend(sizing.rejected)
    return "; ".join(parts) or "no GPU node types in the cluster yet"


def _event(
    memo: OperatorMemo, document: dict[str, Any], reason: str, message: str, *, warning: bool = False
) -> None:
    meta = document.get("metadata") or {}
    (logger.warning if warning else logger.info)(
        "%s/%s %s: %s", meta.get("namespace"), meta.get("name"), reason, message
    )
    try:
        memo.gateway.create_event(
            str(meta.get("namespace")),
            kube_objects.event_manifest(
                document,
                warning=warning,
                reason=reason,
                message=message,
                now=datetime.now(UTC),
                instance=memo.identity,
            ),
        )
    except ClusterError as exc:
        logger.warning("cannot post event %s: %s", reason, exc)
