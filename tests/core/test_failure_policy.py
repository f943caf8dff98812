"""The failure policy and suspend: what a failed pod, a lost node or spec.suspend does to a placed job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from modeljob.core import status
from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase, Termination
from modeljob.core.job_state import JobFacts, JobPhase, Placed, Requeue, RestartScope
from modeljob.core.jobs import Workload, WorkloadType
from modeljob.core.lifecycle import Plan, Reconciled, reconcile_job
from modeljob.core.steps import Keep, RollBack, SetPhase, evict
from tests.operator_builders import at, h100_nodes, make_job, placed, pods_of

NODES: dict[str, NodeFacts] = {n.name: n for n in h100_nodes(3)}
EXIT_1 = Termination(container="main", reason="Error", exit_code=1)


def _reconcile(
    job: JobFacts, pods: Sequence[PodFacts], nodes: Mapping[str, NodeFacts] | None = None
) -> Reconciled:
    return reconcile_job(
        job, pods, NODES if nodes is None else nodes, now=at(100), node_lost_after_seconds=30
    )


def _job(*, replicas: int = 2, gang: bool = True, training: bool = False, **changes: object) -> JobFacts:
    job = placed(make_job(replicas=replicas, gang=gang), *[f"gpu-h100-{i}" for i in range(replicas)])
    if training:
        workload = Workload(type=WorkloadType.TRAINING, replicas=replicas)
        job = replace(job, shape=replace(job.shape, workload=workload))
    return replace(job, **changes)  # type: ignore[arg-type]


def _failing(job: JobFacts, *failed: int) -> list[PodFacts]:
    """The job's pods, Running, but those of replicas ``failed`` Failed (exit code 1)."""
    return [
        replace(p, phase=PodPhase.FAILED, termination=EXIT_1) if p.replica in failed else p
        for p in pods_of(job)
    ]


# --- which pods a failure recreates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("training", "gang", "scope", "expected"),
    [
        (True, True, None, RestartScope.JOB),
        (True, False, None, RestartScope.JOB),
        (False, True, None, RestartScope.JOB),
        (False, False, None, RestartScope.REPLICA),
        (False, True, RestartScope.REPLICA, RestartScope.REPLICA),
        (False, False, RestartScope.JOB, RestartScope.JOB),
    ],
    ids=["training-gang", "training", "serving-gang", "serving", "spec-says-replica", "spec-says-job"],
)
def test_the_restart_scope_defaults_to_the_job_for_training_and_gangs_and_the_replica_for_serving(
    training: bool, gang: bool, scope: RestartScope | None, expected: RestartScope
) -> None:
    assert _job(training=training, gang=gang, restart_scope=scope).scope is expected


def test_a_failed_pod_of_a_training_gang_recreates_the_whole_gang_and_counts_one_restart() -> None:
    job = _job(replicas=3, training=True)
    step = _reconcile(job, _failing(job, 1))
    assert isinstance(step, RollBack)
    assert (step.reason, step.requeue, step.phase, step.restart) == (
        "PodFailed",
        Requeue.POD_FAILED,
        JobPhase.QUEUED,
        True,
    )
    assert step.delete_pods == ("job-0-abcde", "job-1-abcde", "job-2-abcde")
    assert step.keep == ()
    assert step.message == (
        "pod job-1-abcde of replica 1 failed: container main Error (exit code 1); "
        "the whole gang goes back to the queue (restart 1 of 3)"
    )


def test_a_failed_serving_replica_recreates_only_that_replica() -> None:
    job = _job(replicas=3, gang=False)
    step = _reconcile(job, _failing(job, 2))
    assert isinstance(step, RollBack)
    assert step.restart
    assert step.delete_pods == ("job-2-abcde",)
    assert [e.replica for e in step.keep] == [0, 1]
    assert step.phase is JobPhase.RUNNING  # the replicas kept still serve
    assert "those replicas go back to the queue (restart 1 of 3)" in step.message


def test_with_restarts_used_up_a_failure_fails_the_job_with_the_reason() -> None:
    job = _job(training=True, restarts=2, max_restarts=2)
    step = _reconcile(job, _failing(job, 0))
    assert isinstance(step, SetPhase)
    assert step.phase is JobPhase.FAILED
    assert step.message == (
        "pod job-0-abcde of replica 0 failed: container main Error (exit code 1); "
        "not recreated: failurePolicy.maxRestarts is 2 and the job was recreated 2 time(s)"
    )


def test_the_last_restart_allowed_is_still_made() -> None:
    job = _job(training=True, restarts=2, max_restarts=3)
    step = _reconcile(job, _failing(job, 0))
    assert isinstance(step, RollBack)
    assert "(restart 3 of 3)" in step.message


def test_a_failed_job_stops_the_pods_still_running_so_they_free_their_gpus() -> None:
    job = _job(replicas=3, training=True, phase=JobPhase.FAILED)
    pods = _failing(job, 0)
    pods[2] = replace(pods[2], terminating=True)  # already on its way
    assert _reconcile(job, pods) == Keep(job=job, delete_pods=("job-1-abcde",))


def test_a_pod_that_succeeded_is_not_restarted() -> None:
    job = _job(training=True, phase=JobPhase.RUNNING)
    done, running = pods_of(job)
    assert _reconcile(job, [replace(done, phase=PodPhase.SUCCEEDED), running]) == Keep(job=job)


# --- lost nodes and pods under the policy --------------------------------------------------------


def test_a_lost_node_counts_as_a_failure_of_a_training_job() -> None:
    job = _job(training=True)
    step = _reconcile(job, pods_of(job), {"gpu-h100-0": NODES["gpu-h100-0"]})
    assert isinstance(step, RollBack)
    assert (step.requeue, step.restart) == (Requeue.NODE_LOST, True)
    assert step.message.endswith("the whole gang goes back to the queue (restart 1 of 3)")


def test_a_lost_node_with_restarts_used_up_fails_a_training_job() -> None:
    job = _job(training=True, restarts=3)
    step = _reconcile(job, pods_of(job), {"gpu-h100-0": NODES["gpu-h100-0"]})
    assert isinstance(step, SetPhase)
    assert step.phase is JobPhase.FAILED
    assert step.message.startswith("node gpu-h100-1 of replica 1 was deleted; not recreated")


EVICTED = Termination(reason="Evicted")  # the kubelet's node-pressure eviction: the pod's own reason


@pytest.mark.parametrize("disruption", ["node deleted", "pod evicted"], ids=["lost-node", "evicted-pod"])
def test_a_serving_job_is_recreated_uncounted_after_a_disruption_even_with_restarts_used_up(
    disruption: str,
) -> None:
    """Deployments and LeaderWorkerSets never give up on lost nodes: nothing of the service failed."""
    job = _job(restarts=3, max_restarts=3)  # Inference
    if disruption == "node deleted":
        step = _reconcile(job, pods_of(job), {"gpu-h100-0": NODES["gpu-h100-0"]})
    else:
        pods = [
            replace(p, phase=PodPhase.FAILED, termination=EVICTED) if p.replica == 1 else p
            for p in pods_of(job)
        ]
        step = _reconcile(job, pods)
    assert isinstance(step, RollBack), step
    assert step.restart is False
    assert step.message.endswith(
        "the whole gang goes back to the queue "
        "(not counted against failurePolicy.maxRestarts: a serving job outlives lost nodes and evictions)"
    )


def test_an_evicted_pod_of_a_training_job_counts_as_a_failure() -> None:
    job = _job(training=True, restarts=3, max_restarts=3)
    pods = [
        replace(p, phase=PodPhase.FAILED, termination=EVICTED) if p.replica == 1 else p for p in pods_of(job)
    ]
    step = _reconcile(job, pods)
    assert isinstance(step, SetPhase)
    assert step.phase is JobPhase.FAILED
    assert step.message.startswith("pod job-1-abcde of replica 1 failed: the pod Evicted; not recreated")


def test_a_serving_jobs_own_failure_still_counts_with_a_lost_node_beside_it() -> None:
    job = _job(restarts=3, max_restarts=3)
    pods = [
        replace(p, phase=PodPhase.FAILED, termination=EXIT_1) if p.replica == 0 else p for p in pods_of(job)
    ]
    step = _reconcile(job, pods, {"gpu-h100-0": NODES["gpu-h100-0"]})  # replica 1's node is gone too
    assert isinstance(step, SetPhase)
    assert step.phase is JobPhase.FAILED


def test_a_lost_node_under_a_plan_still_being_bound_is_no_failure_of_the_work() -> None:
    job = _job(binding=True, phase=JobPhase.QUEUED, restarts=3)
    step = _reconcile(job, [], {"gpu-h100-0": NODES["gpu-h100-0"]})
    assert isinstance(step, RollBack)
    assert (step.requeue, step.restart, step.was_binding) == (Requeue.NODE_LOST, False, True)


def test_a_deleted_pod_is_recreated_uncounted_even_with_restarts_used_up() -> None:
    job = _job(restarts=3)
    step = _reconcile(job, pods_of(job)[:1])
    assert isinstance(step, RollBack)
    assert (step.requeue, step.restart) == (Requeue.POD_LOST, False)


def test_a_gang_whose_spec_asks_for_replica_restarts_recreates_only_the_failed_replica() -> None:
    job = _job(replicas=2, restart_scope=RestartScope.REPLICA)
    step = _reconcile(job, _failing(job, 0))
    assert isinstance(step, RollBack)
    assert step.delete_pods == ("job-0-abcde",)
    assert [e.replica for e in step.keep] == [1]


# --- the restart count in status ----------------------------------------------------------------


def test_a_restart_counts_one_more_on_the_status_it_replaces() -> None:
    job = _job()
    step = _reconcile(job, _failing(job, 0))
    assert isinstance(step, RollBack)
    patch = status.rolled_back(step, {"restarts": 2, "placement": [{"replica": 0}]}, now=at(100))
    assert patch["restarts"] == 3
    assert patch["placement"] == []
    assert patch["queuePosition"] is None


def test_a_roll_back_that_is_no_failure_leaves_the_count_alone() -> None:
    job = _job()
    step = _reconcile(job, pods_of(job)[:1])
    assert isinstance(step, RollBack)
    assert "restarts" not in status.rolled_back(step, {"restarts": 2}, now=at(100))


# --- suspend ------------------------------------------------------------------------------------


def test_suspending_a_running_job_deletes_its_pods_and_keeps_the_job() -> None:
    job = _job(suspend=True)
    pods = pods_of(job)
    pods[1] = replace(pods[1], terminating=True)
    step = _reconcile(job, pods)
    assert step == evict(
        job,
        ("job-0-abcde",),
        reason="Suspended",
        message="suspended (spec.suspend is true): deleting pods job-0-abcde; "
        "queued again when spec.suspend is false",
        phase=JobPhase.SUSPENDED,
        warning=False,
    )
    assert isinstance(step, RollBack)
    assert (step.keep, step.restart, step.requeue) == ((), False, None)


def test_suspending_a_queued_job_marks_it_suspended() -> None:
    job = replace(make_job(), suspend=True)
    step = _reconcile(job, [])
    assert isinstance(step, RollBack)
    assert (step.phase, step.delete_pods) == (JobPhase.SUSPENDED, ())


def test_a_suspended_job_stays_suspended_and_deletes_pods_a_crash_left() -> None:
    job = replace(make_job(phase=JobPhase.SUSPENDED), suspend=True)
    left = pods_of(replace(job, placement=(Placed(replica=0, pod="job-0-abcde", node="gpu-h100-0"),)))
    assert _reconcile(job, []) == Keep(job=job)
    assert _reconcile(job, left) == Keep(job=job, delete_pods=("job-0-abcde",))


def test_a_resumed_job_is_planned_again() -> None:
    job = make_job(phase=JobPhase.SUSPENDED)
    assert _reconcile(job, []) == Plan(job=job, phase=JobPhase.QUEUED)


def test_suspend_wins_over_a_spec_change_and_a_failure() -> None:
    job = _job(suspend=True, spec_hash="new")
    step = _reconcile(job, _failing(job, 0))
    assert isinstance(step, RollBack)
    assert (step.reason, step.restart) == ("Suspended", False)


@pytest.mark.parametrize("phase", [JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.INVALID])
def test_a_finished_or_invalid_job_is_not_suspended(phase: JobPhase) -> None:
    job = replace(make_job(phase=phase), suspend=True)
    assert _reconcile(job, []) == Keep(job=job)
