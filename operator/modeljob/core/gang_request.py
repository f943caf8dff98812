"""What a gang plan (core/gang_placement.py) is asked, every replica's request and rules, and what
it answers: a node for every pod, or why there is none."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modeljob.core.nodes import PodRequest
from modeljob.core.template_rules import JobRules
from modeljob.core.topology import GroupTopology


@dataclass(frozen=True, slots=True)
class ReplicaRequests:
    """What one replica asks for, depending on the device memory of the node it lands on.

    Sizing gives, for the same model, e.g. 2 GPUs on 80 GiB devices or 8 on 24 GiB devices, so
    the request is keyed by device memory. A node uses the entry for its exact device memory,
    else the largest entry below it (a replica sized for smaller devices fits on larger ones),
    else ``fallback`` (nodes without a memory label, and jobs that need no GPU).
    """

    by_device_memory: tuple[tuple[int, PodRequest], ...] = ()
    fallback: PodRequest | None = None

    @classmethod
    def uniform(cls, request: PodRequest) -> ReplicaRequests:
        return cls(fallback=request)

    @classmethod
    def sized(cls, requests: Mapping[int, PodRequest], fallback: PodRequest | None = None) -> ReplicaRequests:
        return cls(by_device_memory=tuple(sorted(requests.items())), fallback=fallback)

    def for_device_memory(self, memory_bytes: int) -> PodRequest | None:
        if memory_bytes > 0:
            fitting = [request for size, request in self.by_device_memory if size <= memory_bytes]
            if fitting:
                return fitting[-1]
        return self.fallback


@dataclass(frozen=True, slots=True)
class GangRequest:
    """``rules``: the template's pod rules with the cluster's pods counted (None: no rules, no
    default spread); ``planned``: nodes of the job's replicas planned before this request (a job
    that is not a gang is planned one replica at a time), which its rules count as its own pods."""

    job: str
    replicas: int
    requests: ReplicaRequests
    rules: JobRules | None = None
    planned: tuple[str, ...] = ()
    group_size: int = 1  # pods per replica, one per node: a replica that spans nodes
    topology: GroupTopology | None = None  # the domain a group keeps to (None: any nodes)


@dataclass(frozen=True, slots=True)
class Assignment:
    replica: int
    node: str
    score: float
    devices: tuple[int, ...] = ()
    why: str = ""  # what set this node apart from the runner-up (see ``separation``)
    member: int = 0  # the pod's place in its replica's group (0: the leader)


@dataclass(frozen=True, slots=True)
class Placement:
    assignments: tuple[Assignment, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unplaceable:
    """No plan now. ``never_fits``: not even on this cluster with every node empty (so waiting is futile).

    ``read_scores``: whether the verdict may depend on how nodes score. A plan that fails before
    choosing any node failed on room and rules alone (scores only pick among nodes that fit), and
    so did an empty-cluster check that counted, or failed before choosing a node: such a verdict
    is the same under any scoring context, on the same nodes with the same free room.
    """

    reason: str
    never_fits: bool
    read_scores: bool = True  # when unknown, assume it did
