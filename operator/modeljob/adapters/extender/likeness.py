"""Which nodes kube-scheduler's own scoring cannot tell apart: the shortlist keeps one of each such
class among the nodes our scores tie (docs/extender.md, "Alike nodes").

Pure translation and bookkeeping (no client, no clock, no lock: the cache holds its own). With the
shortlist's preconditions met, kube-scheduler v1.36.3's normalising score plugins score every node
alike, and the default profile's per-node ones read, of a node (pkg/scheduler/framework/plugins/):

- NodeResourcesFit (LeastAllocated over cpu and memory, `SetDefaults_NodeResourcesFitArgs`) and
  NodeResourcesBalancedAllocation (cpu and memory, `useRequested: true`): the node's allocatable
  cpu and memory (`NodeInfo.SetNode`, status.allocatable) and its pods' requests, summed as
  `NodeInfo.update` does: `NonZeroRequested` for NodeResourcesFit (100m and 200 MiB for each
  container that states none, `PodInfo.CalculateResource`) and `Requested` for BalancedAllocation;
- ImageLocality: the node's images (status.images, their names and size; how many nodes hold an
  image is the cluster's, alike for every node);
- VolumeBinding: nothing of a node for a pod without volumes it binds (such a pod is not collapsed).

Two nodes whose `node_key`s are equal therefore get equal totals from kube-scheduler's plugins.
What the extender cannot count exactly (a pod with pod-level requests, a resize under way, a
quantity it cannot read, a node or pod it has not read) makes the node a class of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

import numpy as np

from modeljob.core.nodes import IntArray
from modeljob.core.resources import QuantityError, parse_quantity

# schedutil.DefaultMilliCPURequest and DefaultMemoryRequest (pkg/scheduler/util/pod_resources.go).
DEFAULT_MILLI_CPU = Decimal("0.1")
DEFAULT_MEMORY_BYTES = Decimal(200 * 1024 * 1024)

# Of one pod: requested cpu (milli), memory (bytes); non-zero requested cpu (milli), memory (bytes).
PodCounts = tuple[int, int, int, int]
# Of one node: allocatable cpu and memory as written, and its images (names, size).
NodeInputs = tuple[str, str, tuple[tuple[tuple[str, ...], int], ...]]
Key = tuple[str, str]


def node_inputs(node: Mapping[str, Any]) -> NodeInputs:
    """What the per-node plugins read of a v1 Node itself. Allocatable is kept as written: equal
    text is an equal quantity (unequal text, say "8" and "8000m", only keeps two nodes apart)."""
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or {}
    images = tuple(
        sorted(
            (tuple(sorted(str(name) for name in image.get("names") or ())), int(image.get("sizeBytes") or 0))
            for image in status.get("images") or ()
            if isinstance(image, Mapping)
        )
    )
    return (str(allocatable.get("cpu")), str(allocatable.get("memory")), images)


def pod_counts(pod: Mapping[str, Any]) -> PodCounts | None:
    """A v1 Pod's cpu and memory as kube-scheduler's NodeInfo counts it (`Requested`,
    `NonZeroRequested`), or None where the extender cannot be sure of them."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if ((spec.get("resources") or {}).get("requests")) or status.get("nodeAllocatableResourceClaimStatuses"):
        return None  # pod-level requests, DRA node-allocatable claims: counted otherwise
    try:
        if _resizing(spec, status):
            return None  # kube-scheduler counts max(spec, actuated, allocated) then
        cpu, memory = (_total(spec, name, None) for name in ("cpu", "memory"))
        nonzero_cpu = _total(spec, "cpu", DEFAULT_MILLI_CPU)
        nonzero_memory = _total(spec, "memory", DEFAULT_MEMORY_BYTES)
    except (QuantityError, TypeError, AttributeError):
        return None
    return (_ceil(cpu * 1000), _ceil(memory), _ceil(nonzero_cpu * 1000), _ceil(nonzero_memory))


def _ceil(value: Decimal) -> int:
    """Quantity.MilliValue and Value round up (of the pod's total, summed exactly)."""
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _request(container: Mapping[str, Any], name: str, default: Decimal | None) -> Decimal:
    requests = (container.get("resources") or {}).get("requests") or {}
    if name in requests:
        return parse_quantity(requests[name])
    return default if default is not None else Decimal(0)  # applyNonMissing


def _total(spec: Mapping[str, Any], name: str, default: Decimal | None) -> Decimal:
    """component-helpers' PodRequests for one resource: the containers summed, sidecars (init
    containers with restartPolicy Always) added, at least the peak of the init containers, plus
    the overhead; ``default`` for each container that states none (NonMissingContainerRequests)."""
    total = sum((_request(c, name, default) for c in spec.get("containers") or ()), Decimal(0))
    sidecars, peak = Decimal(0), Decimal(0)
    for container in spec.get("initContainers") or ():
        amount = _request(container, name, default)
        if container.get("restartPolicy") == "Always":
            total += amount
            sidecars += amount
            peak = max(peak, sidecars)
        else:
            peak = max(peak, amount + sidecars)
    overhead = (spec.get("overhead") or {}).get(name)
    return max(total, peak) + (parse_quantity(overhead) if overhead is not None else 0)


def _resizing(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """A container whose actuated or allocated cpu or memory differs from its spec (an in-place
    resize under way): kube-scheduler then counts the larger (determineEffectiveRequests)."""
    wanted = {
        str(c.get("name")): (c.get("resources") or {}).get("requests") or {}
        for c in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]
    }
    for state in [*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())]:
        requests = wanted.get(str(state.get("name")), {})
        for reported in ((state.get("resources") or {}).get("requests"), state.get("allocatedResources")):
            if reported is None:
                continue
            for name in ("cpu", "memory"):
                if _amount(reported.get(name)) != _amount(requests.get(name)):
                    return True
    return False


def _amount(value: object) -> Decimal | None:
    return None if value is None else parse_quantity(value)  # type: ignore[arg-type]


def node_key(inputs: NodeInputs | None, pods: Iterable[PodCounts | None]) -> Hashable | None:
    """What kube-scheduler's per-node plugins read of a node holding ``pods``; None: not known."""
    if inputs is None:
        return None
    cpu = memory = nonzero_cpu = nonzero_memory = 0
    for counts in pods:
        if counts is None:
            return None
        cpu, memory = cpu + counts[0], memory + counts[1]
        nonzero_cpu, nonzero_memory = nonzero_cpu + counts[2], nonzero_memory + counts[3]
    return (inputs, cpu, memory, nonzero_cpu, nonzero_memory)


class NodeLikeness:
    """Per table row a class id: equal for rows whose `node_key` is equal, and the row's own
    (negative) where its key is not known. Fed what the watches read; the caller locks."""

    def __init__(self) -> None:
        self._inputs: dict[str, NodeInputs] = {}
        self._counts: dict[Key, PodCounts | None] = {}
        self._ids: dict[Hashable, int] = {}
        self._keys: list[Hashable | None] = []

    def node_read(self, name: str, inputs: NodeInputs | None) -> bool:
        """Whether what the plugins read of node ``name`` changed."""
        before = self._inputs.pop(name, None)
        if inputs is not None:
            self._inputs[name] = inputs
        return before != inputs

    def pod_read(self, key: Key, counts: PodCounts | None) -> None:
        self._counts[key] = counts

    def pod_gone(self, key: Key) -> None:
        self._counts.pop(key, None)

    def keep_nodes(self, names: Collection[str]) -> None:
        """After a fresh list of nodes: forget what was read of nodes no longer there."""
        self._inputs = {name: v for name, v in self._inputs.items() if name in names}

    def keep_pods(self, keys: Collection[Key]) -> None:
        """After a fresh list of pods: forget what was read of pods no longer there."""
        self._counts = {key: v for key, v in self._counts.items() if key in keys}

    def key(self, name: str, pods: Iterable[Key]) -> Hashable | None:
        # A pod counted before the watch showed it (assumed) has no counts yet: not known.
        return node_key(self._inputs.get(name), (self._counts.get(key) for key in pods))

    def rebuild(self, keys: list[Hashable | None]) -> IntArray:
        """Ids of every row from scratch (a new table, or too many keys remembered)."""
        self._ids = {}
        self._keys = list(keys)
        return np.array([self._id(row, key) for row, key in enumerate(keys)], dtype=np.int64)

    def update(self, ids: IntArray, row: int, key: Hashable | None) -> IntArray:
        """``ids`` with ``row``'s id for ``key`` (rebuilt whole when old keys pile up)."""
        self._keys[row] = key
        if len(self._ids) > 4 * len(self._keys) + 1024:
            return self.rebuild(self._keys)
        ids[row] = self._id(row, key)
        return ids

    def _id(self, row: int, key: Hashable | None) -> int:
        if key is None:
            return -1 - row
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._ids)
        return found
