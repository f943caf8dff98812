"""CPU balance: keep enough CPU and memory beside every idle GPU for the work expected to use it.

A GPU whose node has run out of CPU or memory is as lost as a fragmented one: nothing can be
scheduled on it. Expected host demand per GPU is learned from the GPU pods seen (total CPU and
memory requested per GPU requested); a node's *stranded* GPUs are the idle GPUs beyond what its
free CPU and memory can feed at that rate. Fewer stranded GPUs after placing scores higher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest


@dataclass(frozen=True, slots=True)
class HostDemand:
    """CPU and memory the expected work requests per whole GPU it requests."""

    cpu_milli_per_gpu: float
    memory_bytes_per_gpu: float


def learn_host_demand(requests: Iterable[PodRequest]) -> HostDemand | None:
    """Requested CPU and memory per requested GPU over the GPU pods among ``requests`` (None if none)."""
    cpu = memory = gpus = 0.0
    for request in requests:
        if not request.uses_accelerator:
            continue
        wants = request.resources
        cpu += wants.cpu_milli
        memory += wants.memory_bytes
        gpus += wants.gpus * wants.gpu_milli / 1000
    if gpus <= 0:
        return None
    return HostDemand(cpu_milli_per_gpu=cpu / gpus, memory_bytes_per_gpu=memory / gpus)


def score_cpu_balance(
    table: NodeTable, rows: IntArray, request: PodRequest, *, demand: HostDemand
) -> FloatArray:
    """0..1 per row: 1 − (GPUs left without CPU or memory to feed them after placing) / the
    table's largest GPU count."""
    wants = request.resources
    largest = max(int(table.gpu_count.max(initial=0)), 1)
    gpu_request = wants.gpus * wants.gpu_milli if request.uses_accelerator else 0
    idle_gpus = np.clip(table.gpu_free_milli[rows].sum(axis=1) - gpu_request, 0, None) / 1000
    fed = np.full(len(rows), math.inf)
    if demand.cpu_milli_per_gpu > 0:
        fed = np.minimum(
            fed, np.clip(table.cpu_free_milli[rows] - wants.cpu_milli, 0, None) / demand.cpu_milli_per_gpu
        )
    if demand.memory_bytes_per_gpu > 0:
        memory_left = np.clip(table.memory_free_bytes[rows] - wants.memory_bytes, 0, None)
        fed = np.minimum(fed, memory_left / demand.memory_bytes_per_gpu)
    stranded = np.clip(idle_gpus - fed, 0, None)
    result: FloatArray = 1.0 - stranded / largest
    return result
