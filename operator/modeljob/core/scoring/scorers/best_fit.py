"""Best fit: the node with the least CPU and GPU left over after placing the pod wins.

Unlike most-allocated, which compares each node with its own size, best fit compares leftovers
in absolute terms (normalised by the largest node of the table), so small gaps are filled
before large ones are broken into. This is the BestFit baseline of the FGD artifact. It is not
in the default weights: it sends one-GPU pods to the small nodes whose GPU model other pods ask
for by name (docs/placement-quality.md measures it).
"""

from __future__ import annotations

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.plugin import FunctionScorer


def score_best_fit(table: NodeTable, rows: IntArray, request: PodRequest) -> FloatArray:
    """0..1 per row: 1 − (CPU left / largest CPU + GPU left / largest GPU capacity) / 2 after placing."""
    wants = request.resources
    largest_cpu = max(int(table.cpu_allocatable_milli.max(initial=0)), 1)
    largest_gpu = max(int(table.gpu_count.max(initial=0)) * 1000, 1)
    cpu_left = np.clip(table.cpu_free_milli[rows] - wants.cpu_milli, 0, None) / largest_cpu
    gpu_left = (
        np.clip(table.gpu_free_milli[rows].sum(axis=1) - request.gpu_request_milli, 0, None) / largest_gpu
    )
    result: FloatArray = 1.0 - (0.5 * cpu_left + 0.5 * gpu_left)
    return result


SCORER = FunctionScorer(
    name="best-fit", position=3, function=lambda table, rows, request, _: score_best_fit(table, rows, request)
)
