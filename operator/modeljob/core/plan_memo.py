"""Plans remembered within one cycle and carried to the next: a job that asks what an earlier
job asked, of the same nodes of a ledger that has not changed where it matters, gets the earlier
job's result without planning it again.

A deep queue holds thousands of jobs of a few shapes, and once the first of a shape finds no room
every other one would be planned, node by node, to the same "no room": this is what keeps a cycle
of 10,000 queued jobs short. Planning is deterministic, so the result depends only on what the key
holds: the node type and the request sized for it, the pods per replica and their topology, how
many replicas, the nodes the job may use, and its pod rules where they can matter (a job whose
rules look at other pods, or with pods of its own placed, is never remembered). The job's name,
the one part of a result that differs, is put in each time.

Only a plan on the cycle's own ledger is remembered. Each result keeps the rows it read; when the
ledger changes (a placement this cycle, or anything between cycles: pods bound, finished, moved),
core/plan_validity.py says which results still hold: those whose rows did not change, and "does
not fit" verdicts that room alone decided where the change left the verdict as it was. Across
cycles, what still holds on the next cycle's ledger is handed over by core/plan_carry.py
(``CarriedPlans``, kept by the scheduling loop). Memory only: a restart plans afresh.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from modeljob.core.gang_placement import FirstReplicaFailure
from modeljob.core.gang_request import Unplaceable
from modeljob.core.node_types import Candidate, NodeType
from modeljob.core.nodes import BoolArray, NodeTable, PodRequest, subset
from modeljob.core.plan_carry import ByType, CarriedJob, CarriedPlans, Deferred, EmptyFits, Part
from modeljob.core.plan_validity import (
    LedgerChange,
    LedgerFacts,
    Remembered,
    Result,
    changed_rows,
    read_scores,
)

__all__ = ["PlanMemo", "read_scores", "renameable", "renamed"]

# A job's planning kept within a cycle (PlanMemo._jobs says what each part is).
_KeptJob = tuple[
    int, tuple[int, ...], tuple[NodeType, ...], str, tuple[tuple[int, Result], ...], bool, tuple[Part, ...]
]
# Placements in one cycle after which what was planned on a type is forgotten at a placement
# there rather than checked again (``PlanMemo.placed_on``). A live queue's cycle places a few;
# a cycle that places hundreds would check each type's results hundreds of times (~2 ms each
# time on 5,000 nodes), and a plan made again costs about as much as one such check.
RECHECKED_PLACEMENTS = 32
_MASKS_KEPT = 64


@dataclass(eq=False)
class PlanMemo:
    """Results planned on ``table`` (the cycle's ledger), by node type, then by demand; with
    ``carried``, also those of earlier cycles that still hold (``context``: what planning reads
    of the nodes and settings, equal only when it is; ``scoring``: the scoring context, which only
    results that read scores depend on; ``type_masks``: each type's rows). ``scored``: how many
    results seen so far read scores (``Planner.attempts`` tells a job's planning by it).
    ``close()`` at the end of the cycle hands what held on to ``carried``."""

    table: NodeTable
    node_type_of: dict[str, NodeType | None]  # node name -> its type: what a placement touched
    carried: CarriedPlans | None = None
    context: Hashable = None
    scoring: Hashable = None
    type_masks: Mapping[NodeType, BoolArray] = field(default_factory=dict)
    scored: int = 0
    _by_type: ByType = field(default_factory=dict)
    _subsets: dict[NodeType, dict[bytes, NodeTable]] = field(default_factory=dict)
    _epochs: dict[NodeType, int] = field(default_factory=dict)  # placements on each type so far
    # A job's whole planning, by its demand: the stamp and the epochs of its candidates' types it
    # was made (or last found to hold) at, those types, the job it was made for, per attempt the
    # candidate's position and the result, whether any result its planning saw read scores, and
    # the results by type and demand it was made of.
    _jobs: dict[Hashable, _KeptJob] = field(default_factory=dict)
    _reading: list[Part] | None = None  # the results a job's planning read so far (``begin_job``)
    # Moves with every epoch: an entry made at this stamp holds without counting its types' epochs.
    _stamp: int = 0
    # Earlier cycles' results that hold on the ledger (checked again at each placement), used
    # (and so carried on) only if a job asks.
    _earlier_by_type: ByType = field(default_factory=dict)
    _earlier_jobs: dict[Hashable, CarriedJob] = field(default_factory=dict)
    _empty: EmptyFits = field(default_factory=dict)  # as _by_type and _earlier_by_type
    _earlier_empty: EmptyFits = field(default_factory=dict)
    _deferred: Deferred | None = None  # earlier verdicts that may hold again (``Deferred``)
    # This cycle's first-replica failures, by type and demand of any replica count, each with the
    # placements on its type it was found at (first_failure): never carried to the next cycle.
    _first: dict[tuple[NodeType, Hashable], tuple[int, FirstReplicaFailure]] = field(default_factory=dict)
    _planned_on: NodeTable = field(init=False)  # the ledger as the results kept were checked on
    _planned_facts: LedgerFacts | None = None  # what the last recheck read of _planned_on
    _placements: int = 0  # placements this cycle
    # Each node mask's bytes, by the array (held here, so its id is not another's): thousands of
    # jobs share the few masks the cycle keeps (Cluster.usable), each 5,000 bytes on 5,000 nodes.
    _masks: dict[int, tuple[BoolArray, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._planned_on = self.table.working_copy()
        if self.carried is not None:
            (
                self._earlier_by_type,
                self._earlier_jobs,
                self._earlier_empty,
                self._deferred,
                self._planned_facts,
            ) = self.carried.start(
                self._planned_on, context=self.context, scoring=self.scoring, type_masks=self.type_masks
            )

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

    def mask_key(self, mask: BoolArray) -> bytes:
        """``mask.tobytes()``, worked out once per array: what a key holds of the nodes a job may use.
        Masks are never written in place (the cycle makes a new one for a change)."""
        found = self._masks.get(id(mask))
        if found is None or found[0] is not mask:
            if len(self._masks) >= _MASKS_KEPT:  # a caller making a mask per job: no use keeping them
                self._masks.clear()
            found = self._masks[id(mask)] = (mask, mask.tobytes())
        return found[1]

    def key(
        self,
        candidate: Candidate,
        *,
        replicas: int | None,
        eligible: BoolArray,
        rules: Hashable,
        topology: Hashable = None,
    ) -> Hashable:
        """What a plan of ``candidate`` reads of the job (``replicas`` None: any replica count)."""
        return (
            candidate.request,
            candidate.pods_per_replica,
            replicas,
            self.mask_key(eligible),
            rules,
            topology,
        )

    def first_failure(self, node_type: NodeType, key: Hashable) -> FirstReplicaFailure | None:
        """A plan's failure at its first replica on ``node_type`` (``key``: of any replica count),
        if no placement on that type came since (``plan_gang_with``'s ``first``)."""
        found = self._first.get((node_type, key))
        if found is None or found[0] != self._epochs.get(node_type, 0):
            return None
        return found[1]

    def remember_first_failure(
        self, node_type: NodeType, key: Hashable, failure: FirstReplicaFailure
    ) -> None:
        """``failure``, found on ``node_type``'s rows as they are now, for the gangs of ``key``."""
        self._first[(node_type, key)] = (self._epochs.get(node_type, 0), failure)

    def recall(self, node_type: NodeType, key: Hashable, job: str) -> Result | None:
        found = self._by_type.get(node_type, {}).get(key)
        if self._reading is not None:
            self._reading.append((node_type, key))
        if found is None:
            found = self._carry(node_type, key)
        # A deferred verdict did not hold on the rows as the cycle started (CarriedPlans.start
        # checked it there): only a placement on its type since can make it hold.
        if found is None and self._deferred is not None and self._epochs.get(node_type):
            found = self._deferred.take(node_type, key, self.table, self._stamp)
            if found is not None:
                self._by_type.setdefault(node_type, {})[key] = found
        return None if found is None else renamed(found.result, found.job, job)

    def _carry(self, node_type: NodeType, key: Hashable) -> Remembered | None:
        """An earlier cycle's result of ``key`` on ``node_type``, used now: this cycle's from here
        on, and so carried to the next."""
        found = self._earlier_by_type.get(node_type, {}).pop(key, None)
        if found is not None:
            self._by_type.setdefault(node_type, {})[key] = found
        return found

    def fits_empty(self, node_type: NodeType, key: Hashable) -> bool | None:
        """Whether the demand ``key`` fits its rows of ``node_type`` with every node emptied, if a
        verdict that read no scores told it (plan_gang's ``fits_empty``): that reads only the
        nodes' allocatable and readiness, the same while ``context`` is, placements or not."""
        found = self._empty.get((node_type, key))
        if found is None:
            found = self._earlier_empty.pop((node_type, key), None)
            if found is not None:
                self._empty[(node_type, key)] = found
        return found

    def remember_empty(self, node_type: NodeType, key: Hashable, result: Result) -> None:
        if isinstance(result, Unplaceable) and not result.read_scores:
            self._empty[(node_type, key)] = not result.never_fits

    def remember(
        self,
        node_type: NodeType,
        key: Hashable,
        job: str,
        result: Result,
        *,
        rows: BoolArray,
        request: PodRequest | None,
    ) -> None:
        """``result`` planned for ``job`` on ``rows`` of the ledger; ``request``: its pod request
        where room alone can be checked again (core/plan_validity.py), else None."""
        if self._reading is not None:
            self._reading.append((node_type, key))
        if renameable(result, job):
            self._by_type.setdefault(node_type, {})[key] = Remembered(job, result, rows, request)

    def recall_job(
        self, key: Hashable, types: Sequence[NodeType]
    ) -> tuple[str, tuple[tuple[int, Result], ...]] | None:
        """A job's attempts remembered by its demand, if no placement on any of its ``types`` came
        since: the job they were planned for (whose name an Unplaceable's reason holds: ``renamed``
        gives another job's), and per attempt the candidate's position and result."""
        found = self._jobs.get(key)
        if found is not None and found[0] != self._stamp:
            if found[1] == self._at(types):  # placements since, none on its types: it holds
                found = self._jobs[key] = (self._stamp, *found[1:])
            else:
                found = None
        if found is None:
            earlier = self._earlier_jobs.get(key) if self._unplaced(types) else None
            if earlier is None or earlier[0] != tuple(types):
                return None
            self._keep_job(key, types, *earlier[1], read=earlier[2])
            found = self._jobs[key]
            self._use(found[6])
        _, _, _, planned_for, attempts, read, _ = found
        if read:
            self.scored += 1
        return planned_for, attempts

    def remember_job(
        self,
        key: Hashable,
        types: Sequence[NodeType],
        job: str,
        attempts: Sequence[tuple[int, Result]],
        *,
        read: bool,
    ) -> None:
        """``read``: whether any result the job's planning saw (not only those kept) read scores.
        Kept with the results by type and demand its planning read since ``begin_job``."""
        parts, self._reading = tuple(dict.fromkeys(self._reading or ())), None
        if all(renameable(result, job) for _, result in attempts):
            self._keep_job(key, types, job, tuple(attempts), parts, read=read)

    def begin_job(self) -> None:
        """A job's planning starts: the results by type and demand it reads from here on are what
        its whole planning (``remember_job``) is made of."""
        self._reading = []

    def _use(self, parts: Iterable[Part]) -> None:
        """A job's whole planning, carried from the last cycle, is used: so are the results it was
        made of (else, unused themselves, they would not be carried on, and a change to its rows
        later would plan its jobs afresh rather than check them: every demand, after a quiet spell)."""
        for node_type, key in parts:
            self._carry(node_type, key)
            self.fits_empty(node_type, key)  # asking carries its emptied-nodes answer on too

    def _keep_job(
        self,
        key: Hashable,
        types: Sequence[NodeType],
        job: str,
        attempts: tuple[tuple[int, Result], ...],
        parts: tuple[Part, ...],
        *,
        read: bool,
    ) -> None:
        self._jobs[key] = (self._stamp, self._at(types), tuple(types), job, attempts, read, parts)

    def subset(self, node_type: NodeType, rows: BoolArray) -> NodeTable:
        """``subset(table, rows)`` of the rows of ``node_type``, kept until a placement there."""
        by_rows = self._subsets.setdefault(node_type, {})
        key = rows.tobytes()
        if key not in by_rows:
            by_rows[key] = subset(self.table, rows)
        return by_rows[key]

    def placed_on(self, nodes: Iterable[str]) -> None:
        """A placement was reserved on ``nodes``: what was planned on their types holds only
        where core/plan_validity.py says it does. A cycle that places many jobs (the first one,
        or one after a large node freed) forgets instead, past ``RECHECKED_PLACEMENTS``: checking
        every result of a type at each placement would cost it more than the plans it saves."""
        touched = {t for node in nodes if (t := self.node_type_of.get(node)) is not None}
        if touched:
            self._placements += 1
            self._recheck(touched, forget=self._placements > RECHECKED_PLACEMENTS)

    def _recheck(self, types: set[NodeType], *, forget: bool = False) -> None:
        """Keep of ``types``' results what holds on the ledger now (none, with ``forget``), and
        make their subsets anew."""
        # The ledger now, as a copy: the ``before`` of the next placement's recheck, whose facts
        # (largest blocks, filter checks) this one works out as its ``after``.
        now = self.table.working_copy()
        change = None if forget else LedgerChange(self._planned_on, now, known=self._planned_facts)
        for node_type in types:
            for results in (self._by_type, self._earlier_by_type):
                kept: dict[Hashable, Remembered] = {}
                for key, found in results.pop(node_type, {}).items():
                    still = None if change is None else change.still(found, scored_alike=True)
                    if still is not None:
                        kept[key] = still
                if kept:
                    results[node_type] = kept
            self._subsets.pop(node_type, None)
            self._epochs[node_type] = self._epochs.get(node_type, 0) + 1
        self._stamp += 1
        self._planned_on, self._planned_facts = now, None if change is None else change.later

    def close(self) -> None:
        """The cycle is over: what holds on its ledger as it ends is left for the next."""
        if self.carried is None:
            return
        # Every change to the ledger comes with a placement; should one not, it is caught here.
        changed = changed_rows(self._planned_on, self.table)
        if changed.any():
            self._recheck({t for t, mask in self.type_masks.items() if changed[mask].any()})
        # As the last recheck left it: the ledger now, and the facts its checks read of it.
        self.carried.ledger, self.carried.facts = self._planned_on, self._planned_facts
        self.carried.by_type, self.carried.empty = self._by_type, self._empty
        self.carried.jobs = {
            key: (types, (job, attempts, parts), read)
            for key, (_, at, types, job, attempts, read, parts) in self._jobs.items()
            if at == self._at(types)
        }


def renameable(result: Result, job: str) -> bool:
    """Only a reason that names the job once, at its start, can be given another job's name."""
    return not isinstance(result, Unplaceable) or (
        result.reason.startswith(f"{job}:") and result.reason.count(job) == 1
    )


def renamed(result: Result, planned_for: str, job: str) -> Result:
    """``result``, planned for ``planned_for``, as ``job``'s: an Unplaceable's reason names the job."""
    if isinstance(result, Unplaceable) and planned_for != job:
        # Built directly: dataclasses.replace costs more than the rest of a recall together.
        reason = job + result.reason[len(planned_for) :]
        return Unplaceable(reason=reason, never_fits=result.never_fits, read_scores=result.read_scores)
    return result
