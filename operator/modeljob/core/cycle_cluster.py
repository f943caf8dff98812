"""The cluster as one scheduling cycle sees it: nodes, the ledger every plan reserves on, cached
per-cycle lookups, and the completion (or roll back) of placements a crash left half bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from modeljob.core.cluster_state import NodeFacts, PodFacts, account, admits
from modeljob.core.job_state import JobFacts, JobPhase, Requeue
from modeljob.core.jobs import JobShape
from modeljob.core.node_types import NodeType, Sizing, node_type_of, node_types, size_job, type_prices
from modeljob.core.nodes import BoolArray, NodeTable, build_node_table
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

    def __init__(self, nodes: Sequence[NodeFacts], pods: Sequence[PodFacts], cache: SizingCache) -> None:
        self.nodes = sorted(nodes, key=lambda n: n.name)
        self.by_name = {n.name: n for n in self.nodes}
        self.views = account(self.nodes, pods)
        self.table: NodeTable = build_node_table(self.views)
        self.row_of = {name: row for row, name in enumerate(self.table.names)}
        types = [node_type_of(v) for v in self.views]
        self.type_of = dict(zip(self.table.names, types, strict=True))
        self.type_masks = {
            t: np.array([other == t for other in types], dtype=np.bool_)
            for t in {t for t in types if t is not None}
        }
        self.reserved: dict[str, BoolArray] = {}  # preemptor "ns/name" -> the nodes kept for it
        self._cache = cache
        self._eligible: dict[tuple[object, ...], BoolArray] = {}
        self._types: dict[tuple[object, ...], tuple[list[NodeType], dict[NodeType, float]]] = {}
        self._sizings: dict[tuple[object, ...], Sizing] = {}

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

    def usable(self, job: JobFacts) -> BoolArray:
        """The eligible nodes less those kept for another job's preemption."""
        mask = self.eligible(job)
        for holder, kept in self.reserved.items():
            if holder != job.ref:
                mask = mask & ~kept
        return mask

    def reserve_nodes(self, holder: str, nodes: Sequence[str]) -> None:
        self.reserved[holder] = np.array([n.name in nodes for n in self.nodes], dtype=np.bool_)

    def sizing(self, job: JobFacts) -> Sizing:
        key = self._key(job)
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
            usable = [v for v, ok in zip(self.views, self.eligible(job), strict=True) if ok]
            self._types[key] = (node_types(usable), type_prices(usable))
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
