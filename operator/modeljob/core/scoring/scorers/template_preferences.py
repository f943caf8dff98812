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

from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest
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
