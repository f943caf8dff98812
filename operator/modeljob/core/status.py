"""Every ModelJob status patch and condition the operator writes, built from a decision (pure).

The scheduling loop writes one patch per step (core/steps.py); a job admitted in the same cycle
(a new spec generation judged, core/spec_admission.py) has its admission patch ride on the first.
Patches are JSON merge patches of the status subresource: a None value removes the field.
Conditions follow the Kubernetes convention (core/conditions.py). The Scheduled condition stays
one short line; the detail behind it (every node type tried, with its score or why it failed)
goes in the Scheduled Event (docs/operator.md, "Observability").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum

from modeljob.core.attempts import attempt_said
from modeljob.core.conditions import Json, conditions_of, set_condition
from modeljob.core.job_state import ConditionType, JobPhase, Placed
from modeljob.core.node_types import NodeType
from modeljob.core.rolling import UPDATING
from modeljob.core.sizing import Estimate
from modeljob.core.steps import Place, RollBack, SetPhase, Unschedulable, Update, Wait, pod_of_group

# status.estimate.explanation: one line per sizing rule, at most this many.
EXPLANATION_LINES_MAX = 64


def estimate_status(estimate: Estimate) -> Json:
    """status.estimate: the breakdown (docs/operator.md), the device size, and one line per rule."""
    return {
        **estimate.to_dict(),
        "deviceMemoryBytes": estimate.device_memory_bytes,
        "explanation": [f"{rule.field}: {rule.explanation}" for rule in estimate.rules][
            :EXPLANATION_LINES_MAX
        ],
    }


def sized(estimate: Estimate, replicas: int) -> Json:
    """The job's sizing in its status: one replica's estimate, and GPUs for the whole job (every
    pod of every replica: a replica that spans nodes has ``nodes_per_replica`` pods)."""
    return {
        "estimate": estimate_status(estimate),
        "gpus": estimate.gpus * estimate.nodes_per_replica * replicas,
    }


def placement_status(entries: Sequence[Placed]) -> list[Json]:
    """One entry per pod; the pods of a replica that spans nodes also say their ``member``."""
    grouped = {e.replica for e in entries if e.member > 0}
    return [
        {
            "replica": e.replica,
            **({"member": e.member} if e.replica in grouped else {}),
            "pod": e.pod,
            "node": e.node,
            **({"score": e.score} if e.score is not None else {}),
        }
        for e in sorted(entries, key=lambda e: (e.replica, e.member))
    ]


# --- admission ----------------------------------------------------------------------------------


def admitted(
    status: Mapping[str, object],
    *,
    generation: int | None,
    problem: str | None,
    phase: JobPhase,
    queue: str,
    estimate: Estimate | None,
    replicas: int,
    now: datetime,
) -> Json:
    """One generation of the spec judged: Valid (sized, maybe Queued) or Invalid naming the field."""
    conditions = set_condition(
        conditions_of(status),
        type_=ConditionType.VALID,
        status=problem is None,
        reason="Valid" if problem is None else "InvalidSpec",
        message=problem or "the spec was validated and sized",
        now=now,
        generation=generation,
    )
    patch: Json = {"observedGeneration": generation, "phase": phase.value, "conditions": conditions}
    if problem is not None:
        patch["message"] = problem
        patch["queuePosition"] = None
    elif estimate is not None and not status.get("placement"):
        patch.update(sized(estimate, replicas))
    if phase is JobPhase.QUEUED and status.get("phase") != JobPhase.QUEUED.value:
        patch["message"] = f"queued in {queue}"
    return patch


# --- the scheduling loop ------------------------------------------------------------------------


class WaitingWrite(Enum):
    """What writing a waiting job's status would change (``waiting_write``)."""

    NONE = "none"  # the status says so already
    REFRESH = "refresh"  # only the position's number and/or the reason: the caller budgets these
    CHANGE = "change"  # what the job IS: written at once


def waiting_write(step: Wait | Unschedulable, status: Mapping[str, object]) -> WaitingWrite:
    """A refresh keeps the phase, has a position before and after (its number moved with the jobs
    placed ahead) and/or a new reason (it names free blocks, which change with every pod). A new
    phase, a position appearing or going, a plan to clear or a first sizing is a change."""
    # Asked of every waiting job each cycle (adapters/job_status.py): plain reads only.
    if isinstance(step, Unschedulable):
        phase, position, keeps = JobPhase.UNSCHEDULABLE, None, False
    else:
        phase, position, keeps = step.phase, step.queue_position, step.keeps_plan
    over = not keeps and plan_written(status)
    written, same_phase = status.get("queuePosition"), status.get("phase") == phase  # a StrEnum: its text
    if same_phase and not over and written == position and status.get("message") == step.message:
        return WaitingWrite.NONE
    first_sizing = step.candidate is not None and not step.job.placement and not status.get("estimate")
    if over or first_sizing or not same_phase or (written is None) != (position is None):
        return WaitingWrite.CHANGE
    return WaitingWrite.REFRESH


def position_off(step: Wait | Unschedulable, status: Mapping[str, object]) -> float:
    """How far the queue position ``status`` shows is from the step's, relative to the step's: 0.5
    for a job shown 3rd that is 2nd, 0.002 for one shown 5,000th that is 4,990th; 0 when either has
    none. What a refresh of the position is worth to whoever reads it."""
    written = status.get("queuePosition")
    position = step.queue_position if isinstance(step, Wait) else None
    if not isinstance(written, int) or not position:
        return 0.0
    return abs(written - position) / position


def waiting(
    step: Wait | Unschedulable, status: Mapping[str, object], *, now: datetime, refresh: bool
) -> Json | None:
    """Queued (with its position) or Unschedulable, and why; None if the status says so already,
    or if it would only be refreshed (``waiting_write``) and ``refresh`` is False: rewriting every
    queued job's position and reason each cycle would cost a write per job, so the caller budgets
    refreshes (adapters/job_status.py, ReasonRewrites)."""
    write = waiting_write(step, status)
    if write is WaitingWrite.NONE or (write is WaitingWrite.REFRESH and not refresh):
        return None
    unschedulable = isinstance(step, Unschedulable)
    over = {} if isinstance(step, Wait) and step.keeps_plan else plan_over(status)
    position = None if isinstance(step, Unschedulable) else step.queue_position
    phase = JobPhase.UNSCHEDULABLE if isinstance(step, Unschedulable) else step.phase
    conditions = set_condition(
        conditions_of(status),
        type_=ConditionType.SCHEDULED,
        status=False,
        reason="Unschedulable" if unschedulable else "Waiting",
        message=step.message,
        now=now,
    )
    patch: Json = {
        "phase": phase.value,
        "queuePosition": position,
        "message": step.message,
        "conditions": conditions,
    }
    if step.candidate is not None and not step.job.placement:
        patch.update(sized(step.candidate.estimate, step.job.replicas))
    return patch | over


def planned(
    step: Place,
    entries: Sequence[Placed],
    status: Mapping[str, object],
    *,
    now: datetime,
    endpoint: str | None,
) -> Json:
    """The plan, written before any pod exists: status.placement and Binding=True, and the URL the
    job serves on (the adapter's to name; None removes one an earlier spec had)."""
    new = len(step.placement)
    message = f"binding {new} pod(s) on {step.candidate.node_type.describe()}"
    conditions = set_condition(
        conditions_of(status),
        type_=ConditionType.BINDING,
        status=True,
        reason="Binding",
        message=message,
        now=now,
        generation=step.job.generation,
    )
    if step.replaces is not None:
        surge = step.replaces.surge([a.node for a in step.placement])
        conditions = _updating(conditions, reason=UPDATING, message=surge, now=now)
    return {
        "placement": placement_status(entries),
        **sized(step.candidate.estimate, step.job.replicas),
        "nodes": _nodes(entries),
        "pods": len(entries),
        "queuePosition": None,
        "endpoint": endpoint,
        "conditions": conditions,
        "message": message,
    }


def scheduled_message(
    entries: Sequence[Placed], node_type: NodeType | None, *, place: Place | None = None
) -> str:
    """One line: how many pods are bound, where, how well they scored, and (for a new placement,
    ``place``) in short what decided, its scores shown with as many decimals as the clause's."""
    scores = [e.score for e in entries if e.score is not None]
    what = f" on {node_type.describe()}" if node_type is not None else ""
    decimals = place.decimals if place is not None else 2
    score = f", mean score {sum(scores) / len(scores):.{decimals}f}" if scores else ""
    decided = place.decided if place is not None else ""
    return f"{len(entries)} pod(s) bound{what}{score}" + (f" ({decided})" if decided else "")


def scheduled_event(
    entries: Sequence[Placed], node_type: NodeType | None, *, place: Place | None = None
) -> str:
    """The Scheduled Event: the condition's line, then the detail. For a new placement (``place``):
    every node type tried with its mean score or why it failed, each replica's node and what set it
    apart; for a completed one (an interrupted binding) each replica's node and score."""
    grouped = any(e.member for e in entries)
    where = ", ".join(
        f"replica {e.replica}{pod_of_group(e.member, grouped)} -> {e.node}"
        + (f" (score {e.score:.2f})" if e.score is not None else "")
        for e in entries
    )
    parts = [
        scheduled_message(entries, node_type, place=place),
        attempt_said(place) if place else "",
        place.message if place else where,
    ]
    prefix = "" if place is not None else "completed an interrupted binding: "
    return prefix + "; ".join(part for part in parts if part)


def scheduled(
    status: Mapping[str, object],
    *,
    entries: Sequence[Placed],
    node_type: NodeType | None,
    generation: int | None,
    now: datetime,
    place: Place | None = None,
    phase: JobPhase = JobPhase.SCHEDULED,
    phase_message: str = "",
) -> Json:
    """Every pod of the placement is bound: Binding=False/Bound, Scheduled=True, phase Scheduled,
    or the phase the pods already give the job (``phase``, with its ``phase_message``:
    core/lifecycle.py, ``phase_once_bound``), so that no second write is needed to say so."""
    message = scheduled_message(entries, node_type, place=place)
    conditions = set_condition(
        conditions_of(status),
        type_=ConditionType.BINDING,
        status=False,
        reason="Bound",
        message="every pod of the placement is bound",
        now=now,
        generation=generation,
    )
    conditions = set_condition(
        conditions, type_=ConditionType.SCHEDULED, status=True, reason="Placed", message=message, now=now
    )
    if place is not None and place.replaces is not None:
        return {"conditions": conditions, "message": message}  # the old pods serve on: phase kept
    return {"phase": phase.value, "conditions": conditions, "message": phase_message or message}


def rolled_back(step: RollBack, status: Mapping[str, object], *, now: datetime) -> Json:
    """Pods deleted: the placement cleared (or cut to ``keep``) and the phase to return to, with why.

    A job whose pods the API server refused is Invalid with Valid=False naming the field; any
    other roll back says why in the Scheduled condition. A restart (``step.restart``) counts one
    more in status.restarts.
    """
    conditions = set_condition(
        conditions_of(status),
        type_=ConditionType.BINDING,
        status=False,
        reason="RolledBack" if step.was_binding else "NotBinding",
        message=step.message,
        now=now,
        generation=step.job.generation,
    )
    if step.updating:
        conditions = _updating(conditions, reason=UPDATING, message=step.message, now=now)
    elif step.invalid_spec or step.phase is not JobPhase.INVALID:
        conditions = set_condition(
            conditions,
            type_=ConditionType.VALID if step.invalid_spec else ConditionType.SCHEDULED,
            status=False,
            reason=step.reason,
            message=step.message,
            now=now,
            generation=step.job.generation if step.invalid_spec else None,
        )
    patch: Json = {
        "phase": step.phase.value,
        "placement": placement_status(step.keep),
        "nodes": _nodes(step.keep) or None,
        "pods": len(step.keep) or None,
        "queuePosition": None,  # numbered again by the next cycle's queue order, if it waits
        "conditions": conditions,
        "message": step.message,
    }
    if step.restart:
        # Counted on the status this very write replaces (conditional on its resourceVersion), in
        # the write that also takes the failed pods out of the placement: once, whatever crashes.
        patch["restarts"] = restarts(status) + 1
    if not step.keep:
        patch["endpoint"] = None  # nothing left to serve: the next plan writes it again
    return patch | plan_over(status)  # suspended, invalid, preempted: a plan of its own is over


def plan_over(status: Mapping[str, object]) -> Json:
    """A preemptor's written plan (status.preempting, status.nominatedNodes) cleared, if it has
    one. A plan lives from the Preempt step that writes it until any other step of the job but
    the wait for its victims' pods to go (core/preempting.py): placed, suspended, invalid,
    preempted in turn, or its victims gone and the job planned afresh."""
    if plan_written(status):
        return {"preempting": None, "nominatedNodes": None}
    return {}


def plan_written(status: Mapping[str, object]) -> bool:
    """The status holds a preemptor's plan (status.preempting or status.nominatedNodes)."""
    return bool(status.get("preempting") or status.get("nominatedNodes"))


def restarts(status: Mapping[str, object]) -> int:
    """status.restarts: how many times the job (or a replica of it) was recreated after a failure."""
    count = status.get("restarts")
    return count if isinstance(count, int) else 0


def phase_set(step: SetPhase, status: Mapping[str, object]) -> Json | None:
    """The phase the pods give the job; None if the status says so already."""
    if status.get("phase") == step.phase.value:
        return None
    return {"phase": step.phase.value, "message": step.message}


def update_reason(step: Update) -> str:
    """The Updating condition's reason, also its Event's."""
    if step.done:
        return "Updated"
    return "UpdateBlocked" if step.blocked else UPDATING


def updated(step: Update, status: Mapping[str, object], *, now: datetime) -> Json | None:
    """Where a rolling update stands (the Updating condition) and the phase its pods give the job;
    None if the status says so already."""
    reason = update_reason(step)
    current = next((c for c in conditions_of(status) if c.get("type") == ConditionType.UPDATING.value), None)
    said = (current or {}).get("status"), (current or {}).get("reason"), (current or {}).get("message")
    if (
        said == ("False" if step.done else "True", reason, step.message)
        and status.get("phase") == step.phase.value
    ):
        return None
    conditions = _updating(
        conditions_of(status), reason=reason, message=step.message, now=now, done=step.done
    )
    return {"phase": step.phase.value, "conditions": conditions, "message": step.message}


def _updating(
    conditions: Sequence[Mapping[str, object]],
    *,
    reason: str,
    message: str,
    now: datetime,
    done: bool = False,
) -> list[Json]:
    return set_condition(
        conditions, type_=ConditionType.UPDATING, status=not done, reason=reason, message=message, now=now
    )


def _nodes(entries: Sequence[Placed]) -> str:
    return ",".join(sorted({e.node for e in entries}))
