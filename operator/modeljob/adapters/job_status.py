"""Writing a ModelJob's status as the loop acted on it, and backing off a job whose writes keep failing.

Every write is conditional on the resourceVersion the decision was made from (a 409 means the
job changed: the next cycle looks again) and goes into the watched copy at once (write-through).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from modeljob.adapters.cluster import ClusterError, ClusterGateway
from modeljob.adapters.cluster_view import ClusterView

JsonObject = dict[str, Any]

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
REASON_REFRESH_SECONDS = 10.0
REMEMBERED_JOBS = 10_000  # past this many, ReasonRewrites starts over (at worst, one early rewrite each)


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
        cluster (pods bound, pods deleted). If something else wrote the job meanwhile (its owner's
        labels or annotations, a new generation admitted) and its placement is still the one acted
        on (and, with ``same_generation``, its spec too), write it on the current version rather
        than leave the next cycle to guess from the pods what happened, and why."""
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
    """Per job: after n failed steps in a row (a write refused with an error, pods that could not be
    bound), the job is left alone for first * 2^(n-1) seconds (at most ``max_seconds``), so a
    write that keeps failing does not hammer the API server. A step that goes through resets it."""

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

    def seconds_to_next_retry(self, now: datetime) -> float | None:
        """How long until the first job in back-off may be tried again (None: no job is)."""
        with self._lock:
            retries = [retry for _, retry in self._failures.values()]
        return max(0.0, (min(retries) - now).total_seconds()) if retries else None

    def succeeded(self, uid: str) -> None:
        """A step of the job went through: the next failure starts the back-off afresh."""
        with self._lock:
            self._failures.pop(uid, None)

    def forget_except(self, uids: set[str]) -> None:
        """Drop jobs that no longer exist."""
        with self._lock:
            for uid in set(self._failures) - uids:
                del self._failures[uid]


class ReasonRewrites:
    """When each waiting job's reason was last written. The reason names free blocks, which change
    with every pod in the cluster, so it is rewritten at most every ``every_seconds`` unless the
    job moved in the queue (core/status.py decides with the ``refresh`` flag this gives)."""

    def __init__(
        self, *, every_seconds: float = REASON_REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_seconds = every_seconds
        self._clock = clock
        self._written: dict[str, float] = {}  # job uid -> when (clock seconds)

    def due(self, uid: str) -> bool:
        last = self._written.get(uid)
        return last is None or self._clock() - last >= self._every_seconds

    def written(self, uid: str) -> None:
        if len(self._written) > REMEMBERED_JOBS:
            self._written.clear()
        self._written[uid] = self._clock()
