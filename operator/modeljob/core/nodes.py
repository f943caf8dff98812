"""The node table and its one capacity ledger: what nodes offer, what a pod asks, reserve and release.

Every caller that counts capacity (the scheduling cycle, gang placement, the queue simulator, the
trace replay, the extender's cache) goes through ``NodeTable.working_copy``, ``reserve`` and
``release`` and ``PodRequest``'s arithmetic, so one place decides how a GPU share, whole GPUs
and host resources are taken from a node and given back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import numpy.typing as npt

from modeljob.core.resources import Resources

MILLI_PER_DEVICE = 1000
DEFAULT_ACCELERATOR = "nvidia.com/gpu"

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as the scheduler sees it: capacity, what is already requested, and GPU facts.

    ``allocatable.gpus`` is the device count of ``accelerator``; ``gpu_free_milli`` has one entry
    per device (1000 = idle) so GPU-sharing pods can be placed on a partly used device. An empty
    ``gpu_free_milli`` means every device is idle. ``requested`` counts CPU, memory and storage
    of the pods bound to the node; its GPU fields are ignored (the per-device list is the truth).
    """

    name: str
    allocatable: Resources
    requested: Resources = field(default_factory=Resources)
    gpu_free_milli: tuple[int, ...] = ()
    accelerator: str | None = None
    gpu_product: str | None = None
    gpu_memory_bytes: int | None = None  # per device, from e.g. nvidia.com/gpu.memory
    price_per_hour: float | None = None
    ready: bool = True

    @property
    def device_free_milli(self) -> tuple[int, ...]:
        if self.gpu_free_milli:
            return self.gpu_free_milli
        return (MILLI_PER_DEVICE,) * self.allocatable.gpus


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What one pod (one replica) needs from a node.

    ``accelerator`` names the extended resource its GPUs come from; ``products`` lists allowed
    GPU product labels (empty = any); ``min_gpu_memory_bytes`` is the device memory each GPU must
    have (0 = any). ``resources.gpu_milli`` below 1000 asks for a share of one device.
    """

    resources: Resources
    accelerator: str = DEFAULT_ACCELERATOR
    products: tuple[str, ...] = ()
    min_gpu_memory_bytes: int = 0

    @property
    def uses_accelerator(self) -> bool:
        return self.resources.gpus > 0 and self.resources.gpu_milli > 0

    @property
    def gpu_request_milli(self) -> int:
        """Thousandths of a device taken in all (a 300-milli share: 300; 2 whole GPUs: 2000)."""
        return self.resources.total_gpu_milli if self.uses_accelerator else 0


@dataclass(frozen=True, slots=True)
class NodeTable:
    """Many nodes as numpy columns, so one pod is filtered and scored against all at once.

    Row i describes ``names[i]``; rows are in the order given (callers sort by name so that
    "first best row" is "smallest name"). The arrays are owned by the table: the trace replay
    updates the free columns in place as it places pods, everything else treats them as read-only.
    ``gpu_free_milli`` is padded with zeros past each node's device count.
    """

    names: tuple[str, ...]
    cpu_allocatable_milli: IntArray
    cpu_free_milli: IntArray
    memory_allocatable_bytes: IntArray
    memory_free_bytes: IntArray
    storage_allocatable_bytes: IntArray
    storage_free_bytes: IntArray
    gpu_count: IntArray
    gpu_free_milli: IntArray  # (nodes, devices)
    accelerator_index: IntArray  # into accelerators; -1 = none
    accelerators: tuple[str, ...]
    product_index: IntArray  # into products; -1 = unlabelled
    products: tuple[str, ...]
    gpu_memory_bytes: IntArray  # per device; 0 = unknown
    price_per_hour: FloatArray  # NaN = unknown
    ready: BoolArray
    sorted_by_name: bool = False  # rows are in name order: the first best row has the smallest name

    def __len__(self) -> int:
        return len(self.names)

    @property
    def gpu_free_total_milli(self) -> IntArray:
        result: IntArray = self.gpu_free_milli.sum(axis=1)
        return result

    # --- the ledger: the only code that moves capacity in or out of the free columns ----------

    def working_copy(self) -> NodeTable:
        """The same nodes with free columns of their own, to plan on without touching ``self``."""
        return replace(
            self,
            cpu_free_milli=self.cpu_free_milli.copy(),
            memory_free_bytes=self.memory_free_bytes.copy(),
            storage_free_bytes=self.storage_free_bytes.copy(),
            gpu_free_milli=self.gpu_free_milli.copy(),
        )

    def detached(self) -> NodeTable:
        """The same nodes with every column its own: a snapshot that later in-place rewrites of
        ``self`` (a cache refreshing a node's row, allocatable included) cannot reach."""
        columns = {
            item.name: getattr(self, item.name).copy()
            for item in fields(self)
            if isinstance(getattr(self, item.name), np.ndarray)
        }
        return replace(self, **columns)

    def emptied(self) -> NodeTable:
        """The same nodes with nothing running on them (readiness and labels unchanged)."""
        devices = np.arange(self.gpu_free_milli.shape[1])[None, :] < self.gpu_count[:, None]
        return replace(
            self,
            cpu_free_milli=self.cpu_allocatable_milli.copy(),
            memory_free_bytes=self.memory_allocatable_bytes.copy(),
            storage_free_bytes=self.storage_allocatable_bytes.copy(),
            gpu_free_milli=np.where(devices, MILLI_PER_DEVICE, 0).astype(np.int64),
        )

    def first_free_devices(self, row: int, request: PodRequest) -> tuple[int, ...]:
        """The lowest-numbered devices of node ``row`` with room for the request's share of each."""
        if not request.uses_accelerator:
            return ()
        wants = request.resources
        chosen: list[int] = np.flatnonzero(self.gpu_free_milli[row] >= wants.gpu_milli)[: wants.gpus].tolist()
        return tuple(chosen)

    def reserve(self, row: int, request: PodRequest, devices: Sequence[int] = ()) -> tuple[int, ...]:
        """Take ``request`` out of node ``row`` (in place) and return the devices it took.

        ``devices`` are the ones a scorer chose; without them the first devices free enough are
        taken. Host resources are taken whether or not the pod uses an accelerator.
        """
        wants = request.resources
        self.cpu_free_milli[row] -= wants.cpu_milli
        self.memory_free_bytes[row] -= wants.memory_bytes
        self.storage_free_bytes[row] -= wants.ephemeral_storage_bytes
        if not request.uses_accelerator:
            return ()
        taken = tuple(devices) or self.first_free_devices(row, request)
        for device in taken:
            self.gpu_free_milli[row, device] -= wants.gpu_milli
        return taken

    def release(self, row: int, request: PodRequest, devices: Sequence[int]) -> None:
        """Give back what ``reserve(row, request)`` took on ``devices`` (in place)."""
        wants = request.resources
        self.cpu_free_milli[row] += wants.cpu_milli
        self.memory_free_bytes[row] += wants.memory_bytes
        self.storage_free_bytes[row] += wants.ephemeral_storage_bytes
        if request.uses_accelerator:
            for device in devices:
                self.gpu_free_milli[row, device] += wants.gpu_milli


def subset(table: NodeTable, keep: BoolArray) -> NodeTable:
    """The rows of ``table`` where ``keep`` is True, in the same order, as a table of their own.

    For planning on part of a cluster (one node type, the nodes a job's selector admits): the
    left-out nodes are then absent, not "not ready", so a plan's reasons count only the nodes it
    could have used.
    """
    columns = {
        item.name: getattr(table, item.name)[keep]
        for item in fields(table)
        if isinstance(getattr(table, item.name), np.ndarray)
    }
    names = tuple(name for name, kept in zip(table.names, keep.tolist(), strict=True) if kept)
    return replace(table, names=names, **columns)


def _index_of(values: Sequence[str | None]) -> tuple[IntArray, tuple[str, ...]]:
    distinct = tuple(sorted({v for v in values if v}))
    position = {v: i for i, v in enumerate(distinct)}
    return np.array([position.get(v, -1) if v else -1 for v in values], dtype=np.int64), distinct


def build_node_table(nodes: Sequence[NodeView]) -> NodeTable:
    """Columns for ``nodes`` in the order given; GPU free lists are padded to the widest node."""
    width = max([1, *(len(n.device_free_milli) for n in nodes)])
    gpu_free = np.zeros((len(nodes), width), dtype=np.int64)
    for row, node in enumerate(nodes):
        free = node.device_free_milli
        gpu_free[row, : len(free)] = free
    accelerator_index, accelerators = _index_of(
        [n.accelerator if n.allocatable.gpus > 0 else None for n in nodes]
    )
    product_index, products = _index_of([n.gpu_product for n in nodes])

    def column(values: list[int]) -> IntArray:
        return np.array(values, dtype=np.int64)

    allocatable = [n.allocatable for n in nodes]
    requested = [n.requested for n in nodes]
    return NodeTable(
        names=tuple(n.name for n in nodes),
        cpu_allocatable_milli=column([a.cpu_milli for a in allocatable]),
        cpu_free_milli=column(
            [a.cpu_milli - r.cpu_milli for a, r in zip(allocatable, requested, strict=True)]
        ),
        memory_allocatable_bytes=column([a.memory_bytes for a in allocatable]),
        memory_free_bytes=column(
            [a.memory_bytes - r.memory_bytes for a, r in zip(allocatable, requested, strict=True)]
        ),
        storage_allocatable_bytes=column([a.ephemeral_storage_bytes for a in allocatable]),
        storage_free_bytes=column(
            [
                a.ephemeral_storage_bytes - r.ephemeral_storage_bytes
                for a, r in zip(allocatable, requested, strict=True)
            ]
        ),
        gpu_count=column([len(n.device_free_milli) for n in nodes]),
        gpu_free_milli=gpu_free,
        accelerator_index=accelerator_index,
        accelerators=accelerators,
        product_index=product_index,
        products=products,
        gpu_memory_bytes=column([n.gpu_memory_bytes or 0 for n in nodes]),
        price_per_hour=np.array(
            [math.nan if n.price_per_hour is None else n.price_per_hour for n in nodes], dtype=np.float64
        ),
        ready=np.array([n.ready for n in nodes], dtype=np.bool_),
        sorted_by_name=all(a.name < b.name for a, b in itertools.pairwise(nodes)),
    )


# Past this share of rows changed, a table is built afresh rather than rewritten row by row.
_REWRITTEN_SHARE = 0.25
# Columns ``write_rows`` does not copy as they are: the indices into the table's own accelerators
# and products, and gpu_free_milli (padded to the table's width).
_REINDEXED = ("gpu_free_milli", "accelerator_index", "product_index")


def updated_node_table(
    before: NodeTable | None, before_views: Sequence[NodeView], views: Sequence[NodeView]
) -> NodeTable:
    """``build_node_table(views)``, made from ``before`` (``build_node_table(before_views)``, left
    untouched) by rewriting only the rows whose view is another object: from one scheduling cycle
    to the next most nodes' views are the same objects (core/cluster_state.py, accounted_views).
    Built afresh when the nodes are not the same ones in the same order, or a rewritten row would
    change the table's width, its accelerators or its products."""
    if before is None or len(before_views) != len(views) or len(before.names) != len(views):
        return build_node_table(views)
    changed = [row for row, (old, new) in enumerate(zip(before_views, views, strict=True)) if old is not new]
    if len(changed) > _REWRITTEN_SHARE * len(views):
        return build_node_table(views)
    if not changed:
        return before.detached()
    rows = build_node_table([views[row] for row in changed])
    width = before.gpu_free_milli.shape[1]
    if (
        any(rows.names[i] != before.names[row] for i, row in enumerate(changed))
        or rows.gpu_free_milli.shape[1] > width
        or not set(rows.accelerators) <= set(before.accelerators)
        or not set(rows.products) <= set(before.products)
    ):
        return build_node_table(views)
    table = before.detached()
    where = np.array(changed, dtype=np.int64)
    write_rows(rows, table, where)
    table.accelerator_index[where] = _reindexed(
        rows.accelerator_index, rows.accelerators, before.accelerators
    )
    table.product_index[where] = _reindexed(rows.product_index, rows.products, before.products)
    # What build_node_table would make otherwise: a narrower table, or a name no row has now.
    if (
        max(1, int(table.gpu_count.max())) != width
        or len(np.unique(table.accelerator_index[table.accelerator_index >= 0])) != len(before.accelerators)
        or len(np.unique(table.product_index[table.product_index >= 0])) != len(before.products)
    ):
        return build_node_table(views)
    return table


def write_rows(source: NodeTable, table: NodeTable, where: IntArray) -> None:
    """``source``'s rows (one per entry of ``where``) into rows ``where`` of ``table``, in place:
    every per-row column but the accelerator and product indices, which index each table's own
    names (the caller maps them, or keeps them where they are the same), devices padded to
    ``table``'s width."""
    for item in fields(table):
        column = getattr(table, item.name)
        if isinstance(column, np.ndarray) and item.name not in _REINDEXED:
            column[where] = getattr(source, item.name)
    width = min(source.gpu_free_milli.shape[1], table.gpu_free_milli.shape[1])
    table.gpu_free_milli[where] = 0
    table.gpu_free_milli[where, :width] = source.gpu_free_milli[:, :width]


def _reindexed(index: IntArray, names: tuple[str, ...], into: tuple[str, ...]) -> IntArray:
    """Indices into ``names`` as indices into ``into`` (which holds them all); -1 stays -1."""
    lookup = np.array([into.index(name) for name in names] + [-1], dtype=np.int64)
    moved: IntArray = lookup[index]
    return moved
