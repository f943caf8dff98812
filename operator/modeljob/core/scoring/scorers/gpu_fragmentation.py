"""GPU fragmentation (FGD): prefer the node, and the device on it, where fragmentation grows least.

The measure is ``modeljob.core.fragmentation`` (Weng et al., USENIX ATC '23): the idle GPU that
the expected task shapes could not use. Placing a pod changes its node's fragmentation by ΔF
milli-GPU; the score is sigmoid(ΔF / 1000) in whole points of 0..100, as FGD scores nodes.
Whole points matter: nodes within a point of each other tie, so the other scorers (and at last
the node name) decide among them instead of noise-level differences in ΔF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeljob.core.fragmentation import CompiledWorkload, fragmentation_milli
from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.plugin import PartScores, ScoringContext

SIGMOID_SCALE_MILLI = 1000.0  # one whole GPU of ΔF moves the score from 50 to 73 points
POINTS = 100


@dataclass(frozen=True, slots=True)
class FragmentationScores:
    scores: FloatArray  # 0..1 in steps of 1/100
    devices: IntArray  # for a share of one device: the device that scores best; else -1


def _points(delta_milli: FloatArray) -> FloatArray:
    sigmoid = 1.0 / (1.0 + np.exp(-(delta_milli / SIGMOID_SCALE_MILLI)))
    result: FloatArray = np.floor(sigmoid * POINTS) / POINTS
    return result


def score_gpu_fragmentation(
    table: NodeTable,
    rows: IntArray,
    request: PodRequest,
    *,
    workload: CompiledWorkload,
    before: FloatArray | None = None,
    after: FloatArray | None = None,
) -> FragmentationScores:
    """0..1 per row, and the device to use for a GPU share.

    ``before`` is each row's current fragmentation (a cache the caller keeps); computed when None.
    ``after``, for a request of whole devices (or none), is each row's fragmentation once the
    pod is placed there (`fragmentation_after`, which a caller may also keep); computed when None.
    """
    wants = request.resources
    free = table.gpu_free_milli[rows]
    products = table.product_index[rows]
    if before is None:
        before = fragmentation_milli(table.cpu_free_milli[rows], free, products, workload)
    if takes_a_share(request):
        cpu_after = table.cpu_free_milli[rows] - wants.cpu_milli
        # One candidate per distinct free amount on a node: devices with equal free milli give
        # equal results, and the first of them is the one chosen anyway.
        candidate = free >= wants.gpu_milli
        for device in range(1, free.shape[1]):
            candidate[:, device] &= (free[:, :device] != free[:, device : device + 1]).all(axis=1)
        row_index, device_index = np.nonzero(candidate)
        free_after = free[row_index].copy()
        free_after[np.arange(len(row_index)), device_index] -= wants.gpu_milli
        after_fragmentation = fragmentation_milli(
            cpu_after[row_index], free_after, products[row_index], workload
        )
        per_device = np.full(free.shape, -1.0)
        per_device[row_index, device_index] = _points(before[row_index] - after_fragmentation)
        best: IntArray = np.argmax(per_device, axis=1)
        return FragmentationScores(scores=per_device[np.arange(len(rows)), best], devices=best)
    if after is None:
        after = fragmentation_after(table, rows, request, workload)
    return FragmentationScores(scores=_points(before - after), devices=np.full(len(rows), -1, dtype=np.int64))


def takes_a_share(request: PodRequest) -> bool:
    """A share of one device: scored per device (the device is chosen here), never per row alone."""
    wants = request.resources
    return request.uses_accelerator and wants.gpus == 1 and wants.gpu_milli < 1000


def fragmentation_after(
    table: NodeTable, rows: IntArray, request: PodRequest, workload: CompiledWorkload
) -> FloatArray:
    """Each row's fragmentation once ``request`` (whole devices, or none) is placed there, best fit.

    A row's value depends only on that row, the request and the workload (`fragmentation_milli`
    is batch-independent), so a caller may keep it per row until the row changes."""
    wants = request.resources
    ascending = np.sort(table.gpu_free_milli[rows], axis=1)
    if request.uses_accelerator:
        fits = ascending >= wants.gpu_milli
        taken = fits & (np.cumsum(fits, axis=1) <= wants.gpus)
        ascending = ascending - taken * wants.gpu_milli
    cpu_after = table.cpu_free_milli[rows] - wants.cpu_milli
    return fragmentation_milli(cpu_after, ascending, table.product_index[rows], workload)


@dataclass(frozen=True, slots=True)
class GpuFragmentationScorer:
    """The plug-in: reads the context's target workload and, if the caller caches them, each row's
    fragmentation before and after placing; the only scorer that also picks a GPU share's device."""

    name: str = "gpu-fragmentation"
    position: int = 4
    row_local: bool = True

    def score(
        self, table: NodeTable, rows: IntArray, request: PodRequest, context: ScoringContext
    ) -> PartScores:
        if context.workload is None:
            raise ValueError("the gpu-fragmentation scorer needs a target workload in the scoring context")
        before = None if context.fragmentation_before is None else context.fragmentation_before[rows]
        after = None if context.fragmentation_after is None else context.fragmentation_after[rows]
        result = score_gpu_fragmentation(
            table, rows, request, workload=context.workload, before=before, after=after
        )
        return PartScores(values=result.scores, devices=result.devices)

    def normalise(self, values: FloatArray) -> FloatArray:
        return values  # whole points of 0..100, as 0..1


SCORER = GpuFragmentationScorer()
