"""The invariant checker: watches of pods, ModelJobs and nodes keep a copy of the cluster, and every
pod or ModelJob event runs the invariants (bench/chaos/invariants.py) on it, so a violation that
lasts one event is seen. A watch resumes from its last resourceVersion (the API server replays what
it missed), lists again on 410 Gone and checks right after; the report says how often it had to,
and the longest time a watch was down (a restart): only then can a state go unseen."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.env import Api, log
from bench.chaos.invariants import Snapshot, duplicates, over_quota, overcommitted, partly_bound

from modeljob.adapters.cluster import Watched
from modeljob.adapters.cluster_errors import ClusterError

# A leader SIGKILLed mid-bind leaves a gang partly bound until the standby takes the Lease over
# (at most one lease duration) and finishes or undoes it in its next cycle; an API server restart
# in between adds its own downtime. 90 s covers both on this 2-core machine with room to spare.
# The same bound holds a rolling update's old pod that outlives the update's end (its deletion
# comes just after the status write, or from the next leader).
IN_FLIGHT_LIMIT_SECONDS = 90.0
WATCH_SECONDS = 15  # the server ends each watch after this; it is resumed at once (so stop() joins soon)
Json = dict[str, Any]


@dataclass
class Checker:
    """Runs the invariants on each view it is given; violations are kept, each once."""

    violations: list[str] = field(default_factory=list)
    checks: int = 0
    longest_half_bound_seconds: float = 0.0
    half_bound_seen: int = 0
    longest_lingering_seconds: float = 0.0
    queue_of: dict[str, str] = field(default_factory=dict)  # job uid -> queue, deleted jobs too
    _since: dict[tuple[str, tuple[str, str]], float] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def violate(self, text: str) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.violations.append(text)
            log(f"VIOLATION: {text}")

    def check(self, snapshot: Snapshot, *, at_rest: bool = False, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for job in snapshot.jobs:
            scheduling = (job.get("spec") or {}).get("scheduling") or {}
            self.queue_of[str(job["metadata"].get("uid"))] = str(scheduling.get("queue", "default"))
        doubled, lingering = duplicates(snapshot)
        for text in overcommitted(snapshot) + doubled + over_quota(snapshot, self.queue_of):
            self.violate(text)
        half = partly_bound(snapshot)
        self.half_bound_seen += len({("half", k) for k in half} - set(self._since))
        in_flight = {("half", k): t for k, t in half.items()} | {
            ("linger", k): t for k, t in lingering.items()
        }
        for key, text in in_flight.items():
            since = self._since.setdefault(key, now)
            if key[0] == "half":
                self.longest_half_bound_seconds = max(self.longest_half_bound_seconds, now - since)
            else:
                self.longest_lingering_seconds = max(self.longest_lingering_seconds, now - since)
            if now - since > IN_FLIGHT_LIMIT_SECONDS:
                self.violate(f"for over {IN_FLIGHT_LIMIT_SECONDS:.0f} s: {self._what(key[0], text)}")
            if at_rest:
                self.violate(f"at rest: {self._what(key[0], text)}")
        self._since = {k: v for k, v in self._since.items() if k in in_flight}
        self.checks += 1

    @staticmethod
    def _what(kind: str, text: str) -> str:
        return f"partly bound: {text}" if kind == "half" else text


@dataclass
class WatchStats:
    """How the watches fared: events checked, lists after 410 Gone, how long one was down."""

    events: Counter[str] = field(default_factory=Counter)
    relists: Counter[str] = field(default_factory=Counter)
    breaks: Counter[str] = field(default_factory=Counter)
    longest_gap_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


class Watcher:
    """Keeps a copy of pods, ModelJobs and nodes by watching them, and runs ``checker`` under one
    lock on every pod and ModelJob event (and after every list); ``on_job`` sees each ModelJob
    event as it comes (the delay measurement)."""

    def __init__(
        self,
        checker: Checker,
        on_job: Callable[[Json], None] | None = None,
        gateway: Callable[[], Any] = lambda: Api().gateway,
    ) -> None:
        """``gateway`` makes each watch thread's client (list_collection, watch_collection)."""
        self.checker, self.on_job, self.gateway = checker, on_job, gateway
        self.stats = WatchStats()
        self.items: dict[Watched, dict[tuple[str, str], Json]] = {k: {} for k in KINDS}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """List every kind first (so no event is checked against a kind not listed yet), then
        follow each in its own thread from its list's resourceVersion."""
        gateway = self.gateway()
        versions = {kind: self._relist(gateway, kind) for kind in KINDS}
        for kind in KINDS:
            thread = threading.Thread(
                target=self._follow, args=(kind, versions[kind]), name=f"watch-{kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the watches and wait for their threads, so nothing checks after this returns."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_SECONDS + 45)
            if thread.is_alive():
                self.stats.errors.append(f"{thread.name} did not stop")

    def snapshot(self) -> Snapshot:
        return Snapshot(*(list(self.items[k].values()) for k in KINDS))

    def _check(self) -> None:
        self.checker.check(self.snapshot())

    def _follow(self, kind: Watched, version: str | None) -> None:
        gateway = self.gateway()
        down_since: float | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._relist(gateway, kind)
                    if down_since is not None:
                        self._gap(down_since)
                        down_since = None
                for event, obj in gateway.watch_collection(
                    kind, resource_version=version, timeout_seconds=WATCH_SECONDS
                ):
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if down_since is not None:
                        self._gap(down_since)
                        down_since = None
                    if event != "BOOKMARK":
                        self._apply(kind, event, obj)
                    if self._stop.is_set():
                        return
            except (ClusterError, TimeoutError) as exc:
                if getattr(exc, "status", None) == 410:
                    version = None  # too old: list again, then check what the list shows
                else:
                    self.stats.breaks[kind.value] += 1
                    down_since = time.monotonic() if down_since is None else down_since
                    self._stop.wait(0.5)
            except Exception as exc:  # a checker that dies silently would pass the run
                self.stats.errors.append(f"watch {kind.value}: {type(exc).__name__}: {str(exc)[:200]}")
                log(f"checker: {self.stats.errors[-1]}")
                version = None
                self._stop.wait(1.0)
            else:
                if down_since is not None:  # the stream came back and ended quietly
                    self._gap(down_since)
                    down_since = None

    def _gap(self, since: float) -> None:
        self.stats.longest_gap_seconds = max(self.stats.longest_gap_seconds, time.monotonic() - since)

    def _relist(self, gateway: Any, kind: Watched) -> str:
        items, version = gateway.list_collection(kind)
        with self.lock:
            self.items[kind] = {_key(o): o for o in items}
            self.stats.relists[kind.value] += 1
            self._check()
        return version

    def _apply(self, kind: Watched, event: str, obj: Json) -> None:
        with self.lock:
            if event == "DELETED":
                self.items[kind].pop(_key(obj), None)
            else:
                self.items[kind][_key(obj)] = obj
            self.stats.events[kind.value] += 1
            if kind is not Watched.NODES:
                self._check()
        if kind is Watched.MODELJOBS and self.on_job is not None:
            self.on_job(obj)


KINDS = (Watched.MODELJOBS, Watched.PODS, Watched.NODES)  # Snapshot's field order


def _key(obj: Json) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))
