"""A scheduling cycle builds its node table from the last cycle's, rewriting only the rows of nodes
whose view changed (nodes.updated_node_table): the table must be column for column the one
build_node_table makes from scratch, whatever changed (room, readiness, prices, devices, a GPU
model appearing or leaving), and the table it was made from must be left as it was."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.core.nodes import NodeTable, NodeView, build_node_table, updated_node_table
from modeljob.core.resources import GIB, Resources

MODELS = (("nvidia.com/gpu", "H100"), ("nvidia.com/gpu", "L4"), ("amd.com/gpu", "MI300X"), (None, None))


@st.composite
def views(draw: st.DrawFn, name: str) -> NodeView:
    accelerator, product = draw(st.sampled_from(MODELS))
    devices = draw(st.integers(1, 8)) if accelerator else 0
    free = tuple(draw(st.sampled_from((0, 500, 1000))) for _ in range(devices))
    return NodeView(
        name=name,
        allocatable=Resources(cpu_milli=64_000, memory_bytes=512 * GIB, gpus=devices),
        requested=Resources(
            cpu_milli=draw(st.integers(0, 64_000)), memory_bytes=draw(st.integers(0, 4)) * GIB
        ),
        gpu_free_milli=free if draw(st.booleans()) else (),
        accelerator=accelerator,
        gpu_product=product,
        gpu_memory_bytes=draw(st.sampled_from((None, 24 * GIB, 80 * GIB))),
        price_per_hour=draw(st.sampled_from((None, 1.5, 4.0))),
        ready=draw(st.booleans()),
    )


def same(left: NodeTable, right: NodeTable) -> bool:
    for item in fields(left):
        a, b = getattr(left, item.name), getattr(right, item.name)
        if isinstance(a, np.ndarray):
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                return False
        elif a != b:
            return False
    return True


@settings(max_examples=300, deadline=None, database=None)
@given(st.data())
def test_a_table_updated_row_by_row_is_the_table_built_afresh(data: st.DataObject) -> None:
    names = [f"node-{i:02d}" for i in range(data.draw(st.integers(1, 12)))]
    before_views = [data.draw(views(name)) for name in names]
    before = build_node_table(before_views)
    kept = build_node_table(before_views)
    after_views = list(before_views)
    for row in data.draw(st.lists(st.integers(0, len(names) - 1), max_size=4)):
        if data.draw(st.booleans()):
            after_views[row] = data.draw(views(names[row]))  # anything about the node
        else:  # its room alone, the common case
            after_views[row] = replace(
                after_views[row], requested=Resources(cpu_milli=data.draw(st.integers(0, 9)))
            )
    updated = updated_node_table(before, before_views, after_views)
    assert same(updated, build_node_table(after_views))
    assert same(before, kept)  # left untouched
    updated.cpu_free_milli[0] -= 1  # and not shared with what it was made from
    assert same(before, kept)


def test_a_room_change_on_one_of_many_nodes_rewrites_that_row_alone() -> None:
    nodes = [
        NodeView(
            name=f"n{i}",
            allocatable=Resources(cpu_milli=8000, gpus=8),
            accelerator="nvidia.com/gpu",
            gpu_product="H100",
        )
        for i in range(40)
    ]
    before = build_node_table(nodes)
    changed = list(nodes)
    changed[7] = replace(nodes[7], gpu_free_milli=(0, 0, 1000, 1000, 1000, 1000, 1000, 1000))
    updated = updated_node_table(before, nodes, changed)
    assert updated.gpu_free_total_milli[7] == 6000
    assert same(updated, build_node_table(changed))
