"""Rows of the extender's node table: a row's names, and sealing a table once snapshots share it
(extender/cache.py's copy-on-write). A changed node's row is rewritten by core/nodes.py's
``write_rows``."""

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


def named(names: tuple[str, ...], index: np.integer[Any] | int) -> str | None:
    return names[int(index)] if int(index) >= 0 else None
