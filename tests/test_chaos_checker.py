"""The chaos soak's watching checker sees every event and says where it could not (resume, 410,
gaps), its stop joins the watches, the delay measure counts cycles, and the report's counts are
the soak's own (bench/chaos/checker.py, delays.py, report.py)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from typing import Any

from bench.chaos.__main__ import arguments
from bench.chaos.checker import Checker, Watcher, WatchStats
from bench.chaos.delays import Delays
from bench.chaos.hostile import HOSTILE_QUEUES
from bench.chaos.report import Result, render

from modeljob.adapters.cluster import Watched
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.core.job_state import Placed
from modeljob.core.status import scheduled_event
from tests.core.test_status import _place
from tests.test_chaos_invariants import job, node, pod

# --- the watching checker ------------------------------------------------------------------------


class Gateway:
    """A scripted API server: each list of a kind gives the next of ``lists``; each watch the next
    of ``watches`` (events, or an error to raise); ``drained`` is set once every pod watch is spent."""

    def __init__(self, lists: dict[Watched, list[Any]], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.versions: list[str] = []
        self.drained = threading.Event()

    def list_collection(self, kind: Watched) -> tuple[list[dict[str, Any]], str]:
        scripted = self.lists.get(kind) or [([], "1")]
        return scripted.pop(0) if len(scripted) > 1 else scripted[0]

    def watch_collection(self, kind: Watched, *, resource_version: str, timeout_seconds: int) -> Any:
        if kind is not Watched.PODS:
            return iter(())
        self.versions.append(resource_version)
        if not self.watches:
            self.drained.set()
            return iter(())
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return iter(step)


def event(kind: str, one: dict[str, Any], version: str) -> tuple[str, dict[str, Any]]:
    one["metadata"]["resourceVersion"] = version
    return kind, one


def watched(gateway: Gateway) -> tuple[Checker, WatchStats]:
    checker = Checker()
    watcher = Watcher(checker, gateway=lambda: gateway)
    watcher.start()
    assert gateway.drained.wait(10)
    watcher.stop()
    assert all(not t.is_alive() for t in watcher._threads), "stop() joins the watches"
    return checker, watcher.stats


def test_a_violation_that_lasts_one_watch_event_is_seen() -> None:
    events = [
        event("ADDED", pod("a", "j", "n1", gpus=6), "2"),
        event("ADDED", pod("b", "k", "n1", gpus=4), "3"),
        event("DELETED", pod("b", "k", "n1", gpus=4), "4"),
    ]
    checker, _ = watched(Gateway({Watched.NODES: [([node("n1")], "1")]}, [events]))
    assert checker.violations == ["node n1 over-committed: 10 GPUs bound, 8 allocatable"]


def test_a_broken_watch_resumes_where_it_was_and_410_lists_again_and_checks() -> None:
    over = [pod("a", "j", "n1", gpus=6), pod("b", "k", "n1", gpus=4)]
    gateway = Gateway(
        {Watched.NODES: [([node("n1")], "1")], Watched.PODS: [([], "1"), (over, "9")]},
        [
            [event("ADDED", pod("c", "j", "n1"), "5")],
            ClusterError("restarting"),
            ClusterError("gone", status=410),
        ],
    )
    checker, stats = watched(gateway)
    assert gateway.versions[:4] == ["1", "5", "5", "9"]
    assert (stats.relists["pods"], stats.breaks["pods"]) == (2, 1)
    assert stats.longest_gap_seconds > 0
    assert checker.violations == ["node n1 over-committed: 10 GPUs bound, 8 allocatable"]


# --- delays and the report -----------------------------------------------------------------------


class Clock:
    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def read(self) -> float:
        return self.readings.pop(0)

    def durations(self) -> tuple[float, float, str]:
        return 10.0, 0.2, "0.5"


def _event(
    name: str, reason: str, message: str, at: str = "2026-12-05T08:00:00Z", version: int = 1
) -> dict[str, object]:
    return {
        "metadata": {"resourceVersion": str(version)},
        "involvedObject": {"name": name},
        "reason": reason,
        "message": message,
        "firstTimestamp": at,
    }


def _scheduled(attempt: int, waited: str = "") -> str:
    """The Scheduled Event's message as the operator builds it (core/status.py)."""
    place = replace(_place(), attempt=attempt, waited=waited)
    entries = tuple(Placed(a.replica, f"gang-{a.replica}-x", a.node, a.score) for a in place.placement)
    return scheduled_event(entries, place.candidate.node_type, place=place)


LATER = "2026-12-05T08:09:00Z"


def test_delays_count_cycles_to_placement_for_jobs_placed_at_their_first_attempt_only() -> None:
    delays = Delays(Clock(10, 10, 10, 10, 10, 10, 12, 15, 16, 17, 20))  # type: ignore[arg-type]
    for name in ("fast", "dropped", "preemptor", "quiet", "resumed", "slow"):
        delays.creating(name)
    for name in ("fast", "dropped", "preemptor", "quiet", "resumed"):
        delays.on_job(job(name, "chaos-a", [(f"{name}-0", "n1")]))
    delays.on_job(
        job(
            "slow",
            "chaos-a",
            [],
            phase="Queued",
            message="queue chaos-a: behind chaos/hostile-gpus-0002, which waits for quota",
        )
    )
    delays.on_events(
        [
            # Placed again later, after a requeue: a later attempt and a preemption for it count not.
            _event("fast", "Scheduled", _scheduled(4), LATER),
            _event("fast", "Preempting", "preempting chaos/hostile-train-0001", LATER),
            _event("fast", "Scheduled", _scheduled(1)),
            # Never seen waiting (its waiting write dropped), but the operator left it waiting twice.
            _event("dropped", "Scheduled", _scheduled(3, "waiting for room: needs 8 GPUs (1 × taken)")),
            _event("preemptor", "Preempting", "preempting chaos/train-0171 (ReclaimBorrowed)"),
            _event("preemptor", "Scheduled", _scheduled(1), version=2),
            _event("resumed", "Scheduled", "completed an interrupted binding: replica 0 -> n1"),
            _event("resumed", "Scheduled", _scheduled(1), LATER),
        ]
    )
    summary = delays.summary()
    assert (summary["placed"], summary["placed_first"], summary["waited"]) == (5, 1, 2)
    assert (summary["worst_cycles"], summary["worst_job"]) == (2.0, "fast"), "the only one at attempt 1"
    assert summary["waited_for"] == {"room": 1, "its victims (preempting)": 1}
    assert summary["no_event"] == ["quiet", "resumed"]
    assert summary["held_by_hostile"] == [
        "slow: queue chaos-a: behind chaos/hostile-gpus-0002, which waits for quota"
    ]


def test_waits_are_counted_by_what_they_were_for() -> None:
    delays = Delays(Clock(*range(8)))  # type: ignore[arg-type]
    reasons = {
        "quota": "queue chaos-a: needs 6 NVIDIA-H100-80GB-HBM3 GPUs, nominal 32, used 38",
        "behind": "queue chaos-b: behind chaos/group-0026, which waits for quota",
        "strict": "waiting behind chaos/train-0003 (strict queue order)",
        "never": "the job can never fit this cluster: needs 16 GPUs",
    }
    for name in reasons:
        delays.creating(name)
        delays.on_job(job(name, "chaos-a", [(f"{name}-0", "n1")]))
    delays.on_events([_event(name, "Scheduled", _scheduled(2, reason)) for name, reason in reasons.items()])
    assert delays.summary()["waited_for"] == {
        "quota": 1,
        "quota, behind a job waiting for it": 1,
        "a job ahead (strict queue order)": 1,
        "nodes that fit (unschedulable)": 1,
    }


def test_a_job_whose_last_waiting_reason_named_a_hostile_job_is_held_by_it() -> None:
    delays = Delays(Clock(0, 1))  # type: ignore[arg-type]
    delays.creating("held")
    delays.on_job(job("held", "chaos-a", [("held-0", "n1")]))
    reason = "waiting behind chaos/hostile-train-0003 (strict queue order)"
    delays.on_events([_event("held", "Scheduled", _scheduled(2, reason))])
    assert delays.summary()["held_by_hostile"] == [f"held: {reason}"]
    assert delays.attempts == {"held": 2}


def test_the_report_counts_the_hostile_queues_it_made() -> None:
    result = Result(
        args=arguments([]),
        minutes=1.0,
        faults=Counter(),
        actions=Counter(),
        shapes=Counter(),
        hostile=Counter(),
        phases={},
        violations=[],
        wrong_ends=[],
        hostile_wrong=[],
        problems=[],
        checks=0,
        watch=WatchStats(),
        longest_half_bound_seconds=0.0,
        half_bound_seen=0,
        longest_lingering_seconds=0.0,
        vacuous_quota=[],
        delays=Delays(Clock()).summary(),  # type: ignore[arg-type]
        hostile_mixed=0,
        peak_rss_mib=0.0,
    )
    assert len(HOSTILE_QUEUES) == 46
    assert "plus 46 hostile Queues" in render(result)
    assert result.passed
