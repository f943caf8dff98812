"""Round-robin: take turns through the nodes in name order, starting after the last one chosen."""

from __future__ import annotations

import bisect

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable
from modeljob.core.scoring.plugin import FunctionScorer


def score_round_robin(table: NodeTable, rows: IntArray, *, last_chosen: str | None) -> FloatArray:
    """0..1 per row: 1 for the first candidate after ``last_chosen`` in name order, falling
    linearly to the candidate just before it (wrapping around)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float64)
    names = [table.names[int(r)] for r in rows]
    order = sorted(range(len(names)), key=names.__getitem__)
    ordered = [names[i] for i in order]
    start = 0 if last_chosen is None else bisect.bisect_right(ordered, last_chosen) % len(ordered)
    result = np.zeros(len(rows), dtype=np.float64)
    for rank, position in enumerate(order):
        turn = (rank - start) % len(order)
        result[position] = 1.0 - turn / len(order)
    return result


SCORER = FunctionScorer(
    name="round-robin",
    position=7,
    function=lambda table, rows, _, context: score_round_robin(table, rows, last_chosen=context.last_chosen),
    row_local=False,  # depends on the previous choice
)
