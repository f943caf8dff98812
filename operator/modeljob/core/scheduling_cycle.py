"""One scheduling cycle: reconcile every job, size the waiting ones per node type, admit them by
quota, order them, place gangs, and preempt for those that cannot be placed.

Plain data in (jobs, nodes, pods, queues, now, policy), one step per job out (core/steps.py),
each with the reason status and Events will show. The cycle works on one working copy of the
cluster's free capacity (the node table's ledger), so a job placed early in the cycle is seen by
every job after it, and jobs being completed after a crash reserve their nodes before anything
new is planned. Admission by quota is core/admission.py's, preemption core/preempting.py's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

from modeljob.core.admission import (
    AdmissionPlan,
    QueueConfig,
    Queues,
    Waiting,
    admit_waiting,
    charged,
    held,
    hold_seconds,
    policies,
    queues_of,
)
from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.cycle_cluster import Cluster, SizingCache, complete
from modeljob.core.cycle_queue import CycleQueue, Planned, WaitingItems
from modeljob.core.fragmentation import (
    CompiledWorkload,
    TargetWorkload,
    compile_workload,
    fragmentation_milli,
)
from modeljob.core.job_state import JobFacts
from modeljob.core.lifecycle import Plan, Reconciled, reconcile_job
from modeljob.core.node_set_memory import NodeSetMemory
from modeljob.core.nodes import NodeTable, NodeView
from modeljob.core.plan_carry import CarriedPlans
from modeljob.core.plan_memo import PlanMemo
from modeljob.core.planning import Planner, count_work, host_demand, target_workload
from modeljob.core.pod_index import IndexedPods, PodIndex
from modeljob.core.preempting import Preempting, victims_of
from modeljob.core.preemption_view import evictable_phase, holder_candidate
from modeljob.core.queueing import QueueOrder, QueueSettings, add_resources
from modeljob.core.quota import Admission, QuotaRequest, Usage, usage_of
from modeljob.core.resources import Resources
from modeljob.core.scoring.plugin import ScoringContext
from modeljob.core.scoring.scorers.cpu_balance import HostDemand
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.steps import Complete, Keep, Place, Preempt, SetPhase, Step, Wait
from modeljob.core.topology import DEFAULT_TOPOLOGY_KEY

__all__ = [
    "CycleMemory",
    "CycleResult",
    "CycleSettings",
    "QueueConfig",
    "QueueOutcome",
    "SizingCache",
    "run_cycle",
]


@dataclass(frozen=True, slots=True)
class CycleSettings:
    queue: QueueSettings = field(default_factory=QueueSettings)
    strict: bool = False  # a job that must wait blocks every job behind it
    node_lost_after_seconds: float = 30.0
    weights: ScoringWeights = DEFAULT_WEIGHTS
    topology_key: str = DEFAULT_TOPOLOGY_KEY  # the node label of a group's domain, unless the job names one


@dataclass(eq=False)
class CycleMemory:
    """What one cycle leaves for the next, in memory only (the scheduling loop keeps one): what
    it worked out from the nodes, each waiting job's quota request, and the plans made on the
    ledger as it started. Each part is kept only while what it was worked out from is unchanged
    (core/cycle_cluster.py, core/cycle_queue.py, core/plan_memo.py), so a cycle decides what it
    would without it; a restart simply works everything out again."""

    nodes: NodeSetMemory = field(default_factory=NodeSetMemory)
    waiting: WaitingItems = field(default_factory=WaitingItems)
    plans: CarriedPlans = field(default_factory=CarriedPlans)
    pods: IndexedPods = field(default_factory=dict)  # the pod rules' entry of each pod (PodIndex)
    # uid -> a job, what reconcile_job read of it (``_read``), the step it gave, and that step as
    # planned (with its sizing) when it is a Plan: the same job object, pods and nodes get the
    # same step.
    reconciled: dict[str, tuple[JobFacts, tuple[object, ...], Reconciled, Planned | None]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class QueueOutcome:
    """What the Queues' status shows after the cycle: usage of the placed jobs (those placed now
    included), and per queue how many jobs wait and how many hold quota."""

    queues: Queues
    usage: Usage
    pending: Mapping[str, int]
    admitted: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class CycleResult:
    steps: tuple[Step, ...]  # one step per job (a victim's eviction rides in its preemptor's Preempt)
    views: tuple[NodeView, ...] = ()  # the cluster as accounted at the start of the cycle
    queue_lengths: Mapping[str, int] = field(default_factory=dict)
    workload: TargetWorkload = field(default_factory=lambda: TargetWorkload(shapes=(), weights=()))
    host_demand: HostDemand | None = None  # what cpu-balance scored with
    # Share of the idle GPUs, at the start of the cycle, that the workload's shapes could not use
    # (FGD's measure; 0 without a workload).
    fragmentation: float = 0.0
    queues: QueueOutcome | None = None  # None: no Queue objects (one unlimited queue)

    def gpu_allocation(self) -> dict[str, float]:
        """Share of each GPU node's devices requested by the pods bound to it."""
        return {v.name: v.requested.gpus / v.allocatable.gpus for v in self.views if v.allocatable.gpus > 0}


def run_cycle(
    jobs: Sequence[JobFacts],
    nodes: Sequence[NodeFacts],
    pods: Sequence[PodFacts],
    *,
    now: datetime,
    settings: CycleSettings,
    sizing_cache: SizingCache | None = None,
    queues: Sequence[QueueConfig] = (),
    remember_plans: bool = True,
    memory: CycleMemory | None = None,
    sitting_out: Sequence[JobFacts] = (),
) -> CycleResult:
    """Decide, for every job, what to do now.

    ``remember_plans=False`` plans every job afresh (core/plan_memo.py): the same steps, slower;
    what the tests compare the remembered plans against. ``memory``: what earlier cycles left
    (``CycleMemory``); the same steps as without it. ``sitting_out``: jobs given no step this
    cycle (the loop's back-off of jobs whose writes keep failing); one that holds a placement is
    still charged to its queue for it, as its pods run on, so no other job is admitted into
    quota it holds. One that holds none is charged nothing and keeps its place in the queue (its
    order is read from its spec and status), as Kueue requeues an evicted workload with back-off.
    """
    memory = memory if memory is not None else CycleMemory()
    cluster = Cluster(nodes, pods, sizing_cache if sizing_cache is not None else {}, memory.nodes)
    at_start = cluster.table.working_copy()  # completions and plans reserve on cluster.table
    steps, waiting = _reconcile_all(jobs, pods, cluster, now=now, settings=settings, memory=memory)
    work = count_work([w.sizing for w in waiting.values()], pods, running=cluster.memory.pods.running())
    workload = target_workload(work)
    demand = host_demand(work)
    compiled = compile_workload(workload, cluster.table.products)
    scoring = ScoringContext(workload=compiled, host_demand=demand)
    memo = (
        _plan_memo(cluster, memory, settings=settings, workload=workload, demand=demand)
        if remember_plans
        else None
    )
    planner = _planner(
        cluster, PodIndex(cluster.nodes, pods, known=memory.pods), scoring, settings=settings, memo=memo
    )
    setup = queues_of(queues)
    items = memory.waiting.of(waiting, cluster)
    charged_jobs = [*jobs, *(job for job in sitting_out if job.placement)]
    admission = _admission(charged_jobs, items, cluster, pods, setup, settings=settings, now=now)
    preempting = _preempting(jobs, pods, steps, cluster, setup=setup, admission=admission, now=now)
    requests = {ref: item.request for ref, item in items.items()}
    queue = CycleQueue(waiting, cluster, planner, preempting, admission, requests=requests)
    queued, queue_lengths = queue.plan(strict=settings.strict)
    if planner.memo is not None:
        planner.memo.close()
    victims = victims_of(queued)
    return CycleResult(
        steps=(*(s for s in steps if s.job.ref not in victims), *queued),
        views=tuple(cluster.views),
        queue_lengths=queue_lengths,
        workload=workload,
        host_demand=demand,
        fragmentation=_fragmentation(at_start, compiled) if workload.shapes else 0.0,
        queues=None if setup.tree.unlimited else _outcome(setup, queue.admission, queued, victims),
    )


def _plan_memo(
    cluster: Cluster,
    memory: CycleMemory,
    *,
    settings: CycleSettings,
    workload: TargetWorkload,
    demand: HostDemand | None,
) -> PlanMemo:
    """The plans remembered on ``cluster``'s ledger, carried over from earlier cycles."""
    return PlanMemo(
        cluster.table,
        node_type_of=cluster.type_of,
        carried=memory.plans,
        # All else a plan reads: the nodes (by the generation of what was worked out from
        # them) and the settings; and, for results that read scores, the scoring context.
        context=(cluster.memory.generation, settings.topology_key),
        scoring=(workload, demand, settings.weights),
        type_masks=cluster.type_masks,
    )


def _planner(
    cluster: Cluster,
    pods: PodIndex,
    scoring: ScoringContext,
    *,
    settings: CycleSettings,
    memo: PlanMemo | None,
) -> Planner:
    """Plans gangs on ``cluster``'s ledger, scored in ``scoring`` (``memo``: None plans afresh)."""
    return Planner(
        table=cluster.table,
        type_masks=cluster.type_masks,
        weights=settings.weights,
        context=scoring,
        pods=pods,
        node_labels={node.name: node.labels for node in cluster.nodes},
        topology_key=settings.topology_key,
        memo=memo,
    )


def _preempting(
    jobs: Sequence[JobFacts],
    pods: Sequence[PodFacts],
    steps: Sequence[Step],
    cluster: Cluster,
    *,
    setup: Queues,
    admission: AdmissionPlan,
    now: datetime,
) -> Preempting:
    """Preemption for this cycle; jobs whose step already settles them (a Keep or SetPhase deleting
    no pods) are ``settled``."""
    settled = {s.job.ref for s in steps if isinstance(s, Keep | SetPhase) and not s.delete_pods}
    return Preempting(
        jobs,
        pods,
        queues=setup,
        admission=admission,
        now=now,
        settled=frozenset(settled),
        devices_per_node={v.name: v.allocatable.gpus for v in cluster.views},
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
    cluster: Cluster,
    *,
    now: datetime,
    settings: CycleSettings,
    memory: CycleMemory,
) -> tuple[list[Step], dict[str, Planned]]:
    """Every job compared with its pods and nodes: the steps decided already, and the jobs to plan."""
    pods_by_job: dict[str, list[PodFacts]] = defaultdict(list)
    for pod in pods:
        if pod.job_uid is not None:
            pods_by_job[pod.job_uid].append(pod)
    steps: list[Step] = []
    waiting: dict[str, Planned] = {}
    before, memory.reconciled = memory.reconciled, {}
    # In the order of the jobs' refs ("namespace/name"): one string each, made with the facts, so
    # 15,000 jobs sort in 2 ms where (namespace, name) tuples took 15-40 ms a cycle.
    for job in sorted(jobs, key=attrgetter("ref")):
        job_pods = pods_by_job.get(job.uid, ())
        found = before.get(job.uid)
        if job_pods or job.placement:
            read = _read(job, job_pods, cluster.by_name)
            same = found is not None and found[0] is job and _same(found[1], read)
        else:  # it reads nothing but itself (a waiting job's case): nothing else to compare
            read, same = (), found is not None and found[0] is job and not found[1]
        if found is None or not same:
            step = reconcile_job(
                job,
                job_pods,
                cluster.by_name,
                now=now,
                node_lost_after_seconds=settings.node_lost_after_seconds,
            )
            found = (job, read or (), step, None)
        step = found[2]
        if isinstance(step, Plan):
            sizing = cluster.sizing(job)
            planned = found[3]
            if planned is None or planned.sizing is not sizing:
                planned = Planned(step, sizing)
                found = (*found[:3], planned)
            waiting[job.ref] = planned
        elif isinstance(step, Complete):
            steps.append(complete(step, job_pods, cluster))
        else:
            steps.append(step)
        if read is not None:
            memory.reconciled[job.uid] = found
    return steps, waiting


def _read(
    job: JobFacts, pods: Sequence[PodFacts], nodes: Mapping[str, NodeFacts]
) -> tuple[object, ...] | None:
    """All that ``reconcile_job`` reads of a job but the job itself: its pods, and the nodes its
    pods and placement name (None for one gone); or None when the clock may change its step too:
    one of those nodes is NotReady, and is lost once it has been for the grace period. A job with
    neither pods nor a placement reads nothing else (core/lifecycle.py)."""
    names = {entry.node for entry in job.placement}
    names.update(pod.node for pod in pods if pod.node is not None)
    read: list[object] = [*pods]
    for name in sorted(names):
        node = nodes.get(name)
        if node is not None and not node.ready:
            return None
        read.append(node)
    return tuple(read)


def _same(before: tuple[object, ...], now: tuple[object, ...] | None) -> bool:
    """The same objects (an unchanged pod or node is the same object from cycle to cycle)."""
    if now is None or len(before) != len(now):
        return False
    return all(a is b for a, b in zip(before, now, strict=True))


def _admission(
    jobs: Sequence[JobFacts],
    waiting: Mapping[str, Waiting],
    cluster: Cluster,
    pods: Sequence[PodFacts],
    setup: Queues,
    *,
    settings: CycleSettings,
    now: datetime,
) -> AdmissionPlan:
    """Usage rebuilt from the placed jobs, then each waiting job's whole request admitted (or not).
    Without Queue objects nothing is charged (one unlimited queue): the placed jobs are not read."""
    placed = (
        []
        if setup.tree.unlimited
        else [j for j in jobs if j.placement and not (j.phase is not None and j.phase.finished)]
    )
    running = [
        charged(_held(job, cluster, pods), setup.tree)
        for job in sorted(placed, key=lambda j: ((j.started or j.created).timestamp(), j.key))
    ]
    names = {w.job.queue for w in waiting.values()}
    # Only fair share orders by what each namespace uses and the cluster holds: thousands of pods
    # and nodes are summed for it alone.
    fair = any(setup.settings(name, settings.queue).order is QueueOrder.FAIR_SHARE for name in names)
    policy_for = policies(
        setup,
        sorted(names),
        settings.queue,
        capacity=_capacity(cluster.views) if fair else None,
        usage=_usage_by_namespace(pods) if fair else {},
    )
    return admit_waiting(
        list(waiting.values()),
        running,
        setup,
        policy_for=policy_for,
        now_seconds=now.timestamp(),
        holds={job.ref: hold_seconds(job, now_seconds=now.timestamp()) for job in placed},
        candidates=[holder_candidate(job) for job in placed if evictable_phase(job)],
    )


def _held(job: JobFacts, cluster: Cluster, pods: Sequence[PodFacts]) -> QuotaRequest:
    """A placed job's charge: per pod as sized for the node type it got (else its pods' requests)."""
    node_type = cluster.node_type_of_placement(job)
    candidate = next((c for c in cluster.sizing(job).candidates if c.node_type == node_type), None)
    if candidate is not None:
        per_pod = candidate.request.resources
    else:
        mine = [p.requests for p in pods if p.job_uid == job.uid and p.holds_resources]
        per_pod = mine[0] if mine else Resources(gpus=0)
    return held(job, node_type, per_pod)


def _outcome(
    setup: Queues, admission: AdmissionPlan, queued: Sequence[Step], victims: Mapping[str, object]
) -> QueueOutcome:
    placed_now = [
        admission.admitted[s.job.ref]
        for s in queued
        if isinstance(s, Place) and s.job.ref in admission.admitted
    ]
    holding: list[Admission] = [a for a in admission.running if a.job not in victims] + placed_now
    admitted: dict[str, int] = defaultdict(int)
    for item in holding:
        admitted[item.queue] += 1
    pending: dict[str, int] = defaultdict(int)
    for step in queued:
        if isinstance(step, Wait | Preempt):
            pending[step.job.queue] += 1
    return QueueOutcome(setup, usage_of(holding), dict(pending), dict(admitted))


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
