"""A ModelJob's lifecycle: what its status says, what its pods and nodes say, and what to do about it.

The operator keeps decisions safe by writing a plan before acting on it (docs/operator.md,
"Keeping decisions safe"): a
placement is written with a ``Binding`` condition, then pods are created and bound, then the
condition is cleared. Whatever the operator finds when it looks (after a crash, a lost node, a
deleted pod, a changed spec) is judged here, as plain data, and the answer says what to do and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase, Toleration
from modeljob.core.jobs import JobShape
from modeljob.core.resources import GIB, Resources
from modeljob.core.sizing import Device, SizingError, size_replica

# Sizing problems that do not depend on the device (a negative override, training int4 weights)
# show on any device; this one stands in for "some device" when judging a spec.
_PROBE_DEVICE = Device(memory_bytes=80 * GIB, gpus_per_node=8)


class JobPhase(StrEnum):
    # status.phase, also the API's type of that field (api/v1alpha1.py). No docstring: pydantic
    # would make it the enum's description and move the CRD field's own description around.

    PENDING = "Pending"
    QUEUED = "Queued"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNSCHEDULABLE = "Unschedulable"
    INVALID = "Invalid"

    @property
    def finished(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


class ConditionType(StrEnum):
    VALID = "Valid"  # the spec makes sense (written when a generation is admitted)
    SCHEDULED = "Scheduled"  # every replica is bound; False says why the job waits
    BINDING = "Binding"  # a written placement is being bound; True only between plan and bound


class Requeue(StrEnum):
    """Why a placed job goes back to the queue (Event reasons, metric labels)."""

    NODE_LOST = "NodeLost"
    POD_LOST = "PodLost"
    SPEC_CHANGED = "SpecChanged"
    BINDING_FAILED = "BindingFailed"


class Action(StrEnum):
    NONE = "none"  # nothing to do (not admitted yet, finished, or all is well)
    PLAN = "plan"  # waiting: a candidate for the scheduling cycle
    COMPLETE = "complete"  # a written placement is not fully bound yet: bind the rest
    # Undo a placement: delete the job's pods but ``keep`` and cut the placement to it (a job that
    # is not a gang keeps its healthy replicas, and its phase with them); otherwise the placement is
    # cleared and the job goes back to the queue (or stays Invalid where the spec is).
    ROLL_BACK = "roll-back"
    UPDATE = "update"  # the pods moved on (Running, Succeeded, ...): write the phase


@dataclass(frozen=True, slots=True)
class Placed:
    """One status.placement entry: replica -> pod -> node."""

    replica: int
    pod: str
    node: str
    score: float | None = None


@dataclass(frozen=True, slots=True)
class JobFacts:
    """One ModelJob as the scheduling loop sees it: the parts of its spec that matter, and its status.

    ``spec_hash`` covers everything that shapes its pods (not scheduling.*), so a change of
    priority does not move a running job. ``placed_generation`` is the generation the current
    placement was planned for; ``binding`` is the Binding condition.
    """

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    shape: JobShape
    spec_hash: str
    replicas: int = 1
    gang: bool = True
    queue: str = "default"
    priority: int = 0
    expected_duration_seconds: float | None = None
    accelerator: str = "nvidia.com/gpu"
    products: tuple[str, ...] = ()
    memory_per_device_bytes: int | None = None
    extra_requests: Resources = field(default_factory=Resources)  # the template's other containers
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    phase: JobPhase | None = None
    observed_generation: int | None = None
    placement: tuple[Placed, ...] = ()
    binding: bool = False
    placed_generation: int | None = None
    queued_since: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def admitted(self) -> bool:
        """The handlers have validated and sized the current generation."""
        return self.observed_generation == self.generation and self.phase not in (None, JobPhase.PENDING)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to do with one job, and why (reason is CamelCase for Events, message is for people)."""

    action: Action
    reason: str = ""
    message: str = ""
    phase: JobPhase | None = None  # UPDATE: the new phase; ROLL_BACK: the phase to return to
    requeue: Requeue | None = None
    delete_pods: tuple[str, ...] = ()
    to_bind: tuple[Placed, ...] = ()  # COMPLETE: entries whose pod must be created or bound
    to_create: tuple[str, ...] = ()  # COMPLETE: the pods among to_bind that do not exist yet
    keep: tuple[Placed, ...] = ()  # ROLL_BACK of a non-gang job: the replicas that stay placed


def admission_phase(current: JobPhase | None, *, valid: bool) -> JobPhase:
    """The phase after the handlers judged a (new) generation of the spec.

    A valid spec enters the queue unless the job is already in it, placed or finished; a placed
    job keeps its phase, and the scheduling loop re-plans it if its pods no longer match.
    """
    if not valid:
        return JobPhase.INVALID
    if current in (None, JobPhase.PENDING, JobPhase.INVALID):
        return JobPhase.QUEUED
    return current


def spec_problem(shape: JobShape) -> str | None:
    """What makes a schema-valid spec impossible to size, naming the field; None if nothing."""
    try:
        size_replica(shape, _PROBE_DEVICE)
    except SizingError as exc:
        return str(exc)
    return None


def reconcile_job(
    job: JobFacts,
    pods: Sequence[PodFacts],
    nodes: Mapping[str, NodeFacts],
    *,
    now: datetime,
    node_lost_after_seconds: float,
) -> Reconciliation:
    """Compare a job's status with its pods and their nodes; ``pods`` are the ones the job owns."""
    if not job.admitted:
        return Reconciliation(Action.NONE, reason="NotAdmitted")
    names = ", ".join(sorted(p.name for p in pods))
    if job.phase is JobPhase.INVALID:
        if pods or job.placement:
            return Reconciliation(
                Action.ROLL_BACK,
                reason="InvalidSpec",
                message=f"the spec is invalid; deleting the job's pods ({names or 'none'})",
                phase=JobPhase.INVALID,
                delete_pods=tuple(sorted(p.name for p in pods)),
            )
        return Reconciliation(Action.NONE, reason="Invalid")
    if job.phase is not None and job.phase.finished:
        return Reconciliation(Action.NONE, reason=job.phase.value)
    if not job.placement:
        strays = tuple(sorted(p.name for p in pods if not p.terminating))
        return Reconciliation(
            Action.PLAN,
            reason="Waiting",
            delete_pods=strays,
            phase=JobPhase.QUEUED if job.phase in (JobPhase.SCHEDULED, JobPhase.RUNNING) else job.phase,
        )
    return _reconcile_placed(
        job, pods, nodes, lambda node: node.lost(now=now, grace_seconds=node_lost_after_seconds)
    )


def _reconcile_placed(
    job: JobFacts,
    pods: Sequence[PodFacts],
    nodes: Mapping[str, NodeFacts],
    lost_node: Callable[[NodeFacts], bool],
) -> Reconciliation:
    """A placed job: ``lost_node`` says whether a node has been NotReady past the grace period."""
    by_name = {p.name: p for p in pods}
    planned = {entry.pod for entry in job.placement}
    strays = tuple(sorted(p.name for p in pods if p.name not in planned and not p.terminating))
    all_pods = tuple(sorted(by_name))

    def roll_back(requeue: Requeue, message: str, keep: tuple[Placed, ...] = ()) -> Reconciliation:
        kept = {entry.pod for entry in keep}
        return Reconciliation(
            Action.ROLL_BACK,
            reason=requeue.value,
            message=message,
            phase=job.phase if keep else JobPhase.QUEUED,
            requeue=requeue,
            delete_pods=tuple(name for name in all_pods if name not in kept),
            keep=keep,
        )

    changed = _spec_change(job, by_name)
    if changed is not None:
        return roll_back(Requeue.SPEC_CHANGED, changed)
    lost, to_bind, to_create = _check_entries(job, by_name, nodes, lost_node)
    if lost:
        first_reason = lost[0][1]
        message = "; ".join(text for _, _, text in lost)
        if job.gang:
            return roll_back(first_reason, f"{message}; the whole gang goes back to the queue")
        lost_entries = {entry for entry, _, _ in lost}
        keep = tuple(entry for entry in job.placement if entry not in lost_entries)
        return roll_back(first_reason, f"{message}; those replicas go back to the queue", keep=keep)
    if job.binding:
        return Reconciliation(
            Action.COMPLETE,
            reason="Binding",
            message=f"binding {len(to_bind)} of {len(job.placement)} pods",
            to_bind=tuple(to_bind),
            to_create=tuple(to_create),
            delete_pods=strays,
        )
    return _from_pods(job, [by_name[entry.pod] for entry in job.placement], strays)


def _spec_change(job: JobFacts, by_name: Mapping[str, PodFacts]) -> str | None:
    """How the spec changed under a placement (while binding, or under its pods); None if not."""
    if job.binding and job.placed_generation != job.generation:
        return (
            f"the spec changed (generation {job.placed_generation} -> {job.generation}) while binding; "
            "re-planning"
        )
    changed = sorted(
        entry.pod
        for entry in job.placement
        if entry.pod in by_name and by_name[entry.pod].spec_hash not in (None, job.spec_hash)
    )
    if changed:
        return (
            f"the spec changed (generation {job.generation}); pods {', '.join(changed)} no longer match it, "
            "re-planning"
        )
    return None


def _check_entries(
    job: JobFacts,
    by_name: Mapping[str, PodFacts],
    nodes: Mapping[str, NodeFacts],
    lost_node: Callable[[NodeFacts], bool],
) -> tuple[list[tuple[Placed, Requeue, str]], list[Placed], list[str]]:
    """Each placed replica checked against its node and pod: the lost ones (with why), and of a
    placement being bound, the entries still to bind and the pods still to create."""
    lost: list[tuple[Placed, Requeue, str]] = []
    to_bind: list[Placed] = []
    to_create: list[str] = []
    for entry in job.placement:
        pod = by_name.get(entry.pod)
        problem = _entry_lost(entry, pod, nodes.get(entry.node), lost_node)
        if problem is None and job.binding:
            problem = _binding_lost(entry, pod)
            if problem is None and (pod is None or pod.node is None):
                to_bind.append(entry)
                if pod is None:
                    to_create.append(entry.pod)
        elif problem is None and (pod is None or (pod.terminating and not pod.phase.finished)):
            problem = (Requeue.POD_LOST, f"pod {entry.pod} of replica {entry.replica} was deleted")
        if problem is not None:
            lost.append((entry, *problem))
    return lost, to_bind, to_create


def _from_pods(job: JobFacts, placed_pods: Sequence[PodFacts], strays: tuple[str, ...]) -> Reconciliation:
    """A bound placement whose replicas are all where they should be: the phase its pods give it."""
    phase = _phase_from_pods(job, placed_pods)
    if len(job.placement) < job.replicas:
        # A non-gang job whose other replicas still wait: it stays a candidate for planning.
        return Reconciliation(
            Action.PLAN,
            reason="PartlyPlaced",
            message=f"{len(job.placement)} of {job.replicas} replicas placed",
            phase=phase if phase is not job.phase else None,
            delete_pods=strays,
        )
    if phase is job.phase and not strays:
        return Reconciliation(Action.NONE, reason=phase.value)
    return Reconciliation(
        Action.UPDATE,
        reason=phase.value,
        message=_phase_message(phase, placed_pods),
        phase=phase,
        delete_pods=strays,
    )


def _entry_lost(
    entry: Placed, pod: PodFacts | None, node: NodeFacts | None, lost_node: Callable[[NodeFacts], bool]
) -> tuple[Requeue, str] | None:
    """Why a placed replica cannot stay where it is, whether bound yet or not; None if it can."""
    if node is None:
        return Requeue.NODE_LOST, f"node {entry.node} of replica {entry.replica} was deleted"
    if lost_node(node):
        return Requeue.NODE_LOST, f"node {entry.node} of replica {entry.replica} is NotReady"
    if pod is not None and pod.node is not None and pod.node != entry.node:
        return Requeue.BINDING_FAILED, f"pod {pod.name} is bound to {pod.node}, not {entry.node}"
    return None


def _binding_lost(entry: Placed, pod: PodFacts | None) -> tuple[Requeue, str] | None:
    """Why a replica of a placement being bound cannot be bound any more; None if it can."""
    if pod is not None and (pod.terminating or (pod.phase.finished and pod.node is None)):
        return Requeue.BINDING_FAILED, f"pod {pod.name} went away before it was bound"
    return None


def _phase_from_pods(job: JobFacts, pods: Sequence[PodFacts]) -> JobPhase:
    phases = [p.phase for p in pods]
    if any(p is PodPhase.FAILED for p in phases):
        return JobPhase.FAILED
    if phases and len(pods) == job.replicas and all(p is PodPhase.SUCCEEDED for p in phases):
        return JobPhase.SUCCEEDED
    if phases and all(p in (PodPhase.RUNNING, PodPhase.SUCCEEDED) for p in phases):
        return JobPhase.RUNNING
    return JobPhase.SCHEDULED


def _phase_message(phase: JobPhase, pods: Sequence[PodFacts]) -> str:
    if phase is JobPhase.FAILED:
        return _failure_message(pods)
    return {
        JobPhase.RUNNING: f"all {len(pods)} pods are running",
        JobPhase.SUCCEEDED: f"all {len(pods)} pods succeeded",
        JobPhase.SCHEDULED: f"{len(pods)} pods bound, not all running yet",
    }.get(phase, phase.value)


def _failure_message(pods: Sequence[PodFacts]) -> str:
    """Which pod failed and why: its container, the reason (OOMKilled, Error) and the exit code."""
    failed = [p for p in pods if p.phase is PodPhase.FAILED]
    first = failed[0]
    why = f": {first.termination.describe()}" if first.termination is not None else ""
    others = f" (and {len(failed) - 1} more pod(s))" if len(failed) > 1 else ""
    return f"pod {first.name} failed{why}{others}"
