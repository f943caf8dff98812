"""Writing a ModelJob's status as the loop acted on it, and backing off a job whose writes keep failing.

Every write is conditional on the resourceVersion the decision was made from (a 409 means the
job changed: the next cycle looks again) and goes into the watched copy at once (write-through).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from modeljob.adapters.cluster import ClusterError, ClusterGateway
from modeljob.adapters.cluster_view import ClusterView

JsonObject = dict[str, Any]

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0


class StatusWriter:
    def __init__(self, gateway: ClusterGateway, view: ClusterView) -> None:
        self._gateway = gateway
        self._view = view

    def patch(self, job: Mapping[str, Any], status: Mapping[str, object]) -> JsonObject:
        """Conditional status patch: fails with 409 if the job changed since ``job``."""
        meta = job.get("metadata") or {}
        reply = self._gateway.patch_modeljob_status(
            str(meta.get("namespace")),
            str(meta.get("name")),
            {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": dict(status)},
        )
        self._view.jobs.observe(reply)
        return reply

    def patch_through(
        self,
        job: Mapping[str, Any],
        build: Callable[[Mapping[str, Any]], Mapping[str, object]],
        *,
        same_generation: bool,
    ) -> JsonObject:
        """Write what ``build`` makes of the job's status after an act that already changed the
        cluster (pods bound, pods deleted). If something else wrote the job meanwhile (kopf's
        annotations, a new generation admitted) and its placement is still the one acted on (and,
        with ``same_generation``, its spec too), write it on the current version rather than leave
        the next cycle to guess from the pods what happened, and why."""
        try:
            return self.patch(job, build(job.get("status") or {}))
        except ClusterError as exc:
            if exc.status != 409:
                raise
            meta = job.get("metadata") or {}
            current = self._gateway.read_modeljob(str(meta.get("namespace")), str(meta.get("name")))
            placement = (job.get("status") or {}).get("placement")
            if (current.get("status") or {}).get("placement") != placement or (
                same_generation
                and (current.get("metadata") or {}).get("generation") != meta.get("generation")
            ):
                raise
            return self.patch(current, build(current.get("status") or {}))


class WriteBackoff:
    """Per job: after n failed writes in a row, the job is left alone for first * 2^(n-1) seconds
    (at most ``max_seconds``), so a write that keeps failing does not hammer the API server."""

    def __init__(
        self, *, first_seconds: float = BACKOFF_FIRST_SECONDS, max_seconds: float = BACKOFF_MAX_SECONDS
    ) -> None:
        self._first_seconds = first_seconds
        self._max_seconds = max_seconds
        self._failures: dict[str, tuple[int, datetime]] = {}  # job uid -> (failures in a row, retry at)
        self._lock = threading.Lock()

    def ready(self, uid: str, now: datetime) -> bool:
        with self._lock:
            entry = self._failures.get(uid)
        return entry is None or now >= entry[1]

    def failed(self, uid: str, now: datetime) -> float:
        """Count one more failure; returns how many seconds the job is now left alone."""
        with self._lock:
            count = self._failures.get(uid, (0, now))[0] + 1
            delay = min(self._max_seconds, self._first_seconds * 2.0 ** (count - 1))
            self._failures[uid] = (count, now + timedelta(seconds=delay))
        return delay

    def succeeded(self, uid: str) -> None:
        with self._lock:
            self._failures.pop(uid, None)

    def forget_except(self, uids: set[str]) -> None:
        """Drop jobs that no longer exist."""
        with self._lock:
            for uid in set(self._failures) - uids:
                del self._failures[uid]
