"""Cost: cheaper nodes first, by the node's price per hour (a label or a price table)."""

from __future__ import annotations

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable
from modeljob.core.scoring.plugin import FunctionScorer


def score_cost(table: NodeTable, rows: IntArray) -> FloatArray:
    """0..1 per row: 1 for the cheapest candidate, 0 for the dearest, linear between.

    A node without a known price scores 0 (never preferred for being cheap); when every priced
    candidate costs the same they all score 1.
    """
    price = table.price_per_hour[rows]
    known = ~np.isnan(price)
    if not known.any():
        return np.zeros(len(rows), dtype=np.float64)
    low, high = float(price[known].min()), float(price[known].max())
    if high <= low:
        return np.where(known, 1.0, 0.0)
    result: FloatArray = np.where(known, (high - np.where(known, price, high)) / (high - low), 0.0)
    return result


SCORER = FunctionScorer(
    name="cost",
    position=6,
    function=lambda table, rows, _, __: score_cost(table, rows),
    row_local=False,  # relative to the cheapest and dearest candidate
)
