"""What a remembered verdict is checked against after the ledger changed (core/plan_validity.py)
is what the new ledger says read afresh: the largest free block a waiting gang's reason names,
worked out from the ledger before and the rows that changed, is the one a scan of every row finds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core.gang_reasons import describe_block, largest_block
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


@SCENARIOS
@given(st.data(), tables(), requests)
def test_the_largest_block_after_a_change_is_the_one_every_row_says(
    data: st.DataObject, table: NodeTable, request: PodRequest
) -> None:
    rows = np.array(data.draw(st.lists(st.booleans(), min_size=len(table), max_size=len(table))), dtype=bool)
    after = data.draw(changed(table))
    key = rows.tobytes()
    earlier = LedgerFacts(table)
    if data.draw(st.booleans()):  # the block before already known (a chained check), or not yet
        earlier.block(request, rows, key)
    change = LedgerChange(table, after, known=earlier)
    found = change.later.block_after(change, request, rows, key)
    assert found == LedgerFacts(after).block(request, rows, key)
    assert describe_block(found) == largest_block(after, [(request, np.flatnonzero(rows))])
