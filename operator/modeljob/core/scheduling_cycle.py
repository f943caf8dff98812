"""One scheduling cycle: reconcile every job, size the waiting ones per node type, order them, place gangs.

Plain data in (jobs, nodes, pods, now, policy), decisions out, each with the reason status and
Events will show. The cycle works on one copy of the cluster's free capacity, so a job placed early
in the cycle is seen by every job after it, and jobs being completed after a crash reserve their
nodes before anything new is planned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

import numpy as np

from modeljob.core.cluster_state import NodeFacts, PodFacts, account, admits
from modeljob.core.fragmentation import TargetWorkload, TaskShape, compile_workload, learn_target_workload
from modeljob.core.gang_placement import (
    Assignment,
    GangRequest,
    Placement,
    ReplicaRequests,
    Unplaceable,
    plan_gang,
)
from modeljob.core.jobs import JobShape
from modeljob.core.lifecycle import Action, JobFacts, JobPhase, Placed, Reconciliation, Requeue, reconcile_job
from modeljob.core.nodes import BoolArray, NodeTable, NodeView, PodRequest, build_node_table, subset
from modeljob.core.queueing import QueuedJob, QueueSettings, add_resources, order_queues, queue_policy
from modeljob.core.resources import Resources, format_bytes
from modeljob.core.scoring.cpu_balance import HostDemand, learn_host_demand
from modeljob.core.scoring.filters import feasible_nodes
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.sizing import Device, Estimate, SizingError, size_replica

# --- node types and sizing ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class NodeType:
    """Nodes that size a replica the same way: accelerator, product, device memory, devices per node."""

    accelerator: str
    product: str
    device_memory_bytes: int  # 0 = the node does not say
    gpus_per_node: int

    def describe(self) -> str:
        memory = f", {format_bytes(self.device_memory_bytes)}" if self.device_memory_bytes else ""
        return f"{self.product or 'unlabelled ' + self.accelerator}{memory}"


def node_type_of(view: NodeView) -> NodeType | None:
    if view.accelerator is None or view.allocatable.gpus <= 0:
        return None
    return NodeType(
        accelerator=view.accelerator,
        product=view.gpu_product or "",
        device_memory_bytes=view.gpu_memory_bytes or 0,
        gpus_per_node=view.allocatable.gpus,
    )


def node_types(nodes: Sequence[NodeView]) -> list[NodeType]:
    """Distinct node types among ``nodes``, in a fixed order."""
    return sorted({t for t in (node_type_of(v) for v in nodes) if t is not None})


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job sized for one node type: the estimate and the pod request it turns into."""

    node_type: NodeType
    estimate: Estimate
    request: PodRequest
    price_per_replica_hour: float | None


@dataclass(frozen=True, slots=True)
class Sizing:
    candidates: tuple[Candidate, ...]  # preferred first: cheapest per replica, then fewest GPUs
    rejected: tuple[str, ...]  # one line per node type that cannot hold a replica, and why

    def explain_unschedulable(self) -> str:
        if not self.rejected:
            return "no node in the cluster has an accelerator"
        return "no node type can hold one replica: " + "; ".join(self.rejected)


def _price_per_replica(job_gpus: int, node_type: NodeType, prices: Mapping[NodeType, float]) -> float | None:
    price = prices.get(node_type)
    if price is None:
        return None
    return price * job_gpus / node_type.gpus_per_node


def size_job(
    job: JobFacts,
    types: Sequence[NodeType],
    *,
    prices: Mapping[NodeType, float] | None = None,
    size: Callable[[JobFacts, Device], Estimate] | None = None,
) -> Sizing:
    """Size one replica for each node type the job may use; a replica must fit on one node."""
    sizer = size if size is not None else (lambda j, d: size_replica(j.shape, d))
    candidates: list[Candidate] = []
    rejected: list[str] = []
    for node_type in types:
        what = node_type.describe()
        if node_type.accelerator != job.accelerator:
            continue
        if job.products and node_type.product not in job.products:
            rejected.append(f"{what}: not among spec.accelerator.products")
            continue
        memory = node_type.device_memory_bytes or job.memory_per_device_bytes or 0
        if memory <= 0:
            rejected.append(
                f"{what}: the nodes do not label their device memory "
                "and spec.accelerator.memoryPerDevice is unset"
            )
            continue
        try:
            estimate = sizer(job, Device(memory_bytes=memory, gpus_per_node=node_type.gpus_per_node))
        except SizingError as exc:
            rejected.append(f"{what}: {exc}")
            continue
        if not estimate.fits:
            rejected.append(
                f"{what}: {format_bytes(estimate.gpu_memory_per_gpu_bytes)} per GPU does not fit "
                f"{format_bytes(memory)} devices"
            )
            continue
        if estimate.gpus > node_type.gpus_per_node:
            rejected.append(
                f"{what}: needs {estimate.gpus} × {format_bytes(memory)} GPUs per replica "
                f"({estimate.nodes} nodes), but a replica runs in one pod on one node and these nodes "
                f"have {node_type.gpus_per_node}"
            )
            continue
        resources = Resources(
            cpu_milli=estimate.cpu_milli + job.extra_requests.cpu_milli,
            memory_bytes=estimate.memory_bytes + job.extra_requests.memory_bytes,
            ephemeral_storage_bytes=estimate.ephemeral_storage_bytes
            + job.extra_requests.ephemeral_storage_bytes,
            gpus=estimate.gpus,
        )
        request = PodRequest(
            resources=resources,
            accelerator=node_type.accelerator,
            products=(node_type.product,) if node_type.product else (),
        )
        candidates.append(
            Candidate(
                node_type=node_type,
                estimate=estimate,
                request=request,
                price_per_replica_hour=_price_per_replica(estimate.gpus, node_type, prices or {}),
            )
        )
    candidates.sort(
        key=lambda c: (
            c.price_per_replica_hour is None,
            c.price_per_replica_hour or 0.0,
            c.estimate.gpus,
            -c.node_type.device_memory_bytes,
            c.node_type,
        )
    )
    return Sizing(candidates=tuple(candidates), rejected=tuple(rejected))


def size_for_cluster(
    job: JobFacts,
    nodes: Sequence[NodeFacts],
    *,
    size: Callable[[JobFacts, Device], Estimate] | None = None,
) -> Sizing:
    """Size ``job`` for the node types among the nodes it may use at all (selector, taints)."""
    usable = [
        n.view for n in nodes if admits(n, node_selector=job.node_selector, tolerations=job.tolerations)
    ]
    return size_job(job, node_types(usable), prices=type_prices(usable), size=size)


def type_prices(nodes: Sequence[NodeView]) -> dict[NodeType, float]:
    """The lowest labelled price per node-hour of each node type."""
    prices: dict[NodeType, float] = {}
    for view in nodes:
        node_type = node_type_of(view)
        if node_type is not None and view.price_per_hour is not None:
            prices[node_type] = min(prices.get(node_type, view.price_per_hour), view.price_per_hour)
    return prices


# --- the cycle ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedReplica:
    replica: int
    node: str
    score: float


class Verdict(StrEnum):
    KEEP = "keep"  # reconciliation only (none, update, roll back, complete)
    PLACE = "place"  # a new placement to write and bind
    WAIT = "wait"  # stays Queued: fits the cluster, not now
    UNSCHEDULABLE = "unschedulable"  # can never fit the cluster as it is


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the cycle decided for one job."""

    job: JobFacts
    reconciliation: Reconciliation
    verdict: Verdict = Verdict.KEEP
    placement: tuple[PlannedReplica, ...] = ()
    candidate: Candidate | None = None  # the node type sized for (placement, completion, or preferred)
    queue_position: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class CycleSettings:
    queue: QueueSettings = field(default_factory=QueueSettings)
    strict: bool = False  # a job that must wait blocks every job behind it
    node_lost_after_seconds: float = 30.0
    weights: ScoringWeights = DEFAULT_WEIGHTS


@dataclass(frozen=True, slots=True)
class CycleResult:
    outcomes: tuple[Outcome, ...]
    views: tuple[NodeView, ...] = ()  # the cluster as accounted at the start of the cycle
    queue_lengths: Mapping[str, int] = field(default_factory=dict)
    workload: TargetWorkload = field(default_factory=lambda: TargetWorkload(shapes=(), weights=()))
    host_demand: HostDemand | None = None  # what cpu-balance scored with


class _ClusterIndex:
    """Per-cycle lookups over the node table's rows, computed once and shared by every job.

    Jobs nearly always share their nodeSelector and tolerations, so which nodes a job may use,
    and the node types and prices among them, are kept per distinct (selector, tolerations).
    """

    def __init__(self, nodes: Sequence[NodeFacts], views: Sequence[NodeView]) -> None:
        self._nodes = nodes
        self._views = views
        types = [node_type_of(v) for v in views]
        self.type_masks = {
            t: np.array([other == t for other in types], dtype=np.bool_)
            for t in {t for t in types if t is not None}
        }
        self._eligible: dict[tuple[object, ...], BoolArray] = {}
        self._types: dict[tuple[object, ...], tuple[list[NodeType], dict[NodeType, float]]] = {}

    @staticmethod
    def _key(job: JobFacts) -> tuple[object, ...]:
        return (tuple(sorted(job.node_selector.items())), job.tolerations)

    def eligible(self, job: JobFacts) -> BoolArray:
        key = self._key(job)
        if key not in self._eligible:
            self._eligible[key] = np.array(
                [
                    admits(n, node_selector=job.node_selector, tolerations=job.tolerations)
                    for n in self._nodes
                ],
                dtype=np.bool_,
            )
        return self._eligible[key]

    def types_and_prices(self, job: JobFacts) -> tuple[list[NodeType], dict[NodeType, float]]:
        key = self._key(job)
        if key not in self._types:
            usable = [v for v, ok in zip(self._views, self.eligible(job), strict=True) if ok]
            self._types[key] = (node_types(usable), type_prices(usable))
        return self._types[key]


def reserve(table: NodeTable, row: int, request: PodRequest, devices: Sequence[int] = ()) -> None:
    """Take ``request`` out of node ``row``'s free columns (in place); without ``devices`` the
    first devices free enough are used."""
    wants = request.resources
    table.cpu_free_milli[row] -= wants.cpu_milli
    table.memory_free_bytes[row] -= wants.memory_bytes
    table.storage_free_bytes[row] -= wants.ephemeral_storage_bytes
    if request.uses_accelerator:
        chosen = (
            list(devices)
            or np.flatnonzero(table.gpu_free_milli[row] >= wants.gpu_milli)[: wants.gpus].tolist()
        )
        table.gpu_free_milli[row, chosen] -= wants.gpu_milli


def _target_workload(waiting: Sequence[tuple[JobFacts, Sizing]], pods: Sequence[PodFacts]) -> TargetWorkload:
    """What the fragmentation scorer should keep room for: the shapes of the jobs waiting now
    and of the GPU pods running, most frequent first (FGD's target workload)."""
    shapes = [
        TaskShape(cpu_milli=c.request.resources.cpu_milli, gpu_milli=1000, gpus=c.estimate.gpus)
        for _, sizing in waiting
        for c in sizing.candidates[:1]
    ]
    shapes += [
        TaskShape(cpu_milli=p.requests.cpu_milli, gpu_milli=1000, gpus=p.requests.gpus)
        for p in pods
        if p.holds_resources and p.requests.gpus > 0
    ]
    return learn_target_workload(shapes)


def _host_demand(waiting: Sequence[tuple[JobFacts, Sizing]], pods: Sequence[PodFacts]) -> HostDemand | None:
    """What cpu-balance keeps beside idle GPUs: CPU and memory per GPU requested by the same work
    the target workload is learned from (the jobs waiting now and the GPU pods running)."""
    requests = [c.request for _, sizing in waiting for c in sizing.candidates[:1]]
    requests += [PodRequest(resources=p.requests) for p in pods if p.holds_resources and p.requests.gpus > 0]
    return learn_host_demand(requests)


@dataclass(frozen=True, slots=True)
class _Attempt:
    candidate: Candidate
    result: Placement | Unplaceable


def _try_candidates(
    job: JobFacts,
    candidates: Sequence[Candidate],
    *,
    table: NodeTable,
    eligible: BoolArray,
    type_masks: Mapping[NodeType, BoolArray],
    pending: Sequence[int],
    weights: ScoringWeights,
    context: ScoringContext,
) -> list[_Attempt]:
    """The whole gang planned on each node type it was sized for (a gang stays on one type, so
    every replica is sized for the device it gets)."""
    attempts = []
    for candidate in candidates:
        of_type = type_masks.get(candidate.node_type, np.zeros(len(table), dtype=np.bool_))
        # Plan on this type's admitting nodes alone, so the reasons count only nodes it could use.
        view = subset(table, eligible & of_type)
        gang = GangRequest(
            job=f"{job.namespace}/{job.name}",
            replicas=len(pending),
            requests=ReplicaRequests.uniform(candidate.request),
        )
        result = plan_gang(view, gang, weights=weights, context=context)
        not_admitted = int(np.count_nonzero(of_type & ~eligible))
        if isinstance(result, Unplaceable) and not_admitted:
            result = replace(
                result,
                reason=f"{result.reason}; {not_admitted} more node(s) of this type do not admit the job "
                "(spec.template.spec nodeSelector / tolerations)",
            )
        attempts.append(_Attempt(candidate, result))
    return attempts


def _mean_score(placement: Placement) -> float:
    return sum(a.score for a in placement.assignments) / max(1, len(placement.assignments))


def _best(attempts: Sequence[_Attempt]) -> tuple[Candidate, Placement] | None:
    """The placement with the best mean score; ties go to the preferred (cheaper) node type."""
    best: tuple[Candidate, Placement] | None = None
    for attempt in attempts:
        if isinstance(attempt.result, Placement) and (
            best is None or _mean_score(attempt.result) > _mean_score(best[1])
        ):
            best = (attempt.candidate, attempt.result)
    return best


def _why(chosen: Candidate, attempts: Sequence[_Attempt]) -> str:
    """Why this node type: every type the job was sized for, with its mean score or why it failed."""
    parts = []
    for attempt in attempts:
        what = attempt.candidate.node_type.describe()
        if isinstance(attempt.result, Placement):
            mark = " (chosen)" if attempt.candidate is chosen else ""
            parts.append(
                f"{what}: {attempt.candidate.estimate.gpus} GPU(s)/replica, mean score "
                f"{_mean_score(attempt.result):.2f}{mark}"
            )
        else:
            parts.append(f"{what}: {attempt.result.reason}")
    return "planned on each node type the job was sized for: " + "; ".join(parts)


def _queued(job: JobFacts, sizing: Sizing) -> QueuedJob:
    demand = Resources(gpus=0)
    if sizing.candidates:
        wants = sizing.candidates[0].request.resources
        replicas = job.replicas - len(job.placement)
        demand = Resources(
            cpu_milli=wants.cpu_milli * replicas,
            memory_bytes=wants.memory_bytes * replicas,
            gpus=wants.gpus * replicas,
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


def run_cycle(
    jobs: Sequence[JobFacts],
    nodes: Sequence[NodeFacts],
    pods: Sequence[PodFacts],
    *,
    now: datetime,
    settings: CycleSettings,
    sizing_cache: dict[tuple[JobShape, int, int], Estimate] | None = None,
) -> CycleResult:
    """Decide, for every job, what to do now."""
    sorted_nodes = sorted(nodes, key=lambda n: n.name)
    by_name = {n.name: n for n in sorted_nodes}
    views = account(sorted_nodes, pods)
    table = build_node_table(views)
    row_of = {name: row for row, name in enumerate(table.names)}
    cache = sizing_cache if sizing_cache is not None else {}

    def cached_size(job: JobFacts, device: Device) -> Estimate:
        key = (job.shape, device.memory_bytes, device.gpus_per_node)
        if key not in cache:
            cache[key] = size_replica(job.shape, device)
        return cache[key]

    index = _ClusterIndex(sorted_nodes, views)

    def sizing_of(job: JobFacts) -> Sizing:
        types, prices = index.types_and_prices(job)
        return size_job(job, types, prices=prices, size=cached_size)

    pods_by_job: dict[str, list[PodFacts]] = defaultdict(list)
    for pod in pods:
        if pod.job_uid is not None:
            pods_by_job[pod.job_uid].append(pod)

    outcomes: list[Outcome] = []
    waiting: dict[str, tuple[JobFacts, Reconciliation, Sizing]] = {}
    for job in sorted(jobs, key=lambda j: j.key):
        job_pods = pods_by_job.get(job.uid, [])
        rec = reconcile_job(
            job, job_pods, by_name, now=now, node_lost_after_seconds=settings.node_lost_after_seconds
        )
        if rec.action is Action.PLAN:
            waiting[f"{job.namespace}/{job.name}"] = (job, rec, sizing_of(job))
        elif rec.action is Action.COMPLETE:
            outcomes.append(
                _complete(
                    job,
                    rec,
                    job_pods=job_pods,
                    table=table,
                    row_of=row_of,
                    nodes=by_name,
                    sizing_of=sizing_of,
                )
            )
        else:
            outcomes.append(Outcome(job=job, reconciliation=rec))

    sized = [(job, sizing) for job, _, sizing in waiting.values()]
    workload = _target_workload(sized, pods)
    host_demand = _host_demand(sized, pods)
    context = ScoringContext(workload=compile_workload(workload, table.products), host_demand=host_demand)
    policy = queue_policy(settings.queue, capacity=_capacity(views), usage=_usage_by_namespace(pods))
    ordered = order_queues(
        [_queued(job, sizing) for job, _, sizing in waiting.values()],
        policy=policy,
        now_seconds=now.timestamp(),
    )
    position = 0
    blocked_by: JobFacts | None = None
    queue_lengths: dict[str, int] = defaultdict(int)
    for entry in ordered:
        job, rec, sizing = waiting[entry.name]
        if not sizing.candidates:
            outcomes.append(Outcome(job, rec, Verdict.UNSCHEDULABLE, message=sizing.explain_unschedulable()))
            continue
        pending = _pending_replicas(job)
        candidates = _candidates_for(job, sizing, by_name)
        eligible = index.eligible(job)
        attempts = (
            _try_candidates(
                job,
                candidates,
                table=table,
                eligible=eligible,
                type_masks=index.type_masks,
                pending=pending,
                weights=settings.weights,
                context=context,
            )
            if job.gang
            else _try_one_by_one(
                job,
                candidates,
                table=table,
                eligible=eligible,
                type_masks=index.type_masks,
                pending=pending,
                settings=settings,
                context=context,
            )
        )
        best = _best(attempts) if blocked_by is None else None
        if best is not None:
            candidate, placement = best
            for assignment in placement.assignments:
                reserve(table, row_of[assignment.node], candidate.request, assignment.devices)
            planned = tuple(
                PlannedReplica(replica=pending[a.replica], node=a.node, score=round(a.score, 4))
                for a in placement.assignments
            )
            outcomes.append(
                Outcome(
                    job,
                    rec,
                    Verdict.PLACE,
                    placement=planned,
                    candidate=candidate,
                    message=_why(candidate, attempts),
                )
            )
            continue
        failures = [a.result for a in attempts if isinstance(a.result, Unplaceable)]
        if failures and all(f.never_fits for f in failures):
            reasons = [f.reason for f in failures] + list(sizing.rejected)
            outcomes.append(
                Outcome(
                    job,
                    rec,
                    Verdict.UNSCHEDULABLE,
                    candidate=candidates[0],
                    message="the job can never fit this cluster: " + "; ".join(reasons),
                )
            )
            continue
        position += 1
        queue_lengths[job.queue] += 1
        if blocked_by is not None:
            message = f"waiting behind {blocked_by.namespace}/{blocked_by.name} (strict queue order)"
        else:
            first = next((f for f in failures if not f.never_fits), None)
            message = "waiting for room: " + (first.reason if first is not None else "no node fits now")
            if settings.strict:
                blocked_by = job
        outcomes.append(
            Outcome(job, rec, Verdict.WAIT, candidate=candidates[0], queue_position=position, message=message)
        )
    return CycleResult(
        outcomes=tuple(outcomes),
        views=tuple(views),
        queue_lengths=dict(queue_lengths),
        workload=workload,
        host_demand=host_demand,
    )


def _try_one_by_one(
    job: JobFacts,
    candidates: Sequence[Candidate],
    *,
    table: NodeTable,
    eligible: BoolArray,
    type_masks: Mapping[NodeType, BoolArray],
    pending: Sequence[int],
    settings: CycleSettings,
    context: ScoringContext,
) -> list[_Attempt]:
    """A job that is not a gang: each replica that fits now is placed, the rest wait (on the
    node type its placed replicas were sized for, or the best one)."""
    for candidate in candidates:
        work = _copy(table)
        assignments: list[Assignment] = []
        last: Unplaceable | None = None
        for index in range(len(pending)):
            [attempt] = _try_candidates(
                job,
                [candidate],
                table=work,
                eligible=eligible,
                type_masks=type_masks,
                pending=[pending[index]],
                weights=settings.weights,
                context=context,
            )
            if isinstance(attempt.result, Placement):
                placed = attempt.result.assignments[0]
                reserve(work, work.names.index(placed.node), candidate.request, placed.devices)
                assignments.append(replace(placed, replica=index))
            else:
                last = attempt.result
                break
        if assignments:
            return [_Attempt(candidate, Placement(assignments=tuple(assignments), reasons=()))]
        if last is not None and not last.never_fits:
            return [_Attempt(candidate, last)]
    return _try_candidates(
        job,
        candidates,
        table=table,
        eligible=eligible,
        type_masks=type_masks,
        pending=pending[:1],
        weights=settings.weights,
        context=context,
    )


def _copy(table: NodeTable) -> NodeTable:
    return replace(
        table,
        cpu_free_milli=table.cpu_free_milli.copy(),
        memory_free_bytes=table.memory_free_bytes.copy(),
        storage_free_bytes=table.storage_free_bytes.copy(),
        gpu_free_milli=table.gpu_free_milli.copy(),
    )


def _pending_replicas(job: JobFacts) -> list[int]:
    placed = {entry.replica for entry in job.placement}
    return [r for r in range(job.replicas) if r not in placed]


def _candidates_for(job: JobFacts, sizing: Sizing, nodes: Mapping[str, NodeFacts]) -> tuple[Candidate, ...]:
    """A partly placed (non-gang) job keeps the node type its placed replicas were sized for."""
    if not job.placement:
        return sizing.candidates
    placed_types = {node_type_of(nodes[e.node].view) for e in job.placement if e.node in nodes}
    return tuple(c for c in sizing.candidates if c.node_type in placed_types) or sizing.candidates


def _complete(
    job: JobFacts,
    rec: Reconciliation,
    *,
    job_pods: Sequence[PodFacts],
    table: NodeTable,
    row_of: Mapping[str, int],
    nodes: Mapping[str, NodeFacts],
    sizing_of: Callable[[JobFacts], Sizing],
) -> Outcome:
    """Finish a written placement if its unbound replicas still fit their nodes, else roll it back."""
    bound = {p.name for p in job_pods if p.node is not None}
    sizing = sizing_of(job)
    first = nodes.get(job.placement[0].node) if job.placement else None
    node_type = node_type_of(first.view) if first is not None else None
    candidate = next((c for c in sizing.candidates if c.node_type == node_type), None)
    if rec.to_bind and candidate is None:
        return _rolled_back(job, job_pods, "the placement's node type can no longer hold a replica")
    for entry in rec.to_bind:
        if entry.pod in bound or candidate is None:
            continue
        row = row_of.get(entry.node)
        single = np.zeros(len(table), dtype=np.bool_)
        if row is not None:
            single[row] = True
        if row is None or not (feasible_nodes(table, candidate.request) & single).any():
            return _rolled_back(
                job, job_pods, f"node {entry.node} no longer has room for replica {entry.replica}"
            )
        reserve(table, row, candidate.request)
    return Outcome(job=job, reconciliation=rec, candidate=candidate)


def _rolled_back(job: JobFacts, job_pods: Sequence[PodFacts], why: str) -> Outcome:
    return Outcome(
        job=job,
        reconciliation=Reconciliation(
            Action.ROLL_BACK,
            reason=Requeue.BINDING_FAILED.value,
            message=f"the written placement cannot be completed: {why}; back to the queue",
            phase=JobPhase.QUEUED,
            requeue=Requeue.BINDING_FAILED,
            delete_pods=tuple(sorted(p.name for p in job_pods)),
        ),
    )


def placed_entries(outcome: Outcome, pod_names: Mapping[int, str]) -> tuple[Placed, ...]:
    """The new status.placement of a PLACE outcome: the kept entries plus the planned replicas."""
    planned = tuple(
        Placed(replica=p.replica, pod=pod_names[p.replica], node=p.node, score=p.score)
        for p in outcome.placement
    )
    return tuple(sorted((*outcome.job.placement, *planned), key=lambda e: e.replica))
