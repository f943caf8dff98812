"""Template preferences: what the pod template prefers (node affinity, pod (anti-)affinity, soft spread).

kube-scheduler's NodeAffinity, InterPodAffinity and PodTopologySpread scores, each weighing 2
there: here one scorer, the mean of the parts the template states (core/template_rules.py
computes them per row as the plan moves). A template that prefers nothing makes it abstain, so
jobs without preferences, the extender's pods and the trace replay score exactly as before.
Its default weight (4, as much as both packing scorers together) lets the author's stated
preference overrule a packing difference, as kube-scheduler's 6 points of the same plugins
against its 2 of resource scoring do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import BoolArray, FloatArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.plugin import PartScores, ScoringContext, already_unit


@dataclass(frozen=True, slots=True)
class TemplatePreferences:
    name: str = "template-preferences"
    position: int = 9
    # The values are per row of the plan's table, made before the rows are chosen; the trace
    # replay, which caches row-local totals, never sets them (the scorer abstains there).
    row_local: bool = True

    def score(
        self, table: NodeTable, rows: IntArray, request: PodRequest, context: ScoringContext
    ) -> PartScores:
        del request
        if context.preferences is None:
            return PartScores(values=np.full(len(rows), 0.5, dtype=np.float64), abstained=True)
        values: FloatArray = context.preferences[rows]
        return PartScores(values=values)

    def normalise(self, values: FloatArray) -> FloatArray:
        return already_unit(values)


SCORER = TemplatePreferences()


# How each preferred part is scored, per row of the plan's table (core/template_rules.py asks).


def min_max(raw: FloatArray) -> FloatArray:
    """InterPodAffinity's normalisation: the lowest row 0, the highest 1 (all 0.5 when equal)."""
    low, high = float(raw.min()), float(raw.max())
    if high <= low:
        return np.full(len(raw), 0.5, dtype=np.float64)
    result: FloatArray = (raw - low) / (high - low)
    return result


@dataclass(frozen=True, slots=True)
class SpreadCounts:
    """One ScheduleAnyway constraint on a table: matching pods in each row's domain."""

    max_skew: int
    per_row: IntArray  # matching pods in the row's domain (0 where the node lacks the label)
    labelled: BoolArray  # the node has the constraint's topology label
    domains: int


def spread_part(constraints: Sequence[SpreadCounts]) -> FloatArray:
    """PodTopologySpread's score: fewer matching pods in the node's domains is better, each
    constraint weighted by log(domains + 2); nodes lacking a constraint's label score 0."""
    size = len(constraints[0].per_row)
    raw = np.zeros(size, dtype=np.float64)
    labelled = np.ones(size, dtype=np.bool_)
    for constraint in constraints:
        raw += (constraint.per_row + constraint.max_skew - 1) * math.log(constraint.domains + 2)
        labelled &= constraint.labelled
    if not labelled.any():
        return np.zeros(size, dtype=np.float64)
    low, high = float(raw[labelled].min()), float(raw[labelled].max())
    if high <= 0:
        return np.where(labelled, 1.0, 0.0)
    result: FloatArray = np.where(labelled, (high + low - raw) / high, 0.0)
    return result
