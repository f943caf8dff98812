"""GPU capacity: keep each node able to host as much of the expected GPU work as possible.

FGD (gpu_fragmentation) asks, per expected task shape, a yes/no question: can the shape still
run on the node? This scorer asks how much: for every GPU shape of the target workload, how many
copies of it still fit on the node, counting its devices *and* its free CPU, times the GPU those
copies would use, weighted by how often the shape occurs. That is the GPU work, in milli-GPU,
the node can still take; the score is what placing the pod takes away from it, beyond what the
pod itself uses. A node whose idle GPUs keep the CPU they need loses least; so does a node
whose CPU only the pod's own kind of work could have used.

Why it exists: when CPU, not GPU, runs out first, FGD and every packing order leave GPUs idle on
nodes with no CPU left; counting copies per shape keeps the CPU where the GPU work needs it
(docs/placement-quality.md, section 4, has the evidence). Memory is not counted, as the target
workload's shapes carry none (the cpu-balance scorer does count it).
"""

from __future__ import annotations

import numpy as np

from modeljob.core.fragmentation import DEDUPLICATE_ABOVE_ROWS, CompiledWorkload
from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest


def gpu_capacity_milli(
    cpu_free_milli: FloatArray,
    gpu_free_milli: FloatArray,
    product_index: IntArray,
    workload: CompiledWorkload,
) -> FloatArray:
    """Per row: Σ over GPU shapes of weight × (copies that fit) × (GPU milli per copy).

    A share of one device (one GPU, under 1000 milli) fits once per ``free // share`` on every
    device; a shape of whole devices (or several shares) fits once per ``gpus`` devices with
    room; CPU limits both. Summed shape by shape in order, so a row's value never depends on
    the other rows of the batch (equal states score exactly equal).
    """
    rows = gpu_free_milli.shape[0]
    if rows == 0 or workload.weights.size == 0:
        return np.zeros(rows, dtype=np.float64)
    free = np.sort(np.clip(gpu_free_milli, 0, None), axis=1)  # the order of devices does not matter
    cpu = np.clip(cpu_free_milli, 0, None)
    if rows > DEDUPLICATE_ABOVE_ROWS:
        # Big clusters repeat node states (idle nodes, full nodes): compute each state once.
        key = np.column_stack([cpu, free, product_index])
        order = np.lexsort(key.T[::-1])
        ordered = key[order]
        starts = np.concatenate([[True], (ordered[1:] != ordered[:-1]).any(axis=1)])
        if np.count_nonzero(starts) < rows // 2:
            first = order[starts]
            group = np.empty(rows, dtype=np.int64)
            group[order] = np.cumsum(starts) - 1
            distinct = _capacity(cpu[first], free[first], product_index[first], workload)
            result: FloatArray = distinct[group]
            return result
    return _capacity(cpu, free, product_index, workload)


def _capacity(
    cpu: FloatArray, free: FloatArray, product_index: IntArray, workload: CompiledWorkload
) -> FloatArray:
    shares = workload.distinct_gpu_milli.astype(np.float64)
    safe = np.where(shares > 0, shares, 1.0)
    # Per distinct share: devices with room for it, and share-sized slots over all devices.
    devices_with_room = (free[:, None, :] >= safe[None, :, None]).sum(axis=2)[:, workload.share_index]
    slots = np.floor(free[:, None, :] / safe[None, :, None]).sum(axis=2)[:, workload.share_index]
    gpus = np.maximum(workload.gpus, 1)
    one_share = (workload.gpus == 1) & (workload.gpu_milli < 1000)
    gpu_copies = np.where(one_share[None, :], slots, np.floor(devices_with_room / gpus[None, :]))
    cpu_need = np.where(workload.cpu_milli > 0, workload.cpu_milli, 1).astype(np.float64)
    cpu_copies = np.where(workload.cpu_milli[None, :] > 0, np.floor(cpu[:, None] / cpu_need[None, :]), np.inf)
    uses_gpu = (workload.gpu_milli > 0) & (workload.gpus > 0)
    allowed = (workload.allowed & uses_gpu[:, None])[:, product_index].T
    copies = np.where(allowed, np.minimum(gpu_copies, cpu_copies), 0.0)
    per_copy = (workload.gpus * workload.gpu_milli).astype(np.float64)
    result: FloatArray = np.cumsum(workload.weights[None, :] * copies * per_copy[None, :], axis=1)[:, -1]
    return result


def _free_after(free: FloatArray, request: PodRequest) -> FloatArray:
    """Each row's device free milli after taking the request on the devices choose_devices picks."""
    wants = request.resources
    if not request.uses_accelerator or wants.gpus <= 0:
        return free
    after = free.copy()
    if wants.gpus == 1 and wants.gpu_milli < 1000:
        # The fullest device that still fits the share, lowest index on ties.
        device = np.argmin(np.where(after >= wants.gpu_milli, after, np.inf), axis=1)
        after[np.arange(len(after)), device] -= wants.gpu_milli
        return after
    # Whole devices (or several shares): the fullest devices that fit, as many as requested.
    ascending = np.sort(after, axis=1)
    fits = ascending >= wants.gpu_milli
    taken = fits & (np.cumsum(fits, axis=1) <= wants.gpus)
    result: FloatArray = ascending - taken * wants.gpu_milli
    return result


def score_gpu_capacity(
    table: NodeTable, rows: IntArray, request: PodRequest, *, workload: CompiledWorkload
) -> FloatArray:
    """0..1 per row: 0.5 − (GPU capacity lost − GPU the pod takes) / (2 × the largest node's GPU milli).

    Subtracting the pod's own GPU makes nodes comparable for every request (a 4-GPU pod costs
    4 GPUs of capacity anywhere); what remains is the capacity lost *beyond* it: idle GPUs left
    without CPU, or device remainders no expected shape fits.
    """
    wants = request.resources
    largest = max(int(table.gpu_count.max(initial=0)), 1) * 1000
    free = table.gpu_free_milli[rows].astype(np.float64)
    cpu = table.cpu_free_milli[rows].astype(np.float64)
    products = table.product_index[rows]
    before = gpu_capacity_milli(cpu, free, products, workload)
    after = gpu_capacity_milli(cpu - wants.cpu_milli, _free_after(free, request), products, workload)
    own = wants.gpus * wants.gpu_milli if request.uses_accelerator else 0
    result: FloatArray = np.clip(0.5 - (before - after - own) / (2 * largest), 0.0, 1.0)
    return result
