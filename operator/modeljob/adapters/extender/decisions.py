"""The core's filter and weighted scoring, answered the way kube-scheduler's extender protocol asks.

Pure (numpy and core only; no I/O). The core decides (`filters.first_failures`,
`ranking.rank_candidates`: the checks and scoring the operator's gang placement runs for each
replica); this module only translates: candidate names to table rows and back, a rejection to
the reason text, and the core's 0..1 totals to 0..10 integer scores in which the node the core
would choose is the only one with the top score.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modeljob.adapters.kube_pods import LABEL_GROUP_SIZE
from modeljob.core.nodes import IntArray, NodeTable, PodRequest
from modeljob.core.scoring.filters import UNRESOLVABLE_BY_PREEMPTION, Rejection, first_failures
from modeljob.core.scoring.ranking import ScoringContext, rank_candidates
from modeljob.core.scoring.weights import ScoringWeights

# kube-scheduler's extender score range (k8s.io/kube-scheduler/extender/v1 MinExtenderPriority,
# MaxExtenderPriority); it multiplies a score by the extender's weight and by 100 / 10
# (MaxNodeScore / MaxExtenderPriority, schedule_one.go prioritizeNodes).
MIN_PRIORITY = 0
MAX_PRIORITY = 10
PLUGIN_POINTS_PER_PRIORITY = 100 // MAX_PRIORITY
REASON_PREFIX = "modeljob: "
UNKNOWN_NODE = f"{REASON_PREFIX}node not in the extender's cache yet (its watch lags the scheduler's)"

# Answered as UnschedulableAndUnresolvable: kube-scheduler skips these nodes when it looks for
# preemption victims.
UNRESOLVABLE = UNRESOLVABLE_BY_PREEMPTION


@dataclass(frozen=True, slots=True)
class FilterDecision:
    """Which candidates pass, and why each other one does not (first failing check, as the core
    orders its checks). Reasons are the same string for every node failing the same way, so
    kube-scheduler's event aggregates them ("0/9 nodes are available: 7 modeljob: ...")."""

    passed: tuple[str, ...]
    failed: Mapping[str, str]
    unresolvable: Mapping[str, str]
    unknown: tuple[str, ...]
    passed_rows: IntArray  # the table row of each passing node, in ``passed``'s order

    def keeping(self, positions: IntArray) -> FilterDecision:
        """Only the passing nodes at ``positions`` (of ``passed``) still pass; the others are left
        out of the reply altogether, neither passed nor failed (kube-scheduler drops a node the
        reply does not name, schedule_one.go findNodesThatPassExtenders)."""
        if len(positions) == len(self.passed):
            return self
        return dataclasses.replace(
            self, passed=_pick(self.passed, positions), passed_rows=self.passed_rows[positions]
        )


@dataclass(frozen=True, slots=True)
class Priorities:
    """0..10 per candidate (``values[i]`` for ``hosts[i]``, in the order asked), the lowest 0;
    ``chosen`` is the node the core picks, the only one with the top score (10, or 1 when every
    other candidate ties with it)."""

    hosts: Sequence[str]
    values: IntArray
    chosen: str | None
    unknown: tuple[str, ...]

    @property
    def scores(self) -> tuple[tuple[str, int], ...]:
        return tuple(zip(self.hosts, self.values.tolist(), strict=True))

    def contenders(self, reach: int) -> IntArray:
        """Positions of the candidates kube-scheduler could still choose: those at most ``reach``
        points below the top score (`reach_points`). Every other candidate trails our choice by
        more than kube-scheduler's own plugins can make up, so it cannot win; ties are kept whole."""
        if not len(self.values):
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.values >= int(self.values.max()) - reach)

    def keeping(self, positions: IntArray) -> Priorities:
        """The scores of the candidates at ``positions`` alone, stated again from the lowest of
        them: the same differences, so the same totals for kube-scheduler to compare."""
        if len(positions) == len(self.hosts):
            return self
        values = self.values[positions]
        hosts = _pick(self.hosts, positions)
        chosen = self.chosen
        if chosen not in hosts:  # the best of those kept, if one alone has the top score
            top = np.flatnonzero(values == values.max()) if len(values) else values
            chosen = hosts[int(top[0])] if len(top) == 1 else None
        return Priorities(
            hosts=hosts,
            values=values - values.min() if len(values) else values,
            chosen=chosen,
            unknown=tuple(name for name in self.unknown if name in hosts),
        )

    def above_zero(self) -> tuple[tuple[str, ...], IntArray]:
        """The candidates scored above 0, and their scores: what the reply needs to list, since
        kube-scheduler counts a node missing from the list as 0 (schedule_one.go prioritizeNodes).
        On a cluster of many alike nodes that is a handful of entries instead of thousands."""
        positive = np.flatnonzero(self.values > MIN_PRIORITY)
        if len(positive) == len(self.values):
            return tuple(self.hosts), self.values
        return _pick(self.hosts, positive), self.values[positive]


def reach_points(plugin_score_range: int, weight: int) -> int:
    """How many of our points kube-scheduler's own score plugins can make up. Each point we give a
    node adds ``weight`` x 10 to its total; the plugins together can prefer one node over another by
    at most ``plugin_score_range`` (their weights x 100, summed). A node that trails our best by
    ``d`` points is still a contender while ``d x weight x 10 <= plugin_score_range`` (equal totals
    are a coin toss kube-scheduler may win for it)."""
    return plugin_score_range // (weight * PLUGIN_POINTS_PER_PRIORITY)


def one_of_each_class(
    positions: IntArray, values: IntArray, *, likeness: IntArray, rng: np.random.Generator
) -> IntArray:
    """Of the candidates at ``positions``, one picked at random from each class of those with the
    same ``likeness`` (kube-scheduler's per-node plugins cannot tell them apart; negative: a class
    of its own) and the same score (``values``): kube-scheduler gives every member of a class the
    same total, and breaks a tie among them at random. In ``positions``' order."""
    if len(positions) < 2:
        return positions
    shuffled = positions[rng.permutation(len(positions))]
    classes = likeness[shuffled] * (MAX_PRIORITY + 1) + values[shuffled]
    _, first = np.unique(classes, return_index=True)  # the first of each class in a random order
    if len(first) == len(positions):
        return positions
    return np.sort(shuffled[first])


def candidate_rows(names: Sequence[str], row_of: Mapping[str, int]) -> IntArray:
    """The table row of each name, in the order given; -1 where the table has no such node."""
    if not names:
        return np.zeros(0, dtype=np.int64)
    try:  # one C-level lookup of every name: the common case, every node known
        found = operator.itemgetter(*names)(row_of)
    except (KeyError, TypeError):
        return np.fromiter((row_of.get(name, -1) for name in names), dtype=np.int64, count=len(names))
    return np.array(found if len(names) > 1 else [found], dtype=np.int64)


def _pick(names: Sequence[str], indices: IntArray) -> tuple[str, ...]:
    if len(indices) == 0:
        return ()
    picked = operator.itemgetter(*indices.tolist())(names)
    return tuple(picked) if len(indices) > 1 else (picked,)


def _unknown(names: Sequence[str], rows: IntArray) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_pick(names, np.flatnonzero(rows < 0))))


def describe(reason: Rejection, request: PodRequest) -> str:
    wants = request.resources
    if reason is Rejection.GPUS:
        return f"{REASON_PREFIX}{reason.value} (the pod asks for {wants.gpus} {request.accelerator})"
    if reason is Rejection.NO_ACCELERATOR:
        return f"{REASON_PREFIX}{reason.value} ({request.accelerator})"
    return f"{REASON_PREFIX}{reason.value}"


def group_size(labels: Mapping[str, str]) -> int:
    """Pods of the replica a pod belongs to (its modeljob.dev/group-size label; 1 without it)."""
    text = labels.get(LABEL_GROUP_SIZE, "1")
    return int(text) if text.isdigit() else 1


def refuse_group(candidates: Sequence[str], size: int) -> FilterDecision:
    """A pod of a replica that spans nodes: its group is placed whole by the operator's gang
    placement (one pod per node, one topology domain), which scoring one pod at a time cannot
    keep, so every node is refused, alike each time, rather than half a group placed."""
    why = (
        f"a pod of a replica that spans {size} nodes: the modeljob operator places its group whole, "
        "the extender never places one pod of it"
    )
    return FilterDecision(
        passed=(),
        failed={},
        unresolvable=dict.fromkeys(candidates, why),
        unknown=(),
        passed_rows=np.zeros(0, dtype=np.int64),
    )


def decide_filter(
    table: NodeTable,
    request: PodRequest,
    candidates: Sequence[str],
    *,
    row_of: Mapping[str, int],
    rows: IntArray | None = None,
) -> FilterDecision:
    """The core's filter on the candidates kube-scheduler sends (``rows``: their
    `candidate_rows`, if the caller has them already)."""
    rows = candidate_rows(candidates, row_of) if rows is None else rows
    first, reasons = first_failures(table, request)
    known = rows >= 0
    failure = np.where(known, first[np.where(known, rows, 0)], -2)  # -2: not in the table
    messages = [describe(reason, request) for reason in reasons]
    failing = np.flatnonzero(failure >= 0)
    checks = failure[failing]
    hard = np.array([reason in UNRESOLVABLE for reason in reasons], dtype=np.bool_)[checks]
    passing = np.flatnonzero(failure == -1)
    return FilterDecision(
        passed=tuple(candidates) if len(passing) == len(candidates) else _pick(candidates, passing),
        failed=_reasons(candidates, failing[~hard], messages, checks[~hard]),
        unresolvable=_reasons(candidates, failing[hard], messages, checks[hard]),
        unknown=_unknown(candidates, rows),
        passed_rows=rows[passing],
    )


def _reasons(
    candidates: Sequence[str], indices: IntArray, messages: Sequence[str], checks: IntArray
) -> dict[str, str]:
    """Candidate ``indices[i]`` -> ``messages[checks[i]]``, in candidate order: thousands of failing
    nodes at 5,000 are paired by C-level zips, not a Python loop."""
    return dict(zip(_pick(candidates, indices), _pick(messages, checks), strict=True))


def to_extender_scale(totals: np.ndarray, winner: int) -> IntArray:
    """The core's 0..1 totals as kube-scheduler's 0..10: the winner alone gets 10, the others keep
    their order (min-max over the candidates, floored into 0..9), so one point always separates
    the core's choice from the runner-up, whatever the rounding."""
    best = float(totals[winner])
    low = float(totals.min())
    if best > low:
        scaled = np.floor((MAX_PRIORITY - 1) * (totals - low) / (best - low))
    else:
        scaled = np.full(len(totals), MAX_PRIORITY - 1, dtype=np.float64)
    result: IntArray = np.clip(scaled, MIN_PRIORITY, MAX_PRIORITY - 1).astype(np.int64)
    result[winner] = MAX_PRIORITY
    return result


def decide_priorities(
    table: NodeTable,
    request: PodRequest,
    candidates: Sequence[str],
    *,
    row_of: Mapping[str, int],
    weights: ScoringWeights,
    context: ScoringContext,
    rows: IntArray | None = None,
) -> Priorities:
    """Score the candidates as the operator scores a replica's nodes; infeasible ones get 0
    (``rows``: their `candidate_rows`, if the caller has them already).

    kube-scheduler adds our score (times the weight) to each node's total and compares totals,
    so only the differences between the candidates mean anything: the scores are stated from the
    lowest candidate's, which becomes 0 and is left out of the reply. This matters when every
    candidate ties (a cluster of alike nodes): the winner's 10 against everyone else's 9 becomes
    1 against 0, the same choice, and the reply one entry instead of thousands, which
    kube-scheduler decodes on its own time (5.6 ms for 5,000 entries; docs/benchmarks.md)."""
    rows = candidate_rows(candidates, row_of) if rows is None else rows
    known = rows >= 0
    ranking = rank_candidates(table, request, rows[known], weights=weights, context=context)
    score_of_row = np.full(len(table), MIN_PRIORITY, dtype=np.int64)
    chosen: str | None = None
    if ranking.winner >= 0:
        chosen = table.names[int(ranking.rows[ranking.winner])]
        score_of_row[ranking.rows] = to_extender_scale(ranking.total, ranking.winner)
    per_candidate = np.where(known, score_of_row[np.where(known, rows, 0)], MIN_PRIORITY)
    if len(per_candidate):
        per_candidate -= per_candidate.min()
    return Priorities(
        hosts=candidates,
        values=per_candidate,
        chosen=chosen,
        unknown=_unknown(candidates, rows),
    )
