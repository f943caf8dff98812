"""What the cycle decided for one job of a demand class, given to the others of the class.

A deep queue holds thousands of waiting jobs of a few shapes. Once the first job of a class
(the jobs that ask the same of the same nodes: the same sizing, quota products, usable nodes,
replica count, gang, pod rules and topology, behind the same job) is not placed, every other job
of the class would be planned to the same verdict until what its plans read changes: room taken on
a node of one of its candidates' types, or nodes kept for a preemptor (``Cluster.stamp``). A
placement on other types leaves the verdict standing, as it leaves the plan memo's results. The
plan memo (core/plan_memo.py) already spares them the planning; this spares them the recall too:
the verdict, its message with the job's name put in, its place in the queue set by the caller.

Only a job with nothing of its own in play is given a class's verdict: nothing placed, no rolling
update, no preemption under way, pod rules that cannot look at other pods (the same jobs the plan
memo remembers by their demand). Any other job is decided on its own, as before; and every job
is, in a cycle that remembers no plans (``run_cycle(remember_plans=False)``, which the tests
hold the remembering cycle's steps against).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from modeljob.core.cycle_cluster import Cluster
from modeljob.core.gang_request import Unplaceable
from modeljob.core.job_state import JobFacts
from modeljob.core.lifecycle import Plan
from modeljob.core.node_types import Candidate, NodeType
from modeljob.core.nodes import BoolArray
from modeljob.core.plan_memo import renameable
from modeljob.core.planning import Attempt, Planner, spreads_by_default
from modeljob.core.steps import Unschedulable, Wait

# Put where the job's name goes while a verdict's message is split; never in a name (a ref is
# "namespace/name", DNS labels: no control characters).
_NAME = "\x00job\x00"


@dataclass(slots=True)
class Verdict:
    """A class's verdict on the ledger as ``stamp`` (``Cluster.stamp`` of ``types``, its
    candidates' node types) left it: a Wait or an Unschedulable, its message split where the
    job's name goes, and the candidate it names."""

    types: tuple[NodeType, ...]
    stamp: tuple[int, ...]
    version: int  # ``Cluster.version`` when ``stamp`` was last found current
    unschedulable: bool
    parts: tuple[str, ...]
    candidate: Candidate

    def step_for(self, plan: Plan, *, position: int) -> Wait | Unschedulable:
        """The verdict as ``plan``'s job's step (a Wait numbered ``position``)."""
        job = plan.job
        message = job.ref.join(self.parts)
        if self.unschedulable:
            return Unschedulable(
                job=job, message=message, candidate=self.candidate, delete_pods=plan.delete_pods
            )
        return Wait(
            job=job,
            message=message,
            queue_position=position,
            candidate=self.candidate,
            phase=plan.phase,
            delete_pods=plan.delete_pods,
        )


class DemandClasses:
    """The verdicts of one cycle's classes, each good while the ledger is as it left it."""

    def __init__(self, cluster: Cluster, planner: Planner) -> None:
        self.cluster, self.planner = cluster, planner
        self._verdicts: dict[Hashable, Verdict] = {}

    def key(
        self,
        job: JobFacts,
        stem: Hashable | None,
        candidates: tuple[Candidate, ...],
        usable: BoolArray,
        *,
        blocked_by: JobFacts | None,
    ) -> Hashable | None:
        """The job's class (``stem``: its ``demand_stem``; ``candidates``: its own, on the
        products its quota allows; ``usable``: the nodes it may use now), or None when
        something of its own is in play and it must be decided alone."""
        if stem is None or not candidates or self.planner.memo is None:
            # (a cycle that remembers no plans decides every job alone)
            return None
        pods = self.planner.pods
        # As Planner.rules_key: other pods' required anti-affinity, or pods of its own, are read.
        if pods is not None and (pods.guarded or pods.by_job.get(job.uid)):
            return None
        return (
            # One tuple per sizing and quota products (CycleQueue._candidates), and the cycle
            # sizes each template once (Cluster.sizing): the tuple stands for both.
            id(candidates),
            id(usable),  # one array per answer until the nodes kept change (Cluster.usable)
            stem,
            None if blocked_by is None else blocked_by.ref,
        )

    def recall(self, key: Hashable) -> Verdict | None:
        found = self._verdicts.get(key)
        if found is None or found.version == self.cluster.version:  # nothing changed since
            return found
        if found.stamp != self.cluster.stamp(found.types):
            return None
        found.version = self.cluster.version  # changes elsewhere only: the next recall is quick
        return found

    def remember(
        self,
        key: Hashable,
        step: Wait | Unschedulable,
        template: Wait | Unschedulable,
        candidates: Sequence[Candidate],
    ) -> None:
        """``step``, decided for its job on ``candidates``, kept for the job's class: ``template``
        is the same step decided from the attempts ``named_for_class`` gave (the job's name a
        placeholder)."""
        if template.candidate is None:
            return
        parts = tuple(template.message.split(_NAME))
        if step.job.ref.join(parts) != step.message:  # never expected: then decided job by job
            return
        types = tuple(dict.fromkeys(c.node_type for c in candidates))
        self._verdicts[key] = Verdict(
            types=types,
            stamp=self.cluster.stamp(types),
            version=self.cluster.version,
            unschedulable=isinstance(template, Unschedulable),
            parts=parts,
            candidate=template.candidate,
        )


def demand_stem(plan: Plan) -> Hashable | None:
    """What of a job's class its job alone says, the same in every cycle while the job is: its
    replicas, gang, the rules it is planned with (``Planner.rules_key``'s, but for the pods) and
    topology; None for a job with something of its own in play (a placement, a rolling update,
    a preemption, pod rules or preferences that read other pods or score nodes). Where no pod is
    indexed (a trace replay) this is stricter than ``rules_key``: such jobs are decided alone."""
    job = plan.job
    if job.placement or plan.roll is not None or job.preempting:
        return None
    stated = job.rules
    if stated.states_pod_rules or stated.node_affinity.preferred:
        return None
    return (job.replicas, job.gang, spreads_by_default(job), job.topology_key, job.topology_required)


def named_for_class(attempts: Sequence[Attempt], own_name: str) -> list[Attempt] | None:
    """``attempts`` (of the job named ``own_name``) with a placeholder where their reasons name the
    job, or None if a reason names it otherwise than once at its start (``renamed``'s rule)."""
    named: list[Attempt] = []
    for attempt in attempts:
        source = attempt.planned_for or own_name  # a plan made for the job names the job itself
        if isinstance(attempt.planned, Unplaceable) and not renameable(attempt.planned, source):
            return None
        named.append(Attempt(attempt.candidate, attempt.planned, source, _NAME))
    return named
