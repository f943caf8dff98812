"""Jobs sitting a cycle out (the loop's back-off of jobs whose writes keep failing): given no step,
charged to their queue for what they hold and no more."""

from __future__ import annotations

from collections.abc import Sequence

from modeljob.core.cluster_state import PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Wait
from tests.core.test_cycle_queues import gpu_job, queue, running, step_of
from tests.operator_builders import at, h100_nodes

TEAM_A = (queue("team-a", 8),)  # a root queue: 8 GPUs, nothing to borrow


def cycle(
    jobs: Sequence[JobFacts], pods: Sequence[PodFacts], *, sitting_out: Sequence[JobFacts]
) -> CycleResult:
    return run_cycle(
        jobs,
        h100_nodes(2),
        pods,
        now=at(10_000),
        settings=CycleSettings(),
        queues=TEAM_A,
        sitting_out=sitting_out,
    )


def test_a_placed_job_sitting_out_is_given_no_step_and_still_holds_its_quota() -> None:
    a1, pods = running(gpu_job("a1", queue="team-a", gpus=8), "gpu-h100-0", started=100, gpus=8)
    a2 = gpu_job("a2", queue="team-a")
    result = cycle([a2], pods, sitting_out=[a1])
    assert [s.job.name for s in result.steps] == ["a2"]
    assert isinstance(step_of(result, "a2"), Wait), "team-a's 8 GPUs are a1's: a2 waits for quota"
    assert result.queues is not None
    assert result.queues.admitted["team-a"] == 1


def test_a_waiting_job_sitting_out_holds_no_quota() -> None:
    b1, b2 = gpu_job("b1", queue="team-a", gpus=8), gpu_job("b2", queue="team-a", gpus=8)
    result = cycle([b2], [], sitting_out=[b1])
    assert [s.job.name for s in result.steps] == ["b2"]
    assert isinstance(step_of(result, "b2"), Place), "b1 holds nothing: b2 takes team-a's 8"
