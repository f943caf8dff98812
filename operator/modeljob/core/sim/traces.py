"""The openb trace's data model (nodes, tasks) and the cluster state a replay mutates as it places tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modeljob.core.fragmentation import CompiledWorkload, TaskShape, fragmentation_milli
from modeljob.core.nodes import IntArray, NodeTable, NodeView, PodRequest, build_node_table
from modeljob.core.resources import MIB, Resources

# The artifact's GPU annotations live under this prefix; trace nodes expose their GPUs under it.
TRACE_ACCELERATOR = "alibabacloud.com/gpu"


@dataclass(frozen=True, slots=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str  # GPU model; "" on CPU-only nodes


@dataclass(frozen=True, slots=True)
class TracePod:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    gpu_milli: int  # per device; below 1000 = a GPU-sharing task
    gpu_spec: tuple[str, ...] = ()  # allowed GPU models; empty = any

    @property
    def total_gpu_milli(self) -> int:
        return self.gpus * self.gpu_milli if self.gpus > 0 else 0

    @property
    def shape(self) -> TaskShape:
        gpus = self.gpus if self.gpu_milli > 0 else 0
        return TaskShape(
            cpu_milli=self.cpu_milli,
            gpu_milli=self.gpu_milli if gpus else 0,
            gpus=gpus,
            products=self.gpu_spec,
        )

    @property
    def tag(self) -> str:
        """The GPU clustering tag of the artifact: "share", "<n>-gpu", or "" for CPU-only tasks."""
        shape = self.shape
        if not shape.uses_gpu:
            return ""
        if shape.gpus == 1 and shape.gpu_milli < 1000:
            return "share"
        return f"{shape.gpus}-gpu"


def trace_request(pod: TracePod) -> PodRequest:
    """What ``pod`` asks of a node, as the core's filter, scorers and ledger read it."""
    shape = pod.shape
    return PodRequest(
        resources=Resources(
            cpu_milli=pod.cpu_milli,
            memory_bytes=pod.memory_mib * MIB,
            gpus=shape.gpus,
            gpu_milli=shape.gpu_milli if shape.gpus else 1000,
        ),
        accelerator=TRACE_ACCELERATOR,
        products=pod.gpu_spec,
    )


def build_trace_table(nodes: Sequence[TraceNode]) -> NodeTable:
    """A node table for trace nodes, sorted by name (so the first best row is the smallest name)."""
    views = [
        NodeView(
            name=node.name,
            allocatable=Resources(
                cpu_milli=node.cpu_milli, memory_bytes=node.memory_mib * MIB, gpus=node.gpus
            ),
            accelerator=TRACE_ACCELERATOR if node.gpus else None,
            gpu_product=node.model or None,
        )
        for node in sorted(nodes, key=lambda n: n.name)
    ]
    return build_node_table(views)


class ReplayState:
    """The cluster during one replay: free capacity per node, plus what the policies remember.

    ``version[i]`` grows each time node i changes, so a policy can cache per-node scores and
    recompute only rows whose version moved. ``fragmentation[i]`` is node i's FGD fragmentation
    under the replay's target workload, kept current for the fragmentation metric.
    """

    def __init__(self, table: NodeTable, workload: CompiledWorkload) -> None:
        self.table = table
        self.workload = workload
        self.version: IntArray = np.zeros(len(table), dtype=np.int64)
        self.tags: dict[str, int] = {}
        self.tag_counts: IntArray = np.zeros((len(table), 8), dtype=np.int64)
        self.allocated_gpu_milli = 0
        self._requests: dict[TracePod, PodRequest] = {}
        self.fragmentation = fragmentation_milli(
            table.cpu_free_milli, table.gpu_free_milli, table.product_index, workload
        )

    def tag_column(self, tag: str) -> int:
        if tag not in self.tags:
            if len(self.tags) == self.tag_counts.shape[1]:
                self.tag_counts = np.hstack([self.tag_counts, np.zeros_like(self.tag_counts)])
            self.tags[tag] = len(self.tags)
        return self.tags[tag]

    def request_of(self, pod: TracePod) -> PodRequest:
        """The pod request of ``pod``, made once per distinct task (a trace has about 150)."""
        request = self._requests.get(pod)
        if request is None:
            request = self._requests[pod] = trace_request(pod)
        return request

    def place(self, pod: TracePod, row: int, devices: Sequence[int]) -> None:
        """Reserve ``pod`` on node ``row`` (``devices`` as the policy chose them) through the
        table's ledger, then bring the policies' bookkeeping of that row up to date."""
        table = self.table
        request = self.request_of(pod)
        taken = table.reserve(row, request, devices)
        if request.uses_accelerator:
            self.allocated_gpu_milli += request.resources.gpu_milli * len(taken)
            self.tag_counts[row, self.tag_column(pod.tag)] += 1
        self.version[row] += 1
        self.fragmentation[row] = fragmentation_milli(
            table.cpu_free_milli[row : row + 1],
            table.gpu_free_milli[row : row + 1],
            table.product_index[row : row + 1],
            self.workload,
        )[0]
