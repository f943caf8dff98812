"""The one Event recorder: every Event about a ModelJob (the scheduling loop's, admission's too) goes here.

Events are posted off the acting path: a job's next step never waits for its Event. Each job's
Events go to one of a few single-threaded posters, chosen by the job, so they are posted in the
order they were recorded while different jobs' Events post side by side. A failed post is
logged, never a failed decision.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from modeljob.adapters import kube_writes
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import ClusterError

logger = logging.getLogger(__name__)

POSTERS = 2
# At most this many Events wait to be posted; more are dropped (their decision is still logged), as
# client-go's event broadcaster queues at most 1,000 (maxQueuedEvents) and drops the rest. A burst
# of decisions (10,000 jobs admitted at once: a Queued Event each) would otherwise keep the API
# server and the posting threads busy for minutes, beside the cycles that place jobs.
MAX_PENDING = 1000
# What the API server's NamespaceLifecycle admission says when refusing anything new in a namespace
# being deleted (a 403 Forbidden, with no RBAC involved).
NAMESPACE_TERMINATING = "because it is being terminated"


class EventRecorder:
    """Logs each decision and posts it as a core/v1 Event on its ModelJob, in the background."""

    def __init__(
        self,
        gateway: ClusterGateway,
        *,
        identity: str,
        clock: Callable[[], datetime],
        max_pending: int = MAX_PENDING,
        on_dropped: Callable[[str], None] = lambda reason: None,
    ) -> None:
        """``on_dropped``: told the reason of each Event dropped because ``max_pending`` wait."""
        self._gateway = gateway
        self._identity = identity
        self._clock = clock
        self._max_pending, self._on_dropped = max_pending, on_dropped
        self._dropping = False  # since the first Event dropped, until the backlog has halved
        self._posters = tuple(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"event-{i}") for i in range(POSTERS)
        )
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def record(self, job: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        meta = job.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        (logger.warning if warning else logger.info)("%s %s: %s", where, reason, message)
        if self._backlogged(reason, where):
            return
        manifest = kube_writes.event_manifest(
            job, warning=warning, reason=reason, message=message, now=self._clock(), instance=self._identity
        )
        try:
            poster = self._posters[zlib.crc32(where.encode()) % POSTERS]  # one job, one poster
            future = poster.submit(self._post, str(meta.get("namespace")), manifest)
        except RuntimeError:  # stopping: the pool takes no more work
            logger.info("not posting event %s on %s: stopping", reason, where)
            return
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._posted)

    def _backlogged(self, reason: str, where: str) -> bool:
        """Whether the Event is dropped: ``max_pending`` are waiting to be posted."""
        with self._lock:
            pending = len(self._pending)
            if self._dropping and pending <= self._max_pending // 2:
                self._dropping = False
            if pending < self._max_pending:
                return False
            first, self._dropping = not self._dropping, True
        if first:
            logger.warning(
                "dropping Events: %d wait to be posted (the API server is behind); decisions are still "
                "logged, one line each (this one: %s %s)",
                pending,
                where,
                reason,
            )
        self._on_dropped(reason)
        return True

    def drain(self, timeout_seconds: float = 10.0) -> None:
        """Wait until the Events recorded so far are posted (tests, and a graceful stop)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout_seconds)

    def stop(self) -> None:
        """Post what was recorded (bounded wait), then take no more."""
        self.drain()
        for poster in self._posters:
            poster.shutdown(wait=False)

    def _posted(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _post(self, namespace: str, manifest: dict[str, Any]) -> None:
        try:
            self._gateway.create_event(namespace, manifest)
        except ClusterError as exc:
            involved = manifest.get("involvedObject") or {}
            if exc.status == 403 and NAMESPACE_TERMINATING in exc.detail:
                # The job goes with its namespace: nobody will read the Event, and it is no RBAC gap.
                logger.debug(
                    "not posting event %s: namespace %s is being deleted", manifest.get("reason"), namespace
                )
                return
            logger.warning(
                "cannot post event %s on %s/%s: %s",
                manifest.get("reason"),
                namespace,
                involved.get("name"),
                exc,
            )
