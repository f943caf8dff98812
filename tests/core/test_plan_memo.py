"""Plans remembered within a cycle (core/plan_memo.py) decide exactly what planning every job
afresh decides: the same steps, reasons and placements, whatever the jobs, nodes and pods."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.core.affinity import LabelSelector, PodAffinityTerm, TemplateRules
from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import Overrides
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Wait
from tests.operator_builders import H100, L4, at, make_job, make_node, make_pod

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
B = 10**9
SCENARIOS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[NodeFacts], list[PodFacts]]:
    """A few H100 and L4 nodes in two zones, each with some of its GPUs taken by other work."""
    nodes: list[NodeFacts] = []
    pods: list[PodFacts] = []
    for index in range(draw(st.integers(1, 6))):
        l4 = draw(st.booleans())
        name = f"{'l4' if l4 else 'h100'}-{index}"
        gpus = 4 if l4 else 8
        nodes.append(
            make_node(
                name,
                gpus=gpus,
                product=L4 if l4 else H100,
                memory_gib=24 if l4 else 80,
                labels={HOST: name, ZONE: draw(st.sampled_from("ab"))},
            )
        )
        used = draw(st.integers(0, gpus))
        if used:
            pods.append(make_pod(f"other-{index}", node=name, gpus=used))
    return nodes, pods


@st.composite
def shapes(draw: st.DrawFn) -> JobFacts:
    """One job template: model, replicas, gang or not, a GPU count of its own, and sometimes
    pod rules the memo must not remember (apart from every "llm" pod, by node or by zone)."""
    job = make_job(
        parameters=draw(st.sampled_from((1 * B, 8 * B, 70 * B))),
        replicas=draw(st.sampled_from((1, 2, 3))),
        gang=draw(st.booleans()),
    )
    gpus = draw(st.sampled_from((None, 1, 2, 4, 8)))
    if gpus is not None:
        job = replace(job, shape=replace(job.shape, overrides=Overrides(gpus=gpus)))
    if draw(st.booleans()):
        selector = LabelSelector(match_labels=(("app", "llm"),))
        anti = PodAffinityTerm(
            topology_key=draw(st.sampled_from((HOST, ZONE))), selector=selector, namespaces=("ml",)
        )
        job = replace(job, rules=TemplateRules(anti_affinity=(anti,), pod_labels=(("app", "llm"),)))
    return job


@st.composite
def queues(draw: st.DrawFn) -> list[JobFacts]:
    """Up to 14 jobs of one to three shapes: many alike, the memo's case."""
    templates = draw(st.lists(shapes(), min_size=1, max_size=3))
    picks = draw(st.lists(st.sampled_from(templates), min_size=1, max_size=14))
    return [
        replace(job, name=f"job-{i}", uid=f"uid-{i}", created=at(i), queued_since=at(i))
        for i, job in enumerate(picks)
    ]


def cycle(
    jobs: list[JobFacts], nodes: list[NodeFacts], pods: list[PodFacts], *, remember: bool
) -> CycleResult:
    return run_cycle(jobs, nodes, pods, now=at(1000), settings=CycleSettings(), remember_plans=remember)


@SCENARIOS
@given(clusters(), queues())
def test_remembered_plans_decide_what_planning_afresh_decides(
    cluster: tuple[list[NodeFacts], list[PodFacts]], jobs: list[JobFacts]
) -> None:
    nodes, pods = cluster
    assert cycle(jobs, nodes, pods, remember=True).steps == cycle(jobs, nodes, pods, remember=False).steps


def test_a_job_like_one_that_waits_waits_with_its_own_name_in_the_reason() -> None:
    first, second = (
        replace(make_job(name, created=t), shape=replace(make_job().shape, overrides=Overrides(gpus=8)))
        for name, t in (("first", 0), ("second", 1))
    )
    busy = [make_pod("other", node="h100-0", gpus=4)]
    result = cycle([first, second], [make_node("h100-0")], busy, remember=True)
    waits = [s for s in result.steps if isinstance(s, Wait)]
    assert [w.job.name for w in waits] == ["first", "second"]
    assert waits[1].message == waits[0].message.replace("ml/first", "ml/second")
    assert "ml/second: needs 8 × 80 GiB GPUs per replica" in waits[1].message


def test_a_placement_makes_the_next_job_alike_be_planned_on_what_is_left() -> None:
    jobs = [make_job(f"job-{i}", created=i) for i in range(3)]
    result = cycle(jobs, [make_node("h100-0", gpus=2)], [], remember=True)
    assert [type(s).__name__ for s in result.steps] == ["Place", "Place", "Wait"]
    placed = [s for s in result.steps if isinstance(s, Place)]
    assert sorted(a.devices for s in placed for a in s.placement) == [(0,), (1,)]
