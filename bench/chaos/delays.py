"""How long the well-formed jobs wait to be placed, in the operator's own scheduling cycles (the
issue's "no well-formed job is delayed by more than one cycle" by hostile input mixed into its
queues).

The clock is the cycle count of the replicas' /metrics histogram (only the leader runs cycles;
each replica process counts from 0, so the total is the sum of each process's largest count seen,
read every half second and at each measuring moment). A job's delay is the number of cycles that
completed between the moment just before its creation and the moment its first placement is seen
on the ModelJob watch. A job placed by the first cycle that saw it counts 0 to 2 there (the cycle
in flight at its creation, which may have read the cluster before it existed, and the placing
cycle itself once it has recorded); so a count of N means it missed at least N - 2 cycles. Jobs
whose waiting reason names a hostile job were held by one outright, whatever the count."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.env import NAMESPACE
from failover import Replicas

from tests.cluster import sample_sum

CYCLE = "modeljob_scheduling_cycle_duration_seconds"
BUCKET = re.compile(rf'^{CYCLE}_bucket{{le="([^"]+)"}} (\S+)$', re.MULTILINE)
HOSTILE_PREFIX = "hostile-"


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
    """Each well-formed job's creation and first placement, in seconds and in cycles."""

    clock: CycleClock
    created: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (monotonic, cycles)
    placed: dict[str, tuple[float, float]] = field(default_factory=dict)
    waited: dict[str, str] = field(default_factory=dict)  # name -> its first waiting reason
    held_by_hostile: dict[str, str] = field(default_factory=dict)

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
            if HOSTILE_PREFIX in message:
                self.held_by_hostile.setdefault(name, message)

    def summary(self) -> dict[str, Any]:
        prompt = [n for n in self.placed if n not in self.waited]
        cycles = {n: self.placed[n][1] - self.created[n][1] for n in prompt}
        seconds = {n: self.placed[n][0] - self.created[n][0] for n in prompt}
        worst = max(cycles, key=lambda n: cycles[n], default=None)
        count, mean, p99 = self.clock.durations()
        return {
            "created": len(self.created),
            "placed": len(self.placed),
            "placed_first": len(prompt),
            "waited": len(self.placed) - len(prompt),
            "worst_cycles": cycles[worst] if worst else 0.0,
            "worst_job": worst or "none",
            "median_seconds": statistics.median(seconds.values()) if seconds else 0.0,
            "worst_seconds": max(seconds.values(), default=0.0),
            "held_by_hostile": sorted(f"{n}: {m}" for n, m in self.held_by_hostile.items()),
            "cycles": count,
            "cycle_mean_seconds": mean,
            "cycle_p99_bucket": p99,
        }
