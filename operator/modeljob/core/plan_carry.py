"""What one cycle's plan memo (core/plan_memo.py) leaves for the next: the ledger as it ended and
the results that held on it; at the next cycle's start, what of them still holds on its ledger.

The cycle's ledger at its end is compared with the next one's at its start, when nothing else
planning reads changed (the nodes' labels, prices and the sizings, and the settings: ``context``);
a result that read a node whose allocatable or readiness changed is planned again (whether a demand
ever fits reads them); a result that read scores also needs the same scoring context
(``scoring``), which any pod bound or gone changes. A verdict that read no scores and did not hold
at the cycle's start (room came free where it looked) is checked again when a job asks for it, on
the ledger as the cycle's placements have left it (``Deferred``). Memory only: a restart plans
afresh.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from modeljob.core.node_types import NodeType
from modeljob.core.nodes import BoolArray, NodeTable
from modeljob.core.plan_validity import (
    LedgerChange,
    LedgerFacts,
    Remembered,
    Result,
    emptied_differently,
    read_scores,
)

# A result kept by type and demand: its node type and demand key.
Part = tuple[NodeType, Hashable]
# A job's whole planning: the job it was made for, per attempt the candidate's position and result,
# and the results by type and demand it was made of (kept with it: they are its ledger's facts).
JobPlan = tuple[str, tuple[tuple[int, Result], ...], tuple[Part, ...]]
# A job's planning carried: its candidates' types, the plan, and whether any result it saw read scores.
CarriedJob = tuple[tuple[NodeType, ...], JobPlan, bool]
ByType = dict[NodeType, dict[Hashable, Remembered]]
# Whether a demand fits its node type's rows with every node emptied, by type and demand.
EmptyFits = dict[tuple[NodeType, Hashable], bool]


@dataclass(eq=False)
class CarriedPlans:
    """What a cycle leaves for the next (see the module's docstring): the ledger as it ended
    (``ledger``), the ``context`` and ``scoring`` it planned with, and the results that held on
    that ledger, by type and demand (``by_type``) and by a job's whole demand (``jobs``, with the
    types of its candidates). Each cycle keeps only what it used or made (a job's whole planning used
    counts the results it was made of as used)."""

    ledger: NodeTable | None = None
    facts: LedgerFacts | None = None  # what the cycle's checks read of ``ledger``, to share
    context: Hashable = None
    scoring: Hashable = None
    by_type: ByType = field(default_factory=dict)
    jobs: dict[Hashable, CarriedJob] = field(default_factory=dict)
    empty: EmptyFits = field(default_factory=dict)  # see PlanMemo.fits_empty

    def start(
        self,
        ledger: NodeTable,
        *,
        context: Hashable,
        scoring: Hashable,
        type_masks: Mapping[NodeType, BoolArray],
    ) -> tuple[ByType, dict[Hashable, CarriedJob], EmptyFits, Deferred | None, LedgerFacts | None]:
        """A new cycle on ``ledger``: what earlier cycles left that still holds on it, handed back;
        what may hold again once the cycle's placements have taken the room that came free
        (``Deferred``); and what checking it read of ``ledger``, for the checks after."""
        before, known, by_type, jobs, empty = self.ledger, self.facts, self.by_type, self.jobs, self.empty
        same_context, scored_alike = context == self.context, scoring == self.scoring
        self.ledger, self.facts, self.context, self.scoring = None, None, context, scoring
        self.by_type, self.jobs, self.empty = {}, {}, {}
        if before is None or not same_context:
            return {}, {}, {}, None, None
        change = LedgerChange(before, ledger, known=known)
        # Whether a demand ever fits is planned on the nodes emptied, which reads their allocatable
        # and readiness: a node's Ready flapping or its allocatable changing keeps the context
        # (core/node_set_memory.py), so what read such a node is planned again, whatever the
        # room now says.
        moved = emptied_differently(before, ledger)
        held: ByType = {}
        deferred = Deferred(change.earlier)
        for node_type, results in by_type.items():
            for key, found in results.items():
                if moved[found.rows].any():
                    continue
                still = change.still(found, scored_alike=scored_alike)
                if still is not None:
                    held.setdefault(node_type, {})[key] = still
                elif not read_scores(found.result):
                    deferred.keep(node_type, key, found)
        # A job's whole planning holds where none of its types' rows changed.
        untouched = {
            t
            for t, mask in type_masks.items()
            if (not change.any or not change.changed[mask].any()) and not moved[mask].any()
        }
        kept = {
            key: found
            for key, found in jobs.items()
            if all(t in untouched for t in found[0]) and (scored_alike or not found[2])
        }
        if moved.any():
            empty = {
                k: fits
                for k, fits in empty.items()
                if (rows := type_masks.get(k[0])) is not None and not moved[rows].any()
            }
        return held, kept, empty, deferred, change.later


class Deferred:
    """Verdicts of the last cycle that did not hold on the new cycle's ledger as it started, kept
    with the facts of the last cycle's ledger as it ended (``known``). In a deep queue a node
    freed between two cycles has room for many demands, so their "no room" verdicts do not hold
    at the start; once the cycle has placed a job there, most hold again. Each is checked
    (core/plan_validity.py) on the ledger as it is when a job asks for it, and planned afresh
    only if it does not hold then."""

    def __init__(self, known: LedgerFacts) -> None:
        self._known = known
        self._results: ByType = {}
        self._change: tuple[int, LedgerChange] | None = None  # and the memo's stamp it was made at

    def keep(self, node_type: NodeType, key: Hashable, found: Remembered) -> None:
        self._results.setdefault(node_type, {})[key] = found

    def take(self, node_type: NodeType, key: Hashable, table: NodeTable, stamp: int) -> Remembered | None:
        """The verdict of ``key`` as it holds on ``table`` (the ledger at the memo's ``stamp``), if
        it does; asked once (a verdict that does not hold is planned afresh, and remembered so)."""
        found = self._results.get(node_type, {}).pop(key, None)
        if found is None:
            return None
        if self._change is None or self._change[0] != stamp:
            self._change = (stamp, LedgerChange(self._known.table, table, known=self._known))
        return self._change[1].still(found, scored_alike=True)
