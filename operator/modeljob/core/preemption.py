"""Preemption: which whole running jobs to evict so a waiting job fits, losing least work (or,
for ``ShorterRemainingTime``, taking the jobs with the most time left).

Victims are released in a working copy of the one capacity ledger (``NodeTable``) and the
waiting job's own fit test (normally its gang plan) says when there is room, so "fits after
eviction" means exactly what the planner will find. Jobs are evicted whole: a candidate is a
job with all its pods, released and put back together. Who may be a victim, and why that cannot
thrash: ``preemption_rules``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, Placement
from modeljob.core.nodes import NodeTable
from modeljob.core.preemption_rules import (
    NO_HISTORY,
    PreemptionHistory,
    PreemptionReason,
    PreemptionRules,
    Preemptor,
    RunningJob,
    eligibility,
)
from modeljob.core.quota import QuotaTest
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights

# How many nodes the victim search focuses on in turn (each costs one greedy pass).
MAX_FOCUS_NODES = 8

FitTest = Callable[[NodeTable], bool]


class VictimOrder(StrEnum):
    """Which candidates are tried first; both end with the same reverse pass."""

    # Ours: fewest GPU-hours lost first; jobs allowed only by ShorterRemainingTime last, the
    # longest remaining expected time first.
    LEAST_LOST_WORK = "least-lost-work"
    KUEUE_LIKE = "kueue-like"  # borrowers first, lowest priority, most recently started


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


_Allowed = tuple[RunningJob, PreemptionReason]  # a candidate and the rule that allows it


def _rank(order: VictimOrder, now_seconds: float) -> Callable[[_Allowed], tuple[object, ...]]:
    def ours(item: _Allowed) -> tuple[object, ...]:
        job, reason = item
        lost = (job.lost_gpu_hours(now_seconds), job.gpus, job.name)
        if reason is not PreemptionReason.SHORTER_REMAINING_TIME:
            return (0, 0.0, *lost)
        # The rule's own choice: the job with the longest remaining expected time (the rule
        # needs it known), after every job another rule allows (a lower priority, borrowed quota
        # or a used time slice is a stronger claim than an equal peer's remaining time).
        return (1, -(job.remaining_seconds(now_seconds) or 0.0), *lost)

    def kueue_like(item: _Allowed) -> tuple[object, ...]:
        job, reason = item
        return (
            reason is not PreemptionReason.RECLAIM_BORROWED,
            job.priority,
            -job.started_at_seconds,
            job.name,
        )

    return ours if order is VictimOrder.LEAST_LOST_WORK else kueue_like


class _Ledger:
    """A working copy of the table where whole jobs are evicted and put back."""

    def __init__(self, table: NodeTable) -> None:
        self.table = table.working_copy()
        self.row_of = {name: row for row, name in enumerate(table.names)}
        self.evicted: set[str] = set()

    def evict(self, job: RunningJob) -> None:
        self.evicted.add(job.name)
        for pod in job.pods:
            self.table.release(self.row_of[pod.node], pod.request, pod.devices)

    def restore(self, job: RunningJob) -> None:
        self.evicted.discard(job.name)
        for pod in job.pods:
            self.table.reserve(self.row_of[pod.node], pod.request, pod.devices)


def choose_victims(
    preemptor: Preemptor,
    candidates: Sequence[RunningJob],
    *,
    table: NodeTable,
    fits: FitTest,
    rules: PreemptionRules,
    history: PreemptionHistory = NO_HISTORY,
    now_seconds: float,
    victims_left: int | None = None,
    order: VictimOrder = VictimOrder.LEAST_LOST_WORK,
    admits: QuotaTest | None = None,
    unfit_now: bool = False,
) -> Preemption | NoPreemption:
    """The set of whole jobs whose eviction lets ``preemptor`` fit on ``table``, losing the
    fewest GPU-hours of work; under ``ShorterRemainingTime`` the jobs with the longest remaining
    expected time (ties by fewest GPU-hours lost).

    Candidates allowed by ``rules`` are evicted (in a working copy) in ``order`` until
    ``fits``; then a reverse pass puts back every victim the preemptor fits without, repeated
    until none can be spared. ``victims_left`` (default ``rules.max_victims_per_cycle``) bounds
    the victims of this cycle. An empty ``Preemption`` means it fits without evicting anyone.
    ``admits``, when given, must also hold: the preemptor's quota admits it once the victims'
    charges are released (quota is taken back by the same whole-job evictions).
    ``unfit_now``: the caller knows the check fails without evictions (the job was just planned
    on this table and not placed, or its quota refuses it as it is), so it is not tried again:
    the cycle asks for every admitted job it could not place.
    """
    check = _and_quota(fits, admits)
    if not unfit_now and check(_Ledger(table)):
        return Preemption(preemptor=preemptor.name, victims=())
    allowed, refused = _split(preemptor, candidates, rules=rules, history=history, now_seconds=now_seconds)
    if not allowed:
        return NoPreemption(reason=f"no running job may be preempted{_tally(refused)}")
    ranked = sorted(allowed, key=_rank(order, now_seconds))
    tries = [ranked] if order is VictimOrder.KUEUE_LIKE else _node_first_orders(ranked)
    plans = [plan for attempt in tries if (plan := _evict_until_fit(attempt, table, check)) is not None]
    if not plans:
        return NoPreemption(
            reason=f"evicting all {len(allowed)} preemptible jobs leaves no room{_tally(refused)}"
        )
    chosen = min(plans, key=lambda plan: _cost(plan, now_seconds))
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
) -> tuple[list[_Allowed], dict[str, int]]:
    """Candidates a rule allows (with that rule), and a count of the others by why not."""
    before = history.preempted_before(preemptor.name)
    allowed: list[_Allowed] = []
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


def _node_first_orders(ranked: list[_Allowed]) -> list[list[_Allowed]]:
    """The cheapest-first order, then for each node hosting a candidate (at most
    ``MAX_FOCUS_NODES``, cheapest first) that node's candidates first: cheapest-first alone may
    free a little on many nodes before it frees enough on one."""
    tries = [ranked]
    nodes = list(dict.fromkeys(pod.node for job, _ in ranked for pod in job.pods))[:MAX_FOCUS_NODES]
    for node in nodes:
        here = [item for item in ranked if any(pod.node == node for pod in item[0].pods)]
        tries.append(here + [item for item in ranked if item not in here])
    return tries


def _evict_until_fit(
    ranked: list[_Allowed], table: NodeTable, fits: Callable[[_Ledger], bool]
) -> list[_Allowed] | None:
    """Evict in ``ranked`` order until ``fits``, then spare whoever is not needed; None: never fits."""
    ledger = _Ledger(table)
    chosen: list[_Allowed] = []
    for item in ranked:
        ledger.evict(item[0])
        chosen.append(item)
        if fits(ledger):
            return _spare_unneeded(chosen, ledger, fits)
    return None


def _and_quota(fits: FitTest, admits: QuotaTest | None) -> Callable[[_Ledger], bool]:
    """The fit test on a ledger's table, and the quota test over the jobs it has evicted."""

    def check(ledger: _Ledger) -> bool:
        return (admits is None or admits(frozenset(ledger.evicted))) and fits(ledger.table)

    return check


def _cost(plan: list[_Allowed], now_seconds: float) -> tuple[object, ...]:
    """How the plans of the focus orders compare, as the candidates were ranked: the shortest
    remaining time among its ``ShorterRemainingTime`` victims, longest first (a plan without
    any first: it never evicts a job only for its remaining time), then fewest GPU-hours lost,
    fewest victims, names."""
    remaining = [
        job.remaining_seconds(now_seconds) or 0.0
        for job, reason in plan
        if reason is PreemptionReason.SHORTER_REMAINING_TIME
    ]
    shortest = min(remaining) if remaining else math.inf
    lost = sum(job.lost_gpu_hours(now_seconds) for job, _ in plan)
    return (-shortest, lost, len(plan), sorted(job.name for job, _ in plan))


def _spare_unneeded(
    chosen: list[_Allowed], ledger: _Ledger, fits: Callable[[_Ledger], bool]
) -> list[_Allowed]:
    """Put back, most costly first, every victim the preemptor still fits without; repeat until
    a whole pass spares none (a greedy planner need not be monotone, so one pass may not do)."""
    victims = list(chosen)
    spared = True
    while spared:
        spared = False
        for item in reversed(list(victims)):
            ledger.restore(item[0])
            if fits(ledger):
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
