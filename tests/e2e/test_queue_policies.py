"""Queue policies on the real control plane: priority preemption within a queue, minRuntime
protecting a young job, shortest-remaining-time-first preempting the job with the most time left,
time-slice turns between two long jobs, and a Queue whose parent chain is a cycle."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from tests.e2e import test_queues
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, status, wait_event, wait_phase
from tests.e2e.test_queues import GangWatch, apply_queues, condition, gang, queue, queue_status

queues = test_queues.queues  # the fixture: Queue CRD installed, this test's Queues deleted after


def at(job_status: dict[str, Any], kind: str) -> datetime:
    """When the job's condition ``kind`` last changed (RFC 3339, whole seconds)."""
    return datetime.fromisoformat(condition(job_status, kind)["lastTransitionTime"])


def started(cluster: Cluster, namespace: str, name: str) -> datetime:
    """When a Running job's run began: its Scheduled condition's last turn to True."""
    scheduled = condition(status(cluster, namespace, name), "Scheduled")
    assert scheduled["status"] == "True", f"{name} is not running: {scheduled}"
    return datetime.fromisoformat(scheduled["lastTransitionTime"])


def preempted(cluster: Cluster, namespace: str, name: str) -> bool:
    return condition(status(cluster, namespace, name), "Preempted").get("status") == "True"


def message(cluster: Cluster, namespace: str, name: str) -> str:
    return str(status(cluster, namespace, name).get("message") or "")


def says(cluster: Cluster, namespace: str, name: str, text: str) -> bool:
    """Whether the job's status message holds ``text``."""
    return text in message(cluster, namespace, name)


def queue_valid(cluster: Cluster, name: str, expected: str, reason: str | None = None) -> bool:
    """Whether the Queue's Valid condition has status ``expected`` (and ``reason``, if given)."""
    valid = condition(queue_status(cluster, name), "Valid")
    return valid.get("status") == expected and reason in (None, valid.get("reason"))


def test_a_higher_priority_job_preempts_only_the_lower_priority_job_of_its_queue(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    team = f"{queues}-prio"
    rules = {"withinQueue": "LowerPriority", "minRuntime": "0s"}
    apply_queues(cluster, queues, queue(team, order="priority", preemption=rules))
    start_operator()
    pool.add("h100", 1)  # 8 GPUs: room for two 4-GPU jobs
    # The low-priority job starts first: by lost work alone the younger peer would be cheaper.
    apply(cluster, namespace, gang("low", pool, team, replicas=1, gpus=4, priority=1))
    wait_phase(cluster, namespace, "low", "Running")
    apply(cluster, namespace, gang("peer", pool, team, replicas=1, gpus=4, priority=10))
    wait_phase(cluster, namespace, "peer", "Running")
    with GangWatch(cluster, namespace, {"low": 1, "peer": 1, "high": 1}) as watch:
        apply(cluster, namespace, gang("high", pool, team, replicas=1, gpus=4, priority=10))
        wait_phase(cluster, namespace, "high", "Running")
        low = status(cluster, namespace, "low")
        assert low["phase"] == "Queued"
        reason = condition(low, "Preempted")
        assert (reason["status"], reason["reason"]) == ("True", "LowerPriority")
        assert f"preempted by {namespace}/high" in reason["message"]
        assert f"priority 1 below 10 in queue {team}" in reason["message"]
        assert not preempted(cluster, namespace, "peer"), "an equal priority is never a victim"
        assert status(cluster, namespace, "peer")["phase"] == "Running"
        assert "preempting" in wait_event(cluster, namespace, "high", "Preempting")[0]
        wait_event(cluster, namespace, "low", "Preempted")

        cluster.kubectl("-n", namespace, "delete", "modeljob", "high", "--wait=false")
        wait_phase(cluster, namespace, "low", "Running", timeout_seconds=60)  # room frees: it runs again
    assert not watch.violations, watch.violations[:5]


def test_min_runtime_keeps_a_young_job_running_until_it_has_run_that_long(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    team, min_runtime_seconds = f"{queues}-young", 20
    rules = {"withinQueue": "LowerPriority", "minRuntime": f"{min_runtime_seconds}s"}
    apply_queues(cluster, queues, queue(team, order="priority", preemption=rules))
    start_operator()
    pool.add("h100", 1)
    apply(cluster, namespace, gang("young", pool, team, replicas=1, gpus=8, priority=1))
    wait_phase(cluster, namespace, "young", "Running")
    young_started = started(cluster, namespace, "young")
    apply(cluster, namespace, gang("urgent", pool, team, replicas=1, gpus=8, priority=10))
    wait_for(
        lambda: "ran less than minRuntime" in message(cluster, namespace, "urgent"),
        "the urgent job waiting because the young one ran less than minRuntime",
    )
    assert status(cluster, namespace, "young")["phase"] == "Running"
    assert not preempted(cluster, namespace, "young")

    wait_phase(cluster, namespace, "urgent", "Running", timeout_seconds=min_runtime_seconds + 40)
    young = status(cluster, namespace, "young")
    assert condition(young, "Preempted")["reason"] == "LowerPriority"
    ran = (at(young, "Preempted") - young_started).total_seconds()
    assert ran >= min_runtime_seconds, f"preempted after {ran:.0f} s, before minRuntime"
    assert (started(cluster, namespace, "urgent") - young_started).total_seconds() >= min_runtime_seconds
    assert young["preemptions"] == 1


def test_srtf_preempts_the_job_with_the_most_remaining_time_not_the_one_about_to_finish(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    team = f"{queues}-srtf"
    rules = {"withinQueue": "ShorterRemainingTime", "minRuntime": "0s"}
    apply_queues(cluster, queues, queue(team, order="shortest-remaining-time-first", preemption=rules))
    start_operator()
    pool.add("h100", 1)  # 8 GPUs: three 2-GPU jobs run, the 4-GPU waiting job needs one to go
    # "longest" starts first, so by lost work alone "long" (younger, as allowed: 10h left is more
    # than 1.25 x 1h) would be the cheaper victim: the rule takes the most remaining time instead.
    # "nearly-done" (40m left) is not allowed at all. Names sort the lost-work choice first too.
    for name, duration in (("longest", "20h"), ("long", "10h"), ("nearly-done", "40m")):
        apply(cluster, namespace, gang(name, pool, team, replicas=1, gpus=2, expectedDuration=duration))
        wait_phase(cluster, namespace, name, "Running")
    sizes = {"longest": 1, "long": 1, "nearly-done": 1, "short": 1}
    with GangWatch(cluster, namespace, sizes) as watch:
        apply(cluster, namespace, gang("short", pool, team, replicas=1, gpus=4, expectedDuration="1h"))
        wait_phase(cluster, namespace, "short", "Running")
        reason = condition(status(cluster, namespace, "longest"), "Preempted")
        assert (reason["status"], reason["reason"]) == ("True", "ShorterRemainingTime")
        assert f"preempted by {namespace}/short" in reason["message"]
        assert "against the preemptor's 3600s" in reason["message"]
        assert status(cluster, namespace, "longest")["phase"] == "Queued"
        assert not preempted(cluster, namespace, "long"), "10h left is less than the longest's 20h"
        assert status(cluster, namespace, "long")["phase"] == "Running"
        assert not preempted(cluster, namespace, "nearly-done"), "40m left is less than the preemptor's 1h"
        assert status(cluster, namespace, "nearly-done")["phase"] == "Running"
    assert not watch.violations, watch.violations[:5]


def test_time_slice_alternates_two_long_jobs_that_checkpoint_on_one_node(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    team, slice_seconds = f"{queues}-turns", 15
    rules = {"minRuntime": "0s"}
    apply_queues(
        cluster, queues, queue(team, order="time-slice", timeSlice=f"{slice_seconds}s", preemption=rules)
    )
    start_operator()
    pool.add("h100", 1)  # one node: the two 8-GPU jobs can only take turns

    def long_job(name: str) -> dict[str, Any]:
        return gang(name, pool, team, replicas=1, gpus=8, expectedDuration="10h", checkpointInterval="5s")

    with GangWatch(cluster, namespace, {"first": 1, "second": 1}) as watch:
        apply(cluster, namespace, long_job("first"))
        wait_phase(cluster, namespace, "first", "Running")
        first_turn = started(cluster, namespace, "first")
        apply(cluster, namespace, long_job("second"))
        wait_for(partial(says, cluster, namespace, "second", "waiting for room"), "the second job waiting")
        assert status(cluster, namespace, "first")["phase"] == "Running", "no turn before a whole slice"

        wait_phase(cluster, namespace, "second", "Running", timeout_seconds=slice_seconds + 30)
        first = status(cluster, namespace, "first")
        assert (first["phase"], condition(first, "Preempted")["reason"]) == ("Queued", "TimeSlice")
        assert f"used its time slice of {slice_seconds}s" in condition(first, "Preempted")["message"]
        assert (at(first, "Preempted") - first_turn).total_seconds() >= slice_seconds
        second_turn = started(cluster, namespace, "second")

        wait_for(  # the turn comes back: the second job yields its slice to the first
            lambda: (
                preempted(cluster, namespace, "second")
                and status(cluster, namespace, "first").get("phase") == "Running"
            ),
            "the first job's second turn",
            timeout_seconds=slice_seconds + 30,
        )
        second = status(cluster, namespace, "second")
        assert condition(second, "Preempted")["reason"] == "TimeSlice"
        assert f"preempted by {namespace}/first" in condition(second, "Preempted")["message"]
        assert (at(second, "Preempted") - second_turn).total_seconds() >= slice_seconds
        assert (status(cluster, namespace, "first")["preemptions"], second["preemptions"]) == (1, 1)
    assert not watch.violations, watch.violations[:5]


def test_a_queue_whose_parent_chain_is_a_cycle_is_marked_and_its_jobs_wait_until_it_is_fixed(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    ring_a, ring_b, leaf, healthy = (f"{queues}-{n}" for n in ("ring-a", "ring-b", "leaf", "ok"))
    apply_queues(
        cluster,
        queues,
        queue(ring_a, parent=ring_b),
        queue(ring_b, parent=ring_a),
        queue(leaf, parent=ring_a),
        queue(healthy),
    )
    operator = start_operator()
    pool.add("h100", 1)
    apply(
        cluster,
        namespace,
        gang("in-ring", pool, ring_a, replicas=1, gpus=2),
        gang("under-ring", pool, leaf, replicas=1, gpus=2),
        gang("elsewhere", pool, healthy, replicas=1, gpus=2),
    )
    wait_phase(cluster, namespace, "elsewhere", "Running")  # the cycle breaks nothing else
    for name in ("in-ring", "under-ring"):
        wait_for(
            partial(says, cluster, namespace, name, "its parent chain is a cycle"),
            f"{name} waiting with the cycle as its reason",
        )
        assert status(cluster, namespace, name)["phase"] == "Queued"
    for ring in (ring_a, ring_b):
        wait_for(
            partial(queue_valid, cluster, ring, "False", "ParentCycle"),
            f"Queue {ring} marked Valid=False (ParentCycle)",
        )
        valid = condition(queue_status(cluster, ring), "Valid")
        assert valid["status"] == "False"
        assert f"{ring_a} -> {ring_b}" in valid["message"] or f"{ring_b} -> {ring_a}" in valid["message"]
    operator.wait_cycles_after_now()
    assert operator.healthy(), "the operator keeps running beside a broken queue"

    apply_queues(cluster, queues, queue(ring_b))  # fixed: ring-b becomes the root
    for name in ("in-ring", "under-ring"):  # nothing was lost meanwhile
        wait_phase(cluster, namespace, name, "Running", timeout_seconds=60)
    for ring in (ring_a, ring_b):
        wait_for(partial(queue_valid, cluster, ring, "True"), f"Queue {ring} valid again")
