"""The shared-queue simulator's quota: the operator's own admission over a Queue tree, for synthetic jobs.

Every decision is the operator's core: ``admit_pending`` admits a cycle's waiting jobs (each
queue in its order, borrowers by weighted dominant share, each placed before the next is
admitted and charged only if placed), ``charged`` is what a running job
holds, ``reclaimable_by`` says which running jobs use quota borrowed from a queue, and the
preemptor's quota test is ``admits_once_released``, as ``core/preempting.py`` asks it. This
module only turns synthetic jobs into quota requests and keeps the books between the
simulator's events.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from modeljob.core.admission import charged
from modeljob.core.backfill import Holder
from modeljob.core.queueing import QueuedJob
from modeljob.core.quota import (
    Admission,
    QuotaRequest,
    QuotaTest,
    Usage,
    admit,
    admits_once_released,
    usage_of,
)
from modeljob.core.quota import reclaimable_by as borrowed_from
from modeljob.core.quota_rounds import AdmissionRound, Placing, admit_pending
from modeljob.core.quota_status import queue_report
from modeljob.core.quota_tree import CPU, EPHEMERAL_STORAGE, MEMORY, QueueSpec, QueueTree, build_tree
from modeljob.core.sim.workload_generator import SyntheticJob


def quota_request(item: SyntheticJob) -> QuotaRequest:
    """The whole job (every replica) as quota counts it, as ``admission.quota_request`` does."""
    request = item.replica_request
    wants = request.resources
    return QuotaRequest(
        job=item.job.name,
        queue=item.job.queue,
        namespace=item.job.namespace,
        gpus=item.replicas * wants.gpus if request.uses_accelerator else 0,
        gpu_resource=request.accelerator,
        gpu_products=frozenset(request.products),
        cpu_milli=item.replicas * wants.cpu_milli,
        memory_bytes=item.replicas * wants.memory_bytes,
    )


def _declared_left(job: QueuedJob) -> float | None:
    """What the job declares it has left to run: its expected duration less the work it kept."""
    if job.expected_duration_seconds is None:
        return None
    return max(0.0, job.expected_duration_seconds - job.run_seconds)


@dataclass(frozen=True, slots=True)
class QuotaBreach:
    """A number the Queue's status would show beyond a limit: must never happen."""

    queue: str
    what: str


class QuotaBooks:
    """The Queue tree, each job's request, and the charges of the running jobs (oldest run first,
    as the operator lists them: a queue's youngest jobs hold what it borrowed)."""

    def __init__(self, queues: Sequence[QueueSpec], jobs: Iterable[SyntheticJob]) -> None:
        self.tree: QueueTree = build_tree(queues)
        self.requests = {item.job.name: quota_request(item) for item in jobs}
        self.running: dict[str, Admission] = {}  # insertion order: start order
        self.ends: dict[str, float | None] = {}  # each running job's declared end, if it declares one

    @property
    def unlimited(self) -> bool:
        return self.tree.unlimited

    def may_ever_admit(self, name: str) -> bool:
        """Admitted on an idle cluster; a job that is not waits forever, so it never joins."""
        return admit(self.requests[name], self.tree, Usage()).admitted

    def admission_round(
        self,
        ordered: Sequence[QueuedJob],
        *,
        now_seconds: float,
        place: Placing | None = None,
        evictable: Callable[[str], Collection[str]] | None = None,
    ) -> AdmissionRound:
        """The cycle's admission: ``ordered`` lists each queue's jobs in that queue's order; each
        admitted job is ``place``d before the next is admitted, and keeps its charge only if placed.
        Backfill behind a head waiting for quota reads the jobs' declared durations, as the
        operator reads ``expectedDuration`` (``admission.hold_seconds``), and counts the jobs a
        head may preempt (``evictable``, by the head's name) as ending now, as the operator does."""
        requests = [replace(self.requests[job.name], seconds=_declared_left(job)) for job in ordered]
        holders = [Holder(charge, self._left(name, now_seconds)) for name, charge in self.running.items()]
        return admit_pending(
            requests, self.tree, self.usage(), place=place, holders=holders, evictable=evictable
        )

    def start(self, job: QueuedJob, *, now_seconds: float) -> None:
        """The job runs from now: it holds its charge until its declared end (if it declares one)."""
        self.running[job.name] = charged(self.requests[job.name], self.tree)
        left = _declared_left(job)
        self.ends[job.name] = None if left is None else now_seconds + left

    def stop(self, name: str) -> None:
        del self.running[name]
        del self.ends[name]

    def _left(self, name: str, now_seconds: float) -> float | None:
        end = self.ends[name]
        return None if end is None else max(0.0, end - now_seconds)

    def usage(self) -> Usage:
        """What the running jobs hold."""
        return usage_of(self.running.values())

    def reclaimable_by(self, queue: str) -> frozenset[str]:
        """The running jobs that use quota ``queue`` lends and may take back."""
        return frozenset(use.job for use in borrowed_from(queue, self.tree, tuple(self.running.values())))

    def admits(self, name: str) -> QuotaTest:
        """The preemptor's quota test, the operator's: admitted once its victims' charges are released."""
        return admits_once_released(self.requests[name], self.tree, self.usage(), self.running)

    def breaches(self) -> tuple[QuotaBreach, ...]:
        """Each queue's status numbers against its limits: borrowed within borrowingLimit, lent
        within lendingLimit, and a root (nobody to borrow from) within its nominal."""
        usage = self.usage()
        found: list[QuotaBreach] = []
        for name, spec in self.tree.queues.items():
            for report in queue_report(name, self.tree, usage).keys:
                entry = spec.entry(report.key)
                borrow_limit = entry.borrowing_limit if entry is not None else None
                lend_limit = entry.lending_limit if entry is not None else None
                if self.tree.parent_of(name) is None:
                    borrow_limit = 0
                if borrow_limit is not None and report.borrowed > borrow_limit:
                    found.append(QuotaBreach(name, f"borrowed {report.borrowed} > {borrow_limit}"))
                if lend_limit is not None and report.lent > lend_limit:
                    found.append(QuotaBreach(name, f"lent {report.lent} > {lend_limit}"))
        return tuple(found)

    def nominal_gpus(self) -> Mapping[str, int]:
        """Each leaf queue's nominal devices, every product (what its share entitles it to;
        a parent only divides its nominal among its children)."""
        devices = [key for key in self.tree.keys if key.resource not in (CPU, MEMORY, EPHEMERAL_STORAGE)]
        return {
            name: sum(self.tree.level(name, key).total for key in devices)
            for name in self.tree.queues
            if not self.tree.children.get(name)
        }
