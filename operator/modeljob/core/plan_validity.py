"""When a remembered plan still holds on a ledger that has changed since it was made.

A plan on one node type reads only that type's rows the job may use (``rows``), and the scores
only if it chose a node. So it holds on any ledger whose ``rows`` are as they were, and, if it
read scores, under the same scoring context (the caller compares that). A verdict that a job of
one pod per replica has no node, reached before any node was chosen (``read_scores`` False),
reads less still: which of its rows fail which filter check (the message counts them by reason),
and the largest free block among them; its empty-cluster check reads the nodes alone. So it also
holds where rows changed but none has room now, the counts by reason are the same and the largest
block is the same: a finished pod on a full node, a placement on a node it could not use anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from modeljob.core.gang_reasons import FreeBlock, blocks_offered, describe_block, largest_offered
from modeljob.core.gang_request import Placement, Unplaceable
from modeljob.core.nodes import BoolArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.filters import Rejection, first_failures

Result = Placement | Unplaceable
# Per row, the index of the first filter check it fails (-1: none), and the checks' reasons.
_Failures = tuple[IntArray, tuple[Rejection, ...]]


def read_scores(result: Result) -> bool:
    """Whether ``result`` may change with the scoring context (a placement always may)."""
    return isinstance(result, Placement) or result.read_scores


@dataclass(frozen=True, slots=True)
class Remembered:
    """A result, the job it was planned for ("namespace/name"), and the ledger rows it read;
    ``request``: the pod request, where room alone can be checked again (one pod per replica,
    no rule that counts pods), else None."""

    job: str
    result: Result
    rows: BoolArray
    request: PodRequest | None = None


def changed_rows(before: NodeTable, after: NodeTable) -> BoolArray:
    """Rows (of the same nodes) whose free room or readiness differs between the two ledgers."""
    changed: BoolArray = (
        (before.cpu_free_milli != after.cpu_free_milli)
        | (before.memory_free_bytes != after.memory_free_bytes)
        | (before.storage_free_bytes != after.storage_free_bytes)
        | (before.gpu_free_milli != after.gpu_free_milli).any(axis=1)
        | (before.ready != after.ready)
    )
    return changed


def emptied_differently(before: NodeTable, after: NodeTable) -> BoolArray:
    """Rows (of the same nodes) that would differ with every pod gone: allocatable or readiness."""
    moved: BoolArray = (
        (before.cpu_allocatable_milli != after.cpu_allocatable_milli)
        | (before.memory_allocatable_bytes != after.memory_allocatable_bytes)
        | (before.storage_allocatable_bytes != after.storage_allocatable_bytes)
        | (before.gpu_count != after.gpu_count)
        | (before.ready != after.ready)
    )
    return moved


class LedgerFacts:
    """What is read of one ledger alone when results are checked against another, worked out
    once per request: each row's first failing filter check (counts must be said anew), and the
    largest free block among some rows. One ledger checked against several others shares its
    facts: a Deferred's ``before`` checked against the ledger at each placement, and the memo's
    ledger after one placement (``after``) as the ``before`` of the next."""

    def __init__(self, table: NodeTable) -> None:
        self.table = table
        self._failures: dict[PodRequest, _Failures] = {}
        # Many demands share a request and rows (replicas and gang aside): their blocks are one.
        self._blocks: dict[tuple[PodRequest, bytes], FreeBlock | None] = {}
        # Per request shape (accelerator, products, share of a device): each row's block.
        self._offered: dict[tuple[bool, str, tuple[str, ...], int], IntArray | None] = {}

    def failures(self, request: PodRequest) -> _Failures:
        if request not in self._failures:
            self._failures[request] = first_failures(self.table, request)
        return self._failures[request]

    def block(self, request: PodRequest, rows: BoolArray, rows_key: bytes) -> FreeBlock | None:
        key = (request, rows_key)
        if key not in self._blocks:
            shape = (
                request.uses_accelerator,
                request.accelerator,
                request.products,
                request.resources.gpu_milli,
            )
            if shape not in self._offered:
                self._offered[shape] = blocks_offered(self.table, request)
            self._blocks[key] = largest_offered(self.table, self._offered[shape], rows)
        return self._blocks[key]


class LedgerChange:
    """Two ledgers of the same nodes and the rows that differ: what each remembered result is
    checked against (each pod request's filter verdicts on those rows worked out once).
    ``known``: the facts of ``before`` already worked out (``LedgerFacts``), if any."""

    def __init__(self, before: NodeTable, after: NodeTable, *, known: LedgerFacts | None = None) -> None:
        self.before, self.after = before, after
        self.changed = changed_rows(before, after)
        self._where = np.flatnonzero(self.changed)
        self._stacked: NodeTable | None = None  # the changed rows, before then after
        self._failures: dict[PodRequest, tuple[IntArray, IntArray]] = {}
        self._earlier = known if known is not None and known.table is before else LedgerFacts(before)
        self._later = LedgerFacts(after)
        # The counts said, by request and rows.
        self._explained: dict[tuple[PodRequest, bytes], tuple[str, str]] = {}

    @property
    def earlier(self) -> LedgerFacts:
        """The facts of ``before`` worked out so far, for another change from it."""
        return self._earlier

    @property
    def later(self) -> LedgerFacts:
        """The facts of ``after`` worked out so far, for a change from it."""
        return self._later

    @property
    def any(self) -> bool:
        return len(self._where) > 0

    def still(self, remembered: Remembered, *, scored_alike: bool) -> Remembered | None:
        """What planning on ``after`` would give, if ``remembered`` tells it (see the module's
        docstring); None if it must be planned again."""
        result = remembered.result
        if read_scores(result) and not scored_alike:
            return None
        touched = remembered.rows[self._where]
        if not touched.any():
            return remembered
        request = remembered.request
        if request is None or not isinstance(result, Unplaceable) or result.read_scores:
            return None
        before, after = self._first_failures(request)
        reason = result.reason
        if not np.array_equal(np.sort(before[touched]), np.sort(after[touched])):
            # The nodes counted under each reason changed. No node had room for the first replica;
            # none has now if every changed row still fails a check (a node with room now counts
            # under none: planned again), and the verdict stands, its counts said anew (plan_gang's
            # "... ({counts})"). A row whose readiness changed is planned again: the empty-cluster
            # check reads readiness.
            rows = self._where[touched]
            if (after[touched] < 0).any() or (self.before.ready[rows] != self.after.ready[rows]).any():
                return None
            counted, recounted = self._counts(request, remembered.rows)
            if reason.count(f"({counted})") != 1:
                return None
            reason = reason.replace(f"({counted})", f"({recounted})")
        was, now = self._largest_blocks(request, remembered.rows)
        if was != now:
            # Its reason names the largest free block (plan_gang's "{job}: {needs}; {block}; ..."),
            # which is said anew.
            if reason.count(f"; {was}; ") != 1:
                return None
            reason = reason.replace(f"; {was}; ", f"; {now}; ")
        if reason == result.reason:
            return remembered
        return replace(remembered, result=replace(result, reason=reason))

    def _counts(self, request: PodRequest, rows: BoolArray) -> tuple[str, str]:
        """How many of ``rows`` fail each filter check for ``request``, before and after, as
        ``filter_nodes(...).explain()`` says it on those rows (the check orders are the same)."""
        key = (request, rows.tobytes())
        if key not in self._explained:
            before, reasons = self._earlier.failures(request)
            after, _ = self._later.failures(request)
            self._explained[key] = (_explain(before[rows], reasons), _explain(after[rows], reasons))
        return self._explained[key]

    def _largest_blocks(self, request: PodRequest, rows: BoolArray) -> tuple[str, str]:
        rows_key = rows.tobytes()
        was, now = self._earlier.block(request, rows, rows_key), self._later.block(request, rows, rows_key)
        return describe_block(was), describe_block(now)

    def _first_failures(self, request: PodRequest) -> tuple[IntArray, IntArray]:
        """Per changed row, the first filter check it fails for ``request`` (-1: none), before and after."""
        if request not in self._failures:
            if self._stacked is None:
                self._stacked = _stacked(self.before, self.after, self._where)
            first, _ = first_failures(self._stacked, request)
            count = len(self._where)
            self._failures[request] = (first[:count], first[count:])
        return self._failures[request]


def _explain(first: IntArray, reasons: tuple[Rejection, ...]) -> str:
    """``FilterResult.explain()`` from each row's first failure (-1: none)."""
    counts = np.bincount(first + 1, minlength=len(reasons) + 1)[1:].tolist()
    said = [f"{count} × {reason.value}" for reason, count in zip(reasons, counts, strict=True) if count]
    return "; ".join(said) if said else "no node filtered out"


def _stacked(before: NodeTable, after: NodeTable, where: IntArray) -> NodeTable:
    """The rows ``where`` of ``before``, then the same rows of ``after``, as one table: a filter
    check reads each row alone, so one pass over both says what a pass over each would (a few
    rows of a large table, taken without walking all its names)."""
    columns: dict[str, Any] = {
        item.name: np.concatenate((getattr(before, item.name)[where], getattr(after, item.name)[where]))
        for item in fields(before)
        if isinstance(getattr(before, item.name), np.ndarray)
    }
    names = tuple(before.names[row] for row in where.tolist())
    return replace(before, names=names + names, sorted_by_name=False, **columns)
