"""How long the well-formed jobs wait to be placed, in the operator's own scheduling cycles (the
issue's "no well-formed job is delayed by more than one cycle" by hostile input mixed into its
queues).

Which jobs the operator left waiting is read from its own decisions: each new placement's
Scheduled Event names the scheduling attempt that made it and the reason the job was last given
while it waited (core/attempts.py), whether or not that waiting status was ever written; a
Preempting Event before it says the job waited for its victims. A job is also taken as having
waited when the watch saw it waiting. The Events are listed once, at the end of the soak; each
job's first Scheduled Event is the one read (by time, then resourceVersion). A leader counts
attempts from its own cycles, so a job another leader left waiting (its waiting write dropped)
may read as placed at its first attempt: that count is a lower bound on the cycles that passed it
over.

The clock is the cycle count of the replicas' /metrics histogram (only the leader runs cycles;
each replica process counts from 0, so the total is the sum of each process's largest count seen,
read every half second and at each measuring moment). For a job placed at its first attempt, the
count is the number of cycles that completed between the moment just before its creation and the
moment its placement is seen on the ModelJob watch: the cycle in flight at its creation (which may
have read the cluster before it existed), the cycles that ran while the watch brought it to the
leader, the placing cycle once it has recorded, and those that ran while its plan's write and
binding landed beside them. Jobs whose waiting reason names a hostile job were held by one
outright, whatever the count."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.env import NAMESPACE
from failover import Replicas

from tests.cluster import sample_sum

CYCLE = "modeljob_scheduling_cycle_duration_seconds"
BUCKET = re.compile(rf'^{CYCLE}_bucket{{le="([^"]+)"}} (\S+)$', re.MULTILINE)
HOSTILE_PREFIX = "hostile-"
# The Scheduled Event's clause (core/attempts.py, attempt_said), before the placement's own account.
ATTEMPT = re.compile(
    r"placed at (?:its first scheduling attempt|scheduling attempt (\d+), after \d+ cycles? left it waiting"
    r"(?: \(the last: (.*?)\))?)(?:; planned on |$)",
    re.S,
)


class CycleClock:
    """Cycles run so far by all the replica processes together, and their durations."""

    def __init__(self, replicas: Replicas) -> None:
        self.replicas = replicas
        self.lock = threading.Lock()
        self._count: dict[int, float] = {}
        self._sum: dict[int, float] = {}
        self._buckets: dict[int, dict[str, float]] = {}

    def read(self) -> float:
        for running in list(self.replicas.running.values()):
            try:
                text = running.metrics()
            except Exception:  # killed or restarting: its last count read stands
                continue
            pid = running.process.pid
            with self.lock:
                self._count[pid] = max(self._count.get(pid, 0.0), sample_sum(text, f"{CYCLE}_count"))
                self._sum[pid] = max(self._sum.get(pid, 0.0), sample_sum(text, f"{CYCLE}_sum"))
                self._buckets[pid] = {le: float(v) for le, v in BUCKET.findall(text)}
        with self.lock:
            return sum(self._count.values())

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            self.read()

    def durations(self) -> tuple[float, float, str]:
        """(cycles, mean seconds, the histogram bucket holding the 99th percentile)."""
        with self.lock:
            count, total = sum(self._count.values()), sum(self._sum.values())
            merged: dict[str, float] = {}
            for buckets in self._buckets.values():
                for le, value in buckets.items():
                    merged[le] = merged.get(le, 0.0) + value
        bounds = sorted(merged.items(), key=lambda item: float(item[0]))
        top = bounds[-1][1] if bounds else 0.0
        p99 = next((le for le, value in bounds if top and value >= 0.99 * top), "?")
        return count, (total / count if count else 0.0), p99


@dataclass
class Delays:
    """Each well-formed job's creation and first placement, in seconds and in cycles, and what the
    operator decided for it while it waited."""

    clock: CycleClock
    created: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (monotonic, cycles)
    placed: dict[str, tuple[float, float]] = field(default_factory=dict)
    waited: dict[str, str] = field(default_factory=dict)  # name -> its first waiting reason seen
    held_by_hostile: dict[str, str] = field(default_factory=dict)
    # name -> the attempt its first Scheduled Event names (None: it names none)
    attempts: dict[str, int | None] = field(default_factory=dict)
    waited_for: dict[str, str] = field(default_factory=dict)  # name -> what it last waited for (Events)

    def creating(self, name: str) -> None:
        """Just before the job's create call."""
        self.created[name] = (time.monotonic(), self.clock.read())

    def on_job(self, job: Mapping[str, Any]) -> None:
        meta, status = job.get("metadata") or {}, job.get("status") or {}
        name = str(meta.get("name"))
        if meta.get("namespace") != NAMESPACE or name not in self.created or name in self.placed:
            return
        if status.get("placement"):
            self.placed[name] = (time.monotonic(), self.clock.read())
            return
        message = str(status.get("message") or "")
        if message and status.get("phase") in ("Queued", "Unschedulable"):
            self.waited.setdefault(name, message)
            self._held(name, message)

    def on_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """The operator's Events in the soak's namespace: each job's first Scheduled one (its
        attempt, what it waited for; None where it says no attempt, as an interrupted binding's),
        and its Preempting ones up to that (it waited for victims)."""
        ordered = sorted(events, key=_when)
        scheduled: dict[str, tuple[str, int]] = {}
        for event in ordered:
            name = str((event.get("involvedObject") or {}).get("name"))
            if name not in self.created or event.get("reason") != "Scheduled" or name in scheduled:
                continue
            scheduled[name] = _when(event)
            found = ATTEMPT.search(str(event.get("message") or ""))
            self.attempts[name] = None if found is None else int(found.group(1) or 1)
            if found is not None and found.group(2):
                self.waited_for[name] = found.group(2)
                self._held(name, found.group(2))
        for event in ordered:
            name = str((event.get("involvedObject") or {}).get("name"))
            if name not in self.created or event.get("reason") != "Preempting":
                continue
            if name in scheduled and _when(event) > scheduled[name]:
                continue  # for a later placement (requeued after its first)
            message = str(event.get("message") or "")
            self.waited_for.setdefault(name, message)  # "preempting chaos/x (ReclaimBorrowed) ..."
            self._held(name, message)

    def _held(self, name: str, message: str) -> None:
        if HOSTILE_PREFIX in message:
            self.held_by_hostile.setdefault(name, message)

    def summary(self) -> dict[str, Any]:
        decided_waiting = {
            n
            for n in self.placed
            if n in self.waited or n in self.waited_for or (self.attempts.get(n) or 1) > 1
        }
        first = [n for n in self.placed if n not in decided_waiting and self.attempts.get(n) == 1]
        cycles = {n: self.placed[n][1] - self.created[n][1] for n in first}
        seconds = {n: self.placed[n][0] - self.created[n][0] for n in first}
        worst = max(cycles, key=lambda n: cycles[n], default=None)
        count, mean, p99 = self.clock.durations()
        kinds = Counter(_kind(self.waited_for.get(n) or self.waited.get(n, "")) for n in decided_waiting)
        return {
            "created": len(self.created),
            "placed": len(self.placed),
            "placed_first": len(first),
            "waited": len(decided_waiting),
            "no_event": sorted(n for n in self.placed if n not in decided_waiting and n not in first),
            "waited_for": dict(kinds.most_common()),
            "worst_cycles": cycles[worst] if worst else 0.0,
            "worst_job": worst or "none",
            "median_seconds": statistics.median(seconds.values()) if seconds else 0.0,
            "worst_seconds": max(seconds.values(), default=0.0),
            "held_by_hostile": sorted(f"{n}: {m}" for n, m in self.held_by_hostile.items()),
            "cycles": count,
            "cycle_mean_seconds": mean,
            "cycle_p99_bucket": p99,
        }


def _when(event: Mapping[str, Any]) -> tuple[str, int]:
    """An Event's time (whole seconds), then its resourceVersion: the order the API server wrote them."""
    version = str((event.get("metadata") or {}).get("resourceVersion") or "0")
    stamp = str(event.get("firstTimestamp") or event.get("eventTime") or "")
    return stamp, int(version) if version.isdigit() else 0


# What a waiting reason waited for, by how core/quota_status.py, core/cycle_queue.py and
# core/preemption_status.py begin it.
_KINDS = (
    ("preempting ", "its victims (preempting)"),
    ("waiting for room", "room"),
    ("waiting behind ", "a job ahead (strict queue order)"),
    ("the job can never fit", "nodes that fit (unschedulable)"),
)


def _kind(reason: str) -> str:
    """What a waiting reason waited for: room, quota, a job ahead of it, a preemption's victims."""
    for start, kind in _KINDS:
        if reason.startswith(start):
            return kind
    if reason.startswith("queue "):  # "queue chaos-a: needs ...", "queue chaos-a: behind x, which waits ..."
        return "quota, behind a job waiting for it" if ": behind " in reason else "quota"
    return "unknown"
