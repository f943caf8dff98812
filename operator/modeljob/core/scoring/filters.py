"""Which nodes can run a pod at all, and for those that cannot, why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from modeljob.core.nodes import BoolArray, IntArray, NodeTable, PodRequest


class Rejection(StrEnum):
    """Why a node was filtered out; the first failing check in this order is reported."""

    NOT_READY = "node not ready"
    NO_ACCELERATOR = "node has no such accelerator"
    PRODUCT = "GPU product not allowed"
    GPU_MEMORY = "GPU memory per device too small"
    CPU = "not enough CPU"
    MEMORY = "not enough memory"
    STORAGE = "not enough ephemeral storage"
    GPUS = "not enough free GPUs"


# What preemption cannot fix: evicting pods does not make a node Ready, give it another
# accelerator or product, or more memory per device.
UNRESOLVABLE_BY_PREEMPTION = frozenset(
    {Rejection.NOT_READY, Rejection.NO_ACCELERATOR, Rejection.PRODUCT, Rejection.GPU_MEMORY}
)


@dataclass(frozen=True, slots=True)
class FilterResult:
    feasible: BoolArray
    rejected: tuple[tuple[Rejection, int], ...]  # reason and how many nodes it removed, in check order

    def explain(self) -> str:
        if not self.rejected:
            return "no node filtered out"
        return "; ".join(f"{count} × {reason.value}" for reason, count in self.rejected)


def product_allowed(table: NodeTable, request: PodRequest, rows: IntArray | None = None) -> BoolArray:
    """Per node (of ``rows`` only, if given): is its GPU product one the pod allows (any product
    when the pod names none)."""
    index = table.product_index if rows is None else table.product_index[rows]
    if not request.products:
        return np.ones(len(index), dtype=np.bool_)
    wanted = {p for p in request.products if p}
    lookup = np.array([p in wanted for p in table.products] + [False], dtype=np.bool_)
    allowed: BoolArray = lookup[index]
    return allowed


def devices_fitting(table: NodeTable, request: PodRequest) -> IntArray:
    """Per node: how many devices have at least the pod's per-device share free."""
    counts: IntArray = (table.gpu_free_milli >= request.resources.gpu_milli).sum(axis=1)
    return counts


def _checks(table: NodeTable, request: PodRequest) -> list[tuple[Rejection, BoolArray]]:
    wants = request.resources
    checks: list[tuple[Rejection, BoolArray]] = [(Rejection.NOT_READY, table.ready)]
    if request.uses_accelerator:
        if request.accelerator in table.accelerators:
            accelerator = table.accelerator_index == table.accelerators.index(request.accelerator)
        else:
            accelerator = np.zeros(len(table), dtype=np.bool_)
        checks.append((Rejection.NO_ACCELERATOR, accelerator))
        checks.append((Rejection.PRODUCT, product_allowed(table, request)))
        if request.min_gpu_memory_bytes > 0:
            checks.append((Rejection.GPU_MEMORY, table.gpu_memory_bytes >= request.min_gpu_memory_bytes))
    checks.append((Rejection.CPU, table.cpu_free_milli >= wants.cpu_milli))
    checks.append((Rejection.MEMORY, table.memory_free_bytes >= wants.memory_bytes))
    if wants.ephemeral_storage_bytes > 0:
        checks.append((Rejection.STORAGE, table.storage_free_bytes >= wants.ephemeral_storage_bytes))
    if request.uses_accelerator:
        checks.append((Rejection.GPUS, devices_fitting(table, request) >= wants.gpus))
    return checks


def first_failures(table: NodeTable, request: PodRequest) -> tuple[IntArray, tuple[Rejection, ...]]:
    """Per table row, the index (into the returned reasons) of the first check it fails; -1 = passes.

    A node fails here exactly when ``filter_nodes`` filters it out, for the reason it counts it
    under: what the extender answers per candidate node.
    """
    checks = _checks(table, request)
    first = np.full(len(table), -1, dtype=np.int64)
    for index, (_, passed) in enumerate(checks):
        first[(first < 0) & ~passed] = index
    return first, tuple(reason for reason, _ in checks)


def feasible_nodes(table: NodeTable, request: PodRequest) -> BoolArray:
    """The fast path: a mask of nodes that can run ``request`` now."""
    mask = np.ones(len(table), dtype=np.bool_)
    for _, passed in _checks(table, request):
        mask &= passed
    return mask


def filter_nodes(table: NodeTable, request: PodRequest) -> FilterResult:
    """The mask and, per reason, how many nodes it removed (a node counts under its first failure)."""
    mask = np.ones(len(table), dtype=np.bool_)
    rejected: list[tuple[Rejection, int]] = []
    for reason, passed in _checks(table, request):
        removed = int(np.count_nonzero(mask & ~passed))
        if removed:
            rejected.append((reason, removed))
        mask &= passed
    return FilterResult(feasible=mask, rejected=tuple(rejected))
