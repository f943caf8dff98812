"""Best fit: the node with the least CPU and GPU left over after placing the pod wins.

Unlike most-allocated, which compares each node with its own size, best fit compares leftovers
in absolute terms (normalised by the largest node of the table), so small gaps are filled
before large ones are broken into. This is the BestFit baseline of the FGD artifact, and what
orders the nodes the GPU fragmentation scorer leaves tied in the default weights.
"""

from __future__ import annotations

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest


def score_best_fit(table: NodeTable, rows: IntArray, request: PodRequest) -> FloatArray:
    """0..1 per row: 1 − (CPU left / largest CPU + GPU left / largest GPU capacity) / 2 after placing."""
    wants = request.resources
    largest_cpu = max(int(table.cpu_allocatable_milli.max(initial=0)), 1)
    largest_gpu = max(int(table.gpu_count.max(initial=0)) * 1000, 1)
    gpu_request = wants.gpus * wants.gpu_milli if request.uses_accelerator else 0
    cpu_left = np.clip(table.cpu_free_milli[rows] - wants.cpu_milli, 0, None) / largest_cpu
    gpu_left = np.clip(table.gpu_free_milli[rows].sum(axis=1) - gpu_request, 0, None) / largest_gpu
    result: FloatArray = 1.0 - (0.5 * cpu_left + 0.5 * gpu_left)
    return result
