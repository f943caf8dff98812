"""Work a preempted job keeps: the victim's eviction writes, in the same status write that records
the preemption, its run up to the last checkpoint added to what earlier runs kept
(status.checkpointedSeconds); a job that never checkpoints keeps nothing. Remaining expected time
reads it back (tests/core/test_cycle_queues.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core import preemption_status
from modeljob.core.preemption_rules import PreemptionRules, WithinQueue, kept_seconds
from modeljob.core.steps import Preempt, RollBack
from tests.core.test_cycle_queues import cycle, gpu_job, queue, running, step_of
from tests.operator_builders import at

LOWER_PRIORITY = PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY)


def eviction_of(victim_changes: dict[str, object], *, started: float) -> RollBack:
    """``low`` (8 GPUs on each node, started at ``started``) preempted for ``high`` at t=10,000."""
    low, pods = running(
        gpu_job("low", queue="q", gpus=8, replicas=2, **victim_changes),
        "gpu-h100-0",
        "gpu-h100-1",
        started=started,
        gpus=8,
    )
    high = gpu_job("high", queue="q", gpus=8, replicas=2, priority=10)
    step = step_of(cycle([low, high], pods, queues=[queue("q", 16, rules=LOWER_PRIORITY)]), "high")
    assert isinstance(step, Preempt)
    (eviction,) = step.victims
    return eviction


@pytest.mark.parametrize(
    ("run_seconds", "interval_seconds", "kept"),
    [(1_900.0, 600.0, 1_800.0), (1_800.0, 600.0, 1_800.0), (599.0, 600.0, 0.0), (1_900.0, None, 0.0)],
    ids=["past-3-checkpoints", "at-a-checkpoint", "before-the-first", "never-checkpoints"],
)
def test_an_eviction_keeps_the_run_up_to_its_last_checkpoint(
    run_seconds: float, interval_seconds: float | None, kept: float
) -> None:
    assert kept_seconds(run_seconds, interval_seconds) == kept


def test_a_checkpointing_victim_adds_its_checkpointed_run_in_the_write_recording_the_preemption() -> None:
    eviction = eviction_of({"checkpoint_interval_seconds": 600.0}, started=8_000)
    patch = preemption_status.preempted(eviction, {"checkpointedSeconds": 1_200}, now=at(10_100))
    assert patch["checkpointedSeconds"] == 1_200 + 1_800, "2,100 s run, checkpoints every 600 s"
    assert patch["preemptions"] == 1
    assert patch["preemptedBy"] == ["ml/high"]


def test_a_victim_that_never_checkpoints_keeps_nothing_of_its_run() -> None:
    eviction = eviction_of({}, started=1_000)
    patch = preemption_status.preempted(eviction, {"checkpointedSeconds": 1_200}, now=at(10_000))
    assert "checkpointedSeconds" not in patch, "what earlier runs kept is left as it was"
    assert patch["preemptions"] == 1


def test_a_victim_without_a_recorded_start_counts_its_run_from_creation() -> None:
    eviction = eviction_of({"checkpoint_interval_seconds": 600.0}, started=0)
    eviction = replace(eviction, job=replace(eviction.job, started=None, created=at(9_000)))
    patch = preemption_status.preempted(eviction, {}, now=at(10_000))
    assert patch["checkpointedSeconds"] == 600
