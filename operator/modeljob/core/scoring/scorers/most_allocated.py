"""Most-allocated (bin-pack): the fuller a node is after placing the pod, the higher it scores."""

from __future__ import annotations

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.allocation import used_share_after
from modeljob.core.scoring.plugin import FunctionScorer


def score_most_allocated(table: NodeTable, rows: IntArray, request: PodRequest) -> FloatArray:
    """0..1 per row: the mean used share of CPU, memory and GPU after placing ``request``."""
    return used_share_after(table, rows, request)


SCORER = FunctionScorer(
    name="most-allocated",
    position=2,
    function=lambda table, rows, request, _: score_most_allocated(table, rows, request),
)
