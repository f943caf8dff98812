"""Queues sharing one cluster over time: quota admission with borrowing, whole-job preemption,
and the queue orders (SRTF and time-slice turns included), on a seeded synthetic job stream.

The job-level companion of ``queue_simulation.run_queue`` (which has no quotas and never
preempts). Discrete events: arrivals, completions, and wake-ups when a running job passes
``min_runtime`` or its time slice (the moments a preemption can become allowed). Each event time
is one scheduling cycle: ``rules.max_victims_per_cycle`` bounds its victims.

Quota and preemption are the operator's own decisions, in the operator's order: each cycle the
waiting jobs are admitted by ``admit_pending`` over the Queue tree (``shared_quota``); the
admitted are placed, and one that does not fit may preempt; then the head of each queue that
quota holds back may preempt too, admitted once its victims' charges are released (reclaim of
borrowed quota). Victims are chosen by ``choose_victims`` with the operator's candidates
(``reclaimable_by`` marks who borrows from the preemptor's queue). Two differences, on purpose:
the operator evicts and places in separate cycles (victims' pods must go first), here a
preemptor is placed in the same cycle its victims are released; and a job no quota of its tree
could ever admit is left out at arrival, where the operator would keep it waiting at its
queue's head with a condition saying why.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from modeljob.core.fragmentation import compile_workload, learn_target_workload
from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import Placement
from modeljob.core.nodes import NodeTable, NodeView, build_node_table
from modeljob.core.preempting import preempts
from modeljob.core.preemption import (
    FitTest,
    Preemption,
    VictimOrder,
    choose_victims,
    gang_fits,
)
from modeljob.core.preemption_rules import (
    PodSlot,
    PreemptionHistory,
    PreemptionReason,
    PreemptionRules,
    Preemptor,
    RunningJob,
    kept_seconds,
)
from modeljob.core.preemption_view import CandidatePool
from modeljob.core.queueing import QueuedJob, QueueSettings, order_queues, queue_policy
from modeljob.core.quota import QuotaTest
from modeljob.core.quota_tree import QueueSpec
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.sim.queue_report import JobRecord, PreemptionDecision, PreemptionEvent, SharedRun
from modeljob.core.sim.queue_simulation import gang_of, task_shape
from modeljob.core.sim.shared_quota import QuotaBooks
from modeljob.core.sim.workload_generator import SyntheticJob

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class SharingSettings:
    """``queues``: the Queue objects (a tree, as the operator reads them); empty: no Queue objects,
    every job admitted. ``rules`` None: nothing is preempted (one set of rules for every queue).
    ``preemption_attempts_per_cycle`` bounds how many waiting jobs try preemption in one cycle
    (the simulator's cost bound, not an anti-thrash rule)."""

    queue: QueueSettings = field(default_factory=QueueSettings)
    queues: tuple[QueueSpec, ...] = ()
    rules: PreemptionRules | None = None
    victim_order: VictimOrder = VictimOrder.LEAST_LOST_WORK
    backfill: bool = True
    weights: ScoringWeights = DEFAULT_WEIGHTS
    preemption_attempts_per_cycle: int = 4
    shadow_order: VictimOrder | None = None  # also ask this chooser at each decision (same state)


def run_shared_queues(
    jobs: Sequence[SyntheticJob], nodes: Sequence[NodeView], *, settings: SharingSettings
) -> SharedRun:
    """Simulate until every job has finished (or can never start)."""
    replay = _SharedReplay(jobs, nodes, settings=settings)
    while replay.step():
        pass
    return replay.result()


@dataclass(slots=True)
class _Running:
    item: SyntheticJob
    placement: Placement
    started_at_seconds: float
    ends_at_seconds: float


@dataclass(slots=True)
class _Ledgers:
    """Per job: work kept through preemptions, first start, end, preemptions, GPU-hours lost."""

    progress: dict[str, float] = field(default_factory=dict)
    first_start: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    preempted: dict[str, int] = field(default_factory=dict)
    lost: dict[str, float] = field(default_factory=dict)
    gpu_seconds: dict[str, float] = field(default_factory=dict)  # per queue


class _ChooseArguments(TypedDict):
    table: NodeTable
    fits: FitTest
    rules: PreemptionRules
    history: PreemptionHistory
    now_seconds: float
    victims_left: int
    order: VictimOrder
    admits: QuotaTest | None


class _SharedReplay:
    def __init__(
        self, jobs: Sequence[SyntheticJob], nodes: Sequence[NodeView], *, settings: SharingSettings
    ) -> None:
        self.table = build_node_table(sorted(nodes, key=lambda n: n.name)).working_copy()
        self.empty = self.table.emptied()
        self.capacity_gpus = int(self.table.gpu_count.sum())
        self.settings = settings
        # The fragmentation scorer's expectations: the replica shapes of this very stream.
        workload = learn_target_workload([task_shape(item.replica_request) for item in jobs])
        self.context = ScoringContext(workload=compile_workload(workload, self.table.products))
        self.rules = settings.rules
        self.row_of = {name: row for row, name in enumerate(self.table.names)}
        self.by_name = {item.job.name: item for item in jobs}
        self.arrivals = sorted(jobs, key=lambda item: item.job.key)
        self.next_arrival = 0
        self.waiting: list[QueuedJob] = []
        self.running: dict[str, _Running] = {}
        self.completions: list[tuple[float, str]] = []
        self.wakeups: list[float] = []
        self.books = QuotaBooks(settings.queues, jobs)
        self.never: set[str] = set()
        self.ledgers = _Ledgers()
        self.history = PreemptionHistory()
        self.events: list[PreemptionEvent] = []
        self.decisions: list[PreemptionDecision] = []
        self.partial = self.misfits = self.overruns = 0
        self.cycle_victims = self.attempts_left = 0
        self.releases = 0
        self.failed_at: dict[str, int] = {}

    # --- events -------------------------------------------------------------------------------

    def step(self) -> bool:
        """One scheduling cycle at the next event time; False once nothing can change."""
        more_arrivals = self.next_arrival < len(self.arrivals)
        if not (more_arrivals or self.completions):
            return False
        times = [self.completions[0][0]] if self.completions else []
        if more_arrivals:
            times.append(self.arrivals[self.next_arrival].job.submitted_at_seconds)
        if self.wakeups:
            times.append(self.wakeups[0])
        now = min(times)
        while self.wakeups and self.wakeups[0] <= now:
            heapq.heappop(self.wakeups)
        while self.completions and self.completions[0][0] <= now:
            ends_at, name = heapq.heappop(self.completions)
            running = self.running.get(name)
            if running is not None and running.ends_at_seconds == ends_at:  # else: evicted since
                self.ledgers.finished[name] = ends_at
                self._release(name, now)
                self.history = self.history.forget(name)
        self._admit_arrivals(now)
        self.cycle_victims = 0
        self._place_waiting(now)
        return True

    def _admit_arrivals(self, now: float) -> None:
        while (
            self.next_arrival < len(self.arrivals)
            and self.arrivals[self.next_arrival].job.submitted_at_seconds <= now
        ):
            arrived = self.arrivals[self.next_arrival]
            self.next_arrival += 1
            plan = plan_gang(
                self.empty, gang_of(arrived), weights=self.settings.weights, context=self.context
            )
            if isinstance(plan, Placement) and self.books.may_ever_admit(arrived.job.name):
                self.waiting.append(arrived.job)
            else:
                self.never.add(arrived.job.name)

    # --- placing, preempting --------------------------------------------------------------------

    def _place_waiting(self, now: float) -> None:
        """The operator's cycle: admit by quota, each admitted job placed (or preempted for)
        before the next is admitted and charged only if it was, then let each head quota holds
        back preempt for quota."""
        ordered = order_queues(self.waiting, policy=queue_policy(self.settings.queue), now_seconds=now)
        by_name = {job.name: job for job in ordered}
        self.attempts_left = self.settings.preemption_attempts_per_cycle
        stopped = False  # without backfill, the first admitted job that is not placed stops the rest

        def place(job: QueuedJob) -> bool:
            nonlocal stopped
            if stopped:
                return False
            placed = self._try_place(job, now) or self._try_preempt(job, now, quota_refused=False)
            stopped = not placed and not self.settings.backfill
            return placed

        if self.books.unlimited:
            for job in ordered:
                place(job)
            return
        admission = self.books.admission_round(
            ordered,
            now_seconds=now,
            place=lambda decision: place(by_name[decision.job]),
            evictable=None if self.rules is None else lambda head: self._evictable(by_name[head], now),
        )
        refused = {refusal.job: refusal for refusal in admission.waiting}
        for job in ordered:
            refusal = refused.get(job.name)
            if refusal is not None and refusal.blocks_queue and not refusal.behind:  # not those behind it
                self._try_preempt(job, now, quota_refused=True)

    def _try_place(self, job: QueuedJob, now: float) -> bool:
        item = self.by_name[job.name]
        if self.failed_at.get(job.name) == self.releases:
            return False
        plan = plan_gang(
            self.table,
            gang_of(item),
            weights=self.settings.weights,
            context=self.context,
            check_never_fits=False,
        )
        if not isinstance(plan, Placement):
            self.failed_at[job.name] = self.releases
            return False
        self.partial += len(plan.assignments) != item.replicas
        for assignment in plan.assignments:
            self.table.reserve(self.row_of[assignment.node], item.replica_request, assignment.devices)
        self.waiting = [waiting for waiting in self.waiting if waiting.name != job.name]
        remaining = item.duration_seconds - self.ledgers.progress.get(job.name, 0.0)
        run = _Running(item, plan, started_at_seconds=now, ends_at_seconds=now + remaining)
        self.running[job.name] = run
        self.ledgers.first_start.setdefault(job.name, now)
        if not self.books.unlimited:
            self.books.start(job, now_seconds=now)
            self.overruns += bool(self.books.breaches())
        heapq.heappush(self.completions, (run.ends_at_seconds, job.name))
        if self.rules is not None:
            for delay in (self.rules.min_runtime_seconds, self.rules.time_slice_seconds):
                if delay:
                    heapq.heappush(self.wakeups, now + delay)
        return True

    def _try_preempt(self, job: QueuedJob, now: float, *, quota_refused: bool) -> bool:
        """As ``Preempting.preempt``: victims chosen by the core, evicted whole; then placed."""
        if self.rules is None or not preempts(self.rules) or self.attempts_left <= 0:
            return False
        self.attempts_left -= 1
        item = self.by_name[job.name]
        preemptor = self._preemptor(job)
        reclaim = self.books.reclaimable_by(job.queue) if self.rules.reclaim_borrowed else frozenset()
        candidates = [self._candidate(name, reclaimable=name in reclaim) for name in sorted(self.running)]
        arguments = _ChooseArguments(
            table=self.table,
            fits=gang_fits(gang_of(item), weights=self.settings.weights, context=self.context),
            rules=self.rules,
            history=self.history,
            now_seconds=now,
            victims_left=self.rules.max_victims_per_cycle - self.cycle_victims,
            order=self.settings.victim_order,
            admits=self.books.admits(job.name) if quota_refused else None,
        )
        outcome = choose_victims(preemptor, candidates, **arguments)
        if not isinstance(outcome, Preemption) or not outcome.victims:
            return False
        if self.settings.shadow_order is not None:
            shadow_arguments = arguments.copy()
            shadow_arguments["order"] = self.settings.shadow_order
            shadow = choose_victims(preemptor, candidates, **shadow_arguments)
            shadow_lost = shadow.lost_gpu_hours if isinstance(shadow, Preemption) else None
            self.decisions.append(PreemptionDecision(now, job.name, outcome.lost_gpu_hours, shadow_lost))
        for victim in outcome.victims:
            self._evict(victim.name, job.name, victim.reason, now)
        chained = [v.name for v in outcome.victims if v.reason is not PreemptionReason.TIME_SLICE]
        turns = [v.name for v in outcome.victims if v.reason is PreemptionReason.TIME_SLICE]
        self.history = self.history.record(job.name, chained).record(job.name, turns, chained=False)
        self.cycle_victims += len(outcome.victims)
        self.failed_at.pop(job.name, None)
        placed = self._try_place(job, now)
        self.misfits += not placed
        return placed

    def _evictable(self, head: QueuedJob, now: float) -> frozenset[str]:
        """The running jobs ``head`` may preempt now: backfill counts them as ending now."""
        assert self.rules is not None
        reclaim = self.books.reclaimable_by(head.queue) if self.rules.reclaim_borrowed else frozenset()
        pool = CandidatePool.of(self._candidate(name, reclaimable=False) for name in sorted(self.running))
        return pool.evictable(self._preemptor(head), self.rules, reclaimable=reclaim, now_seconds=now)

    @staticmethod
    def _preemptor(job: QueuedJob) -> Preemptor:
        return Preemptor(
            name=job.name,
            queue=job.queue,
            priority=job.priority,
            expected_duration_seconds=job.expected_duration_seconds,
            run_before_seconds=job.run_seconds,
        )

    def _candidate(self, name: str, *, reclaimable: bool) -> RunningJob:
        run = self.running[name]
        job = run.item.job
        pods = tuple(
            PodSlot(node=a.node, request=run.item.replica_request, devices=a.devices)
            for a in run.placement.assignments
        )
        return RunningJob(
            name=name,
            queue=job.queue,
            priority=job.priority,
            started_at_seconds=run.started_at_seconds,
            pods=pods,
            expected_duration_seconds=job.expected_duration_seconds,
            run_before_seconds=self.ledgers.progress.get(name, 0.0),
            checkpoint_interval_seconds=run.item.checkpoint_interval_seconds,
            borrows_from_lender=reclaimable,
        )

    def _evict(self, name: str, preemptor: str, reason: PreemptionReason, now: float) -> None:
        run = self.running[name]
        ran = now - run.started_at_seconds
        kept = kept_seconds(ran, run.item.checkpoint_interval_seconds)  # as the operator records it
        lost_gpu_hours = (ran - kept) * run.item.job.demand.gpus / SECONDS_PER_HOUR
        progress = self.ledgers.progress.get(name, 0.0) + kept
        self.ledgers.progress[name] = progress
        self.ledgers.preempted[name] = self.ledgers.preempted.get(name, 0) + 1
        self.ledgers.lost[name] = self.ledgers.lost.get(name, 0.0) + lost_gpu_hours
        released = self._release(name, now)
        event = PreemptionEvent(now, preemptor, name, reason, lost_gpu_hours, released, run.item.replicas)
        self.events.append(event)
        requeued = dataclasses.replace(run.item.job, run_seconds=progress, queued_at_seconds=now)
        self.waiting.append(requeued)

    def _release(self, name: str, now: float) -> int:
        """Give back every pod of ``name``; returns how many were released."""
        run = self.running.pop(name)
        for assignment in run.placement.assignments:
            self.table.release(self.row_of[assignment.node], run.item.replica_request, assignment.devices)
        job = run.item.job
        if not self.books.unlimited:
            self.books.stop(name)
        busy = (now - run.started_at_seconds) * job.demand.gpus
        self.ledgers.gpu_seconds[job.queue] = self.ledgers.gpu_seconds.get(job.queue, 0.0) + busy
        self.releases += 1
        return len(run.placement.assignments)

    def result(self) -> SharedRun:
        ledgers = self.ledgers
        records = tuple(
            JobRecord(
                job=item.job,
                first_started_at_seconds=ledgers.first_start.get(item.job.name),
                finished_at_seconds=ledgers.finished.get(item.job.name),
                preemptions=ledgers.preempted.get(item.job.name, 0),
                lost_gpu_hours=ledgers.lost.get(item.job.name, 0.0),
                never_fits=item.job.name in self.never,
            )
            for item in self.arrivals
        )
        first = min((item.job.submitted_at_seconds for item in self.arrivals), default=0.0)
        last = max(ledgers.finished.values(), default=first)
        nominal = self.books.nominal_gpus()
        return SharedRun(
            records=records,
            events=tuple(self.events),
            decisions=tuple(self.decisions),
            capacity_gpus=self.capacity_gpus,
            gpu_seconds_by_queue=dict(ledgers.gpu_seconds),
            nominal_gpus=nominal,
            span_seconds=last - first,
            partial_placements=self.partial,
            preemptor_misfits=self.misfits,
            quota_overruns=self.overruns,
        )
