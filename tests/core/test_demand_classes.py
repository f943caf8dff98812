"""A demand class's verdict given to the other jobs of the class (core/demand_classes.py) decides
exactly what deciding each job alone decides, and spares the planning of every job after the
first of its class until the ledger changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given

from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import Overrides
from modeljob.core.planning import Planner
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Wait
from tests.core.test_plan_memo import SCENARIOS, clusters, queues
from tests.operator_builders import H100, L4, at, make_job, make_node, make_pod


def cycle(
    jobs: list[JobFacts],
    nodes: list[NodeFacts],
    pods: list[PodFacts],
    *,
    remember: bool,
    strict: bool = False,
) -> CycleResult:
    settings = CycleSettings(strict=strict)
    return run_cycle(jobs, nodes, pods, now=at(1000), settings=settings, remember_plans=remember)


@SCENARIOS
@given(clusters(), queues())
def test_under_strict_order_the_jobs_behind_decide_what_each_decided_alone_decides(
    cluster: tuple[list[NodeFacts], list[PodFacts]], jobs: list[JobFacts]
) -> None:
    nodes, pods = cluster
    remembered = cycle(jobs, nodes, pods, remember=True, strict=True).steps
    assert remembered == cycle(jobs, nodes, pods, remember=False, strict=True).steps


def gpus(job: JobFacts, count: int) -> JobFacts:
    return replace(job, shape=replace(job.shape, overrides=Overrides(gpus=count)))


@pytest.fixture
def attempts_planned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The jobs the cycle's planner planned (afresh or from its memo), in order."""
    planned: list[str] = []
    attempts = Planner.attempts

    def counted(self: Planner, job: JobFacts, *args: object, **kwargs: object) -> object:
        planned.append(job.name)
        return attempts(self, job, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Planner, "attempts", counted)
    return planned


def test_a_hundred_jobs_alike_that_wait_are_planned_once_each_with_its_own_name_and_place(
    attempts_planned: list[str],
) -> None:
    jobs = [gpus(make_job(f"job-{i}", created=i), 8) for i in range(100)]
    busy = [make_pod("other", node="h100-0", gpus=4)]
    result = cycle(jobs, [make_node("h100-0")], busy, remember=True)
    waits = [s for s in result.steps if isinstance(s, Wait)]
    assert [w.job.name for w in waits] == [f"job-{i}" for i in range(100)]
    assert [w.queue_position for w in waits] == list(range(1, 101))
    assert waits[57].message == waits[0].message.replace("ml/job-0", "ml/job-57")
    assert "ml/job-57: needs 8 × 80 GiB GPUs per replica" in waits[57].message
    assert attempts_planned == ["job-0"]


def test_a_placement_between_two_jobs_alike_has_the_second_planned_again(
    attempts_planned: list[str],
) -> None:
    big = [gpus(make_job(f"big-{i}", created=i * 2), 8) for i in range(2)]
    small = gpus(make_job("small", created=1), 1)
    busy = [make_pod("other", node="h100-0", gpus=4)]
    result = cycle([big[0], small, big[1]], [make_node("h100-0")], busy, remember=True)
    assert [type(s).__name__ for s in result.steps] == ["Wait", "Place", "Wait"]
    assert isinstance(result.steps[1], Place)
    assert attempts_planned == ["big-0", "small", "big-1"]


def test_a_placement_on_another_gpu_model_leaves_the_verdict_of_jobs_alike_standing(
    attempts_planned: list[str],
) -> None:
    """Jobs alike that may use only H100 nodes wait; a job placed on an L4 node between two of
    them takes no room they could use, so the second gets the first's verdict unplanned."""
    big = [gpus(make_job(f"big-{i}", created=i * 2, products=(H100,)), 8) for i in range(2)]
    small = gpus(make_job("small", created=1, parameters=10**9, products=(L4,)), 1)
    nodes = [make_node("h100-0"), make_node("l4-0", product=L4, memory_gib=24)]
    busy = [make_pod("other", node="h100-0", gpus=4)]
    jobs = [big[0], small, big[1]]
    result = cycle(jobs, nodes, busy, remember=True)
    assert [type(s).__name__ for s in result.steps] == ["Wait", "Place", "Wait"]
    assert result.steps[1].placement[0].node == "l4-0"  # type: ignore[attr-defined]
    assert attempts_planned == ["big-0", "small"]
    assert result.steps == cycle(jobs, nodes, busy, remember=False).steps
