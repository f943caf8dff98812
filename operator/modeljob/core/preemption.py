"""Preemption: which whole running jobs to evict so a waiting job fits, losing least work, never thrashing.

Victims are released in a working copy of the one capacity ledger (``NodeTable``) and the
waiting job's own fit test (normally its gang plan) says when there is room, so "fits after
eviction" means exactly what the planner will find. Jobs are evicted whole: a candidate is a
job with all its pods, released and put back together.

Why it cannot thrash (each rule is checked by ``eligibility``, the property tests hold it):

* ``min_runtime_seconds``: a job is a candidate only after running that long since its start,
  so it is preempted at most ``day / min_runtime`` times a day;
* the chain rule: a job never preempts one that preempted it, directly or through others
  (``PreemptionHistory.preempted_before``), so the who-preempted-whom graph has no cycle;
* a bound on victims per cycle (``max_victims_per_cycle``);
* hysteresis on remaining time: under ``ShorterRemainingTime`` a job of equal priority is a
  victim only when its remaining time exceeds the preemptor's by ``remaining_time_margin``,
  and the preemptor's only shrinks as it runs, so the victim can never turn the tables.

Time-slice turns are not preemptions in the chain sense (round-robin is a cycle by design):
they need a whole slice of running, which bounds them instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from modeljob.core.gang_placement import GangRequest, Placement, plan_gang
from modeljob.core.nodes import MILLI_PER_DEVICE, NodeTable, PodRequest
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights

SECONDS_PER_HOUR = 3600.0
# The preemptor must need at least this fraction less time than its victim (0.25: 25% less).
DEFAULT_REMAINING_TIME_MARGIN = 0.25
DEFAULT_MAX_VICTIMS_PER_CYCLE = 16

FitTest = Callable[[NodeTable], bool]


class WithinQueue(StrEnum):
    NEVER = "Never"
    LOWER_PRIORITY = "LowerPriority"
    SHORTER_REMAINING_TIME = "ShorterRemainingTime"


class PreemptionReason(StrEnum):
    LOWER_PRIORITY = "LowerPriority"
    SHORTER_REMAINING_TIME = "ShorterRemainingTime"
    RECLAIM_BORROWED = "ReclaimBorrowed"
    TIME_SLICE = "TimeSlice"


class VictimOrder(StrEnum):
    """Which candidates are tried first; both end with the same reverse pass."""

    LEAST_LOST_WORK = "least-lost-work"  # fewest GPU-hours lost first (ours)
    KUEUE_LIKE = "kueue-like"  # borrowers first, lowest priority, most recently started


@dataclass(frozen=True, slots=True)
class PreemptionRules:
    """A queue's preemption settings (``spec.preemption``) plus the cluster-wide bounds."""

    within_queue: WithinQueue = WithinQueue.NEVER
    reclaim_borrowed: bool = False
    min_runtime_seconds: float = 0.0
    remaining_time_margin: float = DEFAULT_REMAINING_TIME_MARGIN
    max_victims_per_cycle: int = DEFAULT_MAX_VICTIMS_PER_CYCLE
    time_slice_seconds: float | None = None  # with order time-slice: same-queue jobs past it yield


@dataclass(frozen=True, slots=True)
class PodSlot:
    """One running pod: where it is and what it took there (``devices`` as the ledger reserved them)."""

    node: str
    request: PodRequest
    devices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A preemption candidate: a running job with all its pods.

    ``run_before_seconds``: progress kept from earlier runs (checkpointed work before a
    preemption), counted in its remaining time. ``borrows_from_lender``: it uses quota borrowed
    from the preemptor's queue's lender (the caller's quota tree decides).
    """

    name: str
    queue: str
    priority: int
    started_at_seconds: float
    pods: tuple[PodSlot, ...]
    expected_duration_seconds: float | None = None
    run_before_seconds: float = 0.0
    checkpoint_interval_seconds: float | None = None
    borrows_from_lender: bool = False

    @property
    def gpus(self) -> float:
        """Devices held, a share counted as its fraction of a device."""
        return sum(pod.request.gpu_request_milli for pod in self.pods) / MILLI_PER_DEVICE

    def run_seconds(self, now_seconds: float) -> float:
        return max(0.0, now_seconds - self.started_at_seconds)

    def lost_seconds(self, now_seconds: float) -> float:
        """Work lost if evicted now: all of this run, or only what followed the last checkpoint."""
        run = self.run_seconds(now_seconds)
        interval = self.checkpoint_interval_seconds
        return run % interval if interval else run

    def lost_gpu_hours(self, now_seconds: float) -> float:
        return self.lost_seconds(now_seconds) * self.gpus / SECONDS_PER_HOUR

    def remaining_seconds(self, now_seconds: float) -> float | None:
        if self.expected_duration_seconds is None:
            return None
        done = self.run_before_seconds + self.run_seconds(now_seconds)
        return max(0.0, self.expected_duration_seconds - done)


@dataclass(frozen=True, slots=True)
class Preemptor:
    """The waiting job that asks for room."""

    name: str
    queue: str
    priority: int
    expected_duration_seconds: float | None = None
    run_before_seconds: float = 0.0

    @property
    def remaining_seconds(self) -> float | None:
        if self.expected_duration_seconds is None:
            return None
        return max(0.0, self.expected_duration_seconds - self.run_before_seconds)


@dataclass(frozen=True, slots=True)
class PreemptionHistory:
    """Who preempted whom among live jobs, and how often each job was preempted.

    ``edges`` holds (preemptor, victim). ``forget`` (a job finished or was deleted) links the
    job's preemptors straight to its victims, so reachability among live jobs, and with it the
    chain rule, is the same as over the whole history.
    """

    edges: frozenset[tuple[str, str]] = frozenset()
    counts: Mapping[str, int] = field(default_factory=dict)

    def preempted_before(self, job: str) -> frozenset[str]:
        """Every job that preempted ``job``, directly or through a chain of preemptions."""
        found: set[str] = set()
        frontier = [job]
        while frontier:
            victim = frontier.pop()
            for preemptor, evicted in self.edges:
                if evicted == victim and preemptor not in found:
                    found.add(preemptor)
                    frontier.append(preemptor)
        return frozenset(found)

    def record(self, preemptor: str, victims: Sequence[str], *, chained: bool = True) -> PreemptionHistory:
        """``victims`` were preempted for ``preemptor``; ``chained=False`` for time-slice turns."""
        counts = dict(self.counts)
        for victim in victims:
            counts[victim] = counts.get(victim, 0) + 1
        added = {(preemptor, victim) for victim in victims} if chained else set()
        return PreemptionHistory(edges=self.edges | added, counts=counts)

    def forget(self, job: str) -> PreemptionHistory:
        before = {p for p, v in self.edges if v == job}
        after = {v for p, v in self.edges if p == job}
        kept = {(p, v) for p, v in self.edges if job not in (p, v)}
        bridged = {(p, v) for p in before for v in after if p != v}
        counts = {name: n for name, n in self.counts.items() if name != job}
        return PreemptionHistory(edges=frozenset(kept | bridged), counts=counts)


@dataclass(frozen=True, slots=True)
class Victim:
    name: str
    reason: PreemptionReason
    lost_gpu_hours: float


@dataclass(frozen=True, slots=True)
class Preemption:
    """Evict ``victims`` (whole jobs) and ``preemptor`` fits; no victim could be spared."""

    preemptor: str
    victims: tuple[Victim, ...]

    @property
    def lost_gpu_hours(self) -> float:
        return sum(victim.lost_gpu_hours for victim in self.victims)


@dataclass(frozen=True, slots=True)
class NoPreemption:
    reason: str


def eligibility(
    preemptor: Preemptor,
    job: RunningJob,
    *,
    rules: PreemptionRules,
    preempted_before: frozenset[str],
    now_seconds: float,
) -> PreemptionReason | str:
    """The rule that lets ``preemptor`` evict ``job``, or why none does."""
    if job.run_seconds(now_seconds) < rules.min_runtime_seconds:
        return "ran less than minRuntime"
    if job.queue == preemptor.queue:
        slice_seconds = rules.time_slice_seconds
        if slice_seconds is not None and job.run_seconds(now_seconds) >= slice_seconds:
            return PreemptionReason.TIME_SLICE
    if job.name in preempted_before:
        return "preempted it earlier"
    if job.queue != preemptor.queue:
        if rules.reclaim_borrowed and job.borrows_from_lender:
            return PreemptionReason.RECLAIM_BORROWED
        return "another queue's job within its own quota"
    if rules.within_queue is WithinQueue.NEVER:
        return "withinQueue is Never"
    if job.priority < preemptor.priority:
        return PreemptionReason.LOWER_PRIORITY
    if rules.within_queue is WithinQueue.SHORTER_REMAINING_TIME and job.priority == preemptor.priority:
        return _remaining_time_rule(
            preemptor, job, margin=rules.remaining_time_margin, now_seconds=now_seconds
        )
    return "not lower priority"


def _remaining_time_rule(
    preemptor: Preemptor, job: RunningJob, *, margin: float, now_seconds: float
) -> PreemptionReason | str:
    ours = preemptor.remaining_seconds
    theirs = job.remaining_seconds(now_seconds)
    if ours is None or theirs is None:
        return "remaining time unknown"
    if ours * (1.0 + margin) < theirs:
        return PreemptionReason.SHORTER_REMAINING_TIME
    return f"remaining time not {margin:.0%} longer"


def _rank(
    order: VictimOrder, now_seconds: float
) -> Callable[[tuple[RunningJob, PreemptionReason]], tuple[object, ...]]:
    def least_lost(item: tuple[RunningJob, PreemptionReason]) -> tuple[object, ...]:
        job, _ = item
        return (job.lost_gpu_hours(now_seconds), job.gpus, job.name)

    def kueue_like(item: tuple[RunningJob, PreemptionReason]) -> tuple[object, ...]:
        job, reason = item
        return (
            reason is not PreemptionReason.RECLAIM_BORROWED,
            job.priority,
            -job.started_at_seconds,
            job.name,
        )

    return least_lost if order is VictimOrder.LEAST_LOST_WORK else kueue_like


class _Ledger:
    """A working copy of the table where whole jobs are evicted and put back."""

    def __init__(self, table: NodeTable) -> None:
        self.table = table.working_copy()
        self.row_of = {name: row for row, name in enumerate(table.names)}

    def evict(self, job: RunningJob) -> None:
        for pod in job.pods:
            self.table.release(self.row_of[pod.node], pod.request, pod.devices)

    def restore(self, job: RunningJob) -> None:
        for pod in job.pods:
            self.table.reserve(self.row_of[pod.node], pod.request, pod.devices)


def choose_victims(
    preemptor: Preemptor,
    candidates: Sequence[RunningJob],
    *,
    table: NodeTable,
    fits: FitTest,
    rules: PreemptionRules,
    history: PreemptionHistory = PreemptionHistory(),
    now_seconds: float,
    victims_left: int | None = None,
    order: VictimOrder = VictimOrder.LEAST_LOST_WORK,
) -> Preemption | NoPreemption:
    """The fewest-lost-work set of whole jobs whose eviction lets ``preemptor`` fit on ``table``.

    Candidates allowed by ``rules`` are evicted (in a working copy) in ``order`` until
    ``fits``; then a reverse pass puts back every victim the preemptor fits without, repeated
    until none can be spared. ``victims_left`` (default ``rules.max_victims_per_cycle``) bounds
    the victims of this cycle. An empty ``Preemption`` means it fits without evicting anyone.
    """
    if fits(table):
        return Preemption(preemptor=preemptor.name, victims=())
    allowed, refused = _split(preemptor, candidates, rules=rules, history=history, now_seconds=now_seconds)
    if not allowed:
        return NoPreemption(reason=f"no running job may be preempted{_tally(refused)}")
    ledger = _Ledger(table)
    chosen: list[tuple[RunningJob, PreemptionReason]] = []
    for item in sorted(allowed, key=_rank(order, now_seconds)):
        ledger.evict(item[0])
        chosen.append(item)
        if fits(ledger.table):
            break
    else:
        return NoPreemption(
            reason=f"evicting all {len(allowed)} preemptible jobs leaves no room{_tally(refused)}"
        )
    chosen = _spare_unneeded(chosen, ledger, fits)
    limit = rules.max_victims_per_cycle if victims_left is None else victims_left
    if len(chosen) > limit:
        return NoPreemption(
            reason=f"needs {len(chosen)} victims; {max(limit, 0)} preemptions left this cycle"
        )
    victims = tuple(
        Victim(name=job.name, reason=reason, lost_gpu_hours=job.lost_gpu_hours(now_seconds))
        for job, reason in sorted(chosen, key=lambda item: item[0].name)
    )
    return Preemption(preemptor=preemptor.name, victims=victims)


def _split(
    preemptor: Preemptor,
    candidates: Sequence[RunningJob],
    *,
    rules: PreemptionRules,
    history: PreemptionHistory,
    now_seconds: float,
) -> tuple[list[tuple[RunningJob, PreemptionReason]], dict[str, int]]:
    """Candidates a rule allows (with that rule), and a count of the others by why not."""
    before = history.preempted_before(preemptor.name)
    allowed: list[tuple[RunningJob, PreemptionReason]] = []
    refused: dict[str, int] = {}
    for job in candidates:
        if job.name == preemptor.name:
            continue
        verdict = eligibility(preemptor, job, rules=rules, preempted_before=before, now_seconds=now_seconds)
        if isinstance(verdict, PreemptionReason):
            allowed.append((job, verdict))
        else:
            refused[verdict] = refused.get(verdict, 0) + 1
    return allowed, refused


def _spare_unneeded(
    chosen: list[tuple[RunningJob, PreemptionReason]], ledger: _Ledger, fits: FitTest
) -> list[tuple[RunningJob, PreemptionReason]]:
    """Put back, most costly first, every victim the preemptor still fits without; repeat until
    a whole pass spares none (a greedy planner need not be monotone, so one pass may not do)."""
    victims = list(chosen)
    spared = True
    while spared:
        spared = False
        for item in reversed(list(victims)):
            ledger.restore(item[0])
            if fits(ledger.table):
                victims.remove(item)
                spared = True
            else:
                ledger.evict(item[0])
    return victims


def _tally(refused: Mapping[str, int]) -> str:
    if not refused:
        return ""
    return " (" + ", ".join(f"{count} {why}" for why, count in sorted(refused.items())) + ")"


def gang_fits(
    gang: GangRequest, *, weights: ScoringWeights = DEFAULT_WEIGHTS, context: ScoringContext | None = None
) -> FitTest:
    """The fit test of a gang: the planner finds a whole placement on the table."""

    def fits(table: NodeTable) -> bool:
        plan = plan_gang(table, gang, weights=weights, context=context, check_never_fits=False)
        return isinstance(plan, Placement)

    return fits
