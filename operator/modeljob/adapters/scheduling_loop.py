"""The one scheduling loop: snapshot the watched cluster, ask the core what to do, do it, say so.

Runs in its own thread, only while this replica acts (kopf peering), woken by any change the
watches see (after a short debounce) and at least every resync period. Acting on a placement
follows design.md §4.1: write `status.placement` with a Binding condition first (conditional on
the job's resourceVersion), then create and bind the pods, then mark the job Scheduled. A crash at
any point leaves a written plan that the next cycle completes or rolls back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeljob.adapters import kube_objects
from modeljob.adapters.cluster import ClusterError, ClusterGateway, NotFoundError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.kube_objects import ObjectError
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.core.cluster_state import PodFacts, merge_assumed
from modeljob.core.fragmentation import compile_workload, fragmentation_milli
from modeljob.core.jobs import JobShape
from modeljob.core.lifecycle import Action, ConditionType, JobFacts, JobPhase, Placed, Requeue
from modeljob.core.nodes import build_node_table
from modeljob.core.resources import Resources
from modeljob.core.scheduling_cycle import (
    Candidate,
    CycleResult,
    CycleSettings,
    Outcome,
    Verdict,
    placed_entries,
    run_cycle,
)
from modeljob.core.sizing import Estimate

logger = logging.getLogger(__name__)

# Estimates are kept per (job shape, device); past this many the cache starts over.
SIZING_CACHE_ENTRIES = 10_000
WAIT_MESSAGE_REFRESH_SECONDS = 10.0

JsonObject = dict[str, Any]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LoopSettings:
    scheduler_name: str
    debounce_seconds: float
    resync_seconds: float
    bind_workers: int
    job_workers: int
    assume_seconds: float
    product_label: str
    cycle: CycleSettings


class BindingError(Exception):
    """A pod of a placement could not be created or bound; the placement is rolled back."""


class SchedulingLoop:
    """One thread that plans and binds; see the module docstring."""

    def __init__(
        self,
        *,
        gateway: ClusterGateway,
        view: ClusterView,
        metrics: OperatorMetrics,
        settings: LoopSettings,
        identity: str,
        acts: Callable[[], bool],
        clock: Clock = utc_now,
    ) -> None:
        self._gateway = gateway
        self._view = view
        self._metrics = metrics
        self._settings = settings
        self._identity = identity
        self._acts = acts
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=settings.bind_workers, thread_name_prefix="bind")
        self._jobs_pool = ThreadPoolExecutor(max_workers=settings.job_workers, thread_name_prefix="job")
        # Events are posted off the acting path: a job's next step never waits for its Event, and
        # two posters keep one job's Events in the order they were written (each is seconds apart
        # from the next at most; Events carry their own timestamps).
        self._events_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="event")
        self._events_pending: set[Future[None]] = set()
        self._events_lock = threading.Lock()
        self._sizing_cache: dict[tuple[JobShape, int, int], Estimate] = {}
        # Parsing a spec (pydantic) costs more than planning it: parse each job version once.
        self._facts_cache: dict[tuple[str, str], JobFacts | None] = {}
        self._wait_written: dict[str, float] = {}
        self.last_cycle_monotonic = time.monotonic()
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
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._jobs_pool.shutdown(wait=False, cancel_futures=True)
        self.drain_events()  # Events already decided are still posted (bounded wait)
        self._events_pool.shutdown(wait=False)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        changed = self._view.changed
        while not self._stop.is_set():
            changed.wait(timeout=self._settings.resync_seconds)
            if self._stop.is_set():
                return
            if self._settings.debounce_seconds:
                time.sleep(self._settings.debounce_seconds)
            changed.clear()
            self.last_cycle_monotonic = time.monotonic()
            self.acting = self._acts()
            if not self.acting:
                continue
            try:
                self.run_once()
            except Exception:
                logger.exception("scheduling cycle failed; trying again at the next change")
                changed.set()
                self._stop.wait(1.0)

    # --- one cycle ----------------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """Snapshot, decide, act. Public so tests can drive cycles one at a time."""
        started = time.perf_counter()
        now = self._clock()
        if len(self._sizing_cache) > SIZING_CACHE_ENTRIES:
            self._sizing_cache.clear()
        documents = {kube_objects_key(doc): doc for doc in self._view.jobs.values()}
        jobs: list[JobFacts] = []
        facts_cache: dict[tuple[str, str], JobFacts | None] = {}
        for document in documents.values():
            meta = document.get("metadata") or {}
            key = (str(meta.get("uid")), str(meta.get("resourceVersion")))
            if key in self._facts_cache:
                facts = self._facts_cache[key]
            else:
                try:
                    facts = kube_objects.job_facts(document)
                except ObjectError:
                    facts = None  # not admitted (the handlers mark it Invalid)
            facts_cache[key] = facts
            if facts is not None:
                jobs.append(facts)
        self._facts_cache = facts_cache  # only what is current: deleted and replaced versions drop out
        pods = merge_assumed(
            self._view.pods.values(), self._view.assumed(), now=now, ttl_seconds=self._settings.assume_seconds
        )
        result = run_cycle(
            jobs,
            self._view.nodes.values(),
            pods,
            now=now,
            settings=self._settings.cycle,
            sizing_cache=self._sizing_cache,
        )
        planned = time.perf_counter()
        # Each outcome touches only its own job and pods, and the cycle already accounted for all
        # of them together, so they are acted on in parallel.
        futures = [
            self._jobs_pool.submit(self._apply_one, outcome, documents[outcome.job.key], now)
            for outcome in result.outcomes
            if _needs_action(outcome)
        ]
        for future in futures:
            future.result()
        logger.debug(
            "cycle: %d jobs, %d acted on, plan %.0f ms, act %.0f ms",
            len(jobs),
            len(futures),
            (planned - started) * 1000,
            (time.perf_counter() - planned) * 1000,
        )
        self._record(result, jobs)
        self.cycles += 1
        self._metrics.record_cycle(time.perf_counter() - started)
        return result

    def _apply_one(self, outcome: Outcome, document: Mapping[str, Any], now: datetime) -> None:
        """Act on one outcome; API errors are logged and leave the job for the next cycle."""
        try:
            self._apply(outcome, document, now=now)
        except NotFoundError:
            logger.info("%s/%s was deleted while we acted", *outcome.job.key)
        except ClusterError as exc:
            if exc.status == 409:
                logger.info("%s/%s changed while we acted; next cycle", *outcome.job.key)
                self._metrics.record_attempt("conflict")
                self._view.changed.set()
            else:
                logger.warning("%s/%s: %s", *outcome.job.key, exc)
                self._metrics.record_attempt("error")
                self._view.changed.set()

    def _record(self, result: CycleResult, jobs: Sequence[JobFacts]) -> None:
        phases = Counter((job.phase or JobPhase.PENDING).value for job in jobs)
        self._metrics.record_jobs_by_phase(phases, phases=[p.value for p in JobPhase])
        queues = {job.queue: 0 for job in jobs}
        queues.update(result.queue_lengths)
        self._metrics.record_queue_lengths(queues)
        self._metrics.record_gpu_allocation(
            {v.name: (v.requested.gpus / v.allocatable.gpus) for v in result.views if v.allocatable.gpus > 0}
        )
        if result.views and result.workload.shapes:
            table = build_node_table(list(result.views))
            fragmented = fragmentation_milli(
                table.cpu_free_milli,
                table.gpu_free_milli,
                table.product_index,
                compile_workload(result.workload, table.products),
            )
            idle = float(table.gpu_free_milli.sum())
            self._metrics.record_fragmentation(float(fragmented.sum()) / idle if idle else 0.0)
        else:
            self._metrics.record_fragmentation(0.0)

    # --- acting on one outcome ----------------------------------------------------------------

    def _apply(self, outcome: Outcome, document: Mapping[str, Any], *, now: datetime) -> None:
        rec = outcome.reconciliation
        job = outcome.job
        if rec.delete_pods and rec.action is not Action.ROLL_BACK:
            self._delete_pods(job, rec.delete_pods, grace_zero=False)
        if outcome.verdict is Verdict.PLACE:
            self._place(outcome, document, now=now)
        elif outcome.verdict is Verdict.WAIT:
            self._wait(outcome, document, now=now, phase=JobPhase.QUEUED)
        elif outcome.verdict is Verdict.UNSCHEDULABLE:
            self._wait(outcome, document, now=now, phase=JobPhase.UNSCHEDULABLE)
        elif rec.action is Action.ROLL_BACK:
            self._roll_back(outcome, document, now=now)
        elif rec.action is Action.COMPLETE:
            self._complete(outcome, document, now=now)
        elif rec.action is Action.UPDATE and rec.phase is not None:
            self._update_phase(outcome, document, now=now)

    def _patch(self, document: Mapping[str, Any], status: JsonObject) -> JsonObject:
        """Conditional status patch: fails with 409 if the job changed since `document`."""
        meta = document.get("metadata") or {}
        reply = self._gateway.patch_modeljob_status(
            str(meta.get("namespace")),
            str(meta.get("name")),
            {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": status},
        )
        self._view.jobs.observe(reply)
        return reply

    def _patch_through(
        self,
        document: Mapping[str, Any],
        build: Callable[[Mapping[str, Any]], JsonObject],
        *,
        same_generation: bool,
    ) -> JsonObject:
        """Write what ``build`` makes of the job after an act that already changed the cluster
        (pods bound, pods deleted). If something else wrote the job meanwhile (kopf's
        annotations, a new generation admitted) and its placement is still the one we acted on
        (and, with ``same_generation``, its spec too), write it on the current version rather
        than leave the next cycle to guess from the pods what happened, and why."""
        try:
            return self._patch(document, build(document))
        except ClusterError as exc:
            if exc.status != 409:
                raise
            meta = document.get("metadata") or {}
            current = self._gateway.read_modeljob(str(meta.get("namespace")), str(meta.get("name")))
            placement = (document.get("status") or {}).get("placement")
            if (current.get("status") or {}).get("placement") != placement or (
                same_generation
                and (current.get("metadata") or {}).get("generation") != meta.get("generation")
            ):
                raise
            return self._patch(current, build(current))

    def _event(
        self, document: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        meta = document.get("metadata") or {}
        log = logger.warning if warning else logger.info
        log("%s/%s %s: %s", meta.get("namespace"), meta.get("name"), reason, message)
        manifest = kube_objects.event_manifest(
            document,
            warning=warning,
            reason=reason,
            message=message,
            now=self._clock(),
            instance=self._identity,
        )
        try:
            future = self._events_pool.submit(self._post_event, str(meta.get("namespace")), manifest)
        except RuntimeError:  # stopping: the pool takes no more work
            logger.info(
                "not posting event %s on %s/%s: stopping", reason, meta.get("namespace"), meta.get("name")
            )
            return
        with self._events_lock:
            self._events_pending.add(future)
        future.add_done_callback(self._event_posted)

    def _event_posted(self, future: Future[None]) -> None:
        with self._events_lock:
            self._events_pending.discard(future)

    def drain_events(self, timeout_seconds: float = 10.0) -> None:
        """Wait until the Events decided so far are posted (tests, and a graceful stop)."""
        with self._events_lock:
            pending = list(self._events_pending)
        wait(pending, timeout=timeout_seconds)

    def _post_event(self, namespace: str, manifest: JsonObject) -> None:
        try:
            self._gateway.create_event(namespace, manifest)
        except ClusterError as exc:  # an Event is worth a try, never a failed decision
            involved = manifest.get("involvedObject") or {}
            logger.warning(
                "cannot post event %s on %s/%s: %s",
                manifest.get("reason"),
                namespace,
                involved.get("name"),
                exc,
            )

    def _conditions(self, document: Mapping[str, Any]) -> list[JsonObject]:
        return list((document.get("status") or {}).get("conditions") or [])

    def _wait(self, outcome: Outcome, document: Mapping[str, Any], *, now: datetime, phase: JobPhase) -> None:
        status = document.get("status") or {}
        job = outcome.job
        unschedulable = phase is JobPhase.UNSCHEDULABLE
        reason = "Unschedulable" if unschedulable else "Waiting"
        if job.placement and not unschedulable:
            # A non-gang job with some replicas placed keeps the phase its pods give it.
            phase = outcome.reconciliation.phase or job.phase or JobPhase.QUEUED
        same_place = (
            status.get("phase") == phase.value and status.get("queuePosition") == outcome.queue_position
        )
        # The reason a job waits mentions free blocks, which change with every pod in the cluster:
        # rewrite it at most every WAIT_MESSAGE_REFRESH_SECONDS unless the job moved in the queue.
        if same_place and (
            status.get("message") == outcome.message
            or time.monotonic() - self._wait_written.get(job.uid, -math.inf) < WAIT_MESSAGE_REFRESH_SECONDS
        ):
            return
        if len(self._wait_written) > SIZING_CACHE_ENTRIES:
            self._wait_written.clear()
        self._wait_written[job.uid] = time.monotonic()
        conditions = kube_objects.set_condition(
            self._conditions(document),
            type_=ConditionType.SCHEDULED,
            status=False,
            reason=reason,
            message=outcome.message,
            now=now,
        )
        patch: JsonObject = {
            "phase": phase.value,
            "queuePosition": outcome.queue_position,
            "message": outcome.message,
            "conditions": conditions,
        }
        if outcome.candidate is not None and not job.placement:
            patch["estimate"] = kube_objects.estimate_status(outcome.candidate.estimate)
            patch["gpus"] = outcome.candidate.estimate.gpus * job.replicas
        self._patch(document, patch)
        if outcome.candidate is not None and "estimate" in patch and not status.get("estimate"):
            # Admission could not size it (no node of its type was known yet): this is the first.
            self._metrics.record_estimate(outcome.candidate.estimate)
        if status.get("phase") != phase.value:
            self._metrics.record_attempt("unschedulable" if unschedulable else "waiting")
            self._event(document, reason, outcome.message, warning=unschedulable)

    def _place(self, outcome: Outcome, document: Mapping[str, Any], *, now: datetime) -> None:
        job = outcome.job
        candidate = outcome.candidate
        assert candidate is not None
        meta = document.get("metadata") or {}
        nonce = kube_objects.placement_nonce(job.uid, str(meta.get("resourceVersion", "")))
        names = {p.replica: kube_objects.pod_name(job.name, p.replica, nonce) for p in outcome.placement}
        entries = placed_entries(outcome, names)
        new = [e for e in entries if e.replica in names]
        where = ", ".join(f"replica {e.replica} -> {e.node}" for e in new)
        conditions = kube_objects.set_condition(
            self._conditions(document),
            type_=ConditionType.BINDING,
            status=True,
            reason="Binding",
            message=f"binding {len(new)} pod(s): {where}",
            now=now,
            generation=job.generation,
        )
        written = self._patch(
            document,
            {
                "placement": kube_objects.placement_status(entries),
                "estimate": kube_objects.estimate_status(candidate.estimate),
                "gpus": candidate.estimate.gpus * job.replicas,
                "nodes": ",".join(sorted({e.node for e in entries})),
                "queuePosition": None,
                "conditions": conditions,
                "message": f"binding {len(new)} pod(s) on {candidate.node_type.describe()}",
            },
        )
        if not (document.get("status") or {}).get("estimate"):
            self._metrics.record_estimate(candidate.estimate)  # sized here first (see _wait)
        try:
            self._bind_all(written, new, candidate, existing=set())
        except BindingError as exc:
            self._roll_back_now(written, job, Requeue.BINDING_FAILED, str(exc), keep=tuple(job.placement))
            return
        self._finish(
            written,
            entries,
            candidate,
            now=now,
            waited_from=job.queued_since or job.created,
            why=outcome.message,
        )

    def _complete(self, outcome: Outcome, document: Mapping[str, Any], *, now: datetime) -> None:
        job = outcome.job
        rec = outcome.reconciliation
        if rec.to_bind:
            assert outcome.candidate is not None
            existing = {entry.pod for entry in rec.to_bind} - set(rec.to_create)
            try:
                self._bind_all(document, list(rec.to_bind), outcome.candidate, existing=existing)
            except BindingError as exc:
                self._roll_back_now(document, job, Requeue.BINDING_FAILED, str(exc))
                return
        self._finish(
            document,
            list(job.placement),
            outcome.candidate,
            now=now,
            waited_from=job.queued_since,
            completed=True,
        )

    def _finish(
        self,
        document: Mapping[str, Any],
        entries: Sequence[Placed],
        candidate: Candidate | None,
        *,
        now: datetime,
        waited_from: datetime | None,
        completed: bool = False,
        why: str = "",
    ) -> None:
        where = ", ".join(
            f"replica {e.replica} -> {e.node}" + (f" (score {e.score:.2f})" if e.score is not None else "")
            for e in entries
        )
        what = f" on {candidate.node_type.describe()}" if candidate is not None else ""
        message = f"{len(entries)} pod(s) bound{what}: {where}" + (f"; {why}" if why else "")

        def scheduled(current: Mapping[str, Any]) -> JsonObject:
            conditions = kube_objects.set_condition(
                self._conditions(current),
                type_=ConditionType.BINDING,
                status=False,
                reason="Bound",
                message="every pod of the placement is bound",
                now=now,
                generation=(current.get("metadata") or {}).get("generation"),
            )
            conditions = kube_objects.set_condition(
                conditions,
                type_=ConditionType.SCHEDULED,
                status=True,
                reason="Placed",
                message=message,
                now=now,
            )
            return {"phase": JobPhase.SCHEDULED.value, "conditions": conditions, "message": message}

        self._patch_through(document, scheduled, same_generation=True)
        queue = str(((document.get("spec") or {}).get("scheduling") or {}).get("queue", "default"))
        waited = (now - waited_from).total_seconds() if waited_from is not None else 0.0
        self._metrics.record_placement(
            queue=queue, waited_seconds=waited, scores=[e.score for e in entries if e.score is not None]
        )
        self._event(
            document, "Scheduled", ("completed an interrupted binding: " if completed else "") + message
        )

    def _bind_all(
        self,
        document: Mapping[str, Any],
        entries: Sequence[Placed],
        candidate: Candidate,
        *,
        existing: set[str],
    ) -> None:
        futures = [
            self._pool.submit(self._create_and_bind, document, entry, candidate, entry.pod in existing)
            for entry in entries
        ]
        failures = [exc for f in futures if (exc := f.exception()) is not None]
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # SystemExit, KeyboardInterrupt: the process is going away
        errors = [str(failure) for failure in failures]
        if errors:
            raise BindingError("; ".join(errors))

    def _create_and_bind(
        self, document: Mapping[str, Any], entry: Placed, candidate: Candidate, exists: bool
    ) -> None:
        started = time.perf_counter()
        meta = document.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        estimate = candidate.estimate
        manifest = kube_objects.pod_manifest(
            document,
            replica=entry.replica,
            name=entry.pod,
            requests=_estimate_requests(estimate),
            accelerator=candidate.node_type.accelerator,
            product=candidate.node_type.product or None,
            scheduler_name=self._settings.scheduler_name,
            product_label=self._settings.product_label,
        )
        facts = kube_objects.pod_facts(manifest)
        if not exists:
            try:
                self._view.pods.observe(self._gateway.create_pod(namespace, manifest))
            except ClusterError as exc:
                if exc.reason != "AlreadyExists":
                    self._metrics.record_binding("error")
                    raise BindingError(f"cannot create pod {entry.pod}: {exc}") from None
        self._view.assume(_bound(facts, entry.node), now=self._clock())
        try:
            self._gateway.bind_pod(namespace, entry.pod, entry.node)
        except ClusterError as exc:
            if _already_bound_to(exc, entry.node):
                self._metrics.record_binding("already_bound", seconds=time.perf_counter() - started)
                return
            self._view.forget(facts.key)
            self._metrics.record_binding("conflict" if exc.status == 409 else "error")
            raise BindingError(f"cannot bind pod {entry.pod} to {entry.node}: {exc}") from None
        self._metrics.record_binding("bound", seconds=time.perf_counter() - started)

    def _delete_pods(self, job: JobFacts, names: Sequence[str], *, grace_zero: bool) -> None:
        for name in names:
            with contextlib.suppress(NotFoundError):
                self._gateway.delete_pod(job.namespace, name, grace_period_seconds=0 if grace_zero else None)
            self._view.forget((job.namespace, name))

    def _roll_back(self, outcome: Outcome, document: Mapping[str, Any], *, now: datetime) -> None:
        rec = outcome.reconciliation
        job = outcome.job
        self._delete_pods(job, rec.delete_pods, grace_zero=rec.requeue is Requeue.NODE_LOST)
        phase = rec.phase or JobPhase.QUEUED
        keep = list(rec.keep)

        def rolled_back(current: Mapping[str, Any]) -> JsonObject:
            conditions = kube_objects.set_condition(
                self._conditions(current),
                type_=ConditionType.BINDING,
                status=False,
                reason="RolledBack" if job.binding else "NotBinding",
                message=rec.message,
                now=now,
                generation=job.generation,
            )
            if phase is not JobPhase.INVALID:
                conditions = kube_objects.set_condition(
                    conditions,
                    type_=ConditionType.SCHEDULED,
                    status=False,
                    reason=rec.reason,
                    message=rec.message,
                    now=now,
                )
            return {
                "phase": phase.value,
                "placement": kube_objects.placement_status(keep),
                "nodes": ",".join(sorted({e.node for e in keep})) or None,
                "conditions": conditions,
                "message": rec.message,
            }

        # The pods are gone already: a newer generation admitted meanwhile still gets this record.
        self._patch_through(document, rolled_back, same_generation=False)
        if rec.requeue is not None:
            self._metrics.record_requeue(rec.requeue.value)
        self._event(document, rec.reason, rec.message, warning=True)

    def _roll_back_now(
        self,
        document: Mapping[str, Any],
        job: JobFacts,
        requeue: Requeue,
        why: str,
        keep: tuple[Placed, ...] = (),
    ) -> None:
        """Undo a placement this cycle wrote but could not bind."""
        current = self._view.jobs.get(job.key) or document
        placed = [e.pod for e in kube_objects.job_facts(current).placement if e not in keep]
        self._delete_pods(job, placed, grace_zero=False)
        now = self._clock()
        message = f"binding failed, rolled back: {why}"

        def rolled_back(latest: Mapping[str, Any]) -> JsonObject:
            conditions = kube_objects.set_condition(
                self._conditions(latest),
                type_=ConditionType.BINDING,
                status=False,
                reason="RolledBack",
                message=message,
                now=now,
                generation=job.generation,
            )
            conditions = kube_objects.set_condition(
                conditions,
                type_=ConditionType.SCHEDULED,
                status=False,
                reason=requeue.value,
                message=message,
                now=now,
            )
            return {
                "phase": (job.phase if keep else JobPhase.QUEUED).value
                if job.phase
                else JobPhase.QUEUED.value,
                "placement": kube_objects.placement_status(keep),
                "conditions": conditions,
                "message": message,
            }

        self._patch_through(current, rolled_back, same_generation=False)
        self._metrics.record_requeue(requeue.value)
        self._event(current, requeue.value, message, warning=True)

    def _update_phase(self, outcome: Outcome, document: Mapping[str, Any], *, now: datetime) -> None:
        rec = outcome.reconciliation
        assert rec.phase is not None
        status = document.get("status") or {}
        if status.get("phase") == rec.phase.value:
            return
        del now
        self._patch(document, {"phase": rec.phase.value, "message": rec.message})
        self._event(document, rec.phase.value, rec.message, warning=rec.phase is JobPhase.FAILED)


def kube_objects_key(document: Mapping[str, Any]) -> tuple[str, str]:
    meta = document.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def _needs_action(outcome: Outcome) -> bool:
    return outcome.verdict is not Verdict.KEEP or outcome.reconciliation.action is not Action.NONE


def _already_bound_to(exc: ClusterError, node: str) -> bool:
    """pods/binding answers 409 `pod x is already assigned to node "y"`: done, if y is our node."""
    return exc.status == 409 and "already assigned" in str(exc) and f'"{node}"' in str(exc)


def _estimate_requests(estimate: Estimate) -> Resources:
    return Resources(
        cpu_milli=estimate.cpu_milli,
        memory_bytes=estimate.memory_bytes,
        ephemeral_storage_bytes=estimate.ephemeral_storage_bytes,
        gpus=estimate.gpus,
    )


def _bound(pod: PodFacts, node: str) -> PodFacts:
    return PodFacts(
        namespace=pod.namespace,
        name=pod.name,
        requests=pod.requests,
        accelerator=pod.accelerator,
        node=node,
        phase=pod.phase,
        scheduler_name=pod.scheduler_name,
        job_uid=pod.job_uid,
        replica=pod.replica,
        spec_hash=pod.spec_hash,
    )
