"""Rolling updates: a serving job's replicas replaced a few at a time after a template change,
every step read from the pods (their spec hash and replica), so a crash loses nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modeljob.core import status
from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase
from modeljob.core.job_state import JobFacts, JobPhase, Placed
from modeljob.core.jobs import Workload, WorkloadType
from modeljob.core.lifecycle import Plan, Reconciled, reconcile_job
from modeljob.core.scheduling_cycle import CycleSettings, run_cycle
from modeljob.core.steps import Keep, Place, RollBack, Step, Update
from tests.operator_builders import at, h100_nodes, make_job, make_pod, placed, pods_of

NODES = h100_nodes(3)
OLD, NEW = "hash-1", "hash-2"


def _changed(*, replicas: int = 3, max_unavailable: int = 1, **changes: object) -> JobFacts:
    """A Running serving job on one H100 node per replica whose template just changed (generation 2)."""
    job = placed(make_job(replicas=replicas, gang=False), *[n.name for n in NODES[:replicas]])
    return replace(
        job, generation=2, observed_generation=2, spec_hash=NEW, max_unavailable=max_unavailable, **changes
    )  # type: ignore[arg-type]


def _old_pods(job: JobFacts) -> list[PodFacts]:
    return [replace(p, spec_hash=OLD) for p in pods_of(job)]


def _reconcile(job: JobFacts, pods: Sequence[PodFacts]) -> Reconciled:
    nodes = {n.name: n for n in NODES}
    return reconcile_job(job, pods, nodes, now=at(100), node_lost_after_seconds=30)


def _cycle(job: JobFacts, pods: Sequence[PodFacts], nodes: Sequence[NodeFacts] = NODES) -> Step:
    (step,) = run_cycle([job], nodes, pods, now=at(100), settings=CycleSettings()).steps
    return step


def _surged(job: JobFacts, replica: int, node: str, *, phase: PodPhase) -> tuple[JobFacts, PodFacts]:
    """``replica``'s new pod placed on ``node`` (the old one out of the placement) in ``phase``."""
    entry = Placed(replica=replica, pod=f"job-{replica}-new", node=node)
    placement = tuple(
        sorted((*(e for e in job.placement if e.replica != replica), entry), key=lambda e: e.replica)
    )
    pod = make_pod(entry.pod, node=node, gpus=1, phase=phase, job=job, replica=replica)
    return replace(job, placement=placement), pod


def test_a_template_change_replaces_the_first_replica_first_while_the_others_serve() -> None:
    job = _changed()
    step = _reconcile(job, _old_pods(job))
    assert isinstance(step, Plan)
    assert step.roll is not None
    assert (step.roll.replica, step.roll.updated, step.roll.total, step.phase) == (0, 0, 3, JobPhase.RUNNING)
    assert step.delete_pods == ()


def test_with_room_the_new_pod_starts_beside_the_old_one_which_is_not_deleted() -> None:
    job = _changed()
    step = _cycle(job, _old_pods(job))
    assert isinstance(step, Place)
    assert step.replaces is not None
    assert step.replaces.replica == 0
    assert [a.replica for a in step.placement] == [0]
    assert step.delete_pods == ()


def test_without_room_the_old_pod_of_one_replica_goes_first_and_the_others_stay() -> None:
    job = _changed()
    full = [replace(p, requests=replace(p.requests, gpus=8)) for p in _old_pods(job)]  # no GPU left anywhere
    step = _cycle(job, full)
    assert isinstance(step, RollBack)
    assert (step.reason, step.updating, step.restart, step.warning) == ("Updating", True, False, False)
    assert step.delete_pods == ("job-0-abcde",)
    assert [e.replica for e in step.keep] == [1, 2]
    assert step.phase is JobPhase.RUNNING
    assert step.message.startswith("replacing replica 0: no room for its new pod beside the old one (")
    assert step.message.endswith(
        "so the old pod job-0-abcde goes first; 0 of 3 replicas updated (maxUnavailable 1)"
    )


def test_the_old_pod_serves_until_its_replacement_runs_and_the_next_replica_waits() -> None:
    job = _changed()
    surged, new = _surged(job, 0, "gpu-h100-1", phase=PodPhase.PENDING)
    step = _reconcile(surged, [*_old_pods(job), new])
    assert isinstance(step, Update)
    assert step.delete_pods == (), "the old pod of replica 0 still serves"
    assert step.phase is JobPhase.RUNNING, "every replica has a running pod, old or new"
    assert step.message == (
        "0 of 3 replicas updated (maxUnavailable 1); waiting for the new pods of replica(s) 0 to run"
    )


def test_once_the_new_pod_runs_the_old_one_goes_and_the_next_replica_is_replaced() -> None:
    job = _changed()
    surged, new = _surged(job, 0, "gpu-h100-1", phase=PodPhase.RUNNING)
    step = _reconcile(surged, [*_old_pods(job), new])
    assert isinstance(step, Plan)
    assert step.roll is not None
    assert (step.roll.replica, step.roll.updated) == (1, 1)
    assert step.delete_pods == ("job-0-abcde",)


def test_max_unavailable_two_replaces_two_replicas_at_a_time() -> None:
    job = _changed(max_unavailable=2)
    one, first = _surged(job, 0, "gpu-h100-1", phase=PodPhase.PENDING)
    step = _reconcile(one, [*_old_pods(job), first])
    assert isinstance(step, Plan)
    assert step.roll is not None
    assert step.roll.replica == 1
    two, second = _surged(one, 1, "gpu-h100-2", phase=PodPhase.PENDING)
    assert isinstance(_reconcile(two, [*_old_pods(job), first, second]), Update)


def test_when_every_replica_runs_the_new_spec_the_update_is_done_once() -> None:
    job = replace(_changed(), updating=True)
    pods = pods_of(job)  # all of the current spec, Running
    step = _reconcile(job, pods)
    assert isinstance(step, Update)
    assert step.done
    assert step.message == "all 3 replicas run generation 2's spec"
    patch = status.updated(step, {"phase": "Running"}, now=at(100))
    assert patch is not None
    (condition,) = patch["conditions"]  # type: ignore[misc]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Updating", "False", "Updated")
    assert status.updated(step, {**patch}, now=at(200)) is None, "said once"
    assert isinstance(_reconcile(replace(job, updating=False), pods), Keep)


def test_an_old_pod_whose_replica_lost_its_entry_is_a_stray_not_kept() -> None:
    # The operator wrote "old pod goes first" (entry cut) and died before deleting it.
    job = _changed()
    cut = replace(job, placement=job.placement[1:])
    step = _reconcile(cut, _old_pods(job))
    assert isinstance(step, Plan)
    assert step.roll is None, "the missing replica is placed first"
    assert step.delete_pods == ("job-0-abcde",)


def test_without_room_max_unavailable_two_lets_a_second_old_pod_go_while_the_first_waits() -> None:
    # Replica 0's old pod went first (no room beside it) and is still terminating: the cluster
    # has no room, and one replica is unavailable of the two allowed, so replica 1's goes too.
    job = _changed(max_unavailable=2)
    cut = replace(job, placement=job.placement[1:])
    full = [replace(p, requests=replace(p.requests, gpus=8)) for p in _old_pods(job)]
    going = [replace(p, terminating=True) if p.replica == 0 else p for p in full]
    planned = _reconcile(cut, going)
    assert isinstance(planned, Plan)
    assert planned.roll is not None
    assert planned.roll.replica == 1
    step = _cycle(cut, going)
    assert isinstance(step, RollBack)
    assert step.delete_pods == ("job-1-abcde",)
    assert [e.replica for e in step.keep] == [2], "replica 2 serves on"
    # With both down, maxUnavailable is reached: the plan places the missing replicas first.
    both = replace(cut, placement=cut.placement[1:])
    after = _reconcile(both, [p for p in going if p.replica == 2])
    assert isinstance(after, Plan)
    assert after.roll is None


def test_a_new_spec_that_can_never_fit_leaves_the_old_pods_serving_and_says_why() -> None:
    job = replace(
        _changed(), shape=replace(_changed().shape, model=replace(_changed().shape.model, parameters=10**13))
    )
    step = _cycle(job, _old_pods(job))
    assert isinstance(step, Update)
    assert step.blocked
    assert step.delete_pods == ()
    assert step.message.startswith("replica 0 is not replaced: ")
    assert status.update_reason(step) == "UpdateBlocked"


def test_a_failed_replica_during_an_update_does_not_take_another_replicas_old_pod() -> None:
    job = _changed()
    surged, new = _surged(job, 0, "gpu-h100-1", phase=PodPhase.PENDING)
    pods = [*_old_pods(job), new]
    pods = [replace(p, phase=PodPhase.FAILED) if p.name == "job-2-abcde" else p for p in pods]
    step = _reconcile(surged, pods)
    assert isinstance(step, RollBack)
    assert step.delete_pods == ("job-2-abcde",), "the old pod of replica 0 serves on"


def test_a_training_job_is_still_replaced_whole() -> None:
    job = _changed(replicas=2)
    job = replace(job, shape=replace(job.shape, workload=Workload(type=WorkloadType.TRAINING, replicas=2)))
    step = _reconcile(job, _old_pods(job))
    assert isinstance(step, RollBack)
    assert (step.reason, step.delete_pods, step.keep) == ("SpecChanged", ("job-0-abcde", "job-1-abcde"), ())


def test_a_spec_change_while_binding_a_new_pod_drops_only_the_unbound_entry() -> None:
    job = _changed()
    surged, _ = _surged(job, 0, "gpu-h100-1", phase=PodPhase.PENDING)
    binding = replace(surged, binding=True, placed_generation=2, generation=3, observed_generation=3)
    step = _reconcile(binding, _old_pods(job))  # the new pod of replica 0 was never created
    assert isinstance(step, RollBack)
    assert [e.replica for e in step.keep] == [1, 2]
    assert step.delete_pods == ()
    assert step.updating


def test_the_surge_keeps_the_jobs_phase_while_the_new_pod_is_bound() -> None:
    job = _changed()
    step = _cycle(job, _old_pods(job))
    assert isinstance(step, Place)
    patch = status.scheduled(
        {"phase": "Running"}, entries=job.placement, node_type=None, generation=2, now=at(1), place=step
    )
    assert "phase" not in patch
    planned = status.planned(step, job.placement, {"phase": "Running"}, now=at(1), endpoint=None)
    updating = [c for c in planned["conditions"] if c["type"] == "Updating"]  # type: ignore[union-attr]
    assert [c["status"] for c in updating] == ["True"]
    assert str(updating[0]["message"]).startswith("replacing replica 0: its new pod starts on gpu-h100-")
