"""The status patches of a preemption (pure): the preemptor's written plan, and each victim's
eviction with who preempted it and by which rule.

The preemptor's patch is written before any victim is touched (status.preempting names the
victims, status.nominatedNodes their nodes): after a crash the next cycle reads that plan back
and finishes it (core/preempting.py). A victim's patch is its RollBack's (core/status.py
``rolled_back``) plus the Preempted condition, status.preemptions, status.preemptedBy and the
work its run kept (status.checkpointedSeconds), in the same write, so a victim is evicted and
recorded as such at once, or neither, and no run's kept work is counted twice or lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from modeljob.core.conditions import Json, conditions_of, set_condition
from modeljob.core.job_state import ConditionType, JobPhase
from modeljob.core.preempting import PREEMPTED_BY_KEPT
from modeljob.core.preemption_rules import PreemptionReason, kept_seconds
from modeljob.core.status import rolled_back
from modeljob.core.steps import Preempt, RollBack


def preempting(step: Preempt, status: Mapping[str, object], *, now: datetime) -> Json:
    """The preemptor's plan: its victims and their nodes, and why it waits meanwhile. A new plan
    replaces one written before (whose victims are all gone, or it would have been carried on);
    a plan carried on after a restart names the victims it named."""
    conditions = set_condition(
        conditions_of(status),
        type_=ConditionType.SCHEDULED,
        status=False,
        reason="Preempting",
        message=step.message,
        now=now,
    )
    patch: Json = {
        "phase": JobPhase.QUEUED.value,
        "queuePosition": step.queue_position or None,
        "preempting": sorted({*step.plan, *(v.job.ref for v in step.victims)}),
        "nominatedNodes": sorted(set(step.nodes)),
        "message": step.message,
        "conditions": conditions,
    }
    return patch


def preempted(step: RollBack, status: Mapping[str, object], *, now: datetime) -> Json:
    """A victim evicted: the RollBack's patch, the Preempted condition naming the preemptor and
    the rule, the counts the anti-thrash rules read back, and the work the run kept up to its
    last checkpoint, added to what earlier runs kept (remaining expected time reads it back). A
    time-slice turn counts, but is no preemption in the chain sense (round-robin is a cycle by
    design)."""
    patch = rolled_back(step, status, now=now)
    assert step.preempted_by is not None
    patch["conditions"] = set_condition(
        patch["conditions"],  # type: ignore[arg-type]
        type_=ConditionType.PREEMPTED,
        status=True,
        reason=step.preemption_rule or "Preempted",
        message=step.message,
        now=now,
    )
    count = status.get("preemptions")
    patch["preemptions"] = (count if isinstance(count, int) else 0) + 1
    job = step.job
    if job.checkpoint_interval_seconds:
        run = max(0.0, (now - (job.started or job.created)).total_seconds())
        kept = status.get("checkpointedSeconds")
        before = kept if isinstance(kept, int) else 0
        patch["checkpointedSeconds"] = before + int(kept_seconds(run, job.checkpoint_interval_seconds))
    if step.preemption_rule != PreemptionReason.TIME_SLICE.value:
        chain = [*_names(status.get("preemptedBy")), step.preempted_by]
        patch["preemptedBy"] = chain[-PREEMPTED_BY_KEPT:]
    return patch  # a preemptor evicted in turn starts over: rolled_back clears its plan


def placed_again() -> Json:
    """What a preemptor's placement clears: its plan is done (``status.plan_over``)."""
    return {"preempting": None, "nominatedNodes": None}


def _names(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
