"""A job's lifecycle: what the operator does when its status, pods and nodes disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase, Termination
from modeljob.core.job_state import JobFacts, JobPhase, Placed, Requeue
from modeljob.core.jobs import JobShape, ModelShape, Overrides, Precision, Workload, WorkloadType
from modeljob.core.lifecycle import (
    Plan,
    Reconciled,
    admission_phase,
    phase_once_bound,
    reconcile_job,
    spec_problem,
)
from modeljob.core.steps import Complete, Keep, RollBack, SetPhase
from tests.operator_builders import at, h100_nodes, make_job, make_node, make_pod, placed, pods_of

NODES: dict[str, NodeFacts] = {n.name: n for n in h100_nodes()}


def _reconcile(
    job: JobFacts,
    pods: Sequence[PodFacts],
    nodes: Mapping[str, NodeFacts] | None = None,
    *,
    now_seconds: float = 100,
    grace: float = 30,
) -> Reconciled:
    return reconcile_job(
        job, pods, NODES if nodes is None else nodes, now=at(now_seconds), node_lost_after_seconds=grace
    )


# --- admission -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "valid", "expected"),
    [
        (None, True, JobPhase.QUEUED),
        (JobPhase.INVALID, True, JobPhase.QUEUED),
        (JobPhase.RUNNING, True, JobPhase.RUNNING),
        (JobPhase.UNSCHEDULABLE, True, JobPhase.UNSCHEDULABLE),
        (JobPhase.SUCCEEDED, True, JobPhase.SUCCEEDED),
        (JobPhase.RUNNING, False, JobPhase.INVALID),
        (None, False, JobPhase.INVALID),
    ],
    ids=[
        "new",
        "fixed",
        "placed-keeps-phase",
        "unschedulable-stays",
        "finished-stays",
        "broken-placed",
        "broken-new",
    ],
)
def test_admission_phase(current: JobPhase | None, valid: bool, expected: JobPhase) -> None:
    assert admission_phase(current, valid=valid) is expected


@pytest.mark.parametrize(
    ("shape", "field"),
    [
        (
            JobShape(
                model=ModelShape(parameters=7 * 10**9, precision=Precision.INT4),
                workload=Workload(type=WorkloadType.TRAINING),
            ),
            "spec.model.precision",
        ),
        (
            JobShape(model=ModelShape(parameters=7 * 10**9), overrides=Overrides(gpus=0)),
            "spec.resources.gpus",
        ),
    ],
    ids=["training-int4-weights", "zero-gpus"],
)
def test_a_schema_valid_spec_that_makes_no_sense_is_named_by_field(shape: JobShape, field: str) -> None:
    problem = spec_problem(shape)
    assert problem is not None
    assert problem.startswith(f"{field}: ")


def test_a_sensible_spec_has_no_problem() -> None:
    assert spec_problem(JobShape(model=ModelShape(parameters=8 * 10**9))) is None


# --- waiting jobs --------------------------------------------------------------------------------


def test_a_job_whose_generation_is_not_admitted_yet_is_kept_as_it_is() -> None:
    job = replace(make_job(), observed_generation=None)
    assert _reconcile(job, []) == Keep(job=job)


def test_queued_job_without_pods_is_a_candidate() -> None:
    job = make_job()
    assert _reconcile(job, []) == Plan(job=job, phase=JobPhase.QUEUED)


def test_queued_job_deletes_pods_left_from_an_earlier_attempt() -> None:
    job = make_job()
    stray = make_pod("job-0-old", node="gpu-h100-0", job=job, replica=0)
    gone = make_pod("job-1-old", node="gpu-h100-0", job=job, replica=1, terminating=True)
    step = _reconcile(job, [stray, gone])
    assert isinstance(step, Plan)
    assert step.delete_pods == ("job-0-old",)


def test_invalid_job_loses_its_pods() -> None:
    job = replace(placed(make_job(), "gpu-h100-0"), phase=JobPhase.INVALID)
    step = _reconcile(job, pods_of(job))
    assert isinstance(step, RollBack)
    assert (step.reason, step.phase, step.requeue) == ("InvalidSpec", JobPhase.INVALID, None)
    assert step.delete_pods == ("job-0-abcde",)


@pytest.mark.parametrize("phase", [JobPhase.SUCCEEDED, JobPhase.FAILED])
def test_finished_job_is_left_alone(phase: JobPhase) -> None:
    job = replace(placed(make_job(), "gpu-h100-0"), phase=phase)
    assert _reconcile(job, []) == Keep(job=job)


# --- a written placement that is not fully bound (after a crash) --------------------------------


def test_binding_without_pods_is_completed_by_creating_them() -> None:
    job = placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-1", binding=True)
    step = _reconcile(job, [])
    assert isinstance(step, Complete)
    assert [e.replica for e in step.to_bind] == [0, 1]
    assert step.to_create == ("job-0-abcde", "job-1-abcde")
    assert step.candidate is None  # the cycle sizes it, where it knows the nodes' room


def test_binding_with_some_pods_bound_binds_only_the_rest() -> None:
    job = placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-1", binding=True)
    bound, unbound = pods_of(job)
    step = _reconcile(job, [bound, replace(unbound, node=None)])
    assert isinstance(step, Complete)
    assert [e.pod for e in step.to_bind] == ["job-1-abcde"]
    assert step.to_create == ()


def test_binding_with_every_pod_bound_only_needs_its_status_written() -> None:
    job = placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-1", binding=True)
    step = _reconcile(job, pods_of(job))
    assert isinstance(step, Complete)
    assert step.to_bind == ()


def _training(job: JobFacts) -> JobFacts:
    """``job`` as a training job: replaced whole on a spec change (serving jobs roll: test_rolling_update)."""
    return replace(job, shape=replace(job.shape, workload=Workload(type=WorkloadType.TRAINING)))


def test_binding_is_rolled_back_when_the_spec_changed_meanwhile() -> None:
    job = replace(
        placed(_training(make_job()), "gpu-h100-0", binding=True), generation=2, observed_generation=2
    )
    step = _reconcile(job, pods_of(job))
    assert isinstance(step, RollBack)
    assert (step.requeue, step.was_binding) == (Requeue.SPEC_CHANGED, True)
    assert step.delete_pods == ("job-0-abcde",)


def test_binding_is_rolled_back_when_a_pod_is_bound_elsewhere() -> None:
    job = placed(make_job(), "gpu-h100-0", binding=True)
    step = _reconcile(job, [replace(pods_of(job)[0], node="gpu-h100-1")])
    assert isinstance(step, RollBack)
    assert step.requeue is Requeue.BINDING_FAILED


def test_binding_is_rolled_back_when_its_node_is_gone() -> None:
    job = placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-9", binding=True)
    step = _reconcile(job, pods_of(job)[:1])
    assert isinstance(step, RollBack)
    assert step.requeue is Requeue.NODE_LOST
    assert step.delete_pods == ("job-0-abcde",)
    assert step.phase is JobPhase.QUEUED


# --- a placed job --------------------------------------------------------------------------------


def _training(job: JobFacts) -> JobFacts:
    return replace(
        job,
        shape=replace(job.shape, workload=Workload(type=WorkloadType.TRAINING, replicas=job.replicas)),
    )


@pytest.mark.parametrize(
    ("training", "phases", "expected"),
    [
        (True, (PodPhase.PENDING, PodPhase.RUNNING), JobPhase.SCHEDULED),
        (True, (PodPhase.RUNNING, PodPhase.RUNNING), JobPhase.RUNNING),
        (True, (PodPhase.SUCCEEDED, PodPhase.RUNNING), JobPhase.RUNNING),
        (True, (PodPhase.SUCCEEDED, PodPhase.SUCCEEDED), JobPhase.SUCCEEDED),
        (False, (PodPhase.SUCCEEDED, PodPhase.SUCCEEDED), JobPhase.RUNNING),
    ],
    ids=["starting", "running", "one-done", "training-all-done", "serving-all-done-stays-running"],
)
def test_placed_job_phase_follows_its_pods(
    training: bool, phases: tuple[PodPhase, PodPhase], expected: JobPhase
) -> None:
    job = replace(placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-1"), phase=JobPhase.SCHEDULED)
    job = _training(job) if training else job
    pods = [replace(p, phase=phase) for p, phase in zip(pods_of(job), phases, strict=True)]
    step = _reconcile(job, pods)
    if expected is JobPhase.SCHEDULED:
        assert step == Keep(job=job)
    else:
        assert isinstance(step, SetPhase)
        assert step.phase is expected


def test_gang_goes_back_to_the_queue_whole_when_one_pod_is_deleted() -> None:
    job = placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-1")
    step = _reconcile(job, pods_of(job)[:1])
    assert isinstance(step, RollBack)
    assert (step.requeue, step.phase, step.was_binding) == (Requeue.POD_LOST, JobPhase.QUEUED, False)
    assert step.delete_pods == ("job-0-abcde",)
    assert "replica 1" in step.message


def test_gang_goes_back_to_the_queue_when_its_node_is_deleted() -> None:
    job = placed(make_job(replicas=2), "gpu-h100-0", "gpu-h100-1")
    nodes = {"gpu-h100-0": NODES["gpu-h100-0"]}
    step = _reconcile(job, pods_of(job), nodes)
    assert isinstance(step, RollBack)
    assert step.requeue is Requeue.NODE_LOST
    assert step.delete_pods == ("job-0-abcde", "job-1-abcde")
    assert "node gpu-h100-1 of replica 1 was deleted" in step.message


@pytest.mark.parametrize(("now", "lost"), [(129, False), (130, True)], ids=["within-grace", "past-grace"])
def test_not_ready_node_counts_as_lost_after_the_grace_period(now: float, lost: bool) -> None:
    job = placed(make_job(), "gpu-h100-0")
    nodes = {"gpu-h100-0": make_node("gpu-h100-0", ready=False, not_ready_since=at(100))}
    step = _reconcile(job, pods_of(job), nodes, now_seconds=now, grace=30)
    assert (isinstance(step, RollBack) and step.requeue is Requeue.NODE_LOST) is lost


def test_non_gang_job_requeues_only_the_lost_replica() -> None:
    job = placed(make_job(replicas=2, gang=False), "gpu-h100-0", "gpu-h100-1")
    step = _reconcile(job, pods_of(job)[:1])
    assert isinstance(step, RollBack)
    assert step.keep == (Placed(replica=0, pod="job-0-abcde", node="gpu-h100-0"),)
    assert step.delete_pods == ()
    assert step.phase is JobPhase.RUNNING


def test_non_gang_job_with_replicas_still_to_place_is_planned_in_the_phase_its_pods_give_it() -> None:
    job = replace(placed(make_job(replicas=2, gang=False), "gpu-h100-0"), phase=JobPhase.SCHEDULED)
    assert _reconcile(job, pods_of(job)) == Plan(job=job, phase=JobPhase.RUNNING)


def test_pods_of_an_older_spec_make_a_training_job_re_planned() -> None:
    job = placed(_training(make_job(spec_hash="new")), "gpu-h100-0")
    step = _reconcile(job, [replace(pods_of(job)[0], spec_hash="old")])
    assert isinstance(step, RollBack)
    assert step.requeue is Requeue.SPEC_CHANGED


def test_a_priority_change_does_not_move_a_running_job() -> None:
    job = replace(placed(make_job(), "gpu-h100-0"), generation=2, observed_generation=2)
    assert _reconcile(job, pods_of(job)) == Keep(job=job)


def test_placed_job_deletes_stray_pods() -> None:
    job = replace(placed(make_job(), "gpu-h100-0"), phase=JobPhase.RUNNING)
    stray = make_pod("job-0-older", node="gpu-h100-1", job=job, replica=0)
    step = _reconcile(job, [*pods_of(job), stray])
    assert isinstance(step, SetPhase)
    assert step.delete_pods == ("job-0-older",)


def test_a_failed_job_names_the_pod_the_container_the_reason_and_the_exit_code() -> None:
    job = replace(placed(make_job("gang", replicas=2), "gpu-h100-0", "gpu-h100-1"), max_restarts=0)
    running, failed = pods_of(job)
    oom = replace(
        failed,
        phase=PodPhase.FAILED,
        termination=Termination(container="server", reason="OOMKilled", exit_code=137),
    )
    step = _reconcile(job, [running, oom])
    assert isinstance(step, SetPhase)
    assert step.phase is JobPhase.FAILED
    assert step.message == (
        "pod gang-1-abcde of replica 1 failed: container server OOMKilled (exit code 137); "
        "not recreated: failurePolicy.maxRestarts is 0 and the job was recreated 0 time(s)"
    )


# --- the write that ends a binding ----------------------------------------------------------------


def _two_replicas_bound(*, training: bool = False) -> tuple[JobFacts, tuple[Placed, ...]]:
    """A 2-replica job as it was planned (no placement in its facts yet) and its placement."""
    job = make_job(replicas=2)
    if training:
        job = replace(
            job, shape=replace(job.shape, workload=Workload(type=WorkloadType.TRAINING, replicas=2))
        )
    return job, placed(job, "gpu-h100-0", "gpu-h100-1").placement


def _pods(job: JobFacts, entries: Sequence[Placed], *phases: PodPhase | None) -> list[PodFacts | None]:
    return [
        None if phase is None else make_pod(e.pod, node=e.node, phase=phase, job=job, replica=e.replica)
        for e, phase in zip(entries, phases, strict=True)
    ]


RUNNING, PENDING, SUCCEEDED, FAILED = PodPhase.RUNNING, PodPhase.PENDING, PodPhase.SUCCEEDED, PodPhase.FAILED


@pytest.mark.parametrize(
    ("phases", "training", "expected"),
    [
        ((RUNNING, RUNNING), False, (JobPhase.RUNNING, "all 2 pods are running")),
        ((RUNNING, PENDING), False, (JobPhase.SCHEDULED, "")),
        ((RUNNING, None), False, (JobPhase.SCHEDULED, "")),
        ((RUNNING, FAILED), False, (JobPhase.SCHEDULED, "")),
        ((SUCCEEDED, SUCCEEDED), True, (JobPhase.SUCCEEDED, "all 2 pods succeeded")),
        ((SUCCEEDED, RUNNING), True, (JobPhase.RUNNING, "all 2 pods are running")),
    ],
    ids=[
        "all-running",
        "one-still-pending",
        "one-not-seen-yet",
        "one-failed-left-to-the-policy",
        "a-run-already-done",
        "a-run-partly-done-still-runs",
    ],
)
def test_the_write_that_ends_binding_says_the_phase_the_pods_already_give(
    phases: tuple[PodPhase | None, ...], training: bool, expected: tuple[JobPhase, str]
) -> None:
    job, entries = _two_replicas_bound(training=training)
    assert phase_once_bound(job, entries, _pods(job, entries, *phases)) == expected


def test_a_partly_placed_job_is_scheduled_whatever_its_placed_pods_show() -> None:
    job, entries = _two_replicas_bound()
    job = replace(job, replicas=3, gang=False)
    assert phase_once_bound(job, entries, _pods(job, entries, RUNNING, RUNNING)) == (JobPhase.SCHEDULED, "")
