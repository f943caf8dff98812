"""What a shared-queue simulation reports: per job, per preemption, and per queue (mean and p95
wait, mean completion time, GPU utilisation, preemptions, GPU-hours of lost work, share of the
GPUs received against the share its nominal quota entitles it to)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modeljob.core.preemption_rules import PreemptionReason
from modeljob.core.queueing import QueuedJob

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class JobRecord:
    job: QueuedJob
    first_started_at_seconds: float | None
    finished_at_seconds: float | None
    preemptions: int
    lost_gpu_hours: float
    never_fits: bool

    @property
    def wait_seconds(self) -> float | None:
        if self.first_started_at_seconds is None:
            return None
        return self.first_started_at_seconds - self.job.submitted_at_seconds

    @property
    def completion_seconds(self) -> float | None:
        if self.finished_at_seconds is None:
            return None
        return self.finished_at_seconds - self.job.submitted_at_seconds


@dataclass(frozen=True, slots=True)
class PreemptionEvent:
    at_seconds: float
    preemptor: str
    victim: str
    reason: PreemptionReason
    lost_gpu_hours: float
    pods_released: int
    pods_of_job: int  # all pods of the victim: equal to ``pods_released`` unless a gang was split


@dataclass(frozen=True, slots=True)
class PreemptionDecision:
    """One preemption, with what another chooser would have lost in the very same state."""

    at_seconds: float
    preemptor: str
    lost_gpu_hours: float
    shadow_lost_gpu_hours: float | None  # None: no shadow asked, or it found no victims


@dataclass(frozen=True, slots=True)
class SharedRun:
    records: tuple[JobRecord, ...]
    events: tuple[PreemptionEvent, ...]
    decisions: tuple[PreemptionDecision, ...]
    capacity_gpus: int
    gpu_seconds_by_queue: Mapping[str, float]
    nominal_gpus: Mapping[str, int]
    span_seconds: float  # first submission to last completion
    partial_placements: int  # gangs bound with fewer than all replicas: must be 0
    preemptor_misfits: int  # preemptions after which the preemptor did not fit: must be 0
    quota_overruns: int  # a queue above nominal + borrowing limit: must be 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue over a run (``queue`` "all": the whole cluster). Times in hours."""

    queue: str
    jobs: int
    mean_wait_hours: float
    p95_wait_hours: float
    mean_completion_hours: float
    gpu_utilisation: float  # GPU-hours it used / (cluster GPUs x span)
    preemptions: int  # of its jobs
    lost_gpu_hours: float
    share_received: float  # of all GPU-hours used
    share_entitled: float | None  # nominal / total nominal; None without quotas


def queue_stats(run: SharedRun) -> tuple[QueueStats, ...]:
    """Per queue in name order, then "all"."""
    queues = sorted({record.job.queue for record in run.records})
    rows = [_stats(run, name, [r for r in run.records if r.job.queue == name]) for name in queues]
    return (*rows, _stats(run, "all", list(run.records)))


def _stats(run: SharedRun, queue: str, records: Sequence[JobRecord]) -> QueueStats:
    waits = [w / SECONDS_PER_HOUR for r in records if (w := r.wait_seconds) is not None]
    completions = [c / SECONDS_PER_HOUR for r in records if (c := r.completion_seconds) is not None]
    used_total = sum(run.gpu_seconds_by_queue.values())
    used = used_total if queue == "all" else run.gpu_seconds_by_queue.get(queue, 0.0)
    capacity = run.capacity_gpus * run.span_seconds
    return QueueStats(
        queue=queue,
        jobs=len(records),
        mean_wait_hours=statistics.fmean(waits) if waits else 0.0,
        p95_wait_hours=float(np.percentile(waits, 95)) if waits else 0.0,
        mean_completion_hours=statistics.fmean(completions) if completions else 0.0,
        gpu_utilisation=used / capacity if capacity > 0 else 0.0,
        preemptions=sum(r.preemptions for r in records),
        lost_gpu_hours=sum(r.lost_gpu_hours for r in records),
        share_received=used / used_total if used_total > 0 else 0.0,
        share_entitled=_entitled(run.nominal_gpus, queue),
    )


def _entitled(nominal: Mapping[str, int], queue: str) -> float | None:
    total = sum(nominal.values())
    if total <= 0:
        return None
    return 1.0 if queue == "all" else nominal.get(queue, 0) / total
