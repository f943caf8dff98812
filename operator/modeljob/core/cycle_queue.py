"""The waiting jobs of one scheduling cycle: placed in admission order, preempted for when they
cannot be, or left waiting with the reason (quota, room, strict order) and their place in line."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from modeljob.core.admission import AdmissionPlan, Waiting, queued_job, quota_request
from modeljob.core.cluster_state import NodeFacts, refusals
from modeljob.core.cycle_cluster import Cluster
from modeljob.core.demand_classes import DemandClasses, demand_stem, named_for_class
from modeljob.core.gang_request import Placement, Unplaceable
from modeljob.core.job_state import JobFacts
from modeljob.core.lifecycle import Plan
from modeljob.core.node_types import Candidate, Sizing, node_type_of
from modeljob.core.nodes import BoolArray, NodeTable
from modeljob.core.planning import Attempt, Planner, best
from modeljob.core.preempting import Preempting
from modeljob.core.preemption import FitTest
from modeljob.core.quota import Admission, QuotaRequest
from modeljob.core.rolling import settle
from modeljob.core.steps import Place, Preempt, Step, Unschedulable, Wait


@dataclass(frozen=True, slots=True)
class Planned:
    """A job the cycle plans: its lifecycle plan and its sizing per node type; and what of its
    demand class its job alone says (``demand_stem``), worked out once: the loop keeps a job's
    Planned from cycle to cycle while the job and its sizing are unchanged."""

    plan: Plan
    sizing: Sizing
    stem: Hashable | None = field(init=False)
    job: JobFacts = field(init=False, repr=False, compare=False)  # the plan's, read a dozen times a cycle

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem", demand_stem(self.plan))
        object.__setattr__(self, "job", self.plan.job)


@dataclass(eq=False)
class WaitingItems:
    """Each waiting job's ``Waiting`` (its quota request and how its queue orders it), kept for
    the next cycle by the job object and sizing it was made from (a changed job, or a sizing
    worked out again for changed nodes, is another object); each cycle keeps only its own jobs."""

    _by_uid: dict[str, tuple[JobFacts, Sizing, Waiting]] = field(default_factory=dict)

    def of(self, waiting: Mapping[str, Planned], cluster: Cluster) -> dict[str, Waiting]:
        before, self._by_uid = self._by_uid, {}
        items: dict[str, Waiting] = {}
        for ref, planned in waiting.items():
            job = planned.job
            found = before.get(job.uid)
            if found is None or found[0] is not job or found[1] is not planned.sizing:
                found = (job, planned.sizing, waiting_item(planned, cluster))
            self._by_uid[job.uid] = found
            items[ref] = found[2]
        return items


def waiting_item(waiting: Planned, cluster: Cluster) -> Waiting:
    job = waiting.job
    candidates = candidates_for(job, waiting.sizing, cluster.by_name)
    left = None
    if job.placement and candidates:  # a partly placed job asks only for the pods it lacks
        left = len(pending_replicas(job)) * candidates[0].pods_per_replica
    request = quota_request(job, candidates, pods_left=left)
    return Waiting(job=job, queued=queued_job(job, request), request=request)


# What planning one waiting job can decide.
_Decided = Place | Wait | Unschedulable | Preempt


class CycleQueue:
    """The waiting jobs of one cycle: the admitted ones placed in order (or preempted for), then
    the ones quota keeps waiting; each numbered in the queue as it waits."""

    def __init__(
        self,
        waiting: Mapping[str, Planned],
        cluster: Cluster,
        planner: Planner,
        preempting: Preempting,
        admission: AdmissionPlan,
        *,
        requests: Mapping[str, QuotaRequest],
    ) -> None:
        """``requests``: each waiting job's quota request (``waiting_item``'s), as admission saw it."""
        self.waiting, self.cluster, self.planner = waiting, cluster, planner
        self.preempting, self.admission, self.requests = preempting, admission, requests
        self.products = dict(admission.products)  # narrowed to its quota key once admitted
        self.classes = DemandClasses(cluster, planner)
        self._allowed: dict[tuple[int, frozenset[str] | None], tuple[Sizing, tuple[Candidate, ...]]] = {}

    def plan(self, *, strict: bool) -> tuple[list[Step], dict[str, int]]:
        line = _Line(strict=strict)
        # Preemptions planned before (a crash, or victims' pods still going) first: their nodes
        # are kept before any other job is planned, whatever the queue order.
        # (Only a job with a written preemption plan has one to resume: asked of 10,000 waiting
        # jobs a cycle, the call alone costs more than the check.)
        resumed = {
            ref: found
            for ref, waiting in self.waiting.items()
            if waiting.plan.job.preempting and (found := self._resumed(waiting)) is not None
        }
        reserving: set[str] = set()

        def place(ref: str, products: frozenset[str]) -> bool:
            """An admitted job planned; whether it keeps its quota charge (core/admission.py)."""
            self.products[ref] = products
            waiting = self.waiting[ref]
            found = resumed.get(ref)
            step = (
                found
                if found is not None
                else self._decide(waiting, blocked_by=line.blocked_by, position=line.next_position)
            )
            line.add(step, waiting)
            if isinstance(step, Preempt) or (isinstance(step, Wait) and step.keeps_plan):
                reserving.add(ref)  # holds quota while its victims go
            return isinstance(step, Place) or ref in reserving

        self.admission = self.admission.settle(place).naming(reserving)
        self.preempting.admission = self.admission  # a reclaim's quota test: only what is held
        for ref, refusal in self.admission.refused.items():  # in their queues' order
            if ref in self.waiting:
                found = resumed.get(ref)
                line.add(
                    found if found is not None else self._refused(self.waiting[ref], refusal),
                    self.waiting[ref],
                )
        return line.steps, dict(line.lengths)

    def _resumed(self, waiting: Planned) -> Preempt | Wait | None:
        """A preemptor's written plan, carried on; its nodes are kept for it meanwhile.

        The nodes are kept whenever a plan is written, also in the cycle that finds its victims
        gone (the preemptor is planned afresh, and may not be placed: quota shrank, strict
        order): a victim admitted again must not be placed back onto them before the step that
        clears the plan is written."""
        job = waiting.job
        if job.preempting:
            self.cluster.reserve_nodes(job.ref, job.nominated_nodes)
        step = self.preempting.resume(job)
        if step is None:
            return None
        if isinstance(step, Wait):
            return replace(step, candidate=_first(waiting.sizing), phase=waiting.plan.phase)
        return step

    def _refused(self, waiting: Planned, refusal: Admission) -> _Decided:
        """Quota keeps the job waiting; a head waiting for quota may take it back by preemption
        (not the jobs behind it: they wait for it)."""
        job = waiting.job
        if not waiting.sizing.candidates:
            return self._decide(waiting, blocked_by=None)  # Unschedulable, whatever its quota
        if refusal.never:  # no quota will ever admit it: it says so, and holds no one
            return Unschedulable(
                job=job,
                message=refusal.reason,
                candidate=waiting.sizing.candidates[0],
                delete_pods=waiting.plan.delete_pods,
            )
        step = Wait(
            job=job,
            message=refusal.reason,
            queue_position=0,
            candidate=waiting.sizing.candidates[0],
            phase=waiting.plan.phase,
            delete_pods=waiting.plan.delete_pods,
        )
        if not refusal.blocks_queue or refusal.behind:
            return step
        return self._preempt(step, waiting, quota_refused=True)

    def _preempt(self, step: Wait, waiting: Planned, *, quota_refused: bool) -> Wait | Preempt:
        if not self.preempting.may_preempt(waiting.job.queue):  # as preempt() would say (None)
            return step
        found = self.preempting.preempt(
            waiting.job,
            self.requests[waiting.job.ref],
            table=self.cluster.table,
            fits=self._fits(waiting),
            quota_refused=quota_refused,
        )
        if isinstance(found, Preempt):
            self.cluster.reserve_nodes(waiting.job.ref, found.nodes)
            return found
        if isinstance(found, str):
            return replace(step, message=f"{step.message}; no preemption: {found}")
        return step

    def _fits(self, waiting: Planned) -> FitTest:
        """Whether the job is placed on a table: the same planner, the same candidates and nodes."""
        job = waiting.job
        # Worked out on the first call: most queues never preempt, and never ask.
        known: list[tuple[tuple[Candidate, ...], list[int], BoolArray]] = []

        def fits(table: NodeTable) -> bool:
            if not known:
                known.append((self._candidates(waiting), pending_replicas(job), self.cluster.usable(job)))
            candidates, pending, eligible = known[0]
            planner = replace(self.planner, table=table)
            plan = planner.try_node_types if job.gang else planner.try_one_by_one
            return best(plan(job, candidates, eligible=eligible, pending=pending)) is not None

        return fits

    def _candidates(self, waiting: Planned) -> tuple[Candidate, ...]:
        """The job's candidates on the products its quota key allows (all, if none is left); one
        tuple per sizing and products for the jobs with nothing placed (most of a deep queue)."""
        job = waiting.job
        products = self.products.get(job.ref)
        if job.placement:
            return _allowed(candidates_for(job, waiting.sizing, self.cluster.by_name), products)
        if not products:  # (``_allowed`` keeps them all)
            return waiting.sizing.candidates
        key = (id(waiting.sizing), products)
        found = self._allowed.get(key)
        if found is None or found[0] is not waiting.sizing:
            found = self._allowed[key] = (waiting.sizing, _allowed(waiting.sizing.candidates, products))
        return found[1]

    def _decide(self, waiting: Planned, *, blocked_by: JobFacts | None, position: int = 0) -> _Decided:
        """``position``: the number a Wait gets in the queue, if the line takes it next (0: numbered
        when it does)."""
        job, sizing, strays = waiting.job, waiting.sizing, waiting.plan.delete_pods
        cluster = self.cluster
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
        candidates = self._candidates(waiting)
        usable = cluster.usable(job)
        key = self.classes.key(job, waiting.stem, candidates, usable, blocked_by=blocked_by)
        verdict = self.classes.recall(key) if key is not None else None
        if verdict is not None:  # decided for an earlier job of its class, nothing changed since
            step: Wait | Unschedulable = verdict.step_for(waiting.plan, position=position)
        else:
            pending = [roll.replica] if roll is not None else pending_replicas(job)
            attempts = self.planner.attempts(job, candidates, eligible=usable, pending=pending)
            chosen = best(attempts) if blocked_by is None else None
            if chosen is not None:
                return self._place(waiting, chosen, attempts, pending)
            eligible = cluster.eligible(job)
            kept = usable is not eligible and bool((eligible & ~usable).any())
            step = _not_placed(
                waiting, candidates[0], attempts, blocked_by=blocked_by, kept_away=kept, position=position
            )
            named = named_for_class(attempts, job.ref) if key is not None else None
            if key is not None and named is not None:
                template = _not_placed(waiting, candidates[0], named, blocked_by=blocked_by, kept_away=kept)
                self.classes.remember(key, step, template, candidates)
        if isinstance(step, Wait) and blocked_by is None and roll is None:
            return self._preempt(step, waiting, quota_refused=False)
        return step

    def _place(
        self,
        waiting: Planned,
        chosen: tuple[Candidate, Placement],
        attempts: Sequence[Attempt],
        pending: Sequence[int],
    ) -> Place:
        job, (candidate, placement) = waiting.job, chosen
        for assignment in placement.assignments:
            self.cluster.take(assignment.node, candidate.request, assignment.devices)
        self.planner.record(job, [a.node for a in placement.assignments])
        return Place(
            job=job,
            candidate=candidate,
            placement=tuple(
                replace(a, replica=pending[a.replica], score=round(a.score, 4)) for a in placement.assignments
            ),
            tried=tuple(a.tried for a in attempts),
            delete_pods=waiting.plan.delete_pods,
            replaces=waiting.plan.roll,
        )


@dataclass
class _Line:
    """The cycle's steps as decided, numbered in the queue; under strict order, the first job
    that waits holds every job after it."""

    strict: bool
    steps: list[Step] = field(default_factory=list)
    lengths: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    blocked_by: JobFacts | None = None
    numbered: int = 0  # the jobs numbered so far, every queue's

    @property
    def next_position(self) -> int:
        """The number the next job that waits gets: a step built with it is not built again."""
        return self.numbered + 1

    def add(self, step: _Decided, waiting: Planned) -> None:
        roll = waiting.plan.roll
        if roll is not None and not isinstance(step, Preempt):  # never waits in the queue itself
            self.steps.append(settle(step, roll, waiting.plan.phase, behind=self.blocked_by is not None))
            return
        if isinstance(step, Wait | Preempt):
            self.lengths[step.job.queue] += 1
            self.numbered += 1
            if step.queue_position != self.numbered:
                step = replace(step, queue_position=self.numbered)
            if self.strict and self.blocked_by is None and isinstance(step, Wait):
                self.blocked_by = step.job
        self.steps.append(step)


def _allowed(candidates: tuple[Candidate, ...], products: frozenset[str] | None) -> tuple[Candidate, ...]:
    if not products:
        return candidates
    return tuple(c for c in candidates if c.node_type.product in products) or candidates


def _first(sizing: Sizing) -> Candidate | None:
    return sizing.candidates[0] if sizing.candidates else None


def _not_placed(
    waiting: Planned,
    preferred: Candidate,
    attempts: Sequence[Attempt],
    *,
    blocked_by: JobFacts | None,
    kept_away: bool = False,
    position: int = 0,
) -> Wait | Unschedulable:
    """Why a sized job was not placed: never on this cluster, or not now (and what it waits for).

    ``kept_away``: nodes the job may use were kept for another job's preemption this cycle; the
    planner saw the cluster without them, so its "never fits" means only "not now". ``position``:
    a Wait's number in the queue (0: numbered by ``_Line.add``).
    """
    job, plan = waiting.job, waiting.plan
    # Judged on the results as planned (never_fits is the same whichever job they name); only a
    # reason put in the message is asked for as this job's (a recalled one names another job).
    failed = [(a, a.planned) for a in attempts if isinstance(a.planned, Unplaceable)]
    if kept_away and failed and all(f.never_fits for _, f in failed):
        return Wait(
            job=job,
            message="waiting for room: the nodes that fit it are kept for another job's preemption",
            queue_position=position,
            candidate=preferred,
            phase=plan.phase,
            delete_pods=plan.delete_pods,
        )
    if failed and all(f.never_fits for _, f in failed):
        reasons = [a.reason for a, _ in failed] + list(waiting.sizing.rejected)
        return Unschedulable(
            job=job,
            message="the job can never fit this cluster: " + "; ".join(reasons),
            candidate=preferred,
            delete_pods=plan.delete_pods,
        )
    if blocked_by is not None:
        message = f"waiting behind {blocked_by.namespace}/{blocked_by.name} (strict queue order)"
    else:
        first = next((a for a, f in failed if not f.never_fits), None)
        message = "waiting for room: " + (first.reason if first is not None else "no node fits now")
    return Wait(
        job=job,
        message=message,
        queue_position=position,
        candidate=preferred,
        phase=plan.phase,  # a non-gang job with some replicas placed keeps the phase its pods give it
        delete_pods=plan.delete_pods,
    )


def pending_replicas(job: JobFacts) -> list[int]:
    if not job.placement:
        return list(range(job.replicas))
    placed = job.placed_replicas
    return [r for r in range(job.replicas) if r not in placed]


def candidates_for(job: JobFacts, sizing: Sizing, nodes: Mapping[str, NodeFacts]) -> tuple[Candidate, ...]:
    """A partly placed (non-gang) job keeps the node type its placed replicas were sized for."""
    if not job.placement:
        return sizing.candidates
    placed_types = {node_type_of(nodes[e.node].view) for e in job.placement if e.node in nodes}
    return tuple(c for c in sizing.candidates if c.node_type in placed_types) or sizing.candidates
