"""Combine the scorers into one decision: filter, score, pick the best node (ties by name), say why."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.filters import FilterResult, feasible_nodes, filter_nodes
from modeljob.core.scoring.plugin import Scorer, ScoringContext
from modeljob.core.scoring.weights import ScoringWeights

# ScoringContext lives with the plug-in contract; callers keep importing it from here.
__all__ = [
    "CandidateRanking",
    "NoFit",
    "NodeChoice",
    "NodeScores",
    "ScoringContext",
    "best_position",
    "choose_devices",
    "choose_node",
    "combine",
    "devices_for",
    "rank_candidates",
    "score_part",
    "score_rows",
]

FULL_DEVICE_MILLI = 1000


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
class CandidateRanking:
    """The feasible ones among some candidate nodes, their totals, and the one the core picks."""

    rows: IntArray  # table rows, ascending (name order on a sorted table)
    total: FloatArray  # 0..1 per row of ``rows``
    winner: int  # index into ``rows``; -1 when no candidate is feasible


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
    """One scorer's 0..1 scores for ``rows`` (and the device per row, if the scorer picks one)."""
    part = scorer.score(table, rows, request, context)
    return scorer.normalise(part.values), part.devices


def devices_for(table: NodeTable, row: int, request: PodRequest, scored_device: int) -> tuple[int, ...]:
    """The devices ``request`` takes on ``row``: the one a scorer picked (>= 0), else by best fit."""
    if scored_device >= 0:
        return (scored_device,)
    wants = request.resources
    return choose_devices(table.gpu_free_milli[row], wants.gpu_milli, wants.gpus)


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
        part = scorer.score(table, rows, request, context)
        if part.abstained:
            continue
        parts.append((scorer, weight, scorer.normalise(part.values)))
        if part.devices is not None:
            devices = part.devices
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
    return f"{scorer.name} decided" if len(others) else f"only candidate; {scorer.name} weighed most"


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
    devices = devices_for(table, row, request, int(scores.devices[winner]))
    parts = ", ".join(f"{scorer.name} {float(values[winner]):.2f}" for scorer, _, values in scores.parts)
    reason = (
        f"{table.names[row]} scored {float(scores.total[winner]):.3f} ({parts}) of {len(rows)} feasible; "
        f"{_dominant(scores, winner)}; filtered out: {filtered.explain()}"
    )
    return NodeChoice(
        node=table.names[row], row=row, devices=devices, score=float(scores.total[winner]), reason=reason
    )


def rank_candidates(
    table: NodeTable,
    request: PodRequest,
    candidates: IntArray,
    *,
    weights: ScoringWeights,
    context: ScoringContext,
) -> CandidateRanking:
    """Score the feasible ones of ``candidates`` (table rows, any order, repeats allowed) as a
    replica's nodes are scored, and pick one: what the extender's prioritize answers."""
    asked = np.zeros(len(table), dtype=np.bool_)
    asked[candidates] = True
    rows = np.flatnonzero(asked & feasible_nodes(table, request))
    if len(rows) == 0:
        return CandidateRanking(rows=rows, total=np.zeros(0, dtype=np.float64), winner=-1)
    scores = score_rows(table, rows, request, weights=weights, context=context)
    return CandidateRanking(rows=rows, total=scores.total, winner=best_position(table, rows, scores.total))
