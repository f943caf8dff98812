"""CPU balance: keep enough CPU and memory beside every idle GPU for the work expected to use it.

A GPU whose node has run out of CPU or memory is as lost as a fragmented one: nothing can be
scheduled on it. Expected host demand per GPU is learned from the GPU pods seen (total CPU and
memory requested per GPU requested); a node's *stranded* GPUs are the idle GPUs beyond what its
free CPU and memory can feed at that rate. The score is the change placing the pod makes to
them (like FGD's ΔF): taking CPU that only stranded GPUs could have used costs nothing, taking
CPU that idle GPUs need costs what it strands, and using a GPU that would have stranded gains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.resources import Resources
from modeljob.core.scoring.plugin import FunctionScorer, ScoringContext


@dataclass(frozen=True, slots=True)
class HostDemand:
    """CPU and memory the expected work requests per whole GPU it requests."""

    cpu_milli_per_gpu: float
    memory_bytes_per_gpu: float


@dataclass(frozen=True, slots=True)
class DemandSums:
    """Running sums of what GPU pods request, that host demand is learned from. Integers, so the
    order in which pods come and go cannot change them; the extender's cache keeps them per event
    and ``learn_host_demand`` over a list, so there is one formula."""

    cpu_milli: int = 0
    memory_bytes: int = 0
    gpu_milli: int = 0

    def plus(self, requests: Resources, sign: int = 1) -> DemandSums:
        """These sums with a GPU pod's ``requests`` added (``sign`` -1: taken away)."""
        return DemandSums(
            cpu_milli=self.cpu_milli + sign * requests.cpu_milli,
            memory_bytes=self.memory_bytes + sign * requests.memory_bytes,
            gpu_milli=self.gpu_milli + sign * requests.total_gpu_milli,
        )

    def demand(self) -> HostDemand | None:
        """CPU and memory per requested GPU (None when the pods request no GPU)."""
        if self.gpu_milli <= 0:
            return None
        gpus = self.gpu_milli / 1000
        return HostDemand(
            cpu_milli_per_gpu=self.cpu_milli / gpus, memory_bytes_per_gpu=self.memory_bytes / gpus
        )


def learn_host_demand(requests: Iterable[PodRequest]) -> HostDemand | None:
    """Requested CPU and memory per requested GPU over the GPU pods among ``requests`` (None if none)."""
    return learn_host_demand_counted((request, 1) for request in requests)


def learn_host_demand_counted(counted: Iterable[tuple[PodRequest, int]]) -> HostDemand | None:
    """``learn_host_demand`` over each distinct request with how many pods make it (a cycle sees
    thousands of pods of a few requests): ``count`` pods alike add ``count`` times one's requests,
    integers, so the sums are the same."""
    sums = DemandSums()
    for request, count in counted:
        if request.uses_accelerator and count > 0:
            sums = sums.plus(request.resources, sign=count)
    return sums.demand()


def stranded_gpus(
    idle_milli: FloatArray, cpu_free_milli: FloatArray, memory_free_bytes: FloatArray, *, demand: HostDemand
) -> FloatArray:
    """Idle GPUs (per node) beyond what the free CPU and memory can feed at ``demand`` per GPU."""
    fed = np.full(len(idle_milli), math.inf)
    if demand.cpu_milli_per_gpu > 0:
        fed = np.minimum(fed, np.clip(cpu_free_milli, 0, None) / demand.cpu_milli_per_gpu)
    if demand.memory_bytes_per_gpu > 0:
        fed = np.minimum(fed, np.clip(memory_free_bytes, 0, None) / demand.memory_bytes_per_gpu)
    result: FloatArray = np.clip(np.clip(idle_milli, 0, None) / 1000 - fed, 0, None)
    return result


def score_cpu_balance(
    table: NodeTable, rows: IntArray, request: PodRequest, *, demand: HostDemand
) -> FloatArray:
    """0..1 per row: 0.5 − (change in stranded GPUs from placing) / (2 × the table's largest GPU count)."""
    wants = request.resources
    largest = max(int(table.gpu_count.max(initial=0)), 1)
    idle = table.gpu_free_milli[rows].sum(axis=1).astype(np.float64)
    cpu = table.cpu_free_milli[rows].astype(np.float64)
    memory = table.memory_free_bytes[rows].astype(np.float64)
    before = stranded_gpus(idle, cpu, memory, demand=demand)
    after = stranded_gpus(
        idle - request.gpu_request_milli, cpu - wants.cpu_milli, memory - wants.memory_bytes, demand=demand
    )
    result: FloatArray = np.clip(0.5 - (after - before) / (2 * largest), 0.0, 1.0)
    return result


def _score(table: NodeTable, rows: IntArray, request: PodRequest, context: ScoringContext) -> FloatArray:
    if context.host_demand is None:
        return np.ones(len(rows), dtype=np.float64)  # nothing learned yet: no node is preferred
    return score_cpu_balance(table, rows, request, demand=context.host_demand)


SCORER = FunctionScorer(name="cpu-balance", position=5, function=_score)
