"""The cluster as one scheduling cycle sees it: nodes, the ledger every plan reserves on, cached
per-cycle lookups, and the completion (or roll back) of placements a crash left half bound."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from modeljob.core.cluster_state import NodeFacts, PodFacts, accounted_views
from modeljob.core.job_state import JobFacts, JobPhase, Requeue
from modeljob.core.jobs import JobShape
from modeljob.core.node_set_memory import Admitting, NodeSetMemory, types_of
from modeljob.core.node_types import NodeType, Sizing, node_type_of, size_job
from modeljob.core.nodes import BoolArray, NodeTable, PodRequest, updated_node_table
from modeljob.core.scoring.filters import feasible_nodes
from modeljob.core.sizing import Device, Estimate, size_replica
from modeljob.core.steps import Complete, RollBack

SizingCache = dict[tuple[JobShape, int, int], Estimate]


class Cluster:
    """The cluster for one cycle: nodes by name, the ledger every plan reserves on, and per-cycle
    lookups computed once and shared by every job.

    Jobs nearly always share their nodeSelector and tolerations, so which nodes a job may use,
    and the node types and prices among them, are kept per distinct (selector, tolerations).
    ``reserved`` marks nodes kept for a preemptor until its victims' pods are gone: no other
    job is planned there meanwhile.
    """

    def __init__(
        self,
        nodes: Sequence[NodeFacts],
        pods: Sequence[PodFacts],
        cache: SizingCache,
        memory: NodeSetMemory | None = None,
    ) -> None:
        """``memory``: what earlier cycles worked out from the same nodes (kept across cycles)."""
        self.nodes = sorted(nodes, key=lambda n: n.name)
        self.memory = memory if memory is not None else NodeSetMemory()
        self.memory.start(self.nodes)
        self.by_name = {n.name: n for n in self.nodes}
        self.memory.pods.update(pods)
        self.views = accounted_views(
            self.nodes, self.memory.pods.use, known=self.memory.views, touched=self.memory.pods.touched()
        )
        # Built from last cycle's table where most nodes' views are the same objects; the cycle
        # reserves on a working copy of it.
        built = updated_node_table(self.memory.table, self.memory.table_views, self.views)
        self.memory.table, self.memory.table_views = built, self.views
        self.table: NodeTable = built.working_copy()
        self.row_of = {name: row for row, name in enumerate(self.table.names)}
        if not self.memory.type_of:  # a node's type is read from its devices, not its pods
            types = [node_type_of(v) for v in self.views]
            self.memory.type_of = dict(zip(self.table.names, types, strict=True))
            self.memory.type_masks = {
                t: np.array([other == t for other in types], dtype=np.bool_)
                for t in {t for t in types if t is not None}
            }
        self.type_of, self.type_masks = self.memory.type_of, self.memory.type_masks
        self.reserved: dict[str, BoolArray] = {}  # preemptor "ns/name" -> the nodes kept for it
        # Counts the changes to what a plan reads this cycle: nodes kept for a preemptor
        # (``reserve_nodes``), and room taken on the ledger (``take``) by node type: a plan on
        # some types reads only their rows (core/plan_validity.py). Equal stamps: equal plans.
        self._kept = 0
        self._taken: dict[NodeType, int] = {}
        self.version = 0  # any of them: an equal version is an equal stamp, whatever the types
        # usable(): by eligibility and the holder excepted, until the next reserve_nodes. One
        # array per answer also lets the plan memo key by the array (PlanMemo.mask_key).
        self._usable: dict[tuple[tuple[object, ...], str | None], BoolArray] = {}
        self._cache = cache
        self._eligible = self.memory.eligible
        self._types = self.memory.types
        self._sizings = self.memory.sizings
        # Each cycle keeps only the jobs it sized, so jobs deleted since are forgotten.
        self._sized_before, self.memory.by_job = self.memory.by_job, {}

    def _key(self, job: JobFacts) -> tuple[object, ...]:
        """What decides which nodes a job may use: its nodeSelector, tolerations, node affinity."""
        found = self.memory.by_job.get(job.uid)
        if found is not None and found[0] is job:
            return found[2]
        return job.node_rules

    def eligible(self, job: JobFacts) -> BoolArray:
        """The nodes the template lets the job use at all: nodeSelector, tolerations and its
        required node affinity (the product affinity the operator adds is ANDed into that one)."""
        key = self._key(job)
        found = self._eligible.get(key)
        if found is None:
            admitting = self.memory.admitting[key] = Admitting.of(job)
            self._eligible[key] = found = admitting.mask(self.nodes)
        return found

    def usable(self, job: JobFacts) -> BoolArray:
        """The eligible nodes less those kept for another job's preemption."""
        mask = self.eligible(job)
        if not self.reserved:
            return mask
        own = job.ref if job.ref in self.reserved else None
        key = (self._key(job), own)
        found = self._usable.get(key)
        if found is None:
            for holder, kept in self.reserved.items():
                if holder != own:
                    mask = mask & ~kept
            self._usable[key] = found = mask
        return found

    def reserve_nodes(self, holder: str, nodes: Sequence[str]) -> None:
        self.reserved[holder] = np.array([n.name in nodes for n in self.nodes], dtype=np.bool_)
        self._usable = {}
        self._kept += 1
        self.version += 1

    def take(self, node: str, request: PodRequest, devices: Sequence[int] = ()) -> None:
        """A pod's room taken on the cycle's ledger: the jobs planned after it see it gone."""
        self.table.reserve(self.row_of[node], request, devices)
        node_type = self.type_of.get(node)
        if node_type is not None:  # an untyped node is no candidate's (type_masks has no row of it)
            self._taken[node_type] = self._taken.get(node_type, 0) + 1
        self.version += 1

    def stamp(self, types: Iterable[NodeType]) -> tuple[int, ...]:
        """What a plan on ``types`` reads has changed since an earlier stamp if this one differs:
        nodes kept for a preemptor anywhere, room taken on a node of one of them."""
        return (self._kept, *(self._taken.get(t, 0) for t in types))

    def sizing(self, job: JobFacts) -> Sizing:
        found_for_job = self.memory.by_job.get(job.uid) or self._sized_before.get(job.uid)
        if found_for_job is not None and found_for_job[0] is job:
            self.memory.by_job[job.uid] = found_for_job
            return found_for_job[1]
        key = self._key(job)
        sizing = self._sizing(job, key)
        self.memory.by_job[job.uid] = (job, sizing, key)
        return sizing

    def _sizing(self, job: JobFacts, key: tuple[object, ...]) -> Sizing:
        # What size_job reads of a job (node_types.py): jobs of one template are sized once.
        sized_as = (
            key,
            job.shape,
            job.accelerator,
            job.products,
            job.memory_per_device_bytes,
            job.extra_requests,
        )
        found = self._sizings.get(sized_as)
        if found is not None:
            return found
        if key not in self._types:
            self._types[key] = types_of(self.nodes, self.eligible(job))
        types, prices = self._types[key]
        self._sizings[sized_as] = sizing = size_job(job, types, prices=prices, size=self._size)
        return sizing

    def _size(self, job: JobFacts, device: Device) -> Estimate:
        key = (job.shape, device.memory_bytes, device.gpus_per_node)
        if key not in self._cache:
            self._cache[key] = size_replica(job.shape, device)
        return self._cache[key]

    def node_type_of_placement(self, job: JobFacts) -> NodeType | None:
        """The node type a placed job's first pod got (its charges follow that product)."""
        first = self.by_name.get(job.placement[0].node) if job.placement else None
        return node_type_of(first.view) if first is not None else None


def complete(step: Complete, job_pods: Sequence[PodFacts], cluster: Cluster) -> Complete | RollBack:
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
        cluster.take(entry.node, candidate.request)
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
