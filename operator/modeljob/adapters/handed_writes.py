"""The decisions a cycle hands over to be written beside the next cycles: a placement's plan (then
its pods' binding) and a running job's new phase (Scheduled, Running).

Each is assumed from the moment it is handed over until its write is done (adapters/
assumed_writes.py): the next cycles read the job as written, so a plan's nodes stay kept for it,
and the job is neither planned nor acted on again meanwhile (its write is pending). A waiting
job's status is the loop's other hand-over (adapters/waiting_writes.py), read by no later
decision. Every write is still conditional on the version it was decided from, and passes the
leader's fence as before.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TypeGuard

from modeljob.adapters.assumed_writes import AssumedWrites
from modeljob.adapters.job_admission import AdmittingWriter, with_status
from modeljob.adapters.job_status import JsonObject, WriteBackoff
from modeljob.adapters.step_actions import Document, PlanWrite, StepActions
from modeljob.adapters.waiting_writes import WaitingWrites
from modeljob.core import status
from modeljob.core.spec_admission import Judgement
from modeljob.core.steps import Place, SetPhase, Step

logger = logging.getLogger(__name__)

Judged = tuple[Judgement, JsonObject] | None
Handled = Callable[[Step], AbstractContextManager[None]]


def handed_phase(step: Step) -> TypeGuard[SetPhase]:
    """Whether ``step`` is a phase the pods give a placed job that goes on holding what it holds
    (Scheduled, Running), with no pod to delete: one status write, read as written by the next
    cycles (``HandedWrites.phase``). A finished job's phase (Succeeded, Failed) frees its quota,
    so it is written before its cycle ends: read as written and then refused, the quota given to
    another job meanwhile would be charged twice, and a queue over its share is reclaimed from."""
    return isinstance(step, SetPhase) and not step.delete_pods and not step.phase.finished


class HandedWrites:
    """The pools that write the handed-over decisions, and the writes assumed meanwhile."""

    def __init__(
        self,
        *,
        workers: int,
        actions: StepActions,
        status_writer: AdmittingWriter,
        handled: Handled,
        backoff: WriteBackoff,
        wake: Callable[[], None],
    ) -> None:
        """``handled``: the loop's error handling around one step (adapters/step_errors.py);
        ``wake``: wakes the loop."""
        self._actions, self._status, self._handled, self._backoff = actions, status_writer, handled, backoff
        # Pools of their own, so they never queue behind a deep queue's waiting writes, nor plans
        # behind phases. A plan or phase done (written or not) wakes the loop once its job is no
        # longer pending: a cycle woken by the reply alone may have found the job pending still,
        # and left it.
        self.placing = WaitingWrites(workers=workers, name="placing", done=wake)
        self.binding = WaitingWrites(workers=workers, name="binding")
        self.phases = WaitingWrites(workers=workers, name="phase", done=wake)
        self.assumed = AssumedWrites()

    @property
    def pools(self) -> tuple[tuple[str, WaitingWrites], ...]:
        """Each pool with its name, plans first: a plan written hands its pods to the binding."""
        return (("placing", self.placing), ("binding", self.binding), ("phase", self.phases))

    def pending(self) -> frozenset[str]:
        """The jobs with a handed write pending (read before the assumptions: adapters/
        assumed_writes.py)."""
        return self.placing.pending() | self.binding.pending() | self.phases.pending()

    def plan(self, step: Place, document: Document, now: datetime, judged: Judged) -> None:
        """A placement's plan worked out here and written by ``placing``: the next cycles read the
        job as the write will leave it until it is done, as kube-scheduler assumes a pod while
        its binding cycle runs and Kueue an admission while its admission routine writes it."""
        with self._handled(step):  # a step that cannot even be handed over fails alone, as in a pool
            if self._under_way(self.placing, step):
                return
            admitted = document if judged is None else with_status(document, judged[1])
            write = self._actions.plan_write(step, admitted, now=now)
            self.assumed.assume(step.job.uid, step.job.key, admitted, write.patch)
            self._submit(
                self.placing, step, functools.partial(self._place, step, document, write, now, judged)
            )

    def phase(self, step: SetPhase, document: Document, judged: Judged, act: Callable[[], None]) -> None:
        """A running job's new phase, written by ``phases`` (``act``: the loop's acting on
        ``step``, which writes it and records its Event), read as written meanwhile."""
        with self._handled(step):
            if self._under_way(self.phases, step):
                return
            admitted = document if judged is None else with_status(document, judged[1])
            patch = status.phase_set(step, admitted.get("status") or {})
            # None is not expected (a SetPhase is decided only for a phase the status does not
            # say): then at most an admission is written, and the job is read as it is.
            if patch is not None:
                self.assumed.assume(step.job.uid, step.job.key, admitted, patch)
            self._submit(self.phases, step, functools.partial(self._written, step, act))

    def stop(self, *, deadline: float) -> None:
        """Writes under way land until ``deadline`` (time.monotonic()); those not started are dropped."""
        for _, pool in self.pools:
            pool.stop(wait_seconds=max(0.0, deadline - time.monotonic()))

    def drop_queued(self) -> None:
        """Writes not started are dropped (the replica stopped leading): the leader decides afresh."""
        for _, pool in self.pools:
            pool.drop_queued()

    def settle(self) -> None:
        """Waits for every handed write, plans first (a plan written hands its pods over)."""
        for _, pool in self.pools:
            pool.settle()

    @staticmethod
    def _under_way(pool: WaitingWrites, step: Step) -> bool:
        """Whether ``pool`` has a write of the job pending: never expected (a job with a write
        pending is not acted on); then this one is dropped, and the pending one's assumption
        left as it is."""
        if step.job.uid not in pool.pending():
            return False
        logger.warning("%s/%s: a write is under way already; this one is dropped", *step.job.key)
        return True

    def _submit(self, pool: WaitingWrites, step: Step, task: Callable[[], None]) -> None:
        uid = step.job.uid
        try:
            pool.submit(uid, task)  # nothing pending for the job (``_under_way``): taken
        except BaseException:  # the pool stopped: never written, so never read as written
            self.assumed.drop(uid)
            raise

    def _written(self, step: Step, act: Callable[[], None]) -> None:
        """``act`` run; the assumption ends once its reply is in the watched copy, or it failed."""
        try:
            act()
        finally:
            self.assumed.drop(step.job.uid)

    def _place(
        self, step: Place, document: Document, write: PlanWrite, now: datetime, judged: Judged
    ) -> None:
        """The plan written (with the job's admission, if judged in its cycle), then its pods handed
        to ``binding``: created and bound, the job marked Scheduled. The assumption ends only once
        the reply is in the watched copy, or the write failed."""
        try:
            with self._handled(step), self._status.carrying(document, judged) as admitted:
                bind = self._actions.plan(step, admitted, write, now=now)
                if not self.binding.submit(step.job.uid, functools.partial(self._bind_planned, step, bind)):
                    self._bind_planned(step, bind)  # never expected: a placed job had nothing pending
        finally:
            self.assumed.drop(step.job.uid)

    def _bind_planned(self, step: Place, bind: Callable[[], bool]) -> None:
        """The rest of a placement whose plan is written: its pods created and bound, the job
        marked Scheduled (or the plan rolled back)."""
        with self._handled(step):
            if bind():
                self._backoff.succeeded(step.job.uid)
