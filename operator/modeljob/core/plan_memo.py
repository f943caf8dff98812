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

Across cycles (``CarriedPlans``, kept by the scheduling loop): what was planned on a type's rows
as the cycle's ledger stood before its first placement there is still the answer in a later
cycle whose ledger, as it starts, has those rows exactly as they were (their free columns
compared byte for byte), when nothing else planning reads changed either: the nodes themselves
(the ``context`` the cycle passes) and, for a result that read scores, the scoring context
(``scoring``). Any placement and any pod gone changes the scoring context (it learns from the
pods), but a verdict reached before any node was chosen (``Unplaceable.read_scores`` False:
room and rules decided it) holds under any scores, so a deep queue's "does not fit" verdicts
cost nothing until the room of their own node types changes. Memory only: a restart plans
afresh.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from modeljob.core.gang_placement import Placement, Unplaceable
from modeljob.core.node_types import Candidate, NodeType
from modeljob.core.nodes import BoolArray, NodeTable, subset

Result = Placement | Unplaceable
# A job's whole planning: the job it was made for, and per attempt the candidate's position and result.
_JobPlan = tuple[str, tuple[tuple[int, Result], ...]]
# A job's planning carried: its candidates' types, the plan, and whether any result it saw read scores.
_CarriedJob = tuple[tuple[NodeType, ...], _JobPlan, bool]


def read_scores(result: Result) -> bool:
    """Whether ``result`` may change with the scoring context (a placement always may)."""
    return isinstance(result, Placement) or result.read_scores


@dataclass(frozen=True, slots=True)
class _Remembered:
    job: str  # "namespace/name" of the job the result was planned for
    result: Result


@dataclass(eq=False)
class CarriedPlans:
    """Results planned on the ledger as a cycle started, for the next cycle (see the module's
    docstring): the ``context`` and ``scoring`` and each type's rows (``fingerprints``) they were
    planned with, and the results, by type and demand (``by_type``) and by a job's whole demand
    (``jobs``, with the types of its candidates). Each cycle keeps only what it used or made."""

    context: Hashable = None
    scoring: Hashable = None
    fingerprints: dict[NodeType, bytes] = field(default_factory=dict)
    by_type: dict[NodeType, dict[Hashable, _Remembered]] = field(default_factory=dict)
    jobs: dict[Hashable, _CarriedJob] = field(default_factory=dict)

    def start(
        self, context: Hashable, scoring: Hashable, fingerprints: dict[NodeType, bytes]
    ) -> tuple[dict[NodeType, dict[Hashable, _Remembered]], dict[Hashable, _CarriedJob]]:
        """A new cycle: what earlier cycles planned that still holds for it, handed back; the
        carried results start over from there (filled again as the cycle uses or makes them)."""
        same = {
            t
            for t, rows in fingerprints.items()
            if context == self.context and self.fingerprints.get(t) == rows
        }
        scored_alike = scoring == self.scoring
        by_type = {
            t: {k: found for k, found in results.items() if scored_alike or not read_scores(found.result)}
            for t, results in self.by_type.items()
            if t in same
        }
        jobs = {
            key: found
            for key, found in self.jobs.items()
            if all(t in same for t in found[0]) and (scored_alike or not found[2])
        }
        self.context, self.scoring, self.fingerprints = context, scoring, fingerprints
        self.by_type, self.jobs = {}, {}
        return by_type, jobs


def fingerprints(table: NodeTable, type_masks: Mapping[NodeType, BoolArray]) -> dict[NodeType, bytes]:
    """Each type's rows of ``table`` as planning reads them: their free columns and readiness
    (the rest of a row is the node's own, compared with the nodes)."""
    return {
        node_type: b"".join(
            column[rows].tobytes()
            for column in (
                table.cpu_free_milli,
                table.memory_free_bytes,
                table.storage_free_bytes,
                table.gpu_free_milli,
                table.ready,
            )
        )
        for node_type, rows in type_masks.items()
    }


@dataclass(eq=False)
class PlanMemo:
    """Results planned on ``table`` (the cycle's ledger), by node type, then by demand; with
    ``carried``, also those of earlier cycles that still hold (``context``: what planning reads
    of the nodes and settings, equal only when it is; ``scoring``: the scoring context, which only
    results that read scores depend on; ``type_masks``: each type's rows). ``scored``: how many
    results seen so far read scores (``Planner.attempts`` tells a job's planning by it)."""

    table: NodeTable
    node_type_of: dict[str, NodeType | None]  # node name -> its type: what a placement touched
    carried: CarriedPlans | None = None
    context: Hashable = None
    scoring: Hashable = None
    type_masks: Mapping[NodeType, BoolArray] = field(default_factory=dict)
    scored: int = 0
    _by_type: dict[NodeType, dict[Hashable, _Remembered]] = field(default_factory=dict)
    _subsets: dict[NodeType, dict[bytes, NodeTable]] = field(default_factory=dict)
    _epochs: dict[NodeType, int] = field(default_factory=dict)  # placements on each type so far
    # A job's whole planning, by its demand: the epochs of its candidates' types it was made at,
    # the job it was made for, per attempt the candidate's position and the result,
    # and whether any result its planning saw read scores.
    _jobs: dict[Hashable, tuple[tuple[int, ...], str, tuple[tuple[int, Result], ...], bool]] = field(
        default_factory=dict
    )
    # What earlier cycles planned that holds on this ledger as it started (before any placement).
    _earlier_by_type: dict[NodeType, dict[Hashable, _Remembered]] = field(default_factory=dict)
    _earlier_jobs: dict[Hashable, _CarriedJob] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.carried is not None:
            rows = fingerprints(self.table, self.type_masks)
            self._earlier_by_type, self._earlier_jobs = self.carried.start(self.context, self.scoring, rows)

    def saw(self, result: Result) -> None:
        """A result planned or recalled for the job being planned (counted if it read scores)."""
        if read_scores(result):
            self.scored += 1

    def _unplaced(self, types: Iterable[NodeType]) -> bool:
        """No placement on any of ``types`` yet this cycle: their rows are as the cycle started."""
        return not self._epochs or all(self._epochs.get(t, 0) == 0 for t in types)

    def _at(self, types: Sequence[NodeType]) -> tuple[int, ...]:
        """The placements so far on each of ``types``: what a result planned now was planned at."""
        if not self._epochs:
            return (0,) * len(types)
        return tuple(self._epochs.get(t, 0) for t in types)

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
        if found is None and self._unplaced((node_type,)):
            found = self._earlier_by_type.get(node_type, {}).get(key)
            if found is not None:
                self._keep(node_type, key, found)
        return None if found is None else _renamed(found.result, found.job, job)

    def remember(self, node_type: NodeType, key: Hashable, job: str, result: Result) -> None:
        if _renameable(result, job):
            self._keep(node_type, key, _Remembered(job, result))

    def _keep(self, node_type: NodeType, key: Hashable, found: _Remembered) -> None:
        self._by_type.setdefault(node_type, {})[key] = found
        if self.carried is not None and self._unplaced((node_type,)):
            self.carried.by_type.setdefault(node_type, {})[key] = found

    def recall_job(
        self, key: Hashable, types: Sequence[NodeType], job: str
    ) -> list[tuple[int, Result]] | None:
        """A job's attempts remembered by its demand (candidate positions and results), if no
        placement on any of its ``types`` came since."""
        found = self._jobs.get(key)
        if found is None or found[0] != self._at(types):
            earlier = self._earlier_jobs.get(key) if self._unplaced(types) else None
            if earlier is None or earlier[0] != tuple(types):
                return None
            self._keep_job(key, types, *earlier[1], read=earlier[2])
            found = self._jobs[key]
        _, planned_for, attempts, read = found
        if read:
            self.scored += 1
        return [(index, _renamed(result, planned_for, job)) for index, result in attempts]

    def remember_job(
        self,
        key: Hashable,
        types: Sequence[NodeType],
        job: str,
        attempts: Sequence[tuple[int, Result]],
        *,
        read: bool,
    ) -> None:
        """``read``: whether any result the job's planning saw (not only those kept) read scores."""
        if all(_renameable(result, job) for _, result in attempts):
            self._keep_job(key, types, job, tuple(attempts), read=read)

    def _keep_job(
        self,
        key: Hashable,
        types: Sequence[NodeType],
        job: str,
        attempts: tuple[tuple[int, Result], ...],
        *,
        read: bool,
    ) -> None:
        self._jobs[key] = (self._at(types), job, attempts, read)
        if self.carried is not None and self._unplaced(types):
            self.carried.jobs[key] = (tuple(types), (job, attempts), read)

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
        return replace(result, reason=job + result.reason[len(planned_for) :])
    return result
