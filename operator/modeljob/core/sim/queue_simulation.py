"""Run a job stream through queue ordering and gang placement over time, on a simulated cluster.

Discrete events: at each arrival or completion the waiting jobs are ordered by the queue
policy and placed in that order, each gang all-or-nothing. Strict order by default: the first
job that cannot be placed now stops the round (no backfilling past it), which is what makes the
order meaningful; ``backfill=True`` lets later jobs that fit go ahead.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modeljob.core.fragmentation import TaskShape, compile_workload, learn_target_workload
from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, Placement, ReplicaRequests
from modeljob.core.nodes import NodeTable, NodeView, PodRequest, build_node_table
from modeljob.core.queueing import (
    QueuedJob,
    QueueSettings,
    dominant_share,
    order_queues,
    queue_policy,
)
from modeljob.core.resources import Resources
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.sim.workload_generator import SyntheticJob


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job: QueuedJob
    started_at_seconds: float | None  # None: never started (never fits, or the run ended first)
    finished_at_seconds: float | None
    never_fits: bool = False

    @property
    def wait_seconds(self) -> float | None:
        if self.started_at_seconds is None:
            return None
        return self.started_at_seconds - self.job.submitted_at_seconds


@dataclass(frozen=True, slots=True)
class QueueRun:
    outcomes: tuple[JobOutcome, ...]
    # (time, dominant share of running work per namespace) after each scheduling round.
    share_samples: tuple[tuple[float, tuple[tuple[str, float], ...]], ...]
    partial_placements: int  # gangs bound with fewer than all replicas: must always be 0

    def waits(self) -> list[float]:
        return [w for o in self.outcomes if (w := o.wait_seconds) is not None]


def _capacity(table: NodeTable) -> Resources:
    return Resources(
        cpu_milli=int(table.cpu_allocatable_milli.sum()),
        memory_bytes=int(table.memory_allocatable_bytes.sum()),
        gpus=int(table.gpu_count.sum()),
    )


def run_queue(
    jobs: Sequence[SyntheticJob],
    nodes: Sequence[NodeView],
    *,
    settings: QueueSettings,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    backfill: bool = False,
) -> QueueRun:
    """Simulate until every job has finished (or can never start)."""
    replay = _QueueReplay(jobs, nodes, settings=settings, weights=weights, backfill=backfill)
    while replay.step():
        pass
    return replay.result()


def task_shape(request: PodRequest) -> TaskShape:
    """The replica's shape as the fragmentation scorer's target workload counts it."""
    uses = request.uses_accelerator
    wants = request.resources
    return TaskShape(
        cpu_milli=wants.cpu_milli,
        gpu_milli=wants.gpu_milli if uses else 0,
        gpus=wants.gpus if uses else 0,
        products=request.products,
    )


class _QueueReplay:
    """The simulated cluster and queue between events; ``step`` handles the next event time."""

    def __init__(
        self,
        jobs: Sequence[SyntheticJob],
        nodes: Sequence[NodeView],
        *,
        settings: QueueSettings,
        weights: ScoringWeights,
        backfill: bool,
    ) -> None:
        self.table = build_node_table(sorted(nodes, key=lambda n: n.name)).working_copy()
        self.capacity = _capacity(self.table)
        self.empty = self.table.emptied()
        # The fragmentation scorer's expectations: the replica shapes of this very stream.
        workload = learn_target_workload([task_shape(item.replica_request) for item in jobs])
        self.context = ScoringContext(workload=compile_workload(workload, self.table.products))
        self.settings = settings
        self.weights = weights
        self.backfill = backfill
        self.row_of = {name: row for row, name in enumerate(self.table.names)}
        self.by_name = {item.job.name: item for item in jobs}
        self.arrivals = sorted(jobs, key=lambda item: item.job.key)
        self.next_arrival = 0
        self.waiting: list[QueuedJob] = []
        self.running: dict[str, tuple[SyntheticJob, Placement]] = {}
        self.usage: dict[str, Resources] = {}
        self.completions: list[tuple[float, str]] = []
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.never: set[str] = set()
        self.samples: list[tuple[float, tuple[tuple[str, float], ...]]] = []
        self.partial = 0
        # Placing only takes capacity away, so a job that failed stays unplaceable until something
        # is released: remember the release count at its last failure and skip it until that moves.
        self.releases = 0
        self.failed_at: dict[str, int] = {}

    def step(self) -> bool:
        """Complete, admit and place at the next event time; False once nothing can change."""
        more_arrivals = self.next_arrival < len(self.arrivals)
        if not (more_arrivals or self.completions or self.waiting):
            return False
        if not self.completions and not more_arrivals:
            return False  # nothing will ever free capacity again: whatever still waits never starts
        times = [self.completions[0][0]] if self.completions else []
        if more_arrivals:
            times.append(self.arrivals[self.next_arrival].job.submitted_at_seconds)
        now = min(times)
        while self.completions and self.completions[0][0] <= now:
            finished_at, name = heapq.heappop(self.completions)
            self.finished[name] = finished_at
            self._release(name)
        self._admit_arrivals(now)
        self._place_waiting(now)
        shares = ((namespace, dominant_share(used, self.capacity)) for namespace, used in self.usage.items())
        self.samples.append((now, tuple(sorted(shares))))
        return True

    def _release(self, name: str) -> None:
        item, placement = self.running.pop(name)
        for assignment in placement.assignments:
            self.table.release(self.row_of[assignment.node], item.replica_request, assignment.devices)
        namespace = item.job.namespace
        self.usage[namespace] = self.usage[namespace] - item.job.demand
        self.releases += 1

    def _admit_arrivals(self, now: float) -> None:
        while (
            self.next_arrival < len(self.arrivals)
            and self.arrivals[self.next_arrival].job.submitted_at_seconds <= now
        ):
            arrived = self.arrivals[self.next_arrival]
            self.next_arrival += 1
            # A job that does not fit even on the empty cluster is rejected once, on arrival.
            plan = plan_gang(self.empty, gang_of(arrived), weights=self.weights, context=self.context)
            if isinstance(plan, Placement):
                self.waiting.append(arrived.job)
            else:
                self.never.add(arrived.job.name)

    def _place_waiting(self, now: float) -> None:
        policy = queue_policy(self.settings, capacity=self.capacity, usage=self.usage)
        for job in order_queues(self.waiting, policy=policy, now_seconds=now):
            if not self._try_place(job, now) and not self.backfill:
                break

    def _try_place(self, job: QueuedJob, now: float) -> bool:
        item = self.by_name[job.name]
        if self.failed_at.get(job.name) == self.releases:
            return False
        plan = plan_gang(
            self.table, gang_of(item), weights=self.weights, context=self.context, check_never_fits=False
        )
        if not isinstance(plan, Placement):
            self.failed_at[job.name] = self.releases
            return False
        if len(plan.assignments) != item.replicas:
            self.partial += 1
        for assignment in plan.assignments:
            self.table.reserve(self.row_of[assignment.node], item.replica_request, assignment.devices)
        self.waiting.remove(job)
        self.running[job.name] = (item, plan)
        self.started[job.name] = now
        self.usage[job.namespace] = self.usage.get(job.namespace, Resources(gpus=0)) + job.demand
        heapq.heappush(self.completions, (now + item.duration_seconds, job.name))
        return True

    def result(self) -> QueueRun:
        table = self.table
        if np.any(table.gpu_free_milli < 0) or np.any(table.cpu_free_milli < 0):
            raise AssertionError("a placement overcommitted a node")  # a bug, not an input error
        outcomes = tuple(
            JobOutcome(
                job=item.job,
                started_at_seconds=self.started.get(item.job.name),
                finished_at_seconds=self.finished.get(item.job.name),
                never_fits=item.job.name in self.never,
            )
            for item in self.arrivals
        )
        return QueueRun(outcomes=outcomes, share_samples=tuple(self.samples), partial_placements=self.partial)


def gang_of(item: SyntheticJob) -> GangRequest:
    """The synthetic job as one gang of identical replicas."""
    return GangRequest(
        job=item.job.name, replicas=item.replicas, requests=ReplicaRequests.uniform(item.replica_request)
    )
