"""A preemptor's written plan (status.preempting, status.nominatedNodes) lives exactly as long as
it is needed: written with its victims, carried on while their pods go, cleared by any other step
of the job; and a plan found written all the same never evicts a job on its stale word."""

from __future__ import annotations

from dataclasses import replace

from modeljob.core import preemption_status, status
from modeljob.core.job_state import JobPhase
from modeljob.core.lifecycle import reconcile_job
from modeljob.core.preemption_rules import PreemptionRules
from modeljob.core.queueing import QueueOrder
from modeljob.core.steps import Preempt, RollBack, Wait, evict
from tests.core.test_cycle_queues import (
    b1_with_a_plan,
    cycle,
    gpu_job,
    queue,
    running,
    step_of,
    team_a_borrowing_all_16,
)
from tests.operator_builders import at

HOUR = 3600.0
PLAN = {"preempting": ["ml/a3", "ml/a4"], "nominatedNodes": ["gpu-h100-0", "gpu-h100-1"]}
CLEARED = {"preempting": None, "nominatedNodes": None}


def _waiting(*, keeps_plan: bool) -> tuple[Wait, dict[str, object]]:
    """b1 waiting at position 1 with its plan written, and the status that says so already."""
    step = Wait(job=b1_with_a_plan(), message="waiting", queue_position=1, keeps_plan=keeps_plan)
    return step, {"phase": "Queued", "queuePosition": 1, "message": "waiting", **PLAN}


def test_a_wait_for_the_victims_pods_keeps_the_plan_and_writes_nothing_new() -> None:
    step, written = _waiting(keeps_plan=True)
    assert status.waiting(step, written, now=at(1), refresh=False) is None


def test_any_other_wait_clears_the_plan_even_when_nothing_else_changed() -> None:
    step, written = _waiting(keeps_plan=False)
    patch = status.waiting(step, written, now=at(1), refresh=False)
    assert patch is not None
    assert {key: patch[key] for key in CLEARED} == CLEARED


def test_suspending_a_preemptor_clears_its_plan_in_the_same_write() -> None:
    b1 = replace(b1_with_a_plan(), suspend=True, phase=JobPhase.QUEUED)
    step = reconcile_job(b1, [], {}, now=at(1), node_lost_after_seconds=30)
    assert isinstance(step, RollBack)
    assert step.phase is JobPhase.SUSPENDED
    patch = status.rolled_back(step, {"phase": "Queued", **PLAN}, now=at(1))
    assert {key: patch[key] for key in CLEARED} == CLEARED


def test_a_preemptor_whose_spec_turned_invalid_has_its_plan_cleared() -> None:
    b1 = replace(b1_with_a_plan(), phase=JobPhase.INVALID)
    step = reconcile_job(b1, [], {}, now=at(1), node_lost_after_seconds=30)
    assert isinstance(step, RollBack), "without a plan an invalid job with no pods is left alone"
    patch = status.rolled_back(step, {"phase": "Invalid", **PLAN}, now=at(1))
    assert {key: patch[key] for key in CLEARED} == CLEARED


def test_a_job_without_a_plan_writes_no_plan_fields() -> None:
    b1 = replace(b1_with_a_plan(preempting=(), nominated_nodes=()), suspend=True)
    step = reconcile_job(b1, [], {}, now=at(1), node_lost_after_seconds=30)
    assert isinstance(step, RollBack)
    assert "preempting" not in status.rolled_back(step, {"phase": "Queued"}, now=at(1))


def test_a_new_plan_replaces_one_written_before_and_a_resumed_plan_keeps_its_victims() -> None:
    jobs, _ = team_a_borrowing_all_16()
    a1 = evict(jobs[0], (), reason="Preempted", message="m", phase=JobPhase.QUEUED)
    old = {"preempting": ["ml/a3", "ml/a4"], "nominatedNodes": ["gpu-h100-1"]}
    new = Preempt(job=b1_with_a_plan(), victims=(a1,), nodes=("gpu-h100-0",), message="m")
    patch = preemption_status.preempting(new, old, now=at(1))
    assert (patch["preempting"], patch["nominatedNodes"]) == (["ml/a1"], ["gpu-h100-0"])
    resumed = replace(new, plan=("ml/a1", "ml/a3"), nodes=("gpu-h100-0", "gpu-h100-1"))
    patch = preemption_status.preempting(resumed, old, now=at(1))
    assert patch["preempting"] == ["ml/a1", "ml/a3"]
    assert patch["nominatedNodes"] == ["gpu-h100-0", "gpu-h100-1"]


def test_a_time_slice_victim_admitted_again_is_not_evicted_on_a_plan_left_written() -> None:
    """``turn-b``'s plan named ``turn-a`` for a time-slice turn (which leaves no preemptedBy);
    turn-a was evicted, then admitted again at t=9000, and turn-b's write clearing the plan was
    lost. turn-a has not used a slice since: turn-b must wait, not evict it on the old plan."""
    rules = PreemptionRules(time_slice_seconds=HOUR)
    queues = [queue("q", rules=rules, order=QueueOrder.TIME_SLICE)]
    turn_a, pods = running(
        gpu_job("turn-a", queue="q", gpus=8, replicas=2, checkpoint_interval_seconds=600.0, preemptions=1),
        "gpu-h100-0",
        "gpu-h100-1",
        started=9_000,
        gpus=8,
    )
    turn_b = gpu_job(
        "turn-b",
        queue="q",
        gpus=8,
        replicas=2,
        checkpoint_interval_seconds=600.0,
        created=at(0),
        queued_since=at(5_000),
        preempting=("ml/turn-a",),
        nominated_nodes=("gpu-h100-0", "gpu-h100-1"),
    )
    result = cycle([turn_a, turn_b], pods, queues=queues)
    step = step_of(result, "turn-b")
    assert isinstance(step, Wait), step
    assert not step.keeps_plan, "the step that finds the plan over clears it"
    assert not isinstance(step_of(result, "turn-a"), RollBack)


def test_a_victim_the_crash_left_running_on_its_old_run_is_still_evicted() -> None:
    """The same plan, turn-a still on the run it had when turn-b began waiting (t=100 < 5000):
    the operator stopped before evicting it, so the plan is carried on and evicts it now."""
    rules = PreemptionRules(time_slice_seconds=HOUR)
    queues = [queue("q", rules=rules, order=QueueOrder.TIME_SLICE)]
    turn_a, pods = running(
        gpu_job("turn-a", queue="q", gpus=8, replicas=2, checkpoint_interval_seconds=600.0),
        "gpu-h100-0",
        "gpu-h100-1",
        started=100,
        gpus=8,
    )
    turn_b = gpu_job(
        "turn-b",
        queue="q",
        gpus=8,
        replicas=2,
        queued_since=at(5_000),
        preempting=("ml/turn-a",),
        nominated_nodes=("gpu-h100-0", "gpu-h100-1"),
    )
    step = step_of(cycle([turn_a, turn_b], pods, queues=queues), "turn-b")
    assert isinstance(step, Preempt)
    assert [v.job.name for v in step.victims] == ["turn-a"]
    assert step.plan == ("ml/turn-a",)
