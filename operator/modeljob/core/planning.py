"""One job planned on each node type it was sized for; the best plan wins, the others explain why not.

A gang stays on one node type, so every replica is sized for the device it gets. A job that is
not a gang places each replica that fits now and leaves the rest waiting. Plans are made on the
node table's ledger (core/nodes.py): nothing here counts capacity by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from modeljob.core.cluster_state import PodFacts
from modeljob.core.fragmentation import TargetWorkload, TaskShape, learn_target_workload_from_counts
from modeljob.core.gang_placement import plan_gang_with
from modeljob.core.gang_request import Assignment, GangRequest, Placement, ReplicaRequests, Unplaceable
from modeljob.core.job_state import JobFacts
from modeljob.core.node_types import Candidate, NodeType, Sizing
from modeljob.core.nodes import BoolArray, NodeTable, PodRequest, subset
from modeljob.core.plan_memo import PlanMemo, read_scores, renamed
from modeljob.core.plan_validity import Result
from modeljob.core.pod_index import PodIndex
from modeljob.core.resources import Resources
from modeljob.core.scoring.plugin import ScoringContext
from modeljob.core.scoring.scorers.cpu_balance import HostDemand, learn_host_demand_counted
from modeljob.core.scoring.weights import ScoringWeights
from modeljob.core.steps import NodeTypeTried
from modeljob.core.template_rules import JobRules
from modeljob.core.topology import DEFAULT_TOPOLOGY_KEY, GroupTopology


@dataclass(frozen=True, slots=True)
class Attempt:
    """``planned``: the result as planned; a recalled one was planned for another job of the same
    demand (``planned_for``), whose name an Unplaceable's reason holds until ``result`` is asked
    for: most recalled verdicts are only looked at (``never_fits``), their reason never read."""

    candidate: Candidate
    planned: Placement | Unplaceable
    planned_for: str = ""
    job: str = ""  # the job it is for, where it differs from ``planned_for``

    @property
    def result(self) -> Placement | Unplaceable:
        """The result, its reason naming the job it is for."""
        if self.planned_for == self.job:
            return self.planned
        return renamed(self.planned, self.planned_for, self.job)

    @property
    def reason(self) -> str:
        """Why it failed, naming the job it is for ("" for a placement)."""
        result = self.result
        return result.reason if isinstance(result, Unplaceable) else ""

    @property
    def tried(self) -> NodeTypeTried:
        node_type, gpus = self.candidate.node_type, self.candidate.gpus_per_replica
        price = self.candidate.price_per_replica_hour
        if isinstance(self.planned, Placement):
            return NodeTypeTried(node_type, gpus, mean_score(self.planned), price_per_replica_hour=price)
        return NodeTypeTried(node_type, gpus, None, self.reason, price_per_replica_hour=price)


@dataclass(frozen=True, slots=True)
class Planner:
    """What every job of one cycle is planned against: the shared table, masks and scoring, and
    the pods the templates' pod rules look at (None: rules are not judged, as in the trace replay)."""

    table: NodeTable
    type_masks: Mapping[NodeType, BoolArray]
    weights: ScoringWeights
    context: ScoringContext
    pods: PodIndex | None = None
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    topology_key: str = DEFAULT_TOPOLOGY_KEY  # spec.scheduling.topology.key's default
    memo: PlanMemo | None = None  # results on ``table`` remembered for later jobs of the same demand

    def topology_for(self, job: JobFacts) -> GroupTopology:
        """The domains a replica of ``job`` that spans nodes keeps its group in."""
        key = job.topology_key or self.topology_key
        return GroupTopology.of(key, required=job.topology_required, node_labels=self.node_labels)

    def rules_for(self, job: JobFacts) -> JobRules | None:
        """The job's pod rules with the cycle's pods counted; None when nothing would come of them."""
        if self.pods is None:
            return None
        rules = JobRules.of(job, self.pods, spread_replicas=spreads_by_default(job))
        return rules if rules.matters else None

    def record(self, job: JobFacts, nodes: Sequence[str]) -> None:
        """A placement made this cycle: the jobs planned after it see its pods (and its nodes'
        room, which it took on ``table``)."""
        if self.pods is not None:
            self.pods.record(job, nodes)
        if self.memo is not None:
            self.memo.placed_on(nodes)

    def attempts(
        self, job: JobFacts, candidates: Sequence[Candidate], *, eligible: BoolArray, pending: Sequence[int]
    ) -> list[Attempt]:
        """The job planned on its candidates (a gang whole on each, else replica by replica),
        remembered by its demand for the jobs after it that ask the same (core/plan_memo.py)."""
        plan = self.try_node_types if job.gang else self.try_one_by_one
        memo = self.memo if self.memo is not None and self.table is self.memo.table else None
        rules = self.rules_key(job)
        if memo is None or rules is None:
            return plan(job, candidates, eligible=eligible, pending=pending)
        name, types = job.ref, [c.node_type for c in candidates]
        key = (
            job.gang,
            # The cycle sizes each template once and keeps its candidates (Cluster.sizing), so
            # their identity stands for what planning reads of them (type, request, group size).
            tuple(id(c) for c in candidates),
            len(pending),
            memo.mask_key(eligible),
            rules,
            (job.topology_key or self.topology_key, job.topology_required),
        )
        found = memo.recall_job(key, types)
        if found is not None:
            planned_for, recalled = found
            return [Attempt(candidates[index], result, planned_for, name) for index, result in recalled]
        scored_before = memo.scored
        memo.begin_job()
        attempts = plan(job, candidates, eligible=eligible, pending=pending)
        position = {id(c): index for index, c in enumerate(candidates)}
        # Results the plan saw but dropped steered it too (try_one_by_one moves on past them).
        read = memo.scored != scored_before or any(read_scores(a.result) for a in attempts)
        kept = [(position[id(a.candidate)], a.result) for a in attempts]
        memo.remember_job(key, types, name, kept, read=read)
        return attempts

    def rules_key(self, job: JobFacts) -> Hashable | None:
        """What ``rules_for(job)`` is, told without counting pods, for a job whose rules cannot
        depend on other pods or its own; None for any other job."""
        if self.pods is None:
            return "no rules"
        stated = job.rules
        if stated.states_pod_rules or stated.node_affinity.preferred or self.pods.guarded:
            return None
        if self.pods.by_job.get(job.uid):
            return None
        return ("spread replicas", spreads_by_default(job))

    def try_node_types(
        self, job: JobFacts, candidates: Sequence[Candidate], *, eligible: BoolArray, pending: Sequence[int]
    ) -> list[Attempt]:
        """The whole gang planned on each node type it was sized for."""
        rules = self.rules_for(job)
        return [
            self._plan(job, c, self.table, eligible=eligible, pending=pending, rules=rules)
            for c in candidates
        ]

    def try_one_by_one(
        self, job: JobFacts, candidates: Sequence[Candidate], *, eligible: BoolArray, pending: Sequence[int]
    ) -> list[Attempt]:
        """A job that is not a gang: each replica that fits now is placed, the rest wait (on the
        node type its placed replicas were sized for, or the best one)."""
        rules = self.rules_for(job)
        for candidate in candidates:
            work: NodeTable | None = None  # copied once a replica is placed: most find no node
            assignments: list[Assignment] = []
            last: Unplaceable | None = None
            for index, replica in enumerate(pending):
                attempt = self._plan(
                    job,
                    candidate,
                    # The first replica sees the table untouched: planned on it, it is remembered.
                    work if work is not None else self.table,
                    eligible=eligible,
                    pending=[replica],
                    rules=rules,
                    planned=tuple(a.node for a in assignments),
                )
                if isinstance(attempt.result, Unplaceable):
                    last = attempt.result
                    break
                if work is None:
                    work = self.table.working_copy()
                for placed in attempt.result.assignments:  # one pod, or a group's pods
                    work.reserve(work.names.index(placed.node), candidate.request, placed.devices)
                    assignments.append(replace(placed, replica=index))
            if assignments:
                return [Attempt(candidate, Placement(assignments=tuple(assignments), reasons=()))]
            if last is not None and not last.never_fits:
                return [Attempt(candidate, last)]
        return self.try_node_types(job, candidates, eligible=eligible, pending=pending[:1])

    def _plan(
        self,
        job: JobFacts,
        candidate: Candidate,
        table: NodeTable,
        *,
        eligible: BoolArray,
        pending: Sequence[int],
        rules: JobRules | None = None,
        planned: tuple[str, ...] = (),
    ) -> Attempt:
        job_name = job.ref
        memo = self.memo if self.memo is not None and table is self.memo.table else None
        remembered = _remembered(job, rules, planned) if memo is not None else None
        key = None
        if memo is not None and remembered is not None:
            topology = (job.topology_key or self.topology_key, job.topology_required)
            key = memo.key(
                candidate,
                replicas=len(pending),
                eligible=eligible,
                rules=remembered,
                topology=topology if candidate.pods_per_replica > 1 else None,
            )
            recalled = memo.recall(candidate.node_type, key, job_name)
            if recalled is not None:
                memo.saw(recalled)
                return Attempt(candidate, recalled)
        of_type = self.type_masks.get(candidate.node_type, np.zeros(len(table), dtype=np.bool_))
        # Plan on this type's admitting nodes alone, so the reasons count only nodes it could use.
        gang = GangRequest(
            job=job_name,
            replicas=len(pending),
            requests=ReplicaRequests.uniform(candidate.request),
            rules=rules,
            planned=planned,
            group_size=candidate.pods_per_replica,
            topology=self.topology_for(job) if candidate.pods_per_replica > 1 else None,
        )
        rows = eligible & of_type
        nodes = memo.subset(candidate.node_type, rows) if memo is not None else subset(table, rows)
        empty = memo.fits_empty(candidate.node_type, key) if memo is not None and key is not None else None
        # One request at other replica counts (2, 4, 8) shares its first replica's failure.
        first = _first_key(memo, candidate, eligible, remembered) if key is not None else None
        known = memo.first_failure(*first) if memo is not None and first is not None else None
        result, failed = plan_gang_with(
            nodes, gang, weights=self.weights, context=self.context, fits_empty=empty, first=known
        )
        if memo is not None and first is not None and known is None and failed is not None:
            memo.remember_first_failure(*first, failed)
        result = _not_admitted_said(result, int(np.count_nonzero(of_type & ~eligible)))
        if memo is not None:
            memo.saw(result)
            if key is not None:
                # Room alone can be checked again for one pod per replica (core/plan_validity.py).
                again = candidate.request if candidate.pods_per_replica == 1 else None
                memo.remember(candidate.node_type, key, job_name, result, rows=rows, request=again)
                memo.remember_empty(candidate.node_type, key, result)
        return Attempt(candidate, result)


def _not_admitted_said(result: Result, not_admitted: int) -> Result:
    """An Unplaceable's reason with how many more nodes of its type the job's template refuses."""
    if not isinstance(result, Unplaceable) or not not_admitted:
        return result
    return replace(
        result,
        reason=f"{result.reason}; {not_admitted} more node(s) of this type do not admit the job "
        "(spec.template.spec nodeSelector / affinity.nodeAffinity / tolerations)",
    )


def _first_key(
    memo: PlanMemo | None, candidate: Candidate, eligible: BoolArray, rules: Hashable
) -> tuple[NodeType, Hashable] | None:
    """Where a plan of ``candidate``'s first replica is kept for gangs of any replica count: one
    pod per replica alone (a group's first pod is planned within its topology)."""
    if memo is None or candidate.pods_per_replica != 1:
        return None
    return candidate.node_type, memo.key(candidate, replicas=None, eligible=eligible, rules=rules)


def _remembered(job: JobFacts, rules: JobRules | None, planned: tuple[str, ...]) -> Hashable | None:
    """What of the job's pod rules a remembered plan is keyed by; None: never remembered (rules
    that count other pods, or a plan that counts pods of the job placed already)."""
    if planned:
        return None
    if rules is None:
        return "no rules"
    stated = job.rules
    if stated.states_pod_rules or stated.node_affinity.preferred or rules.guarded_by:
        return None
    if rules.index.by_job.get(job.uid):
        return None
    return ("spread replicas", rules.spread_replicas)


def spreads_by_default(job: JobFacts) -> bool:
    """Serving replicas go to different nodes while nodes with room allow (losing one node must
    not take the whole service down); a template with pod rules of its own says where instead."""
    return job.replicas > 1 and not job.shape.workload.type.trains and not job.rules.states_pod_rules


def mean_score(placement: Placement) -> float:
    return sum(a.score for a in placement.assignments) / max(1, len(placement.assignments))


def best(attempts: Sequence[Attempt]) -> tuple[Candidate, Placement] | None:
    """The placement with the best mean score; ties go to the preferred (cheaper) node type."""
    chosen: tuple[Candidate, Placement] | None = None
    for attempt in attempts:
        if isinstance(attempt.planned, Placement) and (  # a Placement names no job
            chosen is None or mean_score(attempt.planned) > mean_score(chosen[1])
        ):
            chosen = (attempt.candidate, attempt.planned)
    return chosen


@dataclass(frozen=True, slots=True)
class WorkSeen:
    """The work the target workload and host demand are learned from, counted once per cycle:
    each waiting job's preferred candidate, and the requests of the pods holding resources, each
    distinct one with how many there are, in the order first seen. Thousands of waiting jobs share
    the few sizings the cycle makes (a candidate is told by its object), and thousands of pods the
    same few requests: each distinct one is then shaped once."""

    waiting: tuple[tuple[Candidate, int], ...]
    running: tuple[tuple[Resources, int], ...]


def count_work(
    waiting: Sequence[Sizing],
    pods: Sequence[PodFacts],
    *,
    running: Sequence[tuple[Resources, int]] | None = None,
) -> WorkSeen:
    """``waiting``: the waiting jobs' sizings; ``pods``: the cluster's pods (``running``: their
    requests counted already, core/pod_ledger.py, in any order: each shape's count is what is
    learned from)."""
    preferred: dict[int, tuple[Candidate, list[int]]] = {}
    for sizing in waiting:
        if sizing.candidates:
            candidate = sizing.candidates[0]
            found = preferred.get(id(candidate))
            if found is None:
                preferred[id(candidate)] = (candidate, [1])
            else:
                found[1][0] += 1
    if running is None:
        running = tuple(Counter(p.requests for p in pods if p.holds_resources).items())
    return WorkSeen(
        waiting=tuple((candidate, count[0]) for candidate, count in preferred.values()),
        running=tuple(running),
    )


def target_workload(work: WorkSeen) -> TargetWorkload:
    """What the fragmentation scorer should keep room for: the shapes of the jobs waiting now
    and of the GPU pods running, most frequent first (FGD's target workload)."""
    counts: Counter[TaskShape] = Counter()
    for c, count in work.waiting:
        counts[TaskShape(cpu_milli=c.request.resources.cpu_milli, gpu_milli=1000, gpus=c.estimate.gpus)] += (
            count
        )
    for requests, count in work.running:
        # One rule for a pod's shape, the extender cache's (core/fragmentation.py): None without GPUs.
        shape = TaskShape.of_running_pod(requests)
        if shape is not None:
            counts[shape] += count
    return learn_target_workload_from_counts(counts)


def host_demand(work: WorkSeen) -> HostDemand | None:
    """What cpu-balance keeps beside idle GPUs: CPU and memory per GPU requested by the same work
    the target workload is learned from (the jobs waiting now and the GPU pods running)."""
    counted = [(c.request, count) for c, count in work.waiting]
    counted += [(PodRequest(resources=r), count) for r, count in work.running if r.gpus > 0]
    return learn_host_demand_counted(counted)
