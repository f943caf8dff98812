"""Queue ordering policies: FCFS, shortest-job-first, shortest-remaining-time-first, priority with
aging, fair share (DRF), time-slice turns, and round-robin across queues. Each policy orders what
is waiting; ``now`` is always passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from typing import Protocol

from modeljob.core.resources import Resources

SECONDS_PER_HOUR = 3600.0
# A job that declares no expected duration is assumed to run this long under shortest-job-first.
DEFAULT_DURATION_SECONDS = SECONDS_PER_HOUR
# Priority points a waiting job gains per hour under priority-with-aging.
DEFAULT_AGING_PER_HOUR = 1.0


class QueueOrder(StrEnum):
    FCFS = "fcfs"
    SHORTEST_JOB_FIRST = "shortest-job-first"
    PRIORITY = "priority"
    FAIR_SHARE = "fair-share"
    SHORTEST_REMAINING_TIME_FIRST = "shortest-remaining-time-first"
    TIME_SLICE = "time-slice"


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job waiting for placement, as the queue sees it.

    ``demand`` is the whole job's request (all replicas; ``gpus`` counts devices, shares
    rounded up to a device); ``estimated_duration_seconds`` is what the operator can guess when
    the user gave no ``expected_duration_seconds`` (e.g. from past runs of the same model).
    ``run_seconds``: work already done and kept (a preempted job that checkpointed; 0 for a job
    that never ran). ``queued_at_seconds``: when it last joined the queue (None: at submission;
    a preempted or time-sliced job rejoins at the back).
    """

    name: str
    submitted_at_seconds: float
    namespace: str = "default"
    queue: str = "default"
    priority: int = 0
    expected_duration_seconds: float | None = None
    estimated_duration_seconds: float | None = None
    demand: Resources = field(default_factory=lambda: Resources(gpus=0))
    run_seconds: float = 0.0
    queued_at_seconds: float | None = None
    # Submission order, then namespace/name: the order of last resort in every policy. Made once
    # with the job (the loop keeps a waiting job's QueuedJob from cycle to cycle, and every policy
    # sorts 10,000 of them by it each cycle); replace() makes it anew.
    key: tuple[float, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.submitted_at_seconds, self.namespace, self.name))


class QueuePolicy(Protocol):
    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        """``jobs`` from first to be placed to last."""
        ...


@dataclass(frozen=True, slots=True)
class FirstComeFirstServed:
    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        del now_seconds
        return tuple(sorted(jobs, key=attrgetter("key")))


@dataclass(frozen=True, slots=True)
class ShortestJobFirst:
    """Shortest expected duration first.

    The duration is the job's declared ``expectedDuration``, else the operator's estimate, else
    ``default_duration_seconds``. Equal durations: fewer GPU-seconds (duration × GPUs) first, so
    of two jobs of the same length the smaller one goes first; then submission order.
    """

    default_duration_seconds: float = DEFAULT_DURATION_SECONDS

    def duration_seconds(self, job: QueuedJob) -> float:
        if job.expected_duration_seconds is not None:
            return job.expected_duration_seconds
        if job.estimated_duration_seconds is not None:
            return job.estimated_duration_seconds
        return self.default_duration_seconds

    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        del now_seconds

        def rank(job: QueuedJob) -> tuple[float, float, tuple[float, str, str]]:
            duration = self.duration_seconds(job)
            return (duration, duration * max(job.demand.gpus, 0), job.key)

        return tuple(sorted(jobs, key=rank))


@dataclass(frozen=True, slots=True)
class ShortestRemainingTimeFirst:
    """Shortest remaining expected time first: the duration (as shortest-job-first reads it)
    less the work a job has already done and kept (``run_seconds``; 0 unless it was preempted
    after checkpointing). With preemption by ``ShorterRemainingTime`` this is SRTF proper.
    Ties as in shortest-job-first: fewer remaining GPU-seconds, then submission order."""

    default_duration_seconds: float = DEFAULT_DURATION_SECONDS

    def remaining_seconds(self, job: QueuedJob) -> float:
        duration = ShortestJobFirst(self.default_duration_seconds).duration_seconds(job)
        return max(0.0, duration - job.run_seconds)

    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        del now_seconds

        def rank(job: QueuedJob) -> tuple[float, float, tuple[float, str, str]]:
            remaining = self.remaining_seconds(job)
            return (remaining, remaining * max(job.demand.gpus, 0), job.key)

        return tuple(sorted(jobs, key=rank))


@dataclass(frozen=True, slots=True)
class PriorityWithAging:
    """Highest effective priority first: priority + aging_per_hour × hours waited.

    Aging is what stops starvation: a job ``d`` priority points below a stream of newcomers
    overtakes every newcomer once it has waited ``d / aging_per_hour`` hours.
    """

    aging_per_hour: float = DEFAULT_AGING_PER_HOUR

    def effective_priority(self, job: QueuedJob, *, now_seconds: float) -> float:
        waited_hours = max(0.0, now_seconds - job.submitted_at_seconds) / SECONDS_PER_HOUR
        return job.priority + self.aging_per_hour * waited_hours

    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        return tuple(
            sorted(jobs, key=lambda job: (-self.effective_priority(job, now_seconds=now_seconds), job.key))
        )


def dominant_share(usage: Resources, capacity: Resources) -> float:
    """The largest fraction of any one resource (CPU, memory, GPUs) that ``usage`` takes of ``capacity``."""
    shares = [
        used / total
        for used, total in (
            (usage.cpu_milli, capacity.cpu_milli),
            (usage.memory_bytes, capacity.memory_bytes),
            (usage.gpus, capacity.gpus),
        )
        if total > 0
    ]
    return max(shares, default=0.0)


def add_resources(left: Resources, right: Resources) -> Resources:
    """``left + right`` (``Resources.__add__`` is the one sum), for callers that pass a function."""
    return left + right


@dataclass(frozen=True, slots=True)
class DominantResourceFairness:
    """Fair share across namespaces by dominant resource fairness (Ghodsi et al., NSDI '11).

    Repeatedly take the next job (in submission order) of the namespace with the smallest
    dominant share, counting its running jobs (``usage``) plus the jobs already ordered ahead,
    divided by the namespace's weight (default 1). Ties: namespace name.
    """

    capacity: Resources
    usage: Mapping[str, Resources] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)

    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        del now_seconds
        pending: dict[str, list[QueuedJob]] = {}
        for job in sorted(jobs, key=lambda job: job.key):
            pending.setdefault(job.namespace, []).append(job)
        usage = {namespace: self.usage.get(namespace, Resources(gpus=0)) for namespace in pending}
        ordered: list[QueuedJob] = []
        while pending:
            namespace = min(
                pending,
                key=lambda ns: (dominant_share(usage[ns], self.capacity) / self.weights.get(ns, 1.0), ns),
            )
            job = pending[namespace].pop(0)
            ordered.append(job)
            usage[namespace] = usage[namespace] + job.demand
            if not pending[namespace]:
                del pending[namespace]
        return tuple(ordered)


@dataclass(frozen=True, slots=True)
class TimeSliceTurns:
    """Round-robin turns: whoever joined the queue first goes first, and a job that yields its
    slice rejoins at the back (``queued_at_seconds``). Which running jobs yield: ``must_yield``."""

    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        del now_seconds

        def rank(job: QueuedJob) -> tuple[float, tuple[float, str, str]]:
            joined = job.submitted_at_seconds if job.queued_at_seconds is None else job.queued_at_seconds
            return (joined, job.key)

        return tuple(sorted(jobs, key=rank))


@dataclass(frozen=True, slots=True)
class RunningTurn:
    """A running job as time slicing sees it: its queue and when its current run began."""

    name: str
    queue: str
    started_at_seconds: float


def must_yield(
    running: Sequence[RunningTurn],
    waiting: Sequence[QueuedJob],
    *,
    slice_seconds: float,
    now_seconds: float,
) -> tuple[str, ...]:
    """Running jobs that have used a whole slice while a job of their queue waits: in each queue
    the longest-running first, at most as many as wait there (each yields to one waiting job)."""
    waiting_per_queue: dict[str, int] = {}
    for job in waiting:
        waiting_per_queue[job.queue] = waiting_per_queue.get(job.queue, 0) + 1
    done = sorted(
        (turn for turn in running if now_seconds - turn.started_at_seconds >= slice_seconds),
        key=lambda turn: (turn.started_at_seconds, turn.name),
    )
    result: list[str] = []
    for turn in done:
        if waiting_per_queue.get(turn.queue, 0) > 0:
            waiting_per_queue[turn.queue] -= 1
            result.append(turn.name)
    return tuple(result)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    order: QueueOrder = QueueOrder.FCFS
    default_duration_seconds: float = DEFAULT_DURATION_SECONDS
    aging_per_hour: float = DEFAULT_AGING_PER_HOUR
    namespace_weights: Mapping[str, float] = field(default_factory=dict)


def queue_policy(
    settings: QueueSettings,
    *,
    capacity: Resources | None = None,
    usage: Mapping[str, Resources] | None = None,
) -> QueuePolicy:
    """The policy object for ``settings.order``; fair share needs the cluster ``capacity`` and ``usage``."""
    if settings.order is QueueOrder.FCFS:
        return FirstComeFirstServed()
    if settings.order is QueueOrder.SHORTEST_JOB_FIRST:
        return ShortestJobFirst(default_duration_seconds=settings.default_duration_seconds)
    if settings.order is QueueOrder.SHORTEST_REMAINING_TIME_FIRST:
        return ShortestRemainingTimeFirst(default_duration_seconds=settings.default_duration_seconds)
    if settings.order is QueueOrder.PRIORITY:
        return PriorityWithAging(aging_per_hour=settings.aging_per_hour)
    if settings.order is QueueOrder.TIME_SLICE:
        return TimeSliceTurns()
    if capacity is None:
        raise ValueError("fair-share ordering needs the cluster capacity")
    return DominantResourceFairness(capacity=capacity, usage=usage or {}, weights=settings.namespace_weights)


def order_queues(
    jobs: Sequence[QueuedJob], *, policy: QueuePolicy, now_seconds: float
) -> tuple[QueuedJob, ...]:
    """All waiting jobs in placement order: each queue ordered by ``policy``, then the queues
    take turns (round-robin in queue-name order), so no queue waits behind another's backlog."""
    by_queue: dict[str, list[QueuedJob]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(job)
    ordered = [list(policy.order(by_queue[name], now_seconds=now_seconds)) for name in sorted(by_queue)]
    result: list[QueuedJob] = []
    for turn in range(max((len(queue) for queue in ordered), default=0)):
        result.extend(queue[turn] for queue in ordered if turn < len(queue))
    return tuple(result)
