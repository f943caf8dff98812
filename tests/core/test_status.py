"""Every status patch and condition, built from a decision: what `kubectl get mj -o yaml` shows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core.conditions import CONDITION_MESSAGE_MAX, set_condition
from modeljob.core.gang_request import Assignment
from modeljob.core.job_state import ConditionType, JobPhase, Placed, Requeue
from modeljob.core.node_types import node_types, size_job
from modeljob.core.sizing import Device, size_replica
from modeljob.core.status import (
    WaitingWrite,
    admitted,
    estimate_status,
    planned,
    rolled_back,
    scheduled,
    scheduled_event,
    waiting,
    waiting_write,
)
from modeljob.core.steps import (
    NodeTypeTried,
    Place,
    RollBack,
    Unschedulable,
    Wait,
    pods_refused,
)
from tests.operator_builders import at, h100_nodes, l4_nodes, make_job, make_node

GIB = 2**30


def conditions_of(patch: dict[str, object]) -> dict[str, dict[str, object]]:
    found = patch["conditions"]
    assert isinstance(found, list)
    return {str(c["type"]): c for c in found}


def test_condition_keeps_its_transition_time_until_its_status_flips() -> None:
    first = set_condition(
        [], type_=ConditionType.SCHEDULED, status=False, reason="Waiting", message="a", now=at(0)
    )
    again = set_condition(
        first, type_=ConditionType.SCHEDULED, status=False, reason="Waiting", message="b", now=at(10)
    )
    flipped = set_condition(
        again, type_=ConditionType.SCHEDULED, status=True, reason="Placed", message="c", now=at(20)
    )
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again[0]["message"] == "b"
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:00:20Z"


def test_conditions_of_other_types_are_kept_in_type_order() -> None:
    valid = set_condition(
        [], type_=ConditionType.VALID, status=True, reason="Valid", message="", now=at(0), generation=3
    )
    both = set_condition(
        valid, type_=ConditionType.BINDING, status=True, reason="Binding", message="", now=at(1)
    )
    assert [c["type"] for c in both] == ["Binding", "Valid"]
    assert both[1]["observedGeneration"] == 3


def test_a_condition_message_is_cut_to_the_api_servers_limit() -> None:
    [condition] = set_condition(
        [], type_=ConditionType.SCHEDULED, status=False, reason="Waiting", message="x" * 40000, now=at(0)
    )
    assert len(str(condition["message"])) == CONDITION_MESSAGE_MAX


def test_estimate_status_has_the_breakdown_and_one_line_per_rule() -> None:
    estimate = size_replica(make_job().shape, Device(80 * GIB, 8))
    status = estimate_status(estimate)
    assert {"weightsBytes", "kvCacheBytes", "totalBytes", "gpus", "cpuMilli", "memoryBytes"} <= set(status)
    assert status["deviceMemoryBytes"] == 80 * GIB
    assert any(str(line).startswith("gpus: ") for line in status["explanation"])  # type: ignore[attr-defined]


def test_an_invalid_spec_is_named_in_the_valid_condition_and_leaves_the_queue() -> None:
    patch = admitted(
        {"queuePosition": 3},
        generation=2,
        problem="spec.model.precision: int4 weights cannot be trained",
        phase=JobPhase.INVALID,
        queue="default",
        estimate=None,
        replicas=1,
        now=at(0),
    )
    valid = conditions_of(patch)["Valid"]
    assert (valid["status"], valid["reason"], valid["observedGeneration"]) == ("False", "InvalidSpec", 2)
    assert (patch["phase"], patch["queuePosition"], patch["message"]) == (
        "Invalid",
        None,
        "spec.model.precision: int4 weights cannot be trained",
    )


def _place() -> Place:
    job = make_job("gang", replicas=2)
    [candidate] = size_job(job, node_types([n.view for n in h100_nodes(1)])).candidates
    l4 = node_types([n.view for n in l4_nodes(1)])[0]
    return Place(
        job=job,
        candidate=candidate,
        placement=(Assignment(0, "gpu-h100-0", 0.75), Assignment(1, "gpu-h100-1", 0.25)),
        tried=(
            NodeTypeTried(candidate.node_type, candidate.estimate.gpus, 0.5),
            NodeTypeTried(l4, 1, None, "replica 2 of 2 has no node now"),
        ),
    )


def test_the_plan_is_written_with_binding_true_and_a_short_message() -> None:
    step = _place()
    entries = (Placed(0, "gang-0-x", "gpu-h100-0", 0.75), Placed(1, "gang-1-x", "gpu-h100-1", 0.25))
    patch = planned(step, entries, {"queuePosition": 1}, now=at(5), endpoint=None)
    binding = conditions_of(patch)["Binding"]
    assert (binding["status"], binding["observedGeneration"]) == ("True", 1)
    assert patch["nodes"] == "gpu-h100-0,gpu-h100-1"
    assert patch["queuePosition"] is None
    assert patch["message"] == "binding 2 pod(s) on NVIDIA-H100-80GB-HBM3, 80.0 GiB"
    assert patch["endpoint"] is None, "null: a merge patch removes an endpoint an earlier spec had"


def test_the_plan_says_the_endpoint_the_adapter_named() -> None:
    entries = (Placed(0, "gang-0-x", "gpu-h100-0", 0.75), Placed(1, "gang-1-x", "gpu-h100-1", 0.25))
    patch = planned(_place(), entries, {}, now=at(5), endpoint="http://gang-serve.ml.svc:8000")
    assert patch["endpoint"] == "http://gang-serve.ml.svc:8000"


def test_the_scheduled_condition_is_one_short_line_and_the_event_has_every_node_type_tried() -> None:
    step = _place()
    entries = [Placed(i, f"gang-{i}-x", f"gpu-h100-{i}", s) for i, s in enumerate((0.75, 0.25))]
    patch = scheduled(
        {}, entries=entries, node_type=step.candidate.node_type, generation=1, now=at(9), place=step
    )
    condition = conditions_of(patch)["Scheduled"]
    assert condition["message"] == "2 pod(s) bound on NVIDIA-H100-80GB-HBM3, 80.0 GiB, mean score 0.50"
    assert conditions_of(patch)["Binding"]["reason"] == "Bound"
    event = scheduled_event(entries, step.candidate.node_type, place=step)
    assert "planned on each node type the job was sized for" in event
    assert "NVIDIA-H100-80GB-HBM3, 80.0 GiB: 1 GPU(s)/replica, mean score 0.50 (chosen)" in event
    assert "NVIDIA-L4, 24.0 GiB: replica 2 of 2 has no node now" in event
    assert "replica 1 -> gpu-h100-1 (score 0.25)" in event


def test_a_waiting_job_that_only_moved_in_the_queue_is_rewritten_only_when_a_refresh_is_granted() -> None:
    # Every placement ahead shifts every position behind it: rewriting them all each cycle would
    # cost a write per queued job, so the new number waits for the caller's refresh budget.
    step = Wait(job=make_job(), message="waiting for room: x", queue_position=2)
    first = waiting(step, {}, now=at(0), refresh=False)
    assert first is not None, "a newly waiting job's first status is written at once"
    assert (first["phase"], first["queuePosition"]) == ("Queued", 2)
    assert waiting(step, {**first}, now=at(0), refresh=True) is None, "nothing changed"
    moved = replace(step, queue_position=1)
    assert waiting_write(moved, first) is WaitingWrite.REFRESH
    assert waiting(moved, {**first}, now=at(0), refresh=False) is None
    patch = waiting(moved, {**first}, now=at(0), refresh=True)
    assert patch is not None
    assert patch["queuePosition"] == 1


PLAN = {"preempting": {"victims": ["ml/x"]}, "nominatedNodes": "gpu-h100-0"}


@pytest.mark.parametrize(
    ("written", "step", "write"),
    [
        ({}, Wait(job=make_job(), message="m", queue_position=3), WaitingWrite.CHANGE),
        ({"phase": "Pending"}, Wait(job=make_job(), message="m", queue_position=3), WaitingWrite.CHANGE),
        (
            {"phase": "Queued", "queuePosition": 3, "message": "m"},
            Unschedulable(job=make_job(), message="m"),
            WaitingWrite.CHANGE,
        ),
        (
            {"phase": "Unschedulable", "message": "m"},
            Wait(job=make_job(), message="m", queue_position=3),
            WaitingWrite.CHANGE,
        ),
        (
            {"phase": "Queued", "message": "m"},
            Wait(job=make_job(), message="m", queue_position=3),
            WaitingWrite.CHANGE,
        ),
        (
            {"phase": "Queued", "queuePosition": 3, "message": "m", **PLAN},
            Wait(job=make_job(), message="m", queue_position=3),
            WaitingWrite.CHANGE,
        ),
        (
            {"phase": "Queued", "queuePosition": 3, "message": "m", **PLAN},
            Wait(job=make_job(), message="m", queue_position=3, keeps_plan=True),
            WaitingWrite.NONE,
        ),
        (
            {"phase": "Queued", "queuePosition": 3, "message": "m"},
            Wait(job=make_job(), message="m", queue_position=3),
            WaitingWrite.NONE,
        ),
        (
            {"phase": "Queued", "queuePosition": 3, "message": "m"},
            Wait(job=make_job(), message="m", queue_position=9),
            WaitingWrite.REFRESH,
        ),
        (
            {"phase": "Queued", "queuePosition": 3, "message": "m"},
            Wait(job=make_job(), message="n", queue_position=3),
            WaitingWrite.REFRESH,
        ),
        (
            {"phase": "Unschedulable", "message": "m"},
            Unschedulable(job=make_job(), message="n"),
            WaitingWrite.REFRESH,
        ),
    ],
    ids=[
        "first write",
        "newly waiting",
        "queued to unschedulable",
        "unschedulable to queued",
        "a position appears",
        "a plan to clear",
        "a preemptor keeps its plan",
        "nothing changed",
        "position number only",
        "reason only",
        "unschedulable reason only",
    ],
)
def test_what_a_waiting_write_changes(
    written: dict[str, object], step: Wait | Unschedulable, write: WaitingWrite
) -> None:
    # A change of what the job is goes out at once; a refresh only when the caller grants it.
    assert waiting_write(step, written) is write
    assert (waiting(step, written, now=at(0), refresh=False) is not None) == (write is WaitingWrite.CHANGE)
    assert (waiting(step, written, now=at(0), refresh=True) is not None) == (write is not WaitingWrite.NONE)


@pytest.mark.parametrize("refresh_due", [False, True])
def test_a_waiting_job_whose_reason_alone_changed_is_rewritten_only_when_a_refresh_is_due(
    refresh_due: bool,
) -> None:
    # The reason counts free blocks, which change with every pod: the caller says when enough
    # time has passed to write a new one (``refresh``); ``now`` only stamps the condition.
    step = Wait(job=make_job(), message="waiting for room: x", queue_position=2)
    written = waiting(step, {}, now=at(0), refresh=False)
    assert written is not None
    reason_changed = replace(step, message="waiting for room: y")
    patch = waiting(reason_changed, written, now=at(0), refresh=refresh_due)
    assert (patch is not None) == refresh_due
    if patch is not None:
        assert patch["message"] == "waiting for room: y"


def test_an_unschedulable_job_has_no_queue_position() -> None:
    patch = waiting(
        Unschedulable(job=make_job(), message="never"), {"queuePosition": 4}, now=at(0), refresh=False
    )
    assert patch is not None
    assert (patch["phase"], patch["queuePosition"]) == ("Unschedulable", None)
    assert conditions_of(patch)["Scheduled"]["reason"] == "Unschedulable"


def test_a_roll_back_clears_the_placement_and_says_why_in_the_scheduled_condition() -> None:
    step = RollBack(
        job=make_job(),
        reason=Requeue.NODE_LOST.value,
        message="node gpu-h100-0 of replica 0 was deleted",
        phase=JobPhase.QUEUED,
        requeue=Requeue.NODE_LOST,
    )
    written = {"placement": [{"replica": 0}], "nodes": "gpu-h100-0", "endpoint": "http://j-serve.ml.svc:80"}
    patch = rolled_back(step, written, now=at(0))
    assert (patch["phase"], patch["placement"], patch["nodes"]) == ("Queued", [], None)
    assert patch["endpoint"] is None, "no pod serves behind it any more"
    assert conditions_of(patch)["Binding"]["reason"] == "NotBinding"
    assert conditions_of(patch)["Scheduled"]["reason"] == "NodeLost"


def test_pods_the_api_server_refused_make_the_job_invalid_naming_the_field() -> None:
    job = make_job(generation=3)
    step = pods_refused(
        job, [Placed(0, "job-0-x", "gpu-h100-0")], "spec.template.spec.restartPolicy: Unsupported"
    )
    patch = rolled_back(step, {}, now=at(0))
    assert patch["phase"] == "Invalid"
    valid = conditions_of(patch)["Valid"]
    assert (valid["status"], valid["reason"], valid["observedGeneration"]) == ("False", "InvalidSpec", 3)
    assert "spec.template.spec.restartPolicy" in str(valid["message"])
    assert "Scheduled" not in conditions_of(patch)
    assert step.delete_pods == ("job-0-x",)
    assert step.requeue is None, "not a requeue: the job waits for a new spec"


def test_the_scheduled_condition_says_in_short_what_decided_and_the_event_why_each_node() -> None:
    step = replace(
        _place(),
        placement=(
            Assignment(0, "gpu-h100-0", 0.5, why="2 nodes tied at 0.50, the first by name won"),
            Assignment(1, "gpu-h100-1", 0.5, why="the only node with room"),
        ),
    )
    entries = [Placed(i, f"gang-{i}-x", f"gpu-h100-{i}", 0.5) for i in range(2)]
    patch = scheduled(
        {}, entries=entries, node_type=step.candidate.node_type, generation=1, now=at(9), place=step
    )
    message = conditions_of(patch)["Scheduled"]["message"]
    assert message == (
        "2 pod(s) bound on NVIDIA-H100-80GB-HBM3, 80.0 GiB, mean score 0.50 "
        "(replica 0: 2 nodes tied at 0.50, the first by name won)"
    )
    event = scheduled_event(entries, step.candidate.node_type, place=step)
    assert event.startswith(message)
    assert "replica 1 -> gpu-h100-1 (score 0.50; the only node with room)" in event


def test_the_node_types_mean_scores_are_shown_with_the_decimals_that_tell_them_apart() -> None:
    # 0.5012 and 0.4988 both read 0.50, and 0.5009 reads 0.501 beside 0.5012: only four decimals
    # show all three apart, and every type's score gets them, in the Event and the condition alike.
    step = _place()
    h100 = step.candidate.node_type
    l4 = node_types([n.view for n in l4_nodes(1)])[0]
    a100 = node_types([make_node("gpu-a100-0", product="NVIDIA-A100-SXM4-40GB", memory_gib=40).view])[0]
    step = replace(
        step,
        tried=(
            NodeTypeTried(h100, 1, 0.5012),
            NodeTypeTried(a100, 2, 0.5009),
            NodeTypeTried(l4, 1, 0.4988),
        ),
    )
    assert "NVIDIA-H100-80GB-HBM3, 80.0 GiB: 1 GPU(s)/replica, mean score 0.5012 (chosen)" in step.message
    assert "NVIDIA-A100-SXM4-40GB, 40.0 GiB: 2 GPU(s)/replica, mean score 0.5009;" in step.message
    assert "NVIDIA-L4, 24.0 GiB: 1 GPU(s)/replica, mean score 0.4988;" in step.message
    assert step.decided.startswith("0.5012 beat 0.5009 on NVIDIA-A100-SXM4-40GB, 40.0 GiB")
    without_the_close_one = replace(step, tried=(step.tried[0], step.tried[2]))
    assert "mean score 0.501 (chosen)" in without_the_close_one.message
    assert without_the_close_one.decided.startswith("0.501 beat 0.499 on NVIDIA-L4, 24.0 GiB")
