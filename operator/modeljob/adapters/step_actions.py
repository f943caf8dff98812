"""Acting on one step of the cycle: what each kind of step writes (status, pods, Events, metrics).

A placement is acted on plan first (docs/operator.md, "Keeping decisions safe"): `status.placement`
with a Binding condition (conditional on the job's resourceVersion), then the pods created and
bound, then the job marked Scheduled. A crash at any point leaves a written plan the next cycle
completes or rolls back. What each step writes is core/status.py's; Events go through the one
recorder, pods through the binder. The scheduling loop (adapters/scheduling_loop.py) decides which
steps to act on and handles their errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, assert_never

from modeljob.adapters import kube_jobs, kube_services, kube_writes
from modeljob.adapters.binder import Binder, BindingError, PodRefusedError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.events import EventRecorder
from modeljob.adapters.job_admission import AdmittingWriter
from modeljob.adapters.job_status import ReasonRewrites, WriteBackoff
from modeljob.adapters.metrics import AttemptResult, OperatorMetrics
from modeljob.core import lifecycle, preemption_status, status, steps
from modeljob.core.attempts import counts
from modeljob.core.job_state import JobFacts, JobPhase, Placed
from modeljob.core.node_types import Candidate
from modeljob.core.steps import Place, RollBack, Step, Unschedulable, Wait

Document = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlanWrite:
    """A placement's plan as it is written: the status patch, every pod's entry, and the entries
    of the pods it creates (``StepActions.plan_write``)."""

    patch: Mapping[str, Any]
    entries: tuple[Placed, ...]
    new: tuple[Placed, ...]


class StepActions:
    """The writes of each kind of step, for the loop to call one step at a time (in parallel across
    jobs: each step touches only its own job and pods). Shares the loop's back-off (a binding that
    failed counts as a failed step) and reason rewrites (``_wait`` refreshes a status only when
    the cycle granted it)."""

    def __init__(
        self,
        *,
        view: ClusterView,
        status_writer: AdmittingWriter,
        binder: Binder,
        metrics: OperatorMetrics,
        events: EventRecorder,
        backoff: WriteBackoff,
        rewrites: ReasonRewrites,
        clock: Callable[[], datetime],
    ) -> None:
        self._view = view
        self._status = status_writer
        self._binder = binder
        self._metrics = metrics
        self.events = events
        self._backoff = backoff
        self._rewrites = rewrites
        self._clock = clock

    def act(self, step: Step, document: Document, now: datetime, *, refresh: bool = False) -> bool:
        """Act on ``step``; False when its pods could not be bound (the plan is rolled back).
        ``refresh``: a waiting job's status may be rewritten for a new position or reason alone
        (its cycle's budget granted it: adapters/job_status.py, ReasonRewrites). A placement is
        acted on whole here; the loop calls ``plan_write`` in its cycle, then ``plan`` and its
        binding off it."""
        if isinstance(step, Place):
            return self.plan(step, document, self.plan_write(step, document, now=now), now=now)()
        if step.delete_pods and not isinstance(step, RollBack):
            self._binder.delete_pods(step.job.namespace, step.delete_pods, grace_zero=False)
        match step:
            case steps.Complete():
                return self._complete(step, document, now=now)
            case Wait() | Unschedulable():
                self._wait(step, document, now=now, refresh=refresh)
            case RollBack():
                self._roll_back(step, document, now=now)
            case steps.SetPhase():
                self._set_phase(step, document)
            case steps.Update():
                self._update(step, document, now=now)
            case steps.Preempt():
                self._preempt(step, document, now=now)
            case steps.Keep():
                pass
            case _:
                assert_never(step)
        return True

    # --- the steps ----------------------------------------------------------------------------

    def plan_write(self, step: Place, document: Document, *, now: datetime) -> PlanWrite:
        """What writing ``step``'s plan on ``document`` writes: its pods' names and entries, and the
        status patch. Worked out by the cycle that decides it, so the next cycles can read the plan
        as written while the write is still under way (adapters/assumed_writes.py)."""
        job = step.job
        nonce = kube_writes.placement_nonce(
            job.uid, str((document.get("metadata") or {}).get("resourceVersion", ""))
        )
        group = step.candidate.pods_per_replica  # pods are named by their index in the job
        names = {
            (p.replica, p.member): kube_writes.pod_name(job.name, p.replica * group + p.member, nonce)
            for p in step.placement
        }
        entries = steps.placed_entries(step, names)
        endpoint = kube_services.serve_endpoint(document)
        patch = status.planned(step, entries, document.get("status") or {}, now=now, endpoint=endpoint)
        if job.preempting:
            patch |= preemption_status.placed_again()  # the room it preempted for is taken
        new = tuple(e for e in entries if (e.replica, e.member) in names)
        return PlanWrite(patch=patch, entries=tuple(entries), new=new)

    def plan(self, step: Place, document: Document, write: PlanWrite, *, now: datetime) -> Callable[[], bool]:
        """Write the placement (``write``: `status.placement` with its Binding condition, as
        ``plan_write`` made it from ``document``): the decision, which the next cycles read back
        (read as written until it is: adapters/assumed_writes.py).
        Returns the rest, to run after it: the pods created and bound, then the job marked
        Scheduled; False if they could not be bound (the plan is rolled back). Until the rest is
        done, a cycle finds the job planned with pods missing: its nodes are reserved
        (core/cycle_cluster.py, complete), as after a crash at this point."""
        if step.delete_pods:
            self._binder.delete_pods(step.job.namespace, step.delete_pods, grace_zero=False)
        job, entries, new = step.job, write.entries, write.new
        services = self._binder.start_services(document)  # one round trip less: see start_services
        written = self._status.patch(document, write.patch)
        if not (document.get("status") or {}).get("estimate"):
            self._metrics.record_estimate(step.candidate.estimate)  # sized here first (see _wait)

        def bind() -> bool:
            if not self._bind(
                written, job, new, step.candidate, existing=set(), keep=job.placement, services=services
            ):
                return False
            self._finish(written, job, entries, step.candidate, now=now, place=step)
            if step.replaces is not None:
                self.events.record(
                    document, "Updating", step.replaces.surge([a.node for a in step.placement])
                )
            return True

        return bind

    def _complete(self, step: steps.Complete, document: Document, *, now: datetime) -> bool:
        if step.to_bind:
            assert step.candidate is not None  # the cycle rolls back a placement it cannot size
            existing = {entry.pod for entry in step.to_bind} - set(step.to_create)
            if not self._bind(document, step.job, step.to_bind, step.candidate, existing=existing):
                return False
        self._finish(document, step.job, step.job.placement, step.candidate, now=now)
        return True

    def _bind(
        self,
        document: Document,
        job: JobFacts,
        entries: Sequence[Placed],
        candidate: Candidate,
        *,
        existing: set[str],
        keep: Sequence[Placed] = (),
        services: Future[None] | None = None,
    ) -> bool:
        """Create and bind the pods; if any fails, undo the written placement and say so: the job
        is Invalid if the API server refused its pods, else back in the queue after a back-off."""
        try:
            self._binder.bind_all(document, entries, candidate, existing=existing, services=services)
        except BindingError as exc:
            now = self._clock()
            current = self._view.jobs.get(job.key) or document
            placement = kube_jobs.placement_of(current)
            if isinstance(exc, PodRefusedError):
                self._metrics.record_attempt(job.namespace, AttemptResult.REFUSED)
                self._roll_back(steps.pods_refused(job, placement, str(exc)), current, now=now)
            else:
                self._roll_back(steps.binding_failed(job, placement, str(exc), keep=keep), current, now=now)
                self._backoff.failed(job.uid, now)
            return False
        return True

    def _finish(
        self,
        document: Document,
        job: JobFacts,
        entries: Sequence[Placed],
        candidate: Candidate | None,
        *,
        now: datetime,
        place: Place | None = None,
    ) -> None:
        """Mark the job Scheduled: a new placement (``place``) or a completed interrupted one; or
        Running (Succeeded) at once when its pods, as the watch shows them now, already are
        (core/lifecycle.py, ``phase_once_bound``): one write, not a Scheduled one and the next
        cycle's. A rolling update's surge keeps the job's phase (core/status.py)."""
        node_type = candidate.node_type if candidate is not None else None
        pods = [self._view.pods.get((job.namespace, entry.pod)) for entry in entries]
        surge = place is not None and place.replaces is not None
        phase, message = (JobPhase.SCHEDULED, "") if surge else lifecycle.phase_once_bound(job, entries, pods)
        self._status.patch_through(
            document,
            lambda current: status.scheduled(
                current,
                entries=entries,
                node_type=node_type,
                generation=job.generation,
                now=now,
                place=place,
                phase=phase,
                phase_message=message,
            ),
            same_generation=True,
        )
        waited = (now - (job.queued_since or job.created)).total_seconds()
        scores = [e.score for e in entries if e.score is not None]
        self._metrics.record_placement(
            namespace=job.namespace,
            queue=job.queue,
            waited_seconds=waited,
            scores=scores,
            pods=len(entries),
            attempt=place.attempt if place is not None and counts(place) else None,
        )
        self.events.record(document, "Scheduled", status.scheduled_event(entries, node_type, place=place))
        if phase is not JobPhase.SCHEDULED:
            self.events.record(document, phase.value, message)  # as the SetPhase it stands for would

    def _wait(self, step: Wait | Unschedulable, document: Document, *, now: datetime, refresh: bool) -> None:
        previous = document.get("status") or {}
        uid = step.job.uid
        patch = status.waiting(step, previous, now=now, refresh=refresh)
        if patch is None:
            return
        self._rewrites.written(uid)
        self._status.patch(document, patch)
        if step.candidate is not None and "estimate" in patch and not previous.get("estimate"):
            # Admission could not size it (no node of its type was known yet): this is the first.
            self._metrics.record_estimate(step.candidate.estimate)
        if previous.get("phase") != patch["phase"]:
            unschedulable = isinstance(step, Unschedulable)
            result = AttemptResult.UNSCHEDULABLE if unschedulable else AttemptResult.WAITING
            self._metrics.record_attempt(step.job.namespace, result)
            self.events.record(
                document, "Unschedulable" if unschedulable else "Waiting", step.message, warning=unschedulable
            )

    def _roll_back(self, step: RollBack, document: Document, *, now: datetime) -> None:
        # Status first, then the pods (core/steps.py, RollBack): a crash in between leaves pods
        # outside the placement, which the next cycle deletes as strays, and a restart counted
        # once. A newer generation admitted meanwhile still gets this record, unless the record is
        # that the spec is invalid (a newer spec is judged afresh).
        build = status.rolled_back if step.preempted_by is None else preemption_status.preempted
        self._status.patch_through(
            document,
            lambda current: build(step, current, now=now),
            same_generation=step.invalid_spec,
        )
        self._binder.delete_pods(step.job.namespace, step.delete_pods, grace_zero=step.grace_zero)
        if step.requeue is not None:
            self._metrics.record_requeue(step.job.namespace, step.requeue)
        if step.preempted_by is not None:
            self._metrics.record_preemption(step.job.queue, step.preemption_rule)
        self.events.record(document, step.reason, step.message, warning=step.warning)

    def _preempt(self, step: steps.Preempt, document: Document, *, now: datetime) -> None:
        """The plan on the preemptor first (its victims, their nodes), then each victim evicted
        whole (core/steps.py, Preempt): a crash in between leaves a plan the next cycle finishes."""
        self._status.patch(
            document, preemption_status.preempting(step, document.get("status") or {}, now=now)
        )
        self.events.record(document, "Preempting", step.message, warning=False)
        for victim in step.victims:
            current = self._view.jobs.get(victim.job.key)
            if current is None:
                continue  # deleted meanwhile: nothing left to evict
            self._roll_back(victim, current, now=now)

    def _update(self, step: steps.Update, document: Document, *, now: datetime) -> None:
        """Where a rolling update stands; an Event each time that changes (core/rolling.py)."""
        patch = status.updated(step, document.get("status") or {}, now=now)
        if patch is not None:
            self._status.patch(document, patch)
            self.events.record(document, status.update_reason(step), step.message, warning=step.blocked)

    def _set_phase(self, step: steps.SetPhase, document: Document) -> None:
        patch = status.phase_set(step, document.get("status") or {})
        if patch is not None:
            self._status.patch(document, patch)
            self.events.record(
                document, step.phase.value, step.message, warning=step.phase is JobPhase.FAILED
            )
