"""GPU fragmentation as FGD measures it: idle GPU that the expected task shapes could not use.

Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
Gradient Descent", USENIX ATC '23. A node's fragment for one task shape is all of its idle GPU
when the shape cannot run there (too little CPU or GPU, a disallowed GPU product, or no GPU
needed at all), else the idle GPU left on devices too full to hold the shape. The node's
fragmentation is the average over a *target workload*: the popular task shapes weighted by how
often they occur. Scheduling a pod where fragmentation grows least is FGD.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import BoolArray, FloatArray, IntArray
from modeljob.core.resources import Resources

# The artifact keeps the most popular shapes that together cover 95% of tasks.
DEFAULT_COVERAGE = 0.95


@dataclass(frozen=True, slots=True, order=True)
class TaskShape:
    """The resources one task asks for, as the fragmentation measure sees them (memory is ignored)."""

    cpu_milli: int
    gpu_milli: int  # per device; 0 for a CPU-only task
    gpus: int
    products: tuple[str, ...] = ()  # allowed GPU products; empty = any

    @property
    def uses_gpu(self) -> bool:
        return self.gpu_milli > 0 and self.gpus > 0

    @property
    def products_label(self) -> str:
        return "|".join(self.products)

    @classmethod
    def of_running_pod(cls, requests: Resources) -> TaskShape | None:
        """The shape the target workload counts for a pod of the cluster: whole devices, as the
        operator's cycle and the extender count running and waiting pods; None without GPUs."""
        if requests.gpus <= 0:
            return None
        return cls(cpu_milli=requests.cpu_milli, gpu_milli=1000, gpus=requests.gpus)


@dataclass(frozen=True, slots=True)
class TargetWorkload:
    """Task shapes with weights summing to 1: what the scheduler expects to arrive next."""

    shapes: tuple[TaskShape, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shapes) != len(self.weights):
            raise ValueError("a target workload needs one weight per shape")


def learn_target_workload(
    shapes: Iterable[TaskShape], *, coverage: float = DEFAULT_COVERAGE
) -> TargetWorkload:
    """The popular shapes among ``shapes`` that together cover ``coverage`` of them, renormalised.

    Shapes are taken most frequent first; equally frequent shapes larger first (CPU, then GPU
    share, then GPU count, then products label), which is the artifact's order, so the cut at
    ``coverage`` keeps the same shapes it keeps.
    """
    return learn_target_workload_from_counts(Counter(shapes), coverage=coverage)


def learn_target_workload_from_counts(
    counts: Mapping[TaskShape, int], *, coverage: float = DEFAULT_COVERAGE
) -> TargetWorkload:
    """`learn_target_workload` from each shape's count (a caller that keeps the counts as pods come
    and go learns in O(shapes), not O(pods)). Equally ranked shapes keep ``counts``' order; a
    count of 0 or less is no shape, as in `Counter.elements`."""
    positive = {shape: count for shape, count in counts.items() if count > 0}
    total = float(sum(positive.values()))
    if total == 0:
        return TargetWorkload(shapes=(), weights=())
    ranked = sorted(
        positive.items(),
        key=lambda item: (
            item[1],
            item[0].cpu_milli,
            item[0].gpu_milli,
            item[0].gpus,
            item[0].products_label,
        ),
        reverse=True,
    )
    wanted = coverage * 100 * total / 100.0
    kept: list[tuple[TaskShape, float]] = []
    covered = 0.0
    for shape, count in ranked:
        if covered >= wanted:
            break
        covered += count
        kept.append((shape, count / total))
    share = covered / total
    return TargetWorkload(
        shapes=tuple(shape for shape, _ in kept), weights=tuple(weight / share for _, weight in kept)
    )


@dataclass(frozen=True, slots=True)
class CompiledWorkload:
    """A target workload as arrays aligned to one node table's product list, for vectorised use."""

    cpu_milli: IntArray  # (shapes,)
    gpu_milli: IntArray
    gpus: IntArray
    weights: FloatArray
    allowed: BoolArray  # (shapes, products + 1); the last column is "node has no product label"
    # Shapes share few distinct per-device shares: device tests run once per distinct share.
    distinct_gpu_milli: IntArray
    share_index: IntArray  # (shapes,): each shape's position in distinct_gpu_milli


def compile_workload(workload: TargetWorkload, products: tuple[str, ...]) -> CompiledWorkload:
    allowed = np.ones((len(workload.shapes), len(products) + 1), dtype=np.bool_)
    for row, shape in enumerate(workload.shapes):
        if any(shape.products):
            wanted = {p for p in shape.products if p}
            allowed[row, : len(products)] = [p in wanted for p in products]
            allowed[row, len(products)] = False
    gpu_milli = np.array([s.gpu_milli for s in workload.shapes], dtype=np.int64)
    distinct, share_index = np.unique(gpu_milli, return_inverse=True)
    return CompiledWorkload(
        cpu_milli=np.array([s.cpu_milli for s in workload.shapes], dtype=np.int64),
        gpu_milli=gpu_milli,
        gpus=np.array([s.gpus for s in workload.shapes], dtype=np.int64),
        weights=np.array(workload.weights, dtype=np.float64),
        allowed=allowed,
        distinct_gpu_milli=distinct.astype(np.int64),
        share_index=share_index.astype(np.int64).reshape(-1),
    )


# Above this many states, identical ones are computed once (big clusters repeat node states).
DEDUPLICATE_ABOVE_ROWS = 1024


def fragmentation_milli(
    cpu_free_milli: IntArray, gpu_free_milli: IntArray, product_index: IntArray, workload: CompiledWorkload
) -> FloatArray:
    """Expected fragmented milli-GPU of each node state (rows of the arguments).

    The weighted sum runs over shapes in order with a cumulative sum, so a state's value never
    depends on which other states share the batch: equal states always score exactly equal,
    which the integer score truncation of FGD relies on.
    """
    rows = gpu_free_milli.shape[0]
    if rows == 0 or workload.weights.size == 0:
        return np.zeros(rows, dtype=np.float64)
    if rows > DEDUPLICATE_ABOVE_ROWS:
        # A state is what the measure can tell apart: which CPU thresholds it meets, its devices'
        # free milli in any order, and its product. Equal states are computed once.
        key = np.column_stack(
            [
                np.searchsorted(np.unique(workload.cpu_milli), cpu_free_milli, side="right"),
                np.sort(gpu_free_milli, axis=1),
                product_index,
            ]
        )
        order = np.lexsort(key.T[::-1])
        ordered = key[order]
        starts = np.concatenate([[True], (ordered[1:] != ordered[:-1]).any(axis=1)])
        if np.count_nonzero(starts) < rows // 2:
            first = order[starts]
            group = np.empty(rows, dtype=np.int64)
            group[order] = np.cumsum(starts) - 1
            distinct = _fragmentation(
                cpu_free_milli[first], gpu_free_milli[first], product_index[first], workload
            )
            result: FloatArray = distinct[group]
            return result
    return _fragmentation(cpu_free_milli, gpu_free_milli, product_index, workload)


def _fragmentation(
    cpu_free_milli: IntArray, gpu_free_milli: IntArray, product_index: IntArray, workload: CompiledWorkload
) -> FloatArray:
    ascending = np.sort(gpu_free_milli, axis=1)
    devices = ascending.shape[1]
    below = np.zeros((ascending.shape[0], devices + 1), dtype=np.int64)
    np.cumsum(ascending, axis=1, out=below[:, 1:])  # below[:, k] = sum of the k smallest devices
    idle = below[:, devices]
    # For each distinct per-device share: how many devices are too full for it, and their free milli.
    too_full = (ascending[:, None, :] < workload.distinct_gpu_milli[None, :, None]).sum(axis=2)
    devices_that_fit = (devices - too_full)[:, workload.share_index]
    stranded = np.take_along_axis(below, too_full, axis=1)[:, workload.share_index]
    runs = (
        ((workload.gpu_milli > 0)[:, None] & workload.allowed)[:, product_index].T
        & (cpu_free_milli[:, None] >= workload.cpu_milli[None, :])
        & (devices_that_fit >= workload.gpus[None, :])
    )
    amount = np.where(runs, stranded, idle[:, None])
    # Summed shape by shape in order (a cumulative sum never sums pairwise), so a state's value
    # is bit-for-bit the same whatever else is in the batch.
    result: FloatArray = np.cumsum(workload.weights[None, :] * amount, axis=1)[:, -1]
    return result
