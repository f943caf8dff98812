"""Waiting jobs' status writes, off the scheduling cycle's path.

A job that waits (Queued with its position, or Unschedulable, and why) is written so `kubectl get`
tells its user where it stands; no later decision depends on that write (until an admission lands,
the loop recalls the job's judgement each cycle and carries it again). A deep queue has many
of them: every job that arrives is admitted with one, and positions move with every placement.
At the API server's 20-70 writes a second on a small control plane, waiting for them made the
first cycle over 10,000 new jobs take 95 s (docs/benchmarks.md, "Deep queue (control plane)"),
and every cycle wait for the API server rather than plan. So the loop hands
them here and plans on; other decisions (pods, roll-backs, preemption) are still written before
the cycle ends. kube-scheduler binds off its scheduling cycle, and Kueue's scheduler writes even
its admissions off its own (``Scheduler.admit``: assumed in its cache, written by the admission
routine), for the same reason.

The loop keeps three more pools of the same kind (adapters/handed_writes.py): one writes
placements' plans and one running jobs' new phases, both read as written by the next cycles
meanwhile (adapters/assumed_writes.py); the third creates and binds a placement's pods once its
plan has landed and marks the job Scheduled, as kube-scheduler's binding cycle does
(docs/operator.md, "Keeping decisions safe").

One write per job at a time: a job with a write pending is not handed another until it is done
(the next cycle then sees it, written through into the watched copy). Every write stays
conditional on the resourceVersion it was decided from, so a write that lands after the job
changed is refused (409) and the next cycle looks again. A job whose write was pending when the
cycle took its snapshot is acted on by a later cycle, which sees what the write left; except that a
step deciding something for it drops its write if that has not started (the step writes the job
itself).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor


class WaitingWrites:
    """A pool for waiting jobs' status writes, and which jobs have one pending."""

    def __init__(self, *, workers: int, name: str, done: Callable[[], None] | None = None) -> None:
        """``name``: its threads' (in logs); ``done``: called after each write is done and its job
        no longer pending."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._done = done
        self._pending: dict[str, Future[None]] = {}  # job uid -> its write, queued or under way
        self._escaped: BaseException | None = None  # the first a write did not handle, for ``settle``
        self._lock = threading.Lock()

    def pending(self) -> frozenset[str]:
        """The jobs with a write pending now. The loop reads this before its snapshot: a job whose
        write lands after that is acted on by the next cycle, which sees what the write left
        (acting on the snapshot's older version would only be refused)."""
        with self._lock:
            return frozenset(self._pending)

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
        """Drop the job's write if it has not started: True if so (a step that decides for the job
        then writes the job itself, on the version the write would have changed). False if it is
        under way or done: that step waits for the next cycle, rather than race it or act on the
        version it replaced."""
        with self._lock:
            future = self._pending.get(uid)
        return future is not None and future.cancel()  # a cancelled one is forgotten

    def drop_queued(self) -> None:
        """Drop every write not started (this replica stopped leading: the leader writes what is
        true now); those under way finish, fenced (adapters/lease.py)."""
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            future.cancel()

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

    def stop(self, *, wait_seconds: float) -> None:
        """Drop the writes not started (the next leader's cycles write what is still true) and wait
        up to ``wait_seconds`` for those under way, so that nothing this replica decided lands
        after it gives up the Lease (each is one API call, under the client's own timeout)."""
        with self._lock:
            futures = list(self._pending.values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        concurrent.futures.wait(futures, timeout=wait_seconds)

    def _forget(self, uid: str, done: Future[None]) -> None:
        escaped = None if done.cancelled() else done.exception()
        with self._lock:
            if self._pending.get(uid) is done:
                del self._pending[uid]
            if escaped is not None and self._escaped is None:
                self._escaped = escaped
        if self._done is not None:
            self._done()
