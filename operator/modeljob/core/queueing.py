"""Queue ordering policies: FCFS, shortest-job-first, priority with aging, fair share (DRF), and
round-robin across queues. Each policy orders what is waiting; ``now`` is always passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
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


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job waiting for placement, as the queue sees it.

    ``demand`` is the whole job's request (all replicas; ``gpus`` counts devices, shares
    rounded up to a device); ``estimated_duration_seconds`` is what the operator can guess when
    the user gave no ``expected_duration_seconds`` (e.g. from past runs of the same model).
    """

    name: str
    submitted_at_seconds: float
    namespace: str = "default"
    queue: str = "default"
    priority: int = 0
    expected_duration_seconds: float | None = None
    estimated_duration_seconds: float | None = None
    demand: Resources = field(default_factory=lambda: Resources(gpus=0))

    @property
    def key(self) -> tuple[float, str, str]:
        """Submission order, then namespace/name: the order of last resort in every policy."""
        return (self.submitted_at_seconds, self.namespace, self.name)


class QueuePolicy(Protocol):
    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        """``jobs`` from first to be placed to last."""
        ...


@dataclass(frozen=True, slots=True)
class FirstComeFirstServed:
    def order(self, jobs: Sequence[QueuedJob], *, now_seconds: float) -> tuple[QueuedJob, ...]:
        del now_seconds
        return tuple(sorted(jobs, key=lambda job: job.key))


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
    if settings.order is QueueOrder.PRIORITY:
        return PriorityWithAging(aging_per_hour=settings.aging_per_hour)
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
