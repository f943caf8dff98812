"""Plans remembered within one cycle: a job that asks what an earlier job asked, of the same nodes
of an unchanged ledger, gets the earlier job's result without planning it again.

A deep queue holds thousands of jobs of a few shapes, and once the first of a shape finds no room
every other one would be planned, node by node, to the same "no room": this is what keeps a cycle
of 10,000 queued jobs short. Planning is deterministic, so the result depends only on what the key
holds: the node type and the request sized for it, the pods per replica and their topology, how
many replicas, the nodes the job may use, and its pod rules where they can matter (a job whose
rules look at other pods, or with pods of its own placed, is never remembered). The job's name,
the one part of a result that differs, is put in each time.

Only a plan on the cycle's own ledger is remembered, and a placement on a node of one type forgets
every result for that type (the rows other types plan on did not change).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from modeljob.core.gang_placement import Placement, Unplaceable
from modeljob.core.node_types import Candidate, NodeType
from modeljob.core.nodes import BoolArray, NodeTable, subset

Result = Placement | Unplaceable


@dataclass(frozen=True, slots=True)
class _Remembered:
    job: str  # "namespace/name" of the job the result was planned for
    result: Result


@dataclass(eq=False)
class PlanMemo:
    """Results planned on ``table`` (the cycle's ledger), by node type, then by demand."""

    table: NodeTable
    node_type_of: dict[str, NodeType | None]  # node name -> its type: what a placement touched
    _by_type: dict[NodeType, dict[Hashable, _Remembered]] = field(default_factory=dict)
    _subsets: dict[NodeType, dict[bytes, NodeTable]] = field(default_factory=dict)
    _epochs: dict[NodeType, int] = field(default_factory=dict)  # placements on each type so far
    # A job's whole planning, by its demand: the epochs of its candidates' types it was made at,
    # the job it was made for, and per attempt the candidate's position and the result.
    _jobs: dict[Hashable, tuple[tuple[int, ...], str, tuple[tuple[int, Result], ...]]] = field(
        default_factory=dict
    )

    def key(
        self,
        candidate: Candidate,
        *,
        replicas: int,
        eligible: BoolArray,
        rules: Hashable,
        topology: Hashable,
    ) -> Hashable:
        return (
            candidate.request,
            candidate.pods_per_replica,
            replicas,
            eligible.tobytes(),
            rules,
            topology,
        )

    def recall(self, node_type: NodeType, key: Hashable, job: str) -> Result | None:
        found = self._by_type.get(node_type, {}).get(key)
        return None if found is None else _renamed(found.result, found.job, job)

    def remember(self, node_type: NodeType, key: Hashable, job: str, result: Result) -> None:
        if _renameable(result, job):
            self._by_type.setdefault(node_type, {})[key] = _Remembered(job, result)

    def recall_job(
        self, key: Hashable, types: Sequence[NodeType], job: str
    ) -> list[tuple[int, Result]] | None:
        """A job's attempts remembered by its demand (candidate positions and results), if no
        placement on any of its ``types`` came since."""
        found = self._jobs.get(key)
        if found is None or found[0] != tuple(self._epochs.get(t, 0) for t in types):
            return None
        _, planned_for, attempts = found
        return [(index, _renamed(result, planned_for, job)) for index, result in attempts]

    def remember_job(
        self, key: Hashable, types: Sequence[NodeType], job: str, attempts: Sequence[tuple[int, Result]]
    ) -> None:
        if all(_renameable(result, job) for _, result in attempts):
            epochs = tuple(self._epochs.get(t, 0) for t in types)
            self._jobs[key] = (epochs, job, tuple(attempts))

    def subset(self, node_type: NodeType, rows: BoolArray) -> NodeTable:
        """``subset(table, rows)`` of the rows of ``node_type``, kept until a placement there."""
        by_rows = self._subsets.setdefault(node_type, {})
        key = rows.tobytes()
        if key not in by_rows:
            by_rows[key] = subset(self.table, rows)
        return by_rows[key]

    def placed_on(self, nodes: Iterable[str]) -> None:
        """A placement was reserved on ``nodes``: what was planned on their types no longer holds."""
        for node in nodes:
            node_type = self.node_type_of.get(node)
            if node_type is not None:
                self._by_type.pop(node_type, None)
                self._subsets.pop(node_type, None)
                self._epochs[node_type] = self._epochs.get(node_type, 0) + 1


def _renameable(result: Result, job: str) -> bool:
    """Only a reason that names the job once, at its start, can be given another job's name."""
    return not isinstance(result, Unplaceable) or (
        result.reason.startswith(f"{job}:") and result.reason.count(job) == 1
    )


def _renamed(result: Result, planned_for: str, job: str) -> Result:
    if isinstance(result, Unplaceable) and planned_for != job:
        return Unplaceable(reason=job + result.reason[len(planned_for) :], never_fits=result.never_fits)
    return result
