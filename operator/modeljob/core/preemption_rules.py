"""Who may preempt whom: the rules of a queue, running jobs and preemptors as preemption sees
them, who-preempted-whom history, and the eligibility check that holds the anti-thrash rules.

Why preemption cannot thrash (``eligibility`` checks each rule; tests/core/test_preemption.py
holds them over generated scenarios):

* ``min_runtime_seconds``: a job is a candidate only after running that long since its start,
  so it is preempted at most ``day / min_runtime`` times a day;
* the chain rule: a job never preempts one that preempted it, directly or through others
  (``PreemptionHistory.preempted_before``), so the who-preempted-whom graph has no cycle;
* a bound on victims per cycle (``max_victims_per_cycle``, applied by ``choose_victims``);
* hysteresis on remaining time: under ``ShorterRemainingTime`` a job of equal priority is a
  victim only when its remaining time exceeds the preemptor's by ``remaining_time_margin``,
  and the preemptor's only shrinks as it runs, so the victim can never turn the tables.

Time-slice turns are not preemptions in the chain sense (round-robin is a cycle by design):
each needs a whole slice of running, which bounds them instead, and only jobs that checkpoint
at least once a slice take turns (the others would lose every slice's work).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from modeljob.core.nodes import MILLI_PER_DEVICE, PodRequest

SECONDS_PER_HOUR = 3600.0
# The preemptor must need at least this fraction less time than its victim (0.25: 25% less).
DEFAULT_REMAINING_TIME_MARGIN = 0.25
DEFAULT_MAX_VICTIMS_PER_CYCLE = 16


class WithinQueue(StrEnum):
    NEVER = "Never"
    LOWER_PRIORITY = "LowerPriority"
    SHORTER_REMAINING_TIME = "ShorterRemainingTime"


class PreemptionReason(StrEnum):
    LOWER_PRIORITY = "LowerPriority"
    SHORTER_REMAINING_TIME = "ShorterRemainingTime"
    RECLAIM_BORROWED = "ReclaimBorrowed"
    TIME_SLICE = "TimeSlice"


@dataclass(frozen=True, slots=True)
class PreemptionRules:
    """A queue's preemption settings (``spec.preemption``) plus the cluster-wide bounds."""

    within_queue: WithinQueue = WithinQueue.NEVER
    reclaim_borrowed: bool = False
    min_runtime_seconds: float = 0.0
    remaining_time_margin: float = DEFAULT_REMAINING_TIME_MARGIN
    max_victims_per_cycle: int = DEFAULT_MAX_VICTIMS_PER_CYCLE
    time_slice_seconds: float | None = None  # with order time-slice: same-queue jobs past it yield


def kept_seconds(run_seconds: float, checkpoint_interval_seconds: float | None) -> float:
    """The part of a run an eviction keeps: up to its last checkpoint (checkpoints every interval
    from the run's start); none for a job that never checkpoints."""
    interval = checkpoint_interval_seconds
    return run_seconds - run_seconds % interval if interval else 0.0


@dataclass(frozen=True, slots=True)
class PodSlot:
    """One running pod: where it is and what it took there (``devices`` as the ledger reserved them)."""

    node: str
    request: PodRequest
    devices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A preemption candidate: a running job with all its pods.

    ``run_before_seconds``: progress kept from earlier runs (checkpointed work before a
    preemption), counted in its remaining time. ``borrows_from_lender``: it uses quota borrowed
    from the preemptor's queue's lender (the caller's quota tree decides).
    """

    name: str
    queue: str
    priority: int
    started_at_seconds: float
    pods: tuple[PodSlot, ...]
    expected_duration_seconds: float | None = None
    run_before_seconds: float = 0.0
    checkpoint_interval_seconds: float | None = None
    borrows_from_lender: bool = False

    @property
    def gpus(self) -> float:
        """Devices held, a share counted as its fraction of a device."""
        return sum(pod.request.gpu_request_milli for pod in self.pods) / MILLI_PER_DEVICE

    def run_seconds(self, now_seconds: float) -> float:
        return max(0.0, now_seconds - self.started_at_seconds)

    def lost_seconds(self, now_seconds: float) -> float:
        """Work lost if evicted now: all of this run, or only what followed the last checkpoint."""
        run = self.run_seconds(now_seconds)
        return run - kept_seconds(run, self.checkpoint_interval_seconds)

    def lost_gpu_hours(self, now_seconds: float) -> float:
        return self.lost_seconds(now_seconds) * self.gpus / SECONDS_PER_HOUR

    def remaining_seconds(self, now_seconds: float) -> float | None:
        if self.expected_duration_seconds is None:
            return None
        done = self.run_before_seconds + self.run_seconds(now_seconds)
        return max(0.0, self.expected_duration_seconds - done)


@dataclass(frozen=True, slots=True)
class Preemptor:
    """The waiting job that asks for room."""

    name: str
    queue: str
    priority: int
    expected_duration_seconds: float | None = None
    run_before_seconds: float = 0.0

    @property
    def remaining_seconds(self) -> float | None:
        if self.expected_duration_seconds is None:
            return None
        return max(0.0, self.expected_duration_seconds - self.run_before_seconds)


@dataclass(frozen=True, slots=True)
class PreemptionHistory:
    """Who preempted whom among live jobs, and how often each job was preempted.

    ``edges`` holds (preemptor, victim). ``forget`` (a job finished or was deleted) links the
    job's preemptors straight to its victims, so reachability among live jobs, and with it the
    chain rule, is the same as over the whole history.
    """

    edges: frozenset[tuple[str, str]] = frozenset()
    counts: Mapping[str, int] = field(default_factory=dict)

    def preempted_before(self, job: str) -> frozenset[str]:
        """Every job that preempted ``job``, directly or through a chain of preemptions."""
        found: set[str] = set()
        frontier = [job]
        while frontier:
            victim = frontier.pop()
            for preemptor, evicted in self.edges:
                if evicted == victim and preemptor not in found:
                    found.add(preemptor)
                    frontier.append(preemptor)
        return frozenset(found)

    def record(self, preemptor: str, victims: Sequence[str], *, chained: bool = True) -> PreemptionHistory:
        """``victims`` were preempted for ``preemptor``; ``chained=False`` for time-slice turns."""
        counts = dict(self.counts)
        for victim in victims:
            counts[victim] = counts.get(victim, 0) + 1
        added = {(preemptor, victim) for victim in victims} if chained else set()
        return PreemptionHistory(edges=self.edges | added, counts=counts)

    def forget(self, job: str) -> PreemptionHistory:
        before = {p for p, v in self.edges if v == job}
        after = {v for p, v in self.edges if p == job}
        kept = {(p, v) for p, v in self.edges if job not in (p, v)}
        bridged = {(p, v) for p in before for v in after if p != v}
        counts = {name: n for name, n in self.counts.items() if name != job}
        return PreemptionHistory(edges=frozenset(kept | bridged), counts=counts)


NO_HISTORY = PreemptionHistory()


def eligibility(
    preemptor: Preemptor,
    job: RunningJob,
    *,
    rules: PreemptionRules,
    preempted_before: frozenset[str],
    now_seconds: float,
) -> PreemptionReason | str:
    """The rule that lets ``preemptor`` evict ``job``, or why none does."""
    if job.run_seconds(now_seconds) < rules.min_runtime_seconds:
        return "ran less than minRuntime"
    if job.queue == preemptor.queue:
        slice_seconds = rules.time_slice_seconds
        if slice_seconds is not None and job.run_seconds(now_seconds) >= slice_seconds:
            # Only a job that checkpoints within its slice keeps work through a turn; any
            # other would lose each slice and, longer than one, never finish.
            interval = job.checkpoint_interval_seconds
            if interval is not None and interval <= slice_seconds:
                return PreemptionReason.TIME_SLICE
    if job.name in preempted_before:
        return "preempted it earlier"
    if job.queue != preemptor.queue:
        if rules.reclaim_borrowed and job.borrows_from_lender:
            return PreemptionReason.RECLAIM_BORROWED
        return "another queue's job within its own quota"
    if rules.within_queue is WithinQueue.NEVER:
        return "withinQueue is Never"
    if job.priority < preemptor.priority:
        return PreemptionReason.LOWER_PRIORITY
    if rules.within_queue is WithinQueue.SHORTER_REMAINING_TIME and job.priority == preemptor.priority:
        return _remaining_time_rule(
            preemptor, job, margin=rules.remaining_time_margin, now_seconds=now_seconds
        )
    return "not lower priority"


def _remaining_time_rule(
    preemptor: Preemptor, job: RunningJob, *, margin: float, now_seconds: float
) -> PreemptionReason | str:
    ours = preemptor.remaining_seconds
    theirs = job.remaining_seconds(now_seconds)
    if ours is None or theirs is None:
        return "remaining time unknown"
    if ours * (1.0 + margin) < theirs:
        return PreemptionReason.SHORTER_REMAINING_TIME
    return f"remaining time not {margin:.0%} longer"
