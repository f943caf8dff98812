"""Combine the scorers into one decision: filter, score, pick the best node (ties by name), say why."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeljob.core.fragmentation import CompiledWorkload
from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.best_fit import score_best_fit
from modeljob.core.scoring.cost import score_cost
from modeljob.core.scoring.cpu_balance import HostDemand, score_cpu_balance
from modeljob.core.scoring.filters import FilterResult, filter_nodes
from modeljob.core.scoring.gpu_fragmentation import score_gpu_fragmentation
from modeljob.core.scoring.least_allocated import score_least_allocated
from modeljob.core.scoring.most_allocated import score_most_allocated
from modeljob.core.scoring.random_order import score_random
from modeljob.core.scoring.round_robin import score_round_robin
from modeljob.core.scoring.weights import Scorer, ScoringWeights

FULL_DEVICE_MILLI = 1000


@dataclass(frozen=True, slots=True)
class ScoringContext:
    """What some scorers need beyond the node and the pod.

    ``workload``: the target workload for gpu-fragmentation (aligned to the table's products);
    ``host_demand``: CPU and memory expected per GPU, for cpu-balance (without it, it scores 1);
    ``fragmentation_before``: each table row's current fragmentation, if the caller caches it;
    ``seed``: for random; ``last_chosen``: the node round-robin continues after.
    """

    workload: CompiledWorkload | None = None
    host_demand: HostDemand | None = None
    fragmentation_before: FloatArray | None = None
    seed: int = 0
    last_chosen: str | None = None


@dataclass(frozen=True, slots=True)
class NodeScores:
    rows: IntArray
    total: FloatArray  # weighted mean of the parts, 0..1
    parts: tuple[tuple[Scorer, float, FloatArray], ...]  # scorer, weight, its 0..1 score per row
    devices: IntArray  # a GPU share's device per row as gpu-fragmentation chose it; -1 = best fit


@dataclass(frozen=True, slots=True)
class NodeChoice:
    node: str
    row: int
    devices: tuple[int, ...]
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class NoFit:
    reason: str
    filtered: FilterResult


def choose_devices(free_milli: IntArray, gpu_milli: int, gpus: int) -> tuple[int, ...]:
    """Best-fit device choice on one node: a share goes to the fullest device that still fits it
    (lowest index on ties); whole devices are the idle ones with the lowest indices."""
    if gpus <= 0 or gpu_milli <= 0:
        return ()
    if gpu_milli >= FULL_DEVICE_MILLI:
        return tuple(int(d) for d in np.flatnonzero(free_milli >= FULL_DEVICE_MILLI)[:gpus])
    candidates = np.flatnonzero(free_milli >= gpu_milli)
    order = candidates[np.argsort(free_milli[candidates], kind="stable")]
    return tuple(int(d) for d in order[:gpus])


def score_part(
    scorer: Scorer, table: NodeTable, rows: IntArray, request: PodRequest, context: ScoringContext
) -> tuple[FloatArray, IntArray | None]:
    """One scorer's 0..1 scores for ``rows`` (and, for gpu-fragmentation, its device choice)."""
    if scorer is Scorer.LEAST_ALLOCATED:
        return score_least_allocated(table, rows, request), None
    if scorer is Scorer.MOST_ALLOCATED:
        return score_most_allocated(table, rows, request), None
    if scorer is Scorer.BEST_FIT:
        return score_best_fit(table, rows, request), None
    if scorer is Scorer.CPU_BALANCE:
        if context.host_demand is None:
            return np.ones(len(rows), dtype=np.float64), None
        return score_cpu_balance(table, rows, request, demand=context.host_demand), None
    if scorer is Scorer.GPU_FRAGMENTATION:
        if context.workload is None:
            raise ValueError("the gpu-fragmentation scorer needs a target workload in the scoring context")
        before = None if context.fragmentation_before is None else context.fragmentation_before[rows]
        result = score_gpu_fragmentation(table, rows, request, workload=context.workload, before=before)
        return result.scores, result.devices
    if scorer is Scorer.COST:
        return score_cost(table, rows), None
    if scorer is Scorer.ROUND_ROBIN:
        return score_round_robin(table, rows, last_chosen=context.last_chosen), None
    return score_random(table, rows, seed=context.seed), None


def combine(parts: tuple[tuple[Scorer, float, FloatArray], ...], size: int) -> FloatArray:
    """The weighted mean of the parts (0..1)."""
    total = np.zeros(size, dtype=np.float64)
    weight_sum = 0.0
    for _, weight, scores in parts:
        total += weight * scores
        weight_sum += weight
    result: FloatArray = total / weight_sum if weight_sum else total
    return result


def score_rows(
    table: NodeTable, rows: IntArray, request: PodRequest, *, weights: ScoringWeights, context: ScoringContext
) -> NodeScores:
    """Scores of the (already feasible) ``rows``."""
    parts: list[tuple[Scorer, float, FloatArray]] = []
    devices = np.full(len(rows), -1, dtype=np.int64)
    for scorer, weight in weights.active():
        scores, chosen = score_part(scorer, table, rows, request, context)
        parts.append((scorer, weight, scores))
        if chosen is not None:
            devices = chosen
    frozen = tuple(parts)
    return NodeScores(rows=rows, total=combine(frozen, len(rows)), parts=frozen, devices=devices)


def best_position(table: NodeTable, rows: IntArray, total: FloatArray) -> int:
    """Index into ``rows`` of the highest total; ties go to the smallest node name."""
    tied = np.flatnonzero(total == total.max())
    if len(tied) == 1 or table.sorted_by_name:
        return int(tied[0])
    return int(min(tied, key=lambda i: table.names[int(rows[i])]))


def _dominant(scores: NodeScores, winner: int) -> str:
    """Which scorer decided: the largest weighted lead over the runner-up (or the largest share)."""
    if not scores.parts:
        return "no scorer"
    others = np.delete(np.arange(len(scores.rows)), winner)
    leads: list[tuple[float, Scorer]] = []
    for scorer, weight, values in scores.parts:
        if len(others):
            runner_up = int(others[np.argmax(scores.total[others])])
            leads.append((weight * float(values[winner] - values[runner_up]), scorer))
        else:
            leads.append((weight * float(values[winner]), scorer))
    lead, scorer = max(leads, key=lambda item: item[0])
    if len(others) and lead <= 0:
        return "a tie broken by node name"
    return f"{scorer.value} decided" if len(others) else f"only candidate; {scorer.value} weighed most"


def choose_node(
    table: NodeTable, request: PodRequest, *, weights: ScoringWeights, context: ScoringContext
) -> NodeChoice | NoFit:
    """The node (and devices) for ``request``, or why none can take it."""
    filtered = filter_nodes(table, request)
    rows = np.flatnonzero(filtered.feasible)
    if len(rows) == 0:
        return NoFit(reason=f"no node fits: {filtered.explain()}", filtered=filtered)
    scores = score_rows(table, rows, request, weights=weights, context=context)
    winner = best_position(table, rows, scores.total)
    row = int(rows[winner])
    wants = request.resources
    if scores.devices[winner] >= 0:
        devices: tuple[int, ...] = (int(scores.devices[winner]),)
    elif request.uses_accelerator:
        devices = choose_devices(table.gpu_free_milli[row], wants.gpu_milli, wants.gpus)
    else:
        devices = ()
    parts = ", ".join(f"{scorer.value} {float(values[winner]):.2f}" for scorer, _, values in scores.parts)
    reason = (
        f"{table.names[row]} scored {float(scores.total[winner]):.3f} ({parts}) of {len(rows)} feasible; "
        f"{_dominant(scores, winner)}; filtered out: {filtered.explain()}"
    )
    return NodeChoice(
        node=table.names[row], row=row, devices=devices, score=float(scores.total[winner]), reason=reason
    )
