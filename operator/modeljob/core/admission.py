"""Admission by quota in the scheduling cycle: each waiting job's whole request, per Queue, in the
Queue's own order, against usage rebuilt from what is placed now.

Nothing is remembered between cycles: usage is the charges of the jobs that hold a placement
(charged to the GPU product their pods got), so a restart admits exactly as before. With no
Queue objects the tree is unlimited and every job is admitted in the operator's queue order,
as before queues had quotas.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from modeljob.core.backfill import UNTIL_DELETED, Holder
from modeljob.core.job_state import JobFacts
from modeljob.core.node_types import Candidate, NodeType
from modeljob.core.preemption_rules import PreemptionRules, RunningJob
from modeljob.core.preemption_view import CandidatePool, preemptor_of
from modeljob.core.queueing import QueuedJob, QueueOrder, QueuePolicy, QueueSettings, queue_policy
from modeljob.core.quota import Admission, Charge, QuotaRequest, Usage, amount_text, reclaimable_by, usage_of
from modeljob.core.quota_rounds import admit_pending
from modeljob.core.quota_tree import QueueSpec, QueueTree, build_tree
from modeljob.core.resources import Resources


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One Queue as the cycle uses it: its place in the quota tree, its order, its preemption."""

    spec: QueueSpec
    order: QueueOrder = QueueOrder.FCFS
    rules: PreemptionRules = field(default_factory=PreemptionRules)


# Rules of a job whose queue has none (no Queue objects, or a missing queue): never preempts.
NO_PREEMPTION = PreemptionRules()


@dataclass(frozen=True)
class Queues:
    """The cycle's queues: the checked tree and each queue's order and rules."""

    tree: QueueTree
    configs: Mapping[str, QueueConfig]

    def rules(self, queue: str) -> PreemptionRules:
        config = self.configs.get(queue)
        return config.rules if config is not None else NO_PREEMPTION

    def settings(self, queue: str, base: QueueSettings) -> QueueSettings:
        config = self.configs.get(queue)
        return replace(base, order=config.order) if config is not None else base


def queues_of(configs: Sequence[QueueConfig]) -> Queues:
    return Queues(tree=build_tree(c.spec for c in configs), configs={c.spec.name: c for c in configs})


@dataclass(frozen=True, slots=True)
class Waiting:
    """A waiting job as admission sees it: how the queue orders it and what quota it asks."""

    job: JobFacts
    queued: QueuedJob
    request: QuotaRequest


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """The cycle's admission: made by ``settle``, which tries each admitted job's placement
    before admitting the next, then says who was admitted, in order, and why the others wait.

    ``running`` are the charges of the placed jobs, oldest run first (the youngest hold what is
    borrowed); ``usage`` is theirs, then (once settled) plus the charges of the jobs admitted now
    and kept: placed, or preempting for room. Before ``settle``, ``order`` is every waiting job
    in placement order when no Queue exists (``tree`` None), and empty otherwise.
    """

    order: tuple[str, ...]  # jobs ("ns/name"), in placement order
    refused: Mapping[str, Admission]
    products: Mapping[str, frozenset[str]]  # the GPU products a job accepts, or its key allows
    running: tuple[Admission, ...] = ()
    usage: Usage = field(default_factory=Usage)
    admitted: Mapping[str, Admission] = field(default_factory=dict)  # kept their charge
    tree: QueueTree | None = None
    pending: tuple[QuotaRequest, ...] = ()  # each queue's waiting jobs, in its order
    first: frozenset[str] = frozenset()  # preemptors whose plan is written, placed first
    holders: tuple[Holder, ...] | None = None  # the running jobs with their expected hold (backfill)
    evictable: Callable[[str], frozenset[str]] | None = None  # a queue's head may preempt these

    def settle(self, place: Callable[[str, frozenset[str]], bool]) -> AdmissionPlan:
        """Place the jobs quota admits, each (with the products it may use) before the next is
        admitted. A job ``place`` does not keep (not placed, no preemption started for it)
        gives its charge back at once, so quota is charged to the jobs that run or are being
        placed, and an admitted job no node fits holds neither its queue nor what it borrowed
        (``admit_pending``)."""
        if self.tree is None:
            for ref in self.order:
                place(ref, self.products[ref])
            return self
        products = dict(self.products)

        def tried(decision: Admission) -> bool:
            products[decision.job] = decision.products
            return place(decision.job, decision.products)

        result = admit_pending(
            self.pending,
            self.tree,
            self.usage,
            place=tried,
            first=self.first,
            holders=self.holders,
            evictable=self.evictable,
        )
        return replace(
            self,
            order=tuple(a.job for a in result.admitted),
            refused={a.job: a for a in result.waiting},
            products=products,
            usage=result.usage,
            admitted={a.job: a for a in result.admitted},
        )

    def naming(self, reserving: Collection[str]) -> AdmissionPlan:
        """Each quota refusal that counts the charge of an admitted job not running yet (a
        preemptor whose victims are going: nothing else holds quota without running) names it."""
        held = [self.admitted[ref] for ref in sorted(reserving) if ref in self.admitted]
        if self.tree is None or not held:
            return self
        tree = self.tree
        return replace(self, refused={ref: _naming(a, held, tree) for ref, a in self.refused.items()})


def quota_request(
    job: JobFacts, candidates: Sequence[Candidate], *, pods_left: int | None = None
) -> QuotaRequest:
    """The job's whole request as quota counts it, sized for its preferred node type: every pod of
    every replica (or of ``pods_left`` pods); the products are those of the node types sized alike."""
    if not candidates:
        return QuotaRequest(job=job.ref, queue=job.queue, namespace=job.namespace, seconds=hold_seconds(job))
    preferred = candidates[0]
    pods = pods_left if pods_left is not None else job.replicas * preferred.pods_per_replica
    wants = preferred.request.resources
    gpus = pods * wants.gpus if preferred.request.uses_accelerator else 0
    alike = {c.node_type.product for c in candidates if c.gpus_per_replica == preferred.gpus_per_replica}
    return QuotaRequest(
        job=job.ref,
        queue=job.queue,
        namespace=job.namespace,
        gpus=gpus,
        gpu_resource=preferred.node_type.accelerator,
        gpu_products=frozenset(p for p in alike if p),
        cpu_milli=pods * wants.cpu_milli,
        memory_bytes=pods * wants.memory_bytes,
        seconds=hold_seconds(job),
    )


def hold_seconds(job: JobFacts, *, now_seconds: float | None = None) -> float | None:
    """How much longer the job is expected to hold its quota (what backfill compares,
    core/backfill.py): a serving job until it is deleted; a training job its expectedDuration
    less the work done, kept from earlier runs and, running (``now_seconds`` given), of this run;
    None when it declares no duration. A job past its expected end may end at any moment: 0."""
    if not job.shape.workload.type.trains:
        return UNTIL_DELETED
    if job.expected_duration_seconds is None:
        return None
    done = job.run_before_seconds
    if now_seconds is not None and job.started is not None:
        done += max(0.0, now_seconds - job.started.timestamp())
    return max(0.0, job.expected_duration_seconds - done)


def held(job: JobFacts, node_type: NodeType | None, per_pod: Resources) -> QuotaRequest:
    """What a placed job holds: its placed pods' requests, on the product its pods got."""
    pods = len(job.placement)
    return QuotaRequest(
        job=job.ref,
        queue=job.queue,
        namespace=job.namespace,
        gpus=pods * per_pod.gpus,
        gpu_resource=node_type.accelerator if node_type is not None else "nvidia.com/gpu",
        gpu_products=frozenset({node_type.product})
        if node_type is not None and node_type.product
        else frozenset(),
        cpu_milli=pods * per_pod.cpu_milli,
        memory_bytes=pods * per_pod.memory_bytes,
    )


def charged(request: QuotaRequest, tree: QueueTree) -> Admission:
    """A placed job's charges, whatever the quota says now (quota shrunk under a running job
    does not evict it): each resource to the first key of its queue's tree that covers it."""
    if tree.unlimited or request.queue not in tree.queues:
        return Admission(request.job, request.queue, admitted=True)
    charges = []
    for resource, amount, accepted in request.demands():
        key = next(
            (k for k in tree.keys_in_tree(request.queue) if k.resource == resource and k.covers(accepted)),
            None,
        )
        if key is not None:
            charges.append(Charge(key, amount))
    return Admission(request.job, request.queue, admitted=True, charges=tuple(charges))


def queued_job(job: JobFacts, request: QuotaRequest) -> QueuedJob:
    """How the queue orders a job: its demand is its quota request's."""
    return QueuedJob(
        name=job.ref,
        submitted_at_seconds=job.created.timestamp(),
        namespace=job.namespace,
        queue=job.queue,
        priority=job.priority,
        expected_duration_seconds=job.expected_duration_seconds,
        demand=Resources(cpu_milli=request.cpu_milli, memory_bytes=request.memory_bytes, gpus=request.gpus),
        run_seconds=job.run_before_seconds,
        queued_at_seconds=job.queued_since.timestamp() if job.queued_since is not None else None,
    )


def admit_waiting(
    waiting: Sequence[Waiting],
    running: Sequence[Admission],
    queues: Queues,
    *,
    policy_for: Mapping[str, QueuePolicy],
    now_seconds: float,
    holds: Mapping[str, float | None] | None = None,
    candidates: Sequence[RunningJob] = (),
) -> AdmissionPlan:
    """Order each queue's jobs by its own policy (a preemptor whose victims are going first). With
    no Queue objects, every job is placed, the queues' jobs interleaved round-robin; with Queues,
    the cycle admits and places them together (``AdmissionPlan.settle``). ``holds`` says how much
    longer each running job is expected to hold its quota (``hold_seconds``); without it a head
    waiting for quota holds the jobs behind it strictly (no backfill). ``candidates`` are the
    running jobs preemption could evict (``holder_candidate``): those a head may evict by its
    queue's rules count as ending now for its backfill."""
    by_queue: dict[str, list[Waiting]] = {}
    for item in waiting:
        by_queue.setdefault(item.job.queue, []).append(item)
    lines: dict[str, list[Waiting]] = {}
    for name in sorted(by_queue):
        items = {w.job.ref: w for w in by_queue[name]}
        ordered = policy_for[name].order([w.queued for w in items.values()], now_seconds=now_seconds)
        line = [items[q.name] for q in ordered]
        if any(w.job.preempting for w in line):
            line.sort(key=lambda w: not w.job.preempting)  # stable: nominated first
        lines[name] = line
    products = {w.job.ref: w.request.gpu_products for w in waiting}
    if queues.tree.unlimited:
        return AdmissionPlan(order=_round_robin(lines), refused={}, products=products)
    return AdmissionPlan(
        order=(),
        refused={},
        products=products,
        running=tuple(running),
        usage=usage_of(running),
        tree=queues.tree,
        pending=tuple(w.request for line in lines.values() for w in line),
        first=frozenset(w.job.ref for w in waiting if w.job.preempting),
        holders=None if holds is None else tuple(Holder(a, holds.get(a.job)) for a in running),
        evictable=_evictable_for(waiting, queues, running, candidates, now_seconds=now_seconds),
    )


def _evictable_for(
    waiting: Sequence[Waiting],
    queues: Queues,
    running: Sequence[Admission],
    candidates: Sequence[RunningJob],
    *,
    now_seconds: float,
) -> Callable[[str], frozenset[str]]:
    """For a head (by name), the running jobs it may evict now (``CandidatePool.evictable``)."""
    heads = {w.job.ref: w.job for w in waiting}
    pool = CandidatePool.of(candidates)

    def evictable(head: str) -> frozenset[str]:
        job = heads[head]
        rules = queues.rules(job.queue)
        borrowed = reclaimable_by(job.queue, queues.tree, running) if rules.reclaim_borrowed else ()
        reclaimable = frozenset(use.job for use in borrowed)
        return pool.evictable(preemptor_of(job), rules, reclaimable=reclaimable, now_seconds=now_seconds)

    return evictable


def _round_robin(lines: Mapping[str, Sequence[Waiting]]) -> tuple[str, ...]:
    """The queues take turns, each in its own order; a preemptor whose victims are gone goes
    before everything, so the room it made is its own."""
    kept = [[w.job.ref for w in lines[name]] for name in sorted(lines)]
    if len(kept) == 1:  # one queue: its own order (a deep queue's common case, without the turns)
        order = kept[0]
    else:
        order = []
        for turn in range(max((len(line) for line in kept), default=0)):
            order.extend(line[turn] for line in kept if turn < len(line))
    nominated = {w.job.ref for line in lines.values() for w in line if w.job.preempting}
    if not nominated:
        return tuple(order)
    return tuple(sorted(order, key=lambda ref: ref not in nominated))


def _naming(refusal: Admission, reserving: Sequence[Admission], tree: QueueTree) -> Admission:
    """A quota refusal with the reservations it counts named: charges on the keys it competes
    for, held by jobs of its tree that do not run yet."""
    if not refusal.competes_for:
        return refusal
    root = tree.root_of(refusal.queue)
    named = [
        f"{amount_text(charge.key, charge.amount)} reserved by {held.job} for its preemption"
        for held in reserving
        if held.queue in tree.queues and tree.root_of(held.queue) == root
        for charge in held.charges
        if charge.key in refusal.competes_for and charge.amount > 0
    ]
    if not named:
        return refusal
    return replace(refusal, reason=f"{refusal.reason}; counted as in use: {', '.join(named)}")


def policies(
    queues: Queues,
    names: Sequence[str],
    base: QueueSettings,
    *,
    capacity: Resources | None,
    usage: Mapping[str, Resources],
) -> dict[str, QueuePolicy]:
    """Each queue's ordering policy: its own spec.order, else the operator's setting
    (``capacity``: the cluster's, which only fair share reads)."""
    return {
        name: queue_policy(queues.settings(name, base), capacity=capacity, usage=usage) for name in set(names)
    }
