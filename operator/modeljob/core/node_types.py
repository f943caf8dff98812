"""Node types and sizing per node type: the same job needs 4 x 80 GiB or 8 x 40 GiB GPUs.

Nodes that size a replica the same way (accelerator, product, device memory, devices per node)
form a node type; a job is sized once per node type it may use, cheapest first, and every node
type it cannot use is named with the reason (docs/operator.md, "The lifecycle").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from modeljob.core.cluster_state import NodeFacts, admits
from modeljob.core.job_state import JobFacts
from modeljob.core.nodes import NodeView, PodRequest
from modeljob.core.resources import Resources, format_bytes
from modeljob.core.sizing import Device, Estimate, SizingError, size_replica


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

    @property
    def pods_per_replica(self) -> int:
        """Pods of one replica: one per node, each with ``estimate.gpus`` devices (a group whose
        pod 0 leads it, when the replica spans nodes)."""
        return self.estimate.nodes_per_replica

    @property
    def gpus_per_replica(self) -> int:
        return self.estimate.gpus * self.estimate.nodes_per_replica


@dataclass(frozen=True, slots=True)
class Sizing:
    candidates: tuple[Candidate, ...]  # preferred first: cheapest per replica, then fewest GPUs
    rejected: tuple[str, ...]  # one line per node type that cannot hold a replica, and why

    def describe(self) -> str:
        """Each node type's GPUs per replica and per-GPU memory, then why the others cannot hold one."""
        parts = [
            f"{c.node_type.describe()}: {c.estimate.gpus} GPU(s)/replica, "
            f"{format_bytes(c.estimate.gpu_memory_per_gpu_bytes)} per GPU"
            for c in self.candidates
        ]
        parts.extend(self.rejected)
        return "; ".join(parts) or "no GPU node types in the cluster yet"

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
    """Size one replica for each node type the job may use: on one node, or on a group of whole
    nodes when the estimate says the replica spans nodes (``Candidate.pods_per_replica``)."""
    sizer = size if size is not None else (lambda j, d: size_replica(j.shape, d))
    candidates: list[Candidate] = []
    rejected: list[str] = []
    for node_type in types:
        if node_type.accelerator != job.accelerator:
            continue
        sized = _size_for_type(job, node_type, sizer, prices or {})
        if isinstance(sized, str):
            rejected.append(f"{node_type.describe()}: {sized}")
        else:
            candidates.append(sized)
    candidates.sort(
        key=lambda c: (
            c.price_per_replica_hour is None,
            c.price_per_replica_hour or 0.0,
            c.gpus_per_replica,
            -c.node_type.device_memory_bytes,
            c.node_type,
        )
    )
    return Sizing(candidates=tuple(candidates), rejected=tuple(rejected))


def _size_for_type(
    job: JobFacts,
    node_type: NodeType,
    sizer: Callable[[JobFacts, Device], Estimate],
    prices: Mapping[NodeType, float],
) -> Candidate | str:
    """The job sized for one node type, or why that node type cannot hold one replica."""
    if job.products and node_type.product not in job.products:
        return "not among spec.accelerator.products"
    # spec.accelerator.memoryPerDevice is the smallest device the job accepts: smaller labelled
    # devices are not used, and unlabelled ones are taken to have exactly that much (what
    # `modeljob estimate` sizes for), so the CLI and the operator size the same job alike.
    wanted = job.memory_per_device_bytes
    labelled = node_type.device_memory_bytes
    if wanted and labelled and labelled < wanted:
        return (
            f"devices of {format_bytes(labelled)} are smaller than spec.accelerator.memoryPerDevice "
            f"{format_bytes(wanted)}"
        )
    memory = labelled or wanted or 0
    if memory <= 0:
        return "the nodes do not label their device memory and spec.accelerator.memoryPerDevice is unset"
    try:
        estimate = sizer(job, Device(memory_bytes=memory, gpus_per_node=node_type.gpus_per_node))
    except SizingError as exc:
        return str(exc)
    if not estimate.fits:
        return (
            f"{format_bytes(estimate.gpu_memory_per_gpu_bytes)} per GPU does not fit "
            f"{format_bytes(memory)} devices ({estimate.misfit})"
        )
    extra = job.extra_requests
    resources = Resources(
        cpu_milli=estimate.cpu_milli + extra.cpu_milli,
        memory_bytes=estimate.memory_bytes + extra.memory_bytes,
        ephemeral_storage_bytes=estimate.ephemeral_storage_bytes + extra.ephemeral_storage_bytes,
        gpus=estimate.gpus,
    )
    request = PodRequest(
        resources=resources,
        accelerator=node_type.accelerator,
        products=(node_type.product,) if node_type.product else (),
    )
    return Candidate(
        node_type=node_type,
        estimate=estimate,
        request=request,
        price_per_replica_hour=_price_per_replica(
            estimate.gpus * estimate.nodes_per_replica, node_type, prices
        ),
    )


# Node types and the lowest price of each: what sizing reads of the nodes a job may use.
NodeTypes = tuple[list[NodeType], dict[NodeType, float]]


class ClusterNodeTypes:
    """The node types, and their prices, among the nodes each job may use at all (nodeSelector,
    tolerations, required node affinity), for one set of nodes.

    Jobs nearly always share those rules, so each distinct set is matched against every node once
    and kept: build one per change of the node set (labels, taints, devices, prices) and size
    every job against it, rather than walking every node for every job.
    """

    def __init__(self, nodes: Sequence[NodeFacts], *, previous: ClusterNodeTypes | None = None) -> None:
        """``previous``: the same, built before the node set changed; an answer of ``types_for``
        that comes out as it was there is its object again, so an object seen again is an answer
        equal to the one it was made for (callers keep what they worked out from it by its
        identity). Only ``previous``'s own answers are looked at, never older ones."""
        self._nodes = tuple(nodes)
        self._types: dict[tuple[object, ...], NodeTypes] = {}
        self._before = previous._types if previous is not None else {}

    def types_for(self, job: JobFacts) -> NodeTypes:
        """The node types, and their prices, among the nodes ``job`` may use: all that sizing it
        reads of the nodes. Across a change of the node set that leaves it as it was (a node tainted
        or untainted while others of its type, at its price, stay usable), the same object, so
        what was worked out from it is known to hold by its identity."""
        key = job.node_rules
        if key not in self._types:
            affinity = job.rules.node_affinity
            usable = [
                n.view
                for n in self._nodes
                if admits(n, node_selector=job.node_selector, tolerations=job.tolerations)
                and affinity.admits(n.name, n.labels)
            ]
            found = usable_types(usable)
            before = self._before.get(key)
            self._types[key] = before if before == found else found
        return self._types[key]

    def size(self, job: JobFacts, *, size: Callable[[JobFacts, Device], Estimate] | None = None) -> Sizing:
        """``job`` sized for the node types among the nodes it may use."""
        types, prices = self.types_for(job)
        return size_job(job, types, prices=prices, size=size)


def usable_types(views: Sequence[NodeView]) -> NodeTypes:
    """The node types among ``views``, with the lowest price of each."""
    return node_types(views), type_prices(views)


def type_prices(nodes: Sequence[NodeView]) -> dict[NodeType, float]:
    """The lowest labelled price per node-hour of each node type."""
    prices: dict[NodeType, float] = {}
    for view in nodes:
        node_type = node_type_of(view)
        if node_type is not None and view.price_per_hour is not None:
            prices[node_type] = min(prices.get(node_type, view.price_per_hour), view.price_per_hour)
    return prices
