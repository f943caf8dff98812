"""Rows of the extender's node table: what a changed node rewrites of its row, and sealing a table
once snapshots share it (extender/cache.py's copy-on-write)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from modeljob.core.nodes import IntArray, NodeTable


def read_only(table: NodeTable) -> NodeTable:
    """``table``, its arrays refusing writes from now on: it is shared with every snapshot."""
    for item in fields(table):
        value = getattr(table, item.name)
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return table


def read_only_array(array: IntArray) -> IntArray:
    array.flags.writeable = False
    return array


# Every per-row column of a NodeTable: a changed node rewrites them.
_ROW_COLUMNS = (
    "cpu_allocatable_milli",
    "cpu_free_milli",
    "memory_allocatable_bytes",
    "memory_free_bytes",
    "storage_allocatable_bytes",
    "storage_free_bytes",
    "gpu_count",
    "gpu_free_milli",
    "accelerator_index",
    "product_index",
    "gpu_memory_bytes",
    "price_per_hour",
    "ready",
)


def named(names: tuple[str, ...], index: np.integer[Any] | int) -> str | None:
    return names[int(index)] if int(index) >= 0 else None


def copy_row(single: NodeTable, table: NodeTable, row: int) -> None:
    """Row 0 of a one-node table into ``row`` of ``table``, whose accelerator and product are the
    same (their indices stay), devices padded to the table's width."""
    for column in _ROW_COLUMNS:
        if column in ("gpu_free_milli", "accelerator_index", "product_index"):
            continue
        getattr(table, column)[row] = getattr(single, column)[0]
    width = min(single.gpu_free_milli.shape[1], table.gpu_free_milli.shape[1])
    table.gpu_free_milli[row, :] = 0
    table.gpu_free_milli[row, :width] = single.gpu_free_milli[0, :width]
