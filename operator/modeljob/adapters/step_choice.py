"""Which of a cycle's steps the scheduling loop acts on, and which it waits for (adapters/
scheduling_loop.py): a deep queue's steps mostly change nothing, and a waiting job's status decides
nothing a later cycle reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeljob.adapters.job_status import ReasonRewrites
from modeljob.core import status, steps
from modeljob.core.status import WaitingWrite
from modeljob.core.steps import Step, Unschedulable, Wait


def decides(step: Step, document: Mapping[str, Any]) -> bool:
    """Whether a later cycle reads back what acting on ``step`` writes: anything but a waiting
    job's status (a preemptor waiting for its victims, or one whose plan is cleared, decides
    too: the next cycle plans from that plan), so it is written before the cycle ends, or
    handed over and read as written meanwhile (a placement's plan, a running job's phase:
    adapters/handed_writes.py)."""
    if not isinstance(step, Wait | Unschedulable) or step.delete_pods or step.job.placement:
        return True
    return bool(step.job.preempting or status.plan_over(document.get("status") or {}))


def does_something(
    step: Step, write: WaitingWrite | None, *, admitted: bool, rewrites: ReasonRewrites
) -> bool:
    """Whether acting on ``step`` writes or deletes anything: a job admitted now always (its
    admission is written with its step), a Keep only with pods to delete, a Wait or
    Unschedulable only if its status is not already what it would write (``write``, as
    ``StepActions._wait`` would find it), or a refresh the cycle's budget (``rewrites``) grants."""
    if admitted or step.delete_pods:
        return True
    if isinstance(step, steps.Keep):
        return False
    if isinstance(step, Wait | Unschedulable):
        return write is WaitingWrite.CHANGE or (
            write is WaitingWrite.REFRESH and rewrites.allowed(step.job.uid)
        )
    return True
