"""The one scheduling loop: snapshot the watched cluster, ask the core for one step per job, act on each.

Runs in its own thread, only while this replica holds the leader Lease (adapters/lease.py), woken
by any change the watches see (after a short debounce) and at least every resync period. Each new
generation of a spec is admitted here and written with the job's first step (adapters/
job_admission.py). What acting on each kind of step writes, and in what order, is
adapters/step_actions.py's; the loop decides which steps to act on, acts on them in parallel, and
keeps the back-off of jobs whose steps keep failing. A placement's plan, and a running job's new
phase, are written beside the next cycles, which read them as written until they are (adapters/
handed_writes.py); a placement's pods are bound after its plan.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from modeljob.adapters import kube_jobs, kube_queues
from modeljob.adapters.assumed_writes import read_as_written
from modeljob.adapters.binder import Binder, PodSettings
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_view import ClusterView, Key, ParsedJobs
from modeljob.adapters.events import EventRecorder
from modeljob.adapters.handed_writes import HandedWrites, handed_phase
from modeljob.adapters.heap import LongLivedHeap
from modeljob.adapters.job_admission import Admissions, AdmittingWriter
from modeljob.adapters.job_status import JsonObject, ReasonRewrites, WriteBackoff, waiting_writes
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.step_actions import Document, StepActions
from modeljob.adapters.step_choice import decides, does_something
from modeljob.adapters.step_errors import StepErrors
from modeljob.adapters.waiting_writes import WaitingWrites
from modeljob.core.attempts import AttemptTally
from modeljob.core.cluster_state import merge_assumed
from modeljob.core.job_state import JobFacts
from modeljob.core.scheduling_cycle import CycleMemory, CycleResult, CycleSettings, SizingCache, run_cycle
from modeljob.core.spec_admission import Judgement
from modeljob.core.steps import Place, Step
from modeljob.settings import SchedulingSettings

logger = logging.getLogger(__name__)

# Estimates are kept per (job shape, device); past this many the cache starts over.
SIZING_CACHE_ENTRIES = 10_000
# On stop, how long waiting jobs' writes under way may take to land before the Lease is given up.
WAITING_WRITES_STOP_SECONDS = 5.0

UTC_NOW: Callable[[], datetime] = functools.partial(datetime.now, UTC)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    scheduling: SchedulingSettings  # the loop's own section (MODELJOB_SCHEDULING__*)
    product_label: str
    cycle: CycleSettings


class SchedulingLoop:
    """One thread that plans and acts on the plan; see the module docstring."""

    def __init__(
        self,
        *,
        gateway: ClusterGateway,
        view: ClusterView,
        metrics: OperatorMetrics,
        settings: LoopSettings,
        identity: str,
        acts: Callable[[], bool],
        clock: Callable[[], datetime] = UTC_NOW,
        events: EventRecorder | None = None,
    ) -> None:
        self._view = view
        self._gateway = gateway
        self._metrics = metrics
        self._settings = settings
        self._acts = acts
        self._clock = clock
        self.events = events if events is not None else EventRecorder(gateway, identity=identity, clock=clock)
        scheduling = settings.scheduling
        pods = PodSettings(scheduler_name=scheduling.scheduler_name, product_label=settings.product_label)
        self._binder = Binder(gateway, view, metrics, workers=scheduling.bind_workers, pods=pods, clock=clock)
        self._status = AdmittingWriter(gateway, view, events=self.events, metrics=metrics)
        self._backoff = WriteBackoff()
        self._handled = StepErrors(view=view, metrics=metrics, backoff=self._backoff, clock=clock).handled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs_pool = ThreadPoolExecutor(max_workers=scheduling.job_workers, thread_name_prefix="job")
        self._waiting = WaitingWrites(workers=scheduling.job_workers, name="waiting-write")
        self._sizing_cache: SizingCache = {}
        self._memory = CycleMemory()  # what a cycle leaves for the next; a restart starts empty
        self._attempts = AttemptTally()  # each placement's scheduling attempt (core/attempts.py)
        self._parsed = ParsedJobs()
        self._admissions = Admissions(view, self._sizing_cache, metrics=metrics)
        self._rewrites = ReasonRewrites(
            per_second=scheduling.status_refreshes_per_second, clock=lambda: self._clock().timestamp()
        )
        self._actions = StepActions(
            view=view,
            status_writer=self._status,
            binder=self._binder,
            metrics=metrics,
            events=self.events,
            backoff=self._backoff,
            rewrites=self._rewrites,
            clock=clock,
        )
        # Plans (then their pods) and phases, written off the cycle and read as written meanwhile.
        self._handed = HandedWrites(
            workers=scheduling.job_workers,
            actions=self._actions,
            status_writer=self._status,
            handled=self._handled,
            backoff=self._backoff,
            wake=view.changed.set,
        )
        for name, pool in (("waiting", self._waiting), *self._handed.pools):
            metrics.watch_handoffs(name, pool.__len__)
        self._heap = LongLivedHeap()  # what the cycles leave kept out of the collector's walks
        self._phases = kube_jobs.PhaseCounts()  # the jobs by namespace and phase, for the metrics
        self.cycles = 0
        self.acting = False

    # --- thread -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduling-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._view.changed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Plans and phases under way land (those not started are dropped: the next leader decides
        # afresh), and placements under way finish (their pods through the binder, then
        # Scheduled) before the binder stops; those not started are left, planned, for the next
        # leader to complete.
        deadline = time.monotonic() + WAITING_WRITES_STOP_SECONDS  # one wait for all the pools
        self._handed.stop(deadline=deadline)
        self._waiting.stop(wait_seconds=max(0.0, deadline - time.monotonic()))
        self._binder.stop()
        self._jobs_pool.shutdown(wait=False, cancel_futures=True)
        self.events.drain()  # Events already decided are still posted (bounded wait)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        changed = self._view.changed
        while not self._stop.is_set():
            # A job left alone after failed writes is retried when its back-off ends, not at resync.
            retry = self._backoff.seconds_to_next_retry(self._clock())
            resync = self._settings.scheduling.resync_seconds
            changed.wait(timeout=resync if retry is None else min(resync, retry))
            if self._stop.is_set():
                return
            # A replica that has just taken the Lease over plans at once: its watched view is whole
            # already, and every moment waited here is added to the failover.
            if self._settings.scheduling.debounce_seconds and (self.acting or not self._acts()):
                time.sleep(self._settings.scheduling.debounce_seconds)
            changed.clear()
            self.acting = self._acts()
            if not self.acting:
                self._waiting.drop_queued()  # the leader writes what is true by then,
                self._handed.drop_queued()  # plans afresh, and completes the plans written
                self._attempts = AttemptTally()  # and counts attempts from its own cycles
                continue
            try:
                self.run_once(settle=False)
                self._heap.cycle_done()
            except Exception:
                logger.exception("scheduling cycle failed; trying again at the next change")
                changed.set()
                self._stop.wait(1.0)

    # --- one cycle ----------------------------------------------------------------------------

    def run_once(self, *, settle: bool = True) -> CycleResult:
        """Snapshot, decide, act. Public so tests can drive cycles one at a time: they look at what
        was written, so ``settle`` waits for the waiting jobs' writes too; the loop's own thread
        plans on while those land (adapters/waiting_writes.py). The cycle's measured time ends
        before that wait either way."""
        started, started_cpu = time.perf_counter(), time.thread_time()
        now = self._clock()
        if len(self._sizing_cache) > SIZING_CACHE_ENTRIES:
            self._sizing_cache.clear()
        # Before the snapshot, in this order: see WaitingWrites.pending and adapters/assumed_writes.py.
        pending = self._waiting.pending() | self._handed.pending()
        assumed = self._handed.assumed.of(pending)
        snapshotting = time.perf_counter()
        documents = self._view.jobs.snapshot()
        read_as_written(documents, assumed)
        snapshotted = time.perf_counter()
        admitting = self._admissions.judge(documents.values(), self._parsed, now=now)
        judged_at = time.perf_counter()
        parsed, judged = admitting.jobs, admitting.judged
        uids = {job.uid for job in parsed}
        self._backoff.forget_except(uids)
        backing_off, sits_out = self._backing_off(parsed, uids, now)
        jobs = [job for job in parsed if job.uid not in sits_out]
        result = self._plan(jobs, [job for job in parsed if job.uid in sits_out], now)
        result = replace(result, steps=self._attempts.count(result.steps, sitting_out=sits_out))
        planned, planned_cpu = time.perf_counter(), time.thread_time()
        acted, waited, later = self._act_on(
            result, documents, judged, backing_off=backing_off, pending=pending, now=now
        )
        done = time.perf_counter()
        try:
            self._record(result, parsed, now)
        finally:
            # Off the cycle's path (adapters/waiting_writes.py), and started after its last step:
            # started in _act_on, their threads took the interpreter from the cycle's recording.
            for uid, write in later:
                self._waiting.submit(uid, write)
        recorded = time.perf_counter()
        timing = (
            f"plan {planned - started:.3f} s (snapshot {snapshotted - snapshotting:.3f} s, judge "
            f"{judged_at - snapshotted:.3f} s; on the CPU {planned_cpu - started_cpu:.3f} s), "
            f"act {done - planned:.3f} s (waiting for its decisions' writes {waited:.3f} s), "
            f"record {recorded - done:.3f} s"
        )
        logger.debug("cycle: %d jobs, %d acted on, %s", len(jobs), acted, timing)
        self.cycles += 1
        self._metrics.record_cycle(time.perf_counter() - started)
        if settle:
            self._handed.settle()
            self._waiting.settle()
        return result

    def _backing_off(
        self, parsed: Sequence[JobFacts], uids: set[str], now: datetime
    ) -> tuple[set[str], set[str]]:
        """The jobs in back-off (of ``uids``, the ``parsed`` jobs'), and those of them that sit this
        cycle out."""
        # A job in back-off sits this cycle out, charged to its queue for what it holds and no more:
        # planned, it would hold nodes it cannot use. A preemptor with a written plan is planned all
        # the same, so the nodes its victims free stay kept for it (an evicted victim would take
        # them back), but not acted on until it is over.
        backing_off = self._backoff.left_alone(now) & uids
        if not backing_off:
            return backing_off, set()
        sits_out = {
            job.uid for job in parsed if job.uid in backing_off and not (job.preempting and not job.placement)
        }
        return backing_off, sits_out

    def _plan(self, jobs: Sequence[JobFacts], sitting_out: Sequence[JobFacts], now: datetime) -> CycleResult:
        """One core cycle over the watched cluster, pods assumed but not yet watched included."""
        pods = merge_assumed(
            self._view.pods.values(),
            self._view.assumed(),
            now=now,
            ttl_seconds=self._settings.scheduling.assume_seconds,
        )
        return run_cycle(
            jobs,
            self._view.nodes.values(),
            pods,
            now=now,
            settings=self._settings.cycle,
            sizing_cache=self._sizing_cache,
            queues=kube_queues.queue_configs(self._view.queues.values()),
            memory=self._memory,
            sitting_out=sitting_out,
        )

    def _act_on(
        self,
        result: CycleResult,
        documents: Mapping[Key, Document],
        judged: Mapping[str, tuple[Judgement, JsonObject]],
        *,
        backing_off: set[str],
        pending: frozenset[str],
        now: datetime,
    ) -> tuple[int, float, list[tuple[str, Callable[[], None]]]]:
        """Act on the cycle's steps that change something: how many were acted on, the seconds
        spent waiting for the writes of decisions it does not hand over, and the waiting jobs'
        writes, by job uid. A placement's plan and a running job's new phase are handed over,
        and read as written by the next cycles until they are (adapters/handed_writes.py); a
        placement's pods are bound after its plan. Other decisions are written before the cycle
        ends. Waiting jobs' writes are for ``_waiting``, the caller hands them over at the end of
        the cycle, and they land beside the next cycles (adapters/waiting_writes.py). One write
        is pending per job at most: a job whose write was ``pending`` at the snapshot is left to
        a later cycle, which sees what it left, unless a decision for it drops a waiting write
        before it started."""
        # What each waiting job's step would write, worked out once: the refreshes granted and
        # the choice of steps acted on both read it. A job in back-off, or with a write pending,
        # takes no refresh.
        writes, off = waiting_writes(result.steps, documents)
        self._rewrites.grant(writes, off, skip=backing_off | pending, pending=len(self._waiting))
        # Each step touches only its own job and pods, and the cycle already accounted for all of
        # them together, so they are acted on in parallel; a deep queue's steps mostly change
        # nothing, and are left out here rather than queued for the pool by the thousand.
        acting = [
            step
            for step in result.steps
            if step.job.uid not in backing_off
            and does_something(
                step, writes.get(step.job.uid), admitted=step.job.uid in judged, rewrites=self._rewrites
            )
            and (
                step.job.uid not in pending
                or (decides(step, documents[step.job.key]) and self._cancel(step.job.uid))
            )
        ]
        futures = []
        later: list[tuple[str, Callable[[], None]]] = []
        for step in acting:
            uid, document = step.job.uid, documents[step.job.key]
            if isinstance(step, Place):
                self._handed.plan(step, document, now, judged.get(uid))
                continue
            # Whether a waiting job's status may be refreshed is this cycle's budget's, decided now.
            act = functools.partial(
                self._act, step, document, now, judged.get(uid), self._rewrites.allowed(uid)
            )
            if handed_phase(step):
                self._handed.phase(step, document, judged.get(uid), act)
            elif decides(step, document):
                futures.append(self._jobs_pool.submit(act))
            else:
                later.append((uid, act))
        waiting = time.perf_counter()
        for future in futures:
            future.result()
        return len(acting), time.perf_counter() - waiting, later

    def _cancel(self, uid: str) -> bool:
        """Drop the job's pending waiting write if it has not started (WaitingWrites.cancel). A
        binding is never dropped for a cycle's step: the binding binds what its placement
        decided (the replicas kept beside a new one, a rolling update's surge), where the cycle
        could only complete the plan as after a crash, and would wait for its pods itself."""
        return self._waiting.cancel(uid)

    def _record(self, result: CycleResult, parsed: Sequence[JobFacts], now: datetime) -> None:
        """The cycle's metrics, and the Queues' statuses it computed."""
        # Every job by its status phase as written now, its spec readable or not.
        phases = self._phases.count(self._view.jobs.values())
        self._metrics.record_cluster(result, jobs=phases, queues={job.queue for job in parsed})
        if result.queues is not None:
            kube_queues.write_statuses(self._gateway, self._view.queues, result.queues, now=now)
            self._metrics.record_quota(result.queues)

    def _act(
        self,
        step: Step,
        document: Document,
        now: datetime,
        judged: tuple[Judgement, JsonObject] | None,
        refresh: bool,
    ) -> None:
        """Act on one step (``judged``: the job's admission, carried by the step's first write;
        ``refresh``: a waiting job's status may be refreshed, as its cycle's budget granted)."""
        with self._handled(step):
            with self._status.carrying(document, judged) as admitted:
                acted = self._actions.act(step, admitted, now, refresh=refresh)
            if acted:
                self._backoff.succeeded(step.job.uid)
