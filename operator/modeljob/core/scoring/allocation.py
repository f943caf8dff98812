"""Shared arithmetic of the allocation scorers: each node's share of each resource in use after placing."""

from __future__ import annotations

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest


def used_share_after(table: NodeTable, rows: IntArray, request: PodRequest) -> FloatArray:
    """Mean over CPU, memory and (on GPU nodes) GPU of the fraction of allocatable in use after placing.

    kube-scheduler's NodeResourcesFit strategies weigh CPU and memory alike; GPUs join them here
    because on a GPU node they are the resource that matters most. Resources a node does not
    have are left out of its mean.
    """
    wants = request.resources
    columns = (
        (table.cpu_allocatable_milli[rows], table.cpu_free_milli[rows], wants.cpu_milli),
        (table.memory_allocatable_bytes[rows], table.memory_free_bytes[rows], wants.memory_bytes),
        (table.gpu_count[rows] * 1000, table.gpu_free_milli[rows].sum(axis=1), request.gpu_request_milli),
    )
    total = np.zeros(len(rows), dtype=np.float64)
    counted = np.zeros(len(rows), dtype=np.float64)
    for allocatable, free, wanted in columns:
        has = allocatable > 0
        used = (allocatable - free + wanted) / np.where(has, allocatable, 1)
        total += np.where(has, np.clip(used, 0.0, 1.0), 0.0)
        counted += has
    result: FloatArray = total / np.maximum(counted, 1.0)
    return result
