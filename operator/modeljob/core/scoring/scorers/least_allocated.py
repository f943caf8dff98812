"""Least-allocated (spread): the emptier a node is after placing the pod, the higher it scores."""

from __future__ import annotations

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.allocation import used_share_after
from modeljob.core.scoring.plugin import FunctionScorer


def score_least_allocated(table: NodeTable, rows: IntArray, request: PodRequest) -> FloatArray:
    """0..1 per row: the mean free share of CPU, memory and GPU left after placing ``request``."""
    result: FloatArray = 1.0 - used_share_after(table, rows, request)
    return result


SCORER = FunctionScorer(
    name="least-allocated",
    position=1,
    function=lambda table, rows, request, _: score_least_allocated(table, rows, request),
)
