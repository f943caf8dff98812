"""What a remembered verdict is checked against after the ledger changed (core/plan_validity.py)
is what the ledgers say read afresh: the largest free block a waiting gang's reason names, told by
the facts a check keeps of a ledger (and hands on to the next check), is the one a scan of the
rows finds, before a change and after it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core.gang_reasons import FreeBlock
from modeljob.core.nodes import NodeTable, PodRequest
from modeljob.core.plan_validity import LedgerChange, LedgerFacts
from tests.core.test_gang_capacity import requests, tables

SCENARIOS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def changed(draw: st.DrawFn, table: NodeTable) -> NodeTable:
    """``table`` with some nodes' devices taken or freed, and some gone (not) ready."""
    after = table.working_copy()
    ready = after.ready.copy()
    for row in draw(st.lists(st.integers(0, len(table) - 1), max_size=3)):
        for device in range(int(after.gpu_count[row])):
            after.gpu_free_milli[row, device] = draw(st.sampled_from((0, 500, 1000)))
        if draw(st.integers(0, 4)) == 0:
            ready[row] = not ready[row]
    return replace(after, ready=ready)


def scanned(table: NodeTable, request: PodRequest, rows: np.ndarray) -> FreeBlock | None:
    """Row by row: the ready node of the request's accelerator and products with the most devices
    free enough for its share, the smallest name of equal ones."""
    if not request.uses_accelerator or request.accelerator not in table.accelerators:
        return None
    accelerator = table.accelerators.index(request.accelerator)
    best: FreeBlock | None = None
    for row in np.flatnonzero(rows).tolist():
        index = int(table.product_index[row])
        product = table.products[index] if index >= 0 else None
        if not table.ready[row] or table.accelerator_index[row] != accelerator:
            continue
        if request.products and product not in request.products:
            continue
        free = int((table.gpu_free_milli[row] >= request.resources.gpu_milli).sum())
        if best is None or (-free, table.names[row]) < (-best.devices, best.name):
            best = FreeBlock(free, table.names[row], row, int(table.gpu_memory_bytes[row]))
    return best


@SCENARIOS
@given(st.data(), tables(), st.lists(requests, min_size=1, max_size=3))
def test_the_largest_block_a_check_reads_is_the_one_the_rows_offer(
    data: st.DataObject, table: NodeTable, asked: list[PodRequest]
) -> None:
    after = data.draw(changed(table))
    change = LedgerChange(table, after, known=LedgerFacts(table))
    for request in asked:  # requests alike in shape share what is worked out per row
        for _ in range(2):
            rows = np.array(data.draw(st.lists(st.booleans(), min_size=len(table), max_size=len(table))))
            for ledger, facts in ((table, change.earlier), (after, change.later)):
                assert facts.block(request, rows, rows.tobytes()) == scanned(ledger, request, rows)
