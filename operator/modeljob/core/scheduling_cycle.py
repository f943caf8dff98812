"""One scheduling cycle: reconcile every job, size the waiting ones per node type, order them, place gangs.

Plain data in (jobs, nodes, pods, now, policy), one step per job out (core/steps.py), each with
the reason status and Events will show. The cycle works on one working copy of the cluster's
free capacity (the node table's ledger), so a job placed early in the cycle is seen by every job
after it, and jobs being completed after a crash reserve their nodes before anything new is planned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from modeljob.core.cluster_state import NodeFacts, PodFacts, account, admits, refusals
from modeljob.core.fragmentation import (
    CompiledWorkload,
    TargetWorkload,
    compile_workload,
    fragmentation_milli,
)
from modeljob.core.gang_placement import Unplaceable
from modeljob.core.job_state import JobFacts, JobPhase, Requeue
from modeljob.core.jobs import JobShape
from modeljob.core.lifecycle import Plan, reconcile_job
from modeljob.core.node_types import (
    Candidate,
    NodeType,
    Sizing,
    node_type_of,
    node_types,
    size_job,
    type_prices,
)
from modeljob.core.nodes import BoolArray, NodeTable, NodeView, build_node_table
from modeljob.core.planning import Attempt, Planner, best, host_demand, target_workload
from modeljob.core.queueing import QueuedJob, QueueSettings, add_resources, order_queues, queue_policy
from modeljob.core.resources import Resources
from modeljob.core.rolling import settle
from modeljob.core.scoring.filters import feasible_nodes
from modeljob.core.scoring.plugin import ScoringContext
from modeljob.core.scoring.scorers.cpu_balance import HostDemand
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.sizing import Device, Estimate, size_replica
from modeljob.core.steps import Complete, Place, RollBack, Step, Unschedulable, Wait
from modeljob.core.template_rules import PodIndex
from modeljob.core.topology import DEFAULT_TOPOLOGY_KEY

SizingCache = dict[tuple[JobShape, int, int], Estimate]


@dataclass(frozen=True, slots=True)
class CycleSettings:
    queue: QueueSettings = field(default_factory=QueueSettings)
    strict: bool = False  # a job that must wait blocks every job behind it
    node_lost_after_seconds: float = 30.0
    weights: ScoringWeights = DEFAULT_WEIGHTS
    topology_key: str = DEFAULT_TOPOLOGY_KEY  # the node label of a group's domain, unless the job names one


@dataclass(frozen=True, slots=True)
class CycleResult:
    steps: tuple[Step, ...]  # one step per job
    views: tuple[NodeView, ...] = ()  # the cluster as accounted at the start of the cycle
    queue_lengths: Mapping[str, int] = field(default_factory=dict)
    workload: TargetWorkload = field(default_factory=lambda: TargetWorkload(shapes=(), weights=()))
    host_demand: HostDemand | None = None  # what cpu-balance scored with
    # Share of the idle GPUs, at the start of the cycle, that the workload's shapes could not use
    # (FGD's measure; 0 without a workload).
    fragmentation: float = 0.0

    def gpu_allocation(self) -> dict[str, float]:
        """Share of each GPU node's devices requested by the pods bound to it."""
        return {v.name: v.requested.gpus / v.allocatable.gpus for v in self.views if v.allocatable.gpus > 0}


@dataclass(frozen=True, slots=True)
class _Waiting:
    plan: Plan
    sizing: Sizing

    @property
    def job(self) -> JobFacts:
        return self.plan.job


class _Cluster:
    """The cluster for one cycle: nodes by name, the ledger every plan reserves on, and per-cycle
    lookups computed once and shared by every job.

    Jobs nearly always share their nodeSelector and tolerations, so which nodes a job may use,
    and the node types and prices among them, are kept per distinct (selector, tolerations).
    """

    def __init__(self, nodes: Sequence[NodeFacts], pods: Sequence[PodFacts], cache: SizingCache) -> None:
        self.nodes = sorted(nodes, key=lambda n: n.name)
        self.by_name = {n.name: n for n in self.nodes}
        self.views = account(self.nodes, pods)
        self.table: NodeTable = build_node_table(self.views)
        self.row_of = {name: row for row, name in enumerate(self.table.names)}
        types = [node_type_of(v) for v in self.views]
        self.type_masks = {
            t: np.array([other == t for other in types], dtype=np.bool_)
            for t in {t for t in types if t is not None}
        }
        self._cache = cache
        self._eligible: dict[tuple[object, ...], BoolArray] = {}
        self._types: dict[tuple[object, ...], tuple[list[NodeType], dict[NodeType, float]]] = {}

    @staticmethod
    def _key(job: JobFacts) -> tuple[object, ...]:
        return (tuple(sorted(job.node_selector.items())), job.tolerations, job.rules.node_affinity.required)

    def eligible(self, job: JobFacts) -> BoolArray:
        """The nodes the template lets the job use at all: nodeSelector, tolerations and its
        required node affinity (the product affinity the operator adds is ANDed into that one)."""
        key = self._key(job)
        if key not in self._eligible:
            affinity = job.rules.node_affinity
            self._eligible[key] = np.array(
                [
                    admits(n, node_selector=job.node_selector, tolerations=job.tolerations)
                    and affinity.admits(n.name, n.labels)
                    for n in self.nodes
                ],
                dtype=np.bool_,
            )
        return self._eligible[key]

    def sizing(self, job: JobFacts) -> Sizing:
        key = self._key(job)
        if key not in self._types:
            usable = [v for v, ok in zip(self.views, self.eligible(job), strict=True) if ok]
            self._types[key] = (node_types(usable), type_prices(usable))
        types, prices = self._types[key]
        return size_job(job, types, prices=prices, size=self._size)

    def _size(self, job: JobFacts, device: Device) -> Estimate:
        key = (job.shape, device.memory_bytes, device.gpus_per_node)
        if key not in self._cache:
            self._cache[key] = size_replica(job.shape, device)
        return self._cache[key]


def run_cycle(
    jobs: Sequence[JobFacts],
    nodes: Sequence[NodeFacts],
    pods: Sequence[PodFacts],
    *,
    now: datetime,
    settings: CycleSettings,
    sizing_cache: SizingCache | None = None,
) -> CycleResult:
    """Decide, for every job, what to do now."""
    cluster = _Cluster(nodes, pods, sizing_cache if sizing_cache is not None else {})
    at_start = cluster.table.working_copy()  # completions and plans reserve on cluster.table
    steps, waiting = _reconcile_all(jobs, pods, cluster, now=now, settings=settings)
    sizings = [w.sizing for w in waiting.values()]
    workload = target_workload(sizings, pods)
    demand = host_demand(sizings, pods)
    compiled = compile_workload(workload, cluster.table.products)
    planner = Planner(
        table=cluster.table,
        type_masks=cluster.type_masks,
        weights=settings.weights,
        context=ScoringContext(workload=compiled, host_demand=demand),
        pods=PodIndex(cluster.nodes, pods),
        node_labels={node.name: node.labels for node in cluster.nodes},
        topology_key=settings.topology_key,
    )
    policy = queue_policy(settings.queue, capacity=_capacity(cluster.views), usage=_usage_by_namespace(pods))
    ordered = order_queues(
        [_queued(w.job, w.sizing) for w in waiting.values()], policy=policy, now_seconds=now.timestamp()
    )
    queued, queue_lengths = _plan_queue(
        [waiting[entry.name] for entry in ordered], cluster, planner, strict=settings.strict
    )
    return CycleResult(
        steps=(*steps, *queued),
        views=tuple(cluster.views),
        queue_lengths=queue_lengths,
        workload=workload,
        host_demand=demand,
        fragmentation=_fragmentation(at_start, compiled) if workload.shapes else 0.0,
    )


def _fragmentation(table: NodeTable, workload: CompiledWorkload) -> float:
    """Share of ``table``'s idle GPUs that ``workload``'s shapes could not use."""
    fragmented = fragmentation_milli(
        table.cpu_free_milli, table.gpu_free_milli, table.product_index, workload
    )
    idle = float(table.gpu_free_milli.sum())
    return float(fragmented.sum()) / idle if idle else 0.0


def _reconcile_all(
    jobs: Sequence[JobFacts],
    pods: Sequence[PodFacts],
    cluster: _Cluster,
    *,
    now: datetime,
    settings: CycleSettings,
) -> tuple[list[Step], dict[str, _Waiting]]:
    """Every job compared with its pods and nodes: the steps decided already, and the jobs to plan."""
    pods_by_job: dict[str, list[PodFacts]] = defaultdict(list)
    for pod in pods:
        if pod.job_uid is not None:
            pods_by_job[pod.job_uid].append(pod)
    steps: list[Step] = []
    waiting: dict[str, _Waiting] = {}
    for job in sorted(jobs, key=lambda j: j.key):
        job_pods = pods_by_job.get(job.uid, [])
        step = reconcile_job(
            job, job_pods, cluster.by_name, now=now, node_lost_after_seconds=settings.node_lost_after_seconds
        )
        if isinstance(step, Plan):
            waiting[f"{job.namespace}/{job.name}"] = _Waiting(step, cluster.sizing(job))
        elif isinstance(step, Complete):
            steps.append(_complete(step, job_pods, cluster))
        else:
            steps.append(step)
    return steps, waiting


def _plan_queue(
    ordered: Sequence[_Waiting], cluster: _Cluster, planner: Planner, *, strict: bool
) -> tuple[list[Step], dict[str, int]]:
    """The waiting jobs in queue order, each placed, left waiting (numbered) or found unschedulable."""
    steps: list[Step] = []
    queue_lengths: dict[str, int] = defaultdict(int)
    blocked_by: JobFacts | None = None
    for waiting in ordered:
        step = _decide(waiting, cluster, planner, blocked_by=blocked_by)
        roll = waiting.plan.roll
        if roll is not None:  # a rolling update's next replica: never waits in the queue itself
            steps.append(settle(step, roll, waiting.plan.phase, behind=blocked_by is not None))
            continue
        if isinstance(step, Wait):
            queue_lengths[step.job.queue] += 1
            step = replace(step, queue_position=sum(queue_lengths.values()))
            if strict and blocked_by is None:
                blocked_by = step.job
        steps.append(step)
    return steps, dict(queue_lengths)


def _decide(
    waiting: _Waiting, cluster: _Cluster, planner: Planner, *, blocked_by: JobFacts | None
) -> Place | Wait | Unschedulable:
    job, sizing, strays = waiting.job, waiting.sizing, waiting.plan.delete_pods
    if not sizing.candidates:
        eligible = cluster.eligible(job)
        if cluster.nodes and not eligible.any():
            message = refusals(
                cluster.nodes,
                node_selector=job.node_selector,
                tolerations=job.tolerations,
                node_affinity=job.rules.node_affinity,
            )
        else:
            message = sizing.explain_unschedulable()
        return Unschedulable(job=job, message=message, delete_pods=strays)
    roll = waiting.plan.roll
    pending = [roll.replica] if roll is not None else _pending_replicas(job)
    candidates = _candidates_for(job, sizing, cluster.by_name)
    plan = planner.try_node_types if job.gang else planner.try_one_by_one
    attempts = plan(job, candidates, eligible=cluster.eligible(job), pending=pending)
    chosen = best(attempts) if blocked_by is None else None
    if chosen is not None:
        candidate, placement = chosen
        for assignment in placement.assignments:
            cluster.table.reserve(cluster.row_of[assignment.node], candidate.request, assignment.devices)
        planner.record(job, [a.node for a in placement.assignments])
        return Place(
            job=job,
            candidate=candidate,
            placement=tuple(
                replace(a, replica=pending[a.replica], score=round(a.score, 4)) for a in placement.assignments
            ),
            tried=tuple(a.tried for a in attempts),
            delete_pods=strays,
            replaces=roll,
        )
    return _not_placed(waiting, candidates[0], attempts, blocked_by=blocked_by)


def _not_placed(
    waiting: _Waiting, preferred: Candidate, attempts: Sequence[Attempt], *, blocked_by: JobFacts | None
) -> Wait | Unschedulable:
    """Why a sized job was not placed: never on this cluster, or not now (and what it waits for)."""
    job, plan = waiting.job, waiting.plan
    failures = [a.result for a in attempts if isinstance(a.result, Unplaceable)]
    if failures and all(f.never_fits for f in failures):
        reasons = [f.reason for f in failures] + list(waiting.sizing.rejected)
        return Unschedulable(
            job=job,
            message="the job can never fit this cluster: " + "; ".join(reasons),
            candidate=preferred,
            delete_pods=plan.delete_pods,
        )
    if blocked_by is not None:
        message = f"waiting behind {blocked_by.namespace}/{blocked_by.name} (strict queue order)"
    else:
        first = next((f for f in failures if not f.never_fits), None)
        message = "waiting for room: " + (first.reason if first is not None else "no node fits now")
    return Wait(
        job=job,
        message=message,
        queue_position=0,  # numbered in queue order by _plan_queue
        candidate=preferred,
        phase=plan.phase,  # a non-gang job with some replicas placed keeps the phase its pods give it
        delete_pods=plan.delete_pods,
    )


def _queued(job: JobFacts, sizing: Sizing) -> QueuedJob:
    demand = Resources(gpus=0)
    if sizing.candidates:
        preferred = sizing.candidates[0]
        wants = preferred.request.resources
        pods = (job.replicas - len(job.placed_replicas)) * preferred.pods_per_replica
        demand = Resources(
            cpu_milli=wants.cpu_milli * pods,
            memory_bytes=wants.memory_bytes * pods,
            gpus=wants.gpus * pods,
        )
    return QueuedJob(
        name=f"{job.namespace}/{job.name}",
        submitted_at_seconds=job.created.timestamp(),
        namespace=job.namespace,
        queue=job.queue,
        priority=job.priority,
        expected_duration_seconds=job.expected_duration_seconds,
        demand=demand,
    )


def _usage_by_namespace(pods: Sequence[PodFacts]) -> dict[str, Resources]:
    usage: dict[str, Resources] = {}
    for pod in pods:
        if pod.holds_resources:
            usage[pod.namespace] = add_resources(usage.get(pod.namespace, Resources(gpus=0)), pod.requests)
    return usage


def _capacity(views: Sequence[NodeView]) -> Resources:
    total = Resources(gpus=0)
    for view in views:
        total = add_resources(total, view.allocatable)
    return total


def _pending_replicas(job: JobFacts) -> list[int]:
    return [r for r in range(job.replicas) if r not in job.placed_replicas]


def _candidates_for(job: JobFacts, sizing: Sizing, nodes: Mapping[str, NodeFacts]) -> tuple[Candidate, ...]:
    """A partly placed (non-gang) job keeps the node type its placed replicas were sized for."""
    if not job.placement:
        return sizing.candidates
    placed_types = {node_type_of(nodes[e.node].view) for e in job.placement if e.node in nodes}
    return tuple(c for c in sizing.candidates if c.node_type in placed_types) or sizing.candidates


def _complete(step: Complete, job_pods: Sequence[PodFacts], cluster: _Cluster) -> Complete | RollBack:
    """Finish a written placement if its unbound replicas still fit their nodes, else roll it back:
    the step with the candidate its replicas are sized as, reserved on the cycle's ledger."""
    job = step.job
    bound = {p.name for p in job_pods if p.node is not None}
    # Sized as the replicas being bound (a rolling update's may differ from the others').
    anchor = step.to_bind[0] if step.to_bind else (job.placement[0] if job.placement else None)
    first = cluster.by_name.get(anchor.node) if anchor is not None else None
    node_type = node_type_of(first.view) if first is not None else None
    candidate = next((c for c in cluster.sizing(job).candidates if c.node_type == node_type), None)
    if step.to_bind and candidate is None:
        return _cannot_complete(job, job_pods, "the placement's node type can no longer hold a replica")
    for entry in step.to_bind:
        if entry.pod in bound or candidate is None:
            continue
        row = cluster.row_of.get(entry.node)
        if row is None or not feasible_nodes(cluster.table, candidate.request)[row]:
            return _cannot_complete(
                job, job_pods, f"node {entry.node} no longer has room for replica {entry.replica}"
            )
        cluster.table.reserve(row, candidate.request)
    return replace(step, candidate=candidate)


def _cannot_complete(job: JobFacts, job_pods: Sequence[PodFacts], why: str) -> RollBack:
    return RollBack(
        job=job,
        reason=Requeue.BINDING_FAILED.value,
        message=f"the written placement cannot be completed: {why}; back to the queue",
        phase=JobPhase.QUEUED,
        requeue=Requeue.BINDING_FAILED,
        delete_pods=tuple(sorted(p.name for p in job_pods)),
        was_binding=True,
    )
