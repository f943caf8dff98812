"""Why a gang has no place: what one replica needs, and the largest free block of GPUs there is."""

from __future__ import annotations

from collections.abc import Sequence

from modeljob.core.nodes import IntArray, NodeTable, PodRequest
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


def largest_block(table: NodeTable, classes: Sequence[tuple[PodRequest, IntArray]]) -> str:
    """The node with the most devices free enough for a replica's share, e.g. '2 × 80 GiB on node-7'."""
    best: tuple[int, str, int] | None = None
    for request, rows in classes:
        if not request.uses_accelerator or request.accelerator not in table.accelerators:
            continue
        accelerator = table.accelerators.index(request.accelerator)
        eligible = rows[
            table.ready[rows]
            & (table.accelerator_index[rows] == accelerator)
            & product_allowed(table, request, rows)
        ]
        if len(eligible) == 0:
            continue
        blocks = (table.gpu_free_milli[eligible] >= request.resources.gpu_milli).sum(axis=1)
        most = int(blocks.max())
        tied = eligible[blocks == most]
        # Rows ascend, so on a table in name order the first tied row has the smallest name.
        row = (
            int(tied[0])
            if table.sorted_by_name
            else min((int(r) for r in tied), key=lambda r: table.names[r])
        )
        name = table.names[row]
        if best is None or most > best[0] or (most == best[0] and name < best[1]):
            best = (most, name, int(table.gpu_memory_bytes[row]))
    if best is None:
        return "no node offers this accelerator"
    block, name, memory = best
    return f"the largest free block is {describe_gpus(block, memory)} on {name}"


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
