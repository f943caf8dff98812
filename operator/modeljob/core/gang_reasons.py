"""Why a gang has no place: what one replica needs, and the largest free block of GPUs there is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from modeljob.core.nodes import BoolArray, IntArray, NodeTable, PodRequest
from modeljob.core.resources import GIB, MIB
from modeljob.core.scoring.filters import product_allowed


def describe_gpus(count: int, memory_bytes: int) -> str:
    if memory_bytes <= 0:
        return f"{count} GPU{'s' if count != 1 else ''}"
    if memory_bytes % GIB == 0:
        size = f"{memory_bytes // GIB} GiB"
    else:
        size = f"{memory_bytes / GIB:.1f} GiB" if memory_bytes >= GIB else f"{memory_bytes // MIB} MiB"
    return f"{count} × {size} GPU{'s' if count != 1 else ''}"


class FreeBlock(NamedTuple):
    """The node with the most devices free enough for a replica's share: how many (``devices``),
    the node (name and row) and each device's memory."""

    devices: int
    name: str
    row: int
    memory_bytes: int


def largest_free_block(table: NodeTable, request: PodRequest, rows: IntArray) -> FreeBlock | None:
    """The largest free block among ``rows`` (ready nodes of the request's accelerator and
    products); of equal ones, the node with the smallest name. None if no row offers one."""
    among = np.zeros(len(table), dtype=np.bool_)
    among[rows] = True
    return largest_offered(table, blocks_offered(table, request), among)


def blocks_offered(table: NodeTable, request: PodRequest) -> IntArray | None:
    """Per row, how many of its devices are free enough for a replica's share, or -1 where the
    node is not ready or does not offer the request's accelerator and products: worked out once,
    a table's largest free block among any rows costs one mask (``largest_offered``). None where
    the request asks for no accelerator the table has."""
    if not request.uses_accelerator or request.accelerator not in table.accelerators:
        return None
    accelerator = table.accelerators.index(request.accelerator)
    offers = table.ready & (table.accelerator_index == accelerator) & product_allowed(table, request)
    fitting = (table.gpu_free_milli >= request.resources.gpu_milli).sum(axis=1)
    offered: IntArray = np.where(offers, fitting, -1)
    return offered


def largest_offered(table: NodeTable, offered: IntArray | None, rows: BoolArray) -> FreeBlock | None:
    """The largest block ``offered`` (``blocks_offered``) among ``rows``; of equal ones, the node
    with the smallest name. None if no row offers one."""
    if offered is None:
        return None
    among = np.where(rows, offered, -1)
    row = int(among.argmax())  # the first of the largest: the smallest name, on a table in name order
    most = int(among[row])
    if most < 0:
        return None
    if not table.sorted_by_name:
        row = min(np.flatnonzero(among == most).tolist(), key=lambda r: table.names[r])
    return FreeBlock(most, table.names[row], row, int(table.gpu_memory_bytes[row]))


def larger(first: FreeBlock | None, second: FreeBlock | None) -> FreeBlock | None:
    """The larger of two blocks; of equal ones, the one on the node with the smaller name."""
    if first is None:
        return second
    if second is not None and (-second.devices, second.name) < (-first.devices, first.name):
        return second
    return first


def describe_block(block: FreeBlock | None) -> str:
    """e.g. 'the largest free block is 2 × 80 GiB GPUs on node-7'."""
    if block is None:
        return "no node offers this accelerator"
    return f"the largest free block is {describe_gpus(block.devices, block.memory_bytes)} on {block.name}"


def largest_block(table: NodeTable, classes: Sequence[tuple[PodRequest, IntArray]]) -> str:
    """The node with the most devices free enough for a replica's share, e.g. '2 × 80 GiB on node-7'."""
    best: FreeBlock | None = None
    for request, rows in classes:
        best = larger(best, largest_free_block(table, request, rows))
    return describe_block(best)


def needs_per_replica(
    classes: Sequence[tuple[PodRequest, IntArray]], table: NodeTable, *, group_size: int = 1
) -> str:
    """What one replica asks for, e.g. "needs 2 × 80 GiB GPUs per replica", or for a replica that
    spans nodes "needs 2 pods of 8 × 80 GiB GPUs, one node each, per replica"."""
    gpu_classes = [(r, rows) for r, rows in classes if r.uses_accelerator]
    if not gpu_classes:
        request = classes[0][0]
        wants = request.resources
        return f"needs {wants.cpu_milli}m CPU and {wants.memory_bytes // MIB} MiB per replica"
    options = sorted(
        {
            (r.resources.gpus, int(table.gpu_memory_bytes[rows[0]]) if len(rows) else 0)
            for r, rows in gpu_classes
        },
        key=lambda item: (-item[1], item[0]),
    )
    each = " or ".join(describe_gpus(count, memory) for count, memory in options)
    if group_size > 1:
        return f"needs {group_size} pods of {each}, one node each, per replica"
    return f"needs {each} per replica"
