"""How backfill and preemption see jobs: a waiting job as a preemptor, a placed one as a candidate
victim, and which running jobs a head may evict now (so backfill may count them as ending now)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.preemption_rules import (
    PodSlot,
    PreemptionReason,
    PreemptionRules,
    Preemptor,
    RunningJob,
    WithinQueue,
    eligibility,
)


def evictable_by(
    head: Preemptor,
    rules: PreemptionRules,
    candidates: Iterable[RunningJob],
    *,
    reclaimable: Collection[str],
    now_seconds: float,
) -> frozenset[str]:
    """The running jobs ``head`` may preempt now by its queue's ``rules``, asked as preemption
    asks (``eligibility``: priority, minRuntime, the remaining-time margin, time slices, reclaim
    of the ``reclaimable`` borrowers): backfill counts them as ending now. A holder the head may
    not evict (one of equal priority, say) is not counted so, or the head would look startable now
    and hold every job behind it for as long as that holder runs (a serving job: for ever).
    Preemption's history (a job it preempted earlier) is not asked: counting such a job as ending
    now only lets less go first."""
    return frozenset(
        job.name
        for job in candidates
        if isinstance(
            eligibility(
                head,
                replace(job, borrows_from_lender=job.name in reclaimable),
                rules=rules,
                preempted_before=frozenset(),
                now_seconds=now_seconds,
            ),
            PreemptionReason,
        )
    )


@dataclass(frozen=True, slots=True)
class CandidatePool:
    """The running jobs a head may be asked to evict, by queue and by name, so each head asks only
    those some rule could let it evict (``evictable``): a deep queue asks for many heads a cycle."""

    by_queue: Mapping[str, Sequence[RunningJob]]
    by_name: Mapping[str, RunningJob]

    @staticmethod
    def of(candidates: Iterable[RunningJob]) -> CandidatePool:
        by_queue: dict[str, list[RunningJob]] = {}
        by_name: dict[str, RunningJob] = {}
        for candidate in candidates:
            by_queue.setdefault(candidate.queue, []).append(candidate)
            by_name[candidate.name] = candidate
        return CandidatePool(by_queue, by_name)

    def evictable(
        self, head: Preemptor, rules: PreemptionRules, *, reclaimable: Collection[str], now_seconds: float
    ) -> frozenset[str]:
        """``evictable_by`` asked only of the head's own queue's jobs (when its queue preempts
        within itself: a lower priority, a shorter remaining time or a used time slice) and of the
        ``reclaimable`` borrowers: ``eligibility`` lets no rule evict any other job."""
        within = rules.within_queue is not WithinQueue.NEVER or rules.time_slice_seconds is not None
        asked = [
            *(self.by_queue.get(head.queue, ()) if within else ()),
            *(self.by_name[name] for name in reclaimable if name in self.by_name),
        ]
        return evictable_by(head, rules, asked, reclaimable=reclaimable, now_seconds=now_seconds)


def preemptor_of(job: JobFacts) -> Preemptor:
    """A waiting job as preemption sees it; its remaining time counts the work its earlier runs
    kept (status.checkpointedSeconds), as the victims' does and the queue simulator's."""
    return Preemptor(
        job.ref,
        job.queue,
        job.priority,
        expected_duration_seconds=job.expected_duration_seconds,
        run_before_seconds=job.run_before_seconds,
    )


def evictable_phase(job: JobFacts) -> bool:
    """Whether a placed job may be a preemption candidate: its plan bound and its pods running
    (a plan still binding is not one, nor is a finished job)."""
    return bool(job.placement) and not job.binding and job.phase in (JobPhase.SCHEDULED, JobPhase.RUNNING)


def holder_candidate(job: JobFacts, pods: tuple[PodSlot, ...] = ()) -> RunningJob:
    """A placed job as preemption sees it (``pods``: the slots it holds, where those matter)."""
    started = job.started or job.created
    return RunningJob(
        name=job.ref,
        queue=job.queue,
        priority=job.priority,
        started_at_seconds=started.timestamp(),
        pods=pods,
        expected_duration_seconds=job.expected_duration_seconds,
        run_before_seconds=job.run_before_seconds,
        checkpoint_interval_seconds=job.checkpoint_interval_seconds,
    )
