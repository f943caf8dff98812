"""A ModelJob's lifecycle: what its status says, what its pods and nodes say, and what to do about it.

The operator keeps decisions safe by writing a plan before acting on it (docs/operator.md,
"Keeping decisions safe"): a placement is written with a ``Binding`` condition, then pods are
created and bound, then the condition is cleared. Whatever the operator finds when it looks (after
a crash, a lost node, a deleted pod, a changed spec) is judged here, as plain data, and the answer
is the job's step (core/steps.py) with its reason, or ``Plan`` for a job the cycle must place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from modeljob.core import rolling
from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase
from modeljob.core.job_state import JobFacts, JobPhase, Placed, Requeue, RestartScope
from modeljob.core.jobs import JobShape
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, SizingError, size_replica
from modeljob.core.steps import Complete, Keep, Roll, RollBack, SetPhase, Update, evict

# Sizing problems that do not depend on the device (a negative override, training int4 weights)
# show on any device; this one stands in for "some device" when judging a spec.
_PROBE_DEVICE = Device(memory_bytes=80 * GIB, gpus_per_node=8)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Waiting for room (or, not a gang, for its other replicas): the cycle plans it, and its step
    is the plan's (Place, Wait or Unschedulable)."""

    job: JobFacts
    phase: JobPhase  # while it waits: Queued, or the phase its placed replicas' pods give it
    delete_pods: tuple[str, ...] = ()
    roll: Roll | None = None  # a rolling update's next replica to replace (core/rolling.py)


# What judging a job can say: a step decided here, or Plan. A Complete's candidate is left to the
# cycle, which sizes it and rolls the placement back if its nodes no longer have room.
Reconciled = Keep | SetPhase | RollBack | Complete | Update | Plan


def admission_phase(current: JobPhase | None, *, valid: bool) -> JobPhase:
    """The phase after a (new) generation of the spec was judged (core/spec_admission.py).

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
) -> Reconciled:
    """Compare a job's status with its pods and their nodes; ``pods`` are the ones the job owns."""
    if not job.admitted:
        return Keep(job=job)  # not admitted: the loop admits before its cycle (core/spec_admission.py)
    if job.phase is JobPhase.INVALID:
        if pods or job.placement or job.preempting:  # the roll back clears a preemption plan too
            names = ", ".join(sorted(p.name for p in pods))
            return RollBack(
                job=job,
                reason="InvalidSpec",
                message=f"the spec is invalid; deleting the job's pods ({names or 'none'})",
                phase=JobPhase.INVALID,
                delete_pods=tuple(sorted(p.name for p in pods)),
                was_binding=job.binding,
            )
        return Keep(job=job)
    if job.phase is not None and job.phase.finished:
        # A finished job holds no devices: the pods a failure left running are stopped here, after
        # the phase was written, so a crash in between cannot make them look lost and requeued.
        running = tuple(sorted(p.name for p in pods if not p.phase.finished and not p.terminating))
        return Keep(job=job, delete_pods=running)
    if job.suspend:
        return _suspend(job, pods)
    if not job.placement:
        strays = tuple(sorted(p.name for p in pods if not p.terminating))
        return Plan(job=job, phase=JobPhase.QUEUED, delete_pods=strays)
    return _reconcile_placed(
        job, pods, nodes, lambda node: node.lost(now=now, grace_seconds=node_lost_after_seconds)
    )


def _suspend(job: JobFacts, pods: Sequence[PodFacts]) -> Keep | RollBack:
    """spec.suspend: the job's pods deleted and their devices freed, the job and its estimate kept
    (phase Suspended); it is planned again, as any job without a placement, once suspend is false."""
    live = tuple(sorted(p.name for p in pods if not p.terminating))
    if job.phase is JobPhase.SUSPENDED and not job.placement:
        return Keep(job=job, delete_pods=live)  # pods a crash left after the status was written
    what = f"deleting pods {', '.join(live)}" if live else "no pods to delete"
    return evict(
        job,
        live,
        reason="Suspended",
        message=f"suspended (spec.suspend is true): {what}; queued again when spec.suspend is false",
        phase=JobPhase.SUSPENDED,
        warning=False,
    )


def _reconcile_placed(
    job: JobFacts,
    pods: Sequence[PodFacts],
    nodes: Mapping[str, NodeFacts],
    lost_node: Callable[[NodeFacts], bool],
) -> Reconciled:
    """A placed job: ``lost_node`` says whether a node has been NotReady past the grace period."""
    by_name = {p.name: p for p in pods}
    # A rolling update's old pods serve until their replacement runs: neither strays nor evicted.
    kept = rolling.outgoing(job, pods, lambda node: node in nodes and not lost_node(nodes[node]))
    planned = {entry.pod for entry in job.placement} | kept
    strays = tuple(sorted(p.name for p in pods if p.name not in planned and not p.terminating))
    all_pods = tuple(sorted(set(by_name) - kept))
    if job.rolls and job.binding and job.placed_generation != job.generation:
        return rolling.interrupted(job, by_name)
    # A serving job's pods of an earlier spec are replaced a few at a time, below (core/rolling.py).
    changed = None if job.rolls else _spec_change(job, by_name)
    if changed is not None:
        return evict(
            job,
            all_pods,
            reason=Requeue.SPEC_CHANGED.value,
            message=changed,
            phase=JobPhase.QUEUED,
            requeue=Requeue.SPEC_CHANGED,
        )
    lost, to_bind, to_create = _check_entries(job, by_name, nodes, lost_node)
    if not job.binding:
        lost += _failed_entries(job, by_name, {entry for entry, _, _ in lost})
    if lost:
        return _recover(job, lost, all_pods, strays, evicted=_evicted(job, by_name))
    if job.binding:
        return Complete(
            job=job,
            candidate=None,  # sized by the cycle, which knows the nodes' room
            to_bind=tuple(to_bind),
            to_create=tuple(to_create),
            delete_pods=strays,
        )
    rolled = rolling.advance(job, by_name, kept, strays) if job.rolls else None
    if isinstance(rolled, Roll):
        return Plan(job=job, phase=rolled.phase, delete_pods=strays, roll=rolled)
    return rolled or _from_pods(job, [by_name[entry.pod] for entry in job.placement], strays)


# What a serving job's NodeLost / PodFailed Event says of a disruption it is recreated after.
NOT_COUNTED = "not counted against failurePolicy.maxRestarts: a serving job outlives lost nodes and evictions"


def _recover(
    job: JobFacts,
    lost: Sequence[tuple[Placed, Requeue, str]],
    all_pods: Sequence[str],
    strays: tuple[str, ...],
    *,
    evicted: frozenset[Placed] = frozenset(),
) -> RollBack | SetPhase:
    """Replicas that cannot go on where they are, back to the queue by the failure policy: the
    whole job or only those replicas (``JobFacts.scope``). A failure (``_counted``) counts one
    restart, and with ``maxRestarts`` used up the job is Failed instead; anything else is
    recreated uncounted."""
    first_reason = lost[0][1]
    message = "; ".join(text for _, _, text in lost)
    failure, disrupted = _counted(job, lost, evicted)
    if failure and job.restarts >= job.max_restarts:
        return SetPhase(
            job=job,
            phase=JobPhase.FAILED,
            message=f"{message}; not recreated: failurePolicy.maxRestarts is {job.max_restarts} and "
            f"the job was recreated {job.restarts} time(s)",
            delete_pods=strays,
        )
    # A replica goes whole: the other pods of a multi-node replica's group cannot go on without it.
    lost_replicas = {entry.replica for entry, _, _ in lost}
    whole = job.scope is RestartScope.JOB
    keep = () if whole else tuple(entry for entry in job.placement if entry.replica not in lost_replicas)
    what = (
        ("the whole gang" if job.gang else "every replica") + " goes back to the queue"
        if whole
        else "those replicas go back to the queue"
    )
    counted = f" (restart {job.restarts + 1} of {job.max_restarts})" if failure else ""
    if disrupted and not failure and not job.binding:
        counted = f" ({NOT_COUNTED})"
    kept = {entry.pod for entry in keep}
    return evict(
        job,
        [name for name in all_pods if name not in kept],
        reason=first_reason.value,
        message=f"{message}; {what}{counted}",
        # Replicas kept keep the phase their pods gave the job (an admitted job has one).
        phase=(job.phase or JobPhase.QUEUED) if keep else JobPhase.QUEUED,
        requeue=first_reason,
        keep=keep,
        restart=failure,
    )


def _counted(
    job: JobFacts, lost: Sequence[tuple[Placed, Requeue, str]], evicted: frozenset[Placed]
) -> tuple[bool, bool]:
    """Whether losing these replicas is a failure that counts a restart, and whether any of them
    was a serving job's disruption (recreated uncounted, and said so).

    A failed pod or a lost node of a bound placement is a failure. A deleted pod or a plan that
    could not be bound is no failure of the work's (someone deleted it; the operator stopped
    midway). A serving job's disruption, a lost node or a pod the kubelet evicted (``evicted``),
    is none either: nothing of its own failed, and a service is kept up for as long as it is
    wanted, as Deployments and LeaderWorkerSets are; a training job keeps the Job convention (a
    lost node counts), since its run restarts from a checkpoint at best."""
    serving = not job.shape.workload.type.trains
    disrupted = [
        entry
        for entry, reason, _ in lost
        if serving and (reason is Requeue.NODE_LOST or (reason is Requeue.POD_FAILED and entry in evicted))
    ]
    failure = not job.binding and any(
        reason in (Requeue.NODE_LOST, Requeue.POD_FAILED) and entry not in disrupted
        for entry, reason, _ in lost
    )
    return failure, bool(disrupted)


def _evicted(job: JobFacts, by_name: Mapping[str, PodFacts]) -> frozenset[Placed]:
    """The placed replicas whose pod the kubelet evicted (phase Failed, the pod's own reason
    Evicted, no container's): a disruption of the node, not a failure of the work."""
    found = set()
    for entry in job.placement:
        pod = by_name.get(entry.pod)
        ended = pod.termination if pod is not None and pod.phase is PodPhase.FAILED else None
        if ended is not None and not ended.container and ended.reason == "Evicted":
            found.add(entry)
    return frozenset(found)


def _failed_entries(
    job: JobFacts, by_name: Mapping[str, PodFacts], already: set[Placed]
) -> list[tuple[Placed, Requeue, str]]:
    """The placed replicas whose pod failed (kubelet will not restart it: restartPolicy Never, or
    evicted), with the container, reason and exit code that say why."""
    failed: list[tuple[Placed, Requeue, str]] = []
    for entry in job.placement:
        pod = by_name.get(entry.pod)
        if entry in already or pod is None or pod.phase is not PodPhase.FAILED:
            continue
        why = f": {pod.termination.describe()}" if pod.termination is not None else ""
        failed.append((entry, Requeue.POD_FAILED, f"pod {pod.name} of replica {entry.replica} failed{why}"))
    return failed


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


def _from_pods(
    job: JobFacts, placed_pods: Sequence[PodFacts], strays: tuple[str, ...]
) -> Keep | SetPhase | Plan:
    """A bound placement whose replicas are all where they should be: the phase its pods give it."""
    phase = _phase_from_pods(job, placed_pods)
    if len(job.placed_replicas) < job.replicas:
        # A non-gang job whose other replicas still wait: it stays a candidate for planning.
        return Plan(job=job, phase=phase, delete_pods=strays)
    if phase is job.phase and not strays:
        return Keep(job=job)
    return SetPhase(
        job=job,
        message=_phase_message(phase, placed_pods),
        phase=phase,
        delete_pods=strays,
    )


def phase_once_bound(
    job: JobFacts, entries: Sequence[Placed], pods: Sequence[PodFacts | None]
) -> tuple[JobPhase, str]:
    """The phase the write that ends a binding records (every pod of ``entries`` bound; ``pods``
    their pods as last seen, None where not seen yet), with its message ("" for Scheduled: the
    placement's own line says it). Scheduled, unless the pods already give the job the phase the
    next cycle would write (``_from_pods``: Running, or Succeeded for a finished run), which is
    then written at once: one write instead of two. Only a whole placement (every replica placed)
    whose pods are all seen and none failed; a failure is left to the next cycle's policy."""
    seen = [pod for pod in pods if pod is not None]
    whole = {entry.replica for entry in entries} == set(range(job.replicas))
    if not whole or len(seen) != len(pods) or any(p.phase is PodPhase.FAILED for p in seen):
        return JobPhase.SCHEDULED, ""
    phase = _phase_from_pods(replace(job, placement=tuple(entries)), seen)
    return phase, "" if phase is JobPhase.SCHEDULED else _phase_message(phase, seen)


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
    """The phase of pods none of which failed (failures are the policy's, in _recover): a pod
    that succeeded stays done; a run (training) is Succeeded once all have, a service never is."""
    phases = [p.phase for p in pods]
    placed = len(job.placed_replicas) == job.replicas
    all_done = phases and placed and all(p is PodPhase.SUCCEEDED for p in phases)
    if all_done and job.shape.workload.type.trains:
        return JobPhase.SUCCEEDED
    if phases and all(p in (PodPhase.RUNNING, PodPhase.SUCCEEDED) for p in phases):
        return JobPhase.RUNNING
    return JobPhase.SCHEDULED


def _phase_message(phase: JobPhase, pods: Sequence[PodFacts]) -> str:
    return {
        JobPhase.RUNNING: f"all {len(pods)} pods are running",
        JobPhase.SUCCEEDED: f"all {len(pods)} pods succeeded",
        JobPhase.SCHEDULED: f"{len(pods)} pods bound, not all running yet",
    }.get(phase, phase.value)
