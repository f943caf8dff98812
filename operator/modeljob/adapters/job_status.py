"""Writing a ModelJob's status as the loop acted on it, and backing off a job whose writes keep failing.

Every write is conditional on the resourceVersion the decision was made from (a 409 means the
job changed: the next cycle looks again) and goes into the watched copy at once (write-through).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import ClusterView, Key
from modeljob.core.status import WaitingWrite, position_off, waiting_write
from modeljob.core.steps import Step, Unschedulable, Wait

JsonObject = dict[str, Any]

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
REASON_REFRESH_SECONDS = 10.0
REFRESHES_PER_SECOND = 5.0  # settings.py, MODELJOB_SCHEDULING__STATUS_REFRESHES_PER_SECOND


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

    def left_alone(self, now: datetime) -> set[str]:
        """The jobs in back-off at ``now``: those whose retry time has not come. Read from the few
        entries kept, not asked of every job (the loop's 15,000) under the lock one by one."""
        with self._lock:
            return {uid for uid, (_, until) in self._failures.items() if now < until}

    def forget_except(self, uids: set[str]) -> None:
        """Drop jobs that no longer exist."""
        with self._lock:
            for uid in set(self._failures) - uids:
                del self._failures[uid]


class ReasonRewrites:
    """Which waiting jobs may have their status refreshed this cycle (core/status.py,
    ``waiting_write``): only the position's number or the reason text changed. Positions shift with
    every placement ahead and reasons name free blocks, so without a budget every queued job would
    be rewritten every cycle (10,000 writes a cycle at 10,000 queued jobs, at the API server's
    50-70 writes/s). Refreshes are granted at ``per_second`` on average, as client-go's token
    bucket limits a client's requests: what a cycle leaves unspent carries over, up to ``burst``
    (``per_second`` x ``every_seconds``), so the rate holds whether cycles are short or long. A
    budget per cycle would not: the shorter the cycles, the more refreshes a second, each of them
    load on the API server the cycles wait on (docs/operator.md). ``begin_cycle`` grants half of
    them to the jobs whose shown position is furthest off (``off``: core/status.py
    ``position_off``), so the heads of a queue, whose positions move the most for what they are,
    are not left to wait their turn behind thousands; the rest to the jobs refreshed longest ago
    (never refreshed first); none to a job written less than ``every_seconds`` ago. A queue of n
    jobs wanting refreshes is refreshed within about 2 n / per_second seconds. Writes that change
    what a job is are not counted here. ``clock``: in seconds (the scheduling loop's own clock)."""

    def __init__(
        self,
        *,
        every_seconds: float = REASON_REFRESH_SECONDS,
        per_second: float = REFRESHES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every_seconds = every_seconds
        self._per_second = per_second
        self.burst = max(1, math.ceil(per_second * every_seconds))
        self._clock = clock
        self._tokens = float(self.burst)  # full at the start, as client-go's bucket
        self._filled_at: float | None = None
        self._odd_to_position = 0  # which half an odd grant goes to next (1: by position)
        self._written: dict[str, float] = {}  # job uid -> when its status was last written (clock s)
        self._granted: frozenset[str] = frozenset()
        self._lock = threading.Lock()  # waiting writes land beside the next cycle's begin_cycle

    def begin_cycle(
        self,
        *,
        waiting: Iterable[str],
        stale: Iterable[str],
        limit: int | None = None,
        off: Mapping[str, float] | None = None,
    ) -> frozenset[str]:
        """Grant this cycle's refreshes among ``stale`` (waiting jobs whose status would be
        refreshed): as many as the bucket holds, at most ``limit``, half of them by how far off
        each one's shown position is (``off``, by uid; none given: all by age); forget jobs no
        longer ``waiting`` (one waiting again is written at once, as a change of phase). Returns
        the jobs granted."""
        keep = set(waiting)
        with self._lock:
            self._written = written = {uid: at for uid, at in self._written.items() if uid in keep}
        now = self._clock()
        if self._filled_at is not None:  # a clock set back adds nothing
            refill = max(0.0, now - self._filled_at) * self._per_second
            self._tokens = min(float(self.burst), self._tokens + refill)
        self._filled_at = now
        budget = int(self._tokens) if limit is None else min(int(self._tokens), max(0, limit))
        due_before = now - self._every_seconds

        def longest_ago(uid: str) -> tuple[float, str]:
            return (written.get(uid, -math.inf), uid)

        due = [uid for uid in stale if written.get(uid, -math.inf) <= due_before]
        shown_off = off or {}
        moved = {uid: found for uid in due if (found := shown_off.get(uid, 0.0)) > 0}
        # Half by how far off; an odd grant to each half in turn, so a budget of one a cycle (short
        # cycles, a low rate, writes pending) still reaches the jobs whose position did not move.
        half = (budget + self._odd_to_position) // 2
        self._odd_to_position ^= budget & 1
        # A few dozen picked from up to the whole queue each cycle: selected, not sorted (the keys
        # end in the uid, so the pick is sorted()[:n]'s). Only jobs at least as far off as the
        # half-th furthest can be among the furthest: found by comparing the numbers alone, so the
        # whole key is made for those few, not for 10,000 jobs a cycle.
        cut = min(heapq.nlargest(half, moved.values()), default=math.inf)
        near = [uid for uid, found in moved.items() if found >= cut]
        furthest = heapq.nsmallest(half, near, key=lambda uid: (-moved[uid], *longest_ago(uid)))
        chosen = set(furthest)
        left = budget - len(furthest)
        # the keys listed, then selected as plain tuples
        by_age = [longest_ago(uid) for uid in due if uid not in chosen] if left else []
        rest = [uid for _, uid in heapq.nsmallest(left, by_age)]
        self._granted = frozenset([*furthest, *rest])
        self._tokens -= len(self._granted)
        return self._granted

    def grant(
        self,
        writes: Mapping[str, WaitingWrite],
        off: Mapping[str, float],
        *,
        skip: Collection[str],
        pending: int,
    ) -> frozenset[str]:
        """The scheduling loop's ``begin_cycle``: ``writes`` and ``off`` as ``waiting_writes``
        gives them; the jobs in ``skip`` take no refresh; the ``pending`` waiting writes that have
        not landed yet take their share of the burst (the API server is behind, and more would
        queue)."""
        stale = [uid for uid, write in writes.items() if write is WaitingWrite.REFRESH and uid not in skip]
        room = max(0, self.burst - pending)
        return self.begin_cycle(waiting=writes.keys(), stale=stale, limit=room, off=off)

    def allowed(self, uid: str) -> bool:
        """Whether this cycle may refresh the job's status (``begin_cycle`` granted it)."""
        return uid in self._granted

    def written(self, uid: str) -> None:
        """The job's waiting status was written (a change or a refresh): it is current now."""
        with self._lock:
            self._written[uid] = self._clock()


_WAITING = (Wait, Unschedulable)


def waiting_writes(
    steps: Iterable[Step], documents: Mapping[Key, Mapping[str, Any]]
) -> tuple[dict[str, WaitingWrite], dict[str, float]]:
    """What each waiting job's step would write over the status its document shows (core/status.py
    ``waiting_write``), by uid in the steps' order; and how far off the shown position of each
    refresh is (``position_off``)."""
    writes: dict[str, WaitingWrite] = {}
    off: dict[str, float] = {}
    refresh = WaitingWrite.REFRESH
    for step in steps:  # a deep queue's every job, each cycle: kept to plain lookups
        if isinstance(step, _WAITING):
            job = step.job
            shown = documents[job.key].get("status") or {}
            writes[job.uid] = write = waiting_write(step, shown)
            if write is refresh:
                off[job.uid] = position_off(step, shown)
    return writes, off
