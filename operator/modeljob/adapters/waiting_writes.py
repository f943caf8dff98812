"""Waiting jobs' status writes, off the scheduling cycle's path.

A job that waits (Queued with its position, or Unschedulable, and why) is written so `kubectl get`
tells its user where it stands; no later decision reads that write back. A deep queue has many
of them: every job that arrives is admitted with one, and positions move with every placement.
At the API server's 20-70 writes a second on a small control plane, waiting for them made the
cycle itself take seconds (docs/benchmarks.md, "Deep queue (control plane)"). So the loop hands
them here and plans on; decisions (plans, pods, roll-backs, preemption) are still written before
the cycle ends. kube-scheduler binds off its scheduling cycle, and Kueue's scheduler writes even
its admissions off its own (``Scheduler.admit``: assumed in its cache, written by the admission
routine), for the same reason.

One write per job at a time: a job with a write pending is not handed another until it is done
(the next cycle then sees it, written through into the watched copy). Every write stays
conditional on the resourceVersion it was decided from, so a write that lands after the job
changed is refused (409) and the next cycle looks again. A step that decides something for a job
cancels the job's waiting write if it has not started (the step writes the job itself), and waits
for the next cycle if it has.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor


class WaitingWrites:
    """A pool for waiting jobs' status writes, and which jobs have one pending."""

    def __init__(self, *, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="waiting-write")
        self._pending: dict[str, Future[None]] = {}  # job uid -> its write, queued or under way
        self._escaped: BaseException | None = None  # the first a write did not handle, for ``settle``
        self._lock = threading.Lock()

    def pending(self, uid: str) -> bool:
        with self._lock:
            return uid in self._pending

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def submit(self, uid: str, write: Callable[[], None]) -> bool:
        """Start ``write`` (which handles its own errors) for the job; False if one is pending."""
        with self._lock:
            if uid in self._pending:
                return False
            future = self._pool.submit(write)
            self._pending[uid] = future
        future.add_done_callback(lambda done: self._forget(uid, done))
        return True

    def cancel(self, uid: str) -> bool:
        """Drop the job's write if it has not started (a step that decides for the job writes the
        job itself); False if one is under way: that step waits for the next cycle, which sees
        what the write left, rather than race it (two writes of one job at once, one refused)."""
        with self._lock:
            future = self._pending.get(uid)
        return future is None or future.cancel() or future.done()  # a cancelled one is forgotten

    def settle(self) -> None:
        """Wait until every write pending now is done (tests driving one cycle at a time). A write
        handles its own errors; what escapes it (a BaseException) is raised here."""
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            with contextlib.suppress(CancelledError):
                future.exception()  # waits
        with self._lock:
            escaped, self._escaped = self._escaped, None
        if escaped is not None:
            raise escaped

    def stop(self) -> None:
        """Writes not started are dropped: the next leader's cycles write what is still true."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _forget(self, uid: str, done: Future[None]) -> None:
        escaped = None if done.cancelled() else done.exception()
        with self._lock:
            if self._pending.get(uid) is done:
                del self._pending[uid]
            if escaped is not None and self._escaped is None:
                self._escaped = escaped
