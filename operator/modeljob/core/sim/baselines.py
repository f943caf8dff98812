"""The six placement policies the FGD artifact publishes results for, reimplemented rule for rule.

Source of the rules: data/openb/README.md (our description of the artifact of Weng et
al., USENIX ATC '23, hkust-adsl/kubernetes-scheduler-simulator). Scores are integers in 0..100
exactly as the artifact truncates them; the highest wins and ties go to the smallest node name
(rows are sorted by name, so the first best row). Each policy also picks the devices on the
chosen node the way the artifact's GPU-selection method does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from modeljob.core.fragmentation import fragmentation_milli
from modeljob.core.nodes import FloatArray, IntArray
from modeljob.core.scoring.ranking import choose_devices
from modeljob.core.sim.traces import ReplayState, TracePod

MAX_CPU_MILLI = 128_000  # the artifact's MaxSpecCpu: the largest node's CPU
MAX_GPU_MILLI = 8_000  # the artifact's MaxSpecGpu: the largest node's GPUs
MAX_SCORE = 100
FULL_DEVICE = 1000


class Placer(Protocol):
    """Chooses a node (one of ``rows``, all feasible, ascending) and the devices to use on it."""

    def choose(self, state: ReplayState, pod: TracePod, rows: IntArray) -> tuple[int, tuple[int, ...]]: ...


def _first_best(rows: IntArray, scores: IntArray | FloatArray) -> int:
    return int(rows[int(np.argmax(scores))])


def _sigmoid_score(delta: FloatArray) -> IntArray:
    """FGD's node score: 100·sigmoid(ΔF/1000), truncated to an integer as the artifact does."""
    scores: IntArray = ((1.0 / (1.0 + np.exp(-(delta / 1000.0)))) * float(MAX_SCORE)).astype(np.int64)
    return scores


@dataclass
class RandomPlacer:
    """A uniformly random feasible node; a share goes to a uniformly random device that fits it."""

    rng: np.random.Generator

    def choose(self, state: ReplayState, pod: TracePod, rows: IntArray) -> tuple[int, tuple[int, ...]]:
        row = int(rows[int(self.rng.integers(len(rows)))])
        shape = pod.shape
        free = state.table.gpu_free_milli[row]
        if shape.uses_gpu and shape.gpu_milli < FULL_DEVICE:
            candidates = np.flatnonzero(free >= shape.gpu_milli)
            return row, (int(self.rng.choice(candidates)),)
        return row, choose_devices(free, shape.gpu_milli, shape.gpus)


def dot_product_scores(state: ReplayState, pod: TracePod, rows: IntArray) -> IntArray:
    """Tetris-style alignment, reversed: the smaller the dot product of free and requested, the better."""
    table = state.table
    cpu = table.cpu_free_milli[rows].astype(np.float64)
    gpu = table.gpu_free_milli[rows].sum(axis=1).astype(np.float64)
    dot = (cpu / MAX_CPU_MILLI) * (pod.cpu_milli / MAX_CPU_MILLI) + (gpu / MAX_GPU_MILLI) * (
        pod.total_gpu_milli / MAX_GPU_MILLI
    )
    scores: IntArray = (float(MAX_SCORE) * (1.0 - dot / 2.0)).astype(np.int64)
    return scores


def best_fit_scores(state: ReplayState, pod: TracePod, rows: IntArray) -> IntArray:
    """Least CPU + GPU left over after placing wins (the artifact's min-max normalisation keeps the order)."""
    table = state.table
    cpu_left = (table.cpu_free_milli[rows] - pod.cpu_milli).astype(np.float64)
    gpu_left = (table.gpu_free_milli[rows].sum(axis=1) - pod.total_gpu_milli).astype(np.float64)
    leftover = (cpu_left / MAX_CPU_MILLI) * 0.5 + (gpu_left / MAX_GPU_MILLI) * 0.5
    scores: IntArray = ((1.0 - leftover) * float(MAX_SCORE)).astype(np.int64)
    return scores


def gpu_packing_scores(state: ReplayState, pod: TracePod, rows: IntArray) -> IntArray:
    """Prefer shared devices, then idle devices on used nodes, then idle nodes (smaller ones first)."""
    shape = pod.shape
    if not shape.uses_gpu:
        return np.zeros(len(rows), dtype=np.int64)
    table = state.table
    free = table.gpu_free_milli[rows]
    count = table.gpu_count[rows]
    idle_devices = (free == FULL_DEVICE).sum(axis=1)
    ascending = np.sort(free, axis=1)
    fits = ascending >= shape.gpu_milli
    chosen = fits & (np.cumsum(fits, axis=1) <= shape.gpus)
    idle_used = (chosen & (ascending == FULL_DEVICE)).sum(axis=1)
    free_percent_used = np.where(chosen, ascending * 100 // FULL_DEVICE, 0).sum(axis=1)
    shared = np.maximum(MAX_SCORE - free_percent_used // 10, MAX_SCORE // 2)
    opens_device = np.maximum(MAX_SCORE // 2 - idle_used, MAX_SCORE // 3)
    idle_node = np.maximum(MAX_SCORE // 3 - idle_devices, idle_devices)
    scores: IntArray = np.where(
        idle_devices == count, idle_node, np.where(idle_used > 0, opens_device, shared)
    )
    return scores


def gpu_clustering_scores(state: ReplayState, pod: TracePod, rows: IntArray) -> IntArray:
    """Keep tasks of one kind ("share", "<n>-gpu") together; among equals, fuller nodes first."""
    tag = pod.tag
    if not tag:
        return np.zeros(len(rows), dtype=np.int64)
    counts = state.tag_counts[rows]
    present = counts > 0
    same = present[:, state.tag_column(tag)]
    kinds = present.sum(axis=1)
    base = np.where(same, np.where(kinds == 1, 75, 50), np.where(kinds == 0, 25, 0))
    idle = state.table.gpu_free_milli[rows].sum(axis=1)
    scores: IntArray = base + (MAX_SCORE // 4 * (MAX_GPU_MILLI - idle)) // MAX_GPU_MILLI
    return scores


@dataclass
class ScoringPlacer:
    """Highest integer score wins, smallest name on ties; devices by best fit."""

    scores: Callable[[ReplayState, TracePod, IntArray], IntArray]

    def choose(self, state: ReplayState, pod: TracePod, rows: IntArray) -> tuple[int, tuple[int, ...]]:
        row = _first_best(rows, self.scores(state, pod, rows))
        shape = pod.shape
        return row, choose_devices(state.table.gpu_free_milli[row], shape.gpu_milli, shape.gpus)


def fgd_scores(state: ReplayState, pod: TracePod, rows: IntArray) -> tuple[IntArray, IntArray]:
    """FGD's score per row and, for a GPU share, the device that scores best there (-1 otherwise)."""
    table = state.table
    shape = pod.shape
    before = state.fragmentation[rows]
    cpu_after = table.cpu_free_milli[rows] - shape.cpu_milli
    free = table.gpu_free_milli[rows]
    products = table.product_index[rows]
    if shape.uses_gpu and shape.gpus == 1 and shape.gpu_milli < FULL_DEVICE:
        devices = free.shape[1]
        after = free[:, None, :] - shape.gpu_milli * np.eye(devices, dtype=np.int64)[None, :, :]
        after_fragmentation = fragmentation_milli(
            np.repeat(cpu_after, devices),
            after.reshape(-1, devices),
            np.repeat(products, devices),
            state.workload,
        ).reshape(len(rows), devices)
        per_device = _sigmoid_score(before[:, None] - after_fragmentation)
        per_device = np.where(free >= shape.gpu_milli, per_device, -1)
        best_device: IntArray = np.argmax(per_device, axis=1)
        scores: IntArray = per_device[np.arange(len(rows)), best_device]
        return scores, best_device
    ascending = np.sort(free, axis=1)
    if shape.uses_gpu:
        fits = ascending >= shape.gpu_milli
        chosen = fits & (np.cumsum(fits, axis=1) <= shape.gpus)
        ascending = ascending - chosen * shape.gpu_milli
    after_fragmentation = fragmentation_milli(cpu_after, ascending, products, state.workload)
    return _sigmoid_score(before - after_fragmentation), np.full(len(rows), -1, dtype=np.int64)


@dataclass
class _ShapeScores:
    scores: IntArray
    devices: IntArray
    stamp: IntArray


@dataclass
class FgdPlacer:
    """FGD: the node (and device) where expected fragmentation grows least.

    A node's score for a task shape changes only when the node does, so scores are cached per
    shape and recomputed only for rows whose version moved since.
    """

    cache: dict[object, _ShapeScores] = field(default_factory=dict)

    def choose(self, state: ReplayState, pod: TracePod, rows: IntArray) -> tuple[int, tuple[int, ...]]:
        shape = pod.shape
        entry = self.cache.get(shape)
        if entry is None:
            size = len(state.table)
            entry = _ShapeScores(
                scores=np.zeros(size, dtype=np.int64),
                devices=np.full(size, -1, dtype=np.int64),
                stamp=np.full(size, -1, dtype=np.int64),
            )
            self.cache[shape] = entry
        stale = rows[entry.stamp[rows] != state.version[rows]]
        if len(stale):
            scores, devices = fgd_scores(state, pod, stale)
            entry.scores[stale] = scores
            entry.devices[stale] = devices
            entry.stamp[stale] = state.version[stale]
        row = _first_best(rows, entry.scores[rows])
        if entry.devices[row] >= 0:
            return row, (int(entry.devices[row]),)
        return row, choose_devices(state.table.gpu_free_milli[row], shape.gpu_milli, shape.gpus)
