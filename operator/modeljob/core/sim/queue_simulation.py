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
from modeljob.core.gang_placement import GangRequest, Placement, ReplicaRequests, plan_gang
from modeljob.core.nodes import NodeTable, NodeView, build_node_table
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
    table = build_node_table(sorted(nodes, key=lambda n: n.name)).working_copy()
    capacity = _capacity(table)
    empty = table.emptied()
    # The fragmentation scorer's expectations: the replica shapes of this very stream.
    shapes = [
        TaskShape(
            cpu_milli=item.replica_request.resources.cpu_milli,
            gpu_milli=item.replica_request.resources.gpu_milli
            if item.replica_request.uses_accelerator
            else 0,
            gpus=item.replica_request.resources.gpus if item.replica_request.uses_accelerator else 0,
            products=item.replica_request.products,
        )
        for item in jobs
    ]
    context = ScoringContext(workload=compile_workload(learn_target_workload(shapes), table.products))
    row_of = {name: row for row, name in enumerate(table.names)}
    by_name = {item.job.name: item for item in jobs}
    arrivals = sorted(jobs, key=lambda item: item.job.key)
    waiting: list[QueuedJob] = []
    running: dict[str, tuple[SyntheticJob, Placement]] = {}
    usage: dict[str, Resources] = {}
    completions: list[tuple[float, str]] = []
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    never: set[str] = set()
    samples: list[tuple[float, tuple[tuple[str, float], ...]]] = []
    partial = 0
    next_arrival = 0
    # Placing only takes capacity away, so a job that failed stays unplaceable until something
    # is released: remember the release count at its last failure and skip it until that moves.
    releases = 0
    failed_at: dict[str, int] = {}

    def release(name: str) -> None:
        item, placement = running.pop(name)
        for assignment in placement.assignments:
            table.release(row_of[assignment.node], item.replica_request, assignment.devices)
        namespace = item.job.namespace
        usage[namespace] = usage[namespace] - item.job.demand
        nonlocal releases
        releases += 1

    while next_arrival < len(arrivals) or completions or waiting:
        if not completions and next_arrival >= len(arrivals):
            # Nothing will ever free capacity again: whatever still waits never starts.
            break
        candidates = []
        if next_arrival < len(arrivals):
            candidates.append(arrivals[next_arrival].job.submitted_at_seconds)
        if completions:
            candidates.append(completions[0][0])
        now = min(candidates)
        while completions and completions[0][0] <= now:
            finished_at, name = heapq.heappop(completions)
            finished[name] = finished_at
            release(name)
        while next_arrival < len(arrivals) and arrivals[next_arrival].job.submitted_at_seconds <= now:
            arrived = arrivals[next_arrival]
            next_arrival += 1
            # A job that does not fit even on the empty cluster is rejected once, on arrival.
            if isinstance(plan_gang(empty, _gang(arrived), weights=weights, context=context), Placement):
                waiting.append(arrived.job)
            else:
                never.add(arrived.job.name)
        policy = queue_policy(settings, capacity=capacity, usage=usage)
        for job in order_queues(waiting, policy=policy, now_seconds=now):
            item = by_name[job.name]
            if failed_at.get(job.name) == releases:
                if backfill:
                    continue
                break
            plan = plan_gang(table, _gang(item), weights=weights, context=context, check_never_fits=False)
            if not isinstance(plan, Placement):
                failed_at[job.name] = releases
                if backfill:
                    continue
                break
            if len(plan.assignments) != item.replicas:
                partial += 1
            for assignment in plan.assignments:
                table.reserve(row_of[assignment.node], item.replica_request, assignment.devices)
            waiting.remove(job)
            running[job.name] = (item, plan)
            started[job.name] = now
            usage[job.namespace] = usage.get(job.namespace, Resources(gpus=0)) + job.demand
            heapq.heappush(completions, (now + item.duration_seconds, job.name))
        samples.append(
            (
                now,
                tuple(
                    sorted((namespace, dominant_share(used, capacity)) for namespace, used in usage.items())
                ),
            )
        )
    if np.any(table.gpu_free_milli < 0) or np.any(table.cpu_free_milli < 0):
        raise AssertionError("a placement overcommitted a node")  # a bug, not an input error
    outcomes = tuple(
        JobOutcome(
            job=item.job,
            started_at_seconds=started.get(item.job.name),
            finished_at_seconds=finished.get(item.job.name),
            never_fits=item.job.name in never,
        )
        for item in arrivals
    )
    return QueueRun(outcomes=outcomes, share_samples=tuple(samples), partial_placements=partial)


def _gang(item: SyntheticJob) -> GangRequest:
    return GangRequest(
        job=item.job.name, replicas=item.replicas, requests=ReplicaRequests.uniform(item.replica_request)
    )
