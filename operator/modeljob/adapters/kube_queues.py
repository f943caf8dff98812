"""Queue objects -> the cycle's QueueConfig, and each Queue's status written when it changes.

Pure translation plus one writer: the numbers and conditions are core/quota_status.py's. A Queue
the API server accepted but this operator cannot read (a newer schema) is left out and logged:
jobs naming it wait, saying the queue does not exist, rather than the operator failing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import Informer
from modeljob.api.quantities import parse_duration
from modeljob.api.v1alpha1_queue import DEFAULT_MIN_RUNTIME, parse_queue
from modeljob.core.admission import QueueConfig
from modeljob.core.preemption_rules import PreemptionRules, WithinQueue
from modeljob.core.queueing import QueueOrder
from modeljob.core.quota_status import queue_status
from modeljob.core.scheduling_cycle import QueueOutcome

logger = logging.getLogger(__name__)

Document = Mapping[str, Any]


def queue_config(document: Document) -> QueueConfig:
    """One Queue as the cycle uses it; ValidationError if it cannot be read."""
    name = str((document.get("metadata") or {}).get("name") or "")
    queue = parse_queue(document)
    spec = queue.spec
    preemption = spec.preemption
    min_runtime = parse_duration(preemption.min_runtime or DEFAULT_MIN_RUNTIME).total_seconds()
    rules = PreemptionRules(
        within_queue=WithinQueue(preemption.within_queue.value),
        reclaim_borrowed=preemption.reclaim_borrowed,
        min_runtime_seconds=min_runtime,
        time_slice_seconds=parse_duration(spec.time_slice).total_seconds() if spec.time_slice else None,
    )
    return QueueConfig(spec=spec.to_core(name), order=QueueOrder(spec.order.value), rules=rules)


def queue_configs(documents: Iterable[Document]) -> list[QueueConfig]:
    configs = []
    for document in documents:
        try:
            configs.append(queue_config(document))
        except (ValidationError, ValueError) as exc:
            logger.warning("cannot read Queue %s: %s", (document.get("metadata") or {}).get("name"), exc)
    return configs


def write_statuses(
    gateway: ClusterGateway, queues: Informer[dict[str, Any]], outcome: QueueOutcome, *, now: datetime
) -> int:
    """Each Queue's status, written only where it changed (conditional on its resourceVersion: a
    409 leaves it to the next cycle); how many were written."""
    written = 0
    for document in queues.values():
        meta = document.get("metadata") or {}
        name = str(meta.get("name") or "")
        if name not in outcome.queues.tree.queues:
            continue
        previous = document.get("status") or {}
        status = queue_status(
            name,
            outcome.queues.tree,
            outcome.usage,
            pending=outcome.pending.get(name, 0),
            admitted=outcome.admitted.get(name, 0),
            conditions=previous.get("conditions") or [],
            now=now,
        )
        if all(previous.get(key) == value for key, value in status.items()):
            continue
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": status}
        try:
            queues.observe(gateway.patch_queue_status(name, patch))
            written += 1
        except ClusterError as exc:
            logger.info("Queue %s status not written (%s); next cycle", name, exc)
    return written
