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
# What the API server's NamespaceLifecycle admission says when refusing anything new in a namespace
# being deleted (a 403 Forbidden, with no RBAC involved).
NAMESPACE_TERMINATING = "because it is being terminated"


class EventRecorder:
    """Logs each decision and posts it as a core/v1 Event on its ModelJob, in the background."""

    def __init__(self, gateway: ClusterGateway, *, identity: str, clock: Callable[[], datetime]) -> None:
        self._gateway = gateway
        self._identity = identity
        self._clock = clock
        self._posters = tuple(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"event-{i}") for i in range(POSTERS)
        )
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def record(self, job: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        meta = job.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        (logger.warning if warning else logger.info)("%s %s: %s", where, reason, message)
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
