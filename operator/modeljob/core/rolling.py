"""A serving job's rolling update: its replicas replaced a few at a time after a template change.

Everything here is read from the pods, never remembered: a pod carries the spec hash it was made
from (the modeljob.dev/spec-hash annotation) and its replica's number, so an operator that starts
afresh (after a SIGKILL at any moment) finds the update where it was. A replica is *updated* when
every pod of it runs the current spec, and *in flight* while a pod of its placement is not Running
yet. A replica is replaced only while fewer than ``maxUnavailable`` are in flight or without a
placement (its old pods went first): its new pod is planned beside its old one when the capacity
ledger has room (the old pod, kept out of the placement but Running, is *outgoing* and serves
meanwhile), else its old pod goes first. An outgoing pod is deleted as a stray as soon as its
replacement runs. Training jobs are not rolled: their ranks rendezvous once, so a new spec
replaces the whole job (core/lifecycle.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from modeljob.core.cluster_state import PodFacts, PodPhase
from modeljob.core.job_state import JobFacts, JobPhase, Placed, Requeue
from modeljob.core.steps import Place, Roll, RollBack, Unschedulable, Update, Wait

# The Event and condition reason of every step of a rolling update.
UPDATING = "Updating"


def _by_replica(placement: Sequence[Placed]) -> dict[int, list[Placed]]:
    groups: dict[int, list[Placed]] = defaultdict(list)
    for entry in placement:
        groups[entry.replica].append(entry)
    return groups


def _running(pod: PodFacts | None) -> bool:
    return pod is not None and pod.phase is PodPhase.RUNNING and not pod.terminating


def outgoing(job: JobFacts, pods: Sequence[PodFacts], usable: Callable[[str], bool]) -> frozenset[str]:
    """The old pods a rolling update keeps while their replica's new pods start: Running pods of
    an earlier spec, on a node still ``usable``, outside the placement, of a replica whose placed
    pods are not all Running yet. Once they are, the old pods are strays (and deleted as such);
    a replica with no placement entry keeps none (its old pods went first, or it was recreated)."""
    if not job.rolls:
        return frozenset()
    groups = _by_replica(job.placement)
    placed = {entry.pod for entry in job.placement}
    by_name = {pod.name: pod for pod in pods}
    starting = {
        replica
        for replica, entries in groups.items()
        if not all(_running(by_name.get(e.pod)) for e in entries)
    }
    return frozenset(
        pod.name
        for pod in pods
        if pod.name not in placed
        and pod.replica in starting
        and pod.spec_hash not in (None, job.spec_hash)
        and _running(pod)
        and pod.node is not None
        and usable(pod.node)
    )


def _stale(job: JobFacts, pod: PodFacts | None) -> bool:
    return pod is not None and pod.spec_hash not in (None, job.spec_hash)


def advance(
    job: JobFacts, by_name: Mapping[str, PodFacts], kept: frozenset[str], strays: tuple[str, ...]
) -> Roll | Update | RollBack | None:
    """The next step of a bound, healthy placement's rolling update; None when none is under way
    (or replicas wait for a placement and no other may go now: the plan places them first).
    ``kept`` are the outgoing pods, ``strays`` the pods to delete (old pods whose replacement runs
    among them)."""
    groups = _by_replica(job.placement)
    wanted = {r: entries for r, entries in groups.items() if r < job.replicas}
    stale = sorted(
        r for r, entries in wanted.items() if any(_stale(job, by_name.get(e.pod)) for e in entries)
    )
    down = sorted(
        r for r, entries in wanted.items() if not all(_running(by_name.get(e.pod)) for e in entries)
    )
    # A replica without a placement (its old pods went first for want of room, or it failed) is
    # unavailable too. While fewer than maxUnavailable are, the next stale replica goes meanwhile,
    # so without room for surge pods up to maxUnavailable replicas are still replaced at once;
    # else the plan places the missing ones first.
    missing = [r for r in range(job.replicas) if r not in groups]
    if missing and (not stale or len(down) + len(missing) >= job.max_unavailable):
        return None
    phase = _serving_phase(job, groups, by_name, kept)
    excess = [e for e in job.placement if e.replica >= job.replicas]
    if excess:
        return _scale_down(job, excess, phase)
    updated = len(wanted) - len(set(stale) | set(down))
    if not stale and not kept:
        if not job.updating:
            return None
        return Update(
            job=job,
            phase=phase,
            message=f"all {job.replicas} replicas run generation {job.generation}'s spec",
            done=True,
            delete_pods=strays,
        )
    # A stale replica that is down already costs nothing to replace; one that serves may go while
    # fewer than maxUnavailable replicas are down (new pods starting, or pods not running yet).
    target = next((r for r in stale if r in down), None)
    if target is None and stale and len(down) + len(missing) < job.max_unavailable:
        target = stale[0]
    if target is not None:
        return Roll(
            replica=target,
            old=tuple(wanted[target]),
            updated=updated,
            total=job.replicas,
            max_unavailable=job.max_unavailable,
            phase=phase,
        )
    waiting = ", ".join(str(r) for r in down)
    return Update(
        job=job,
        phase=phase,
        message=f"{updated} of {job.replicas} replicas updated (maxUnavailable {job.max_unavailable}); "
        f"waiting for the new pods of replica(s) {waiting} to run",
        delete_pods=strays,
    )


def _serving_phase(
    job: JobFacts,
    groups: Mapping[int, Sequence[Placed]],
    by_name: Mapping[str, PodFacts],
    kept: frozenset[str],
) -> JobPhase:
    """Running while every replica has its pods Running, its new ones or (still) its old ones."""
    old_running = {by_name[name].replica for name in kept if name in by_name}
    for replica in range(job.replicas):
        entries = groups.get(replica, [])
        if (
            not (entries and all(_running(by_name.get(e.pod)) for e in entries))
            and replica not in old_running
        ):
            return JobPhase.SCHEDULED
    return JobPhase.RUNNING


def _scale_down(job: JobFacts, excess: Sequence[Placed], phase: JobPhase) -> RollBack:
    replicas = ", ".join(sorted({str(e.replica) for e in excess}))
    return RollBack(
        job=job,
        reason=UPDATING,
        message=f"replica(s) {replicas} are beyond spec.replicas ({job.replicas}): deleting their pods",
        phase=phase,
        requeue=Requeue.SPEC_CHANGED,
        keep=tuple(e for e in job.placement if e.replica < job.replicas),
        delete_pods=tuple(e.pod for e in excess),
        warning=False,
        updating=True,
    )


def interrupted(job: JobFacts, by_name: Mapping[str, PodFacts]) -> RollBack:
    """The spec changed again while a rolling update's new pods were being bound: the entries not
    bound yet are dropped (their pods would be made from a spec they were not sized for), the
    bound ones kept; the update goes on from there with the newest spec."""
    bound = tuple(
        e for e in job.placement if (pod := by_name.get(e.pod)) is not None and pod.node is not None
    )
    return RollBack(
        job=job,
        reason=Requeue.SPEC_CHANGED.value,
        message=f"the spec changed (generation {job.placed_generation} -> {job.generation}) while "
        "binding a rolling update's new pods; dropping those not bound yet",
        phase=job.phase or JobPhase.QUEUED,
        requeue=Requeue.SPEC_CHANGED,
        keep=bound,
        delete_pods=tuple(e.pod for e in job.placement if e not in bound and e.pod in by_name),
        was_binding=True,
        warning=False,
        updating=True,
    )


def settle(
    step: Place | Wait | Unschedulable, roll: Roll, phase: JobPhase, *, behind: bool
) -> Place | RollBack | Update:
    """What a replica's replacement comes to once planned: its new pods beside the old (Place);
    else, if the new spec fits the cluster but not beside the old pods now, the old pods going
    first (RollBack); else (the new spec can never fit, or the job waits ``behind`` another in a
    strict queue) the old pods serving on, with the reason in the Updating condition."""
    job = step.job
    if isinstance(step, Place):
        return step
    if isinstance(step, Wait) and not behind:
        return RollBack(
            job=job,
            reason=UPDATING,
            message=roll.old_first(step.message),
            phase=phase,
            keep=tuple(e for e in job.placement if e.replica != roll.replica),
            delete_pods=(*step.delete_pods, *(e.pod for e in roll.old)),
            warning=False,
            updating=True,
        )
    return Update(
        job=job,
        phase=phase,
        message=f"replica {roll.replica} is not replaced: {step.message}; its old pod serves on; "
        f"{roll.progress}",
        blocked=isinstance(step, Unschedulable),
        delete_pods=step.delete_pods,
    )
