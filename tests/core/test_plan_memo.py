"""Plans remembered within a cycle (core/plan_memo.py) decide exactly what planning every job
afresh decides: the same steps, reasons and placements, whatever the jobs, nodes and pods. What
lets a verdict outlive a change of the scoring context holds: one that read no scores is the
same under any scores."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modeljob.core.affinity import LabelSelector, PodAffinityTerm, TemplateRules
from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.fragmentation import TaskShape, compile_workload, learn_target_workload
from modeljob.core.gang_placement import plan_gang
from modeljob.core.gang_request import GangRequest, ReplicaRequests, Unplaceable
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import Overrides
from modeljob.core.node_types import node_types, size_job
from modeljob.core.nodes import NodeTable, PodRequest
from modeljob.core.plan_memo import RECHECKED_PLACEMENTS
from modeljob.core.planning import Attempt
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.steps import Place, Unschedulable, Wait
from tests import builders
from tests.core.test_gang_capacity import tables
from tests.operator_builders import H100, L4, at, make_job, make_node, make_pod

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
B = 10**9
SCENARIOS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[NodeFacts], list[PodFacts]]:
    """A few H100 and L4 nodes in two zones, each with some of its GPUs (and some with most of its
    CPU) taken by other work."""
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
        if draw(st.integers(0, 3)) == 0:  # CPU taken, not GPUs: a job may fail on CPU first
            pods.append(
                make_pod(f"cpu-{index}", node=name, cpu_milli=draw(st.sampled_from((150_000, 190_000))))
            )
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


# Scoring that chooses differently: the default (taught the request's own shape), packing,
# spreading, and chance.
SCORINGS = (
    ("default", DEFAULT_WEIGHTS),
    ("most allocated", ScoringWeights(most_allocated=1.0)),
    ("least allocated", ScoringWeights(least_allocated=1.0)),
    ("random", ScoringWeights(random=1.0)),
)
pod_requests = st.builds(
    lambda gpus, share, cpu: builders.make_pod(gpus=gpus, gpu_milli=share if gpus == 1 else 1000, cpu=cpu),
    st.integers(0, 3),
    st.sampled_from((1000, 500, 300)),
    st.sampled_from((0, 1, 5)),
)


def _planned_under(
    table: NodeTable, gang: GangRequest, request: PodRequest, scoring: str, *, check_never_fits: bool
) -> object:
    weights = dict(SCORINGS)[scoring]
    shape = TaskShape(cpu_milli=request.resources.cpu_milli, gpu_milli=1000, gpus=request.resources.gpus)
    workload = compile_workload(learn_target_workload([shape]), table.products)
    context = ScoringContext(workload=workload, seed=7)
    return plan_gang(table, gang, weights=weights, context=context, check_never_fits=check_never_fits)


@st.composite
def tight_tables(draw: st.DrawFn) -> NodeTable:
    """Two to five 4-GPU nodes with few devices free (some half taken), and CPU to match: where
    the nodes an earlier pod took decide whether a later one has room."""
    nodes = [
        builders.make_node(
            f"node-{index}",
            gpus=4,
            cpu=16,
            gpu_free_milli=[draw(st.sampled_from((0, 0, 1000, 500))) for _ in range(4)],
            requested_cpu=draw(st.sampled_from((0, 8, 12))),
        )
        for index in range(draw(st.integers(2, 5)))
    ]
    return builders.make_table(*nodes)


def _four_nodes(*, cpu_taken: int) -> NodeTable:
    return builders.make_table(
        *(builders.make_node(f"node-{k}", gpus=4, cpu=16, requested_cpu=cpu_taken) for k in range(4))
    )


# Five groups of three 1-GPU pods, on four 4-GPU nodes: spreading fits them, packing does not.
# With every core taken, no pod fits now, and only the empty-cluster check (planned) reads scores;
# with the cores free, the plan itself chooses nodes before it fails (or not).
_GROUPS = (builders.make_pod(gpus=1, cpu=1), 5, 3)


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(tables(), tight_tables()),
    pod_requests,
    st.integers(1, 6),
    st.sampled_from((1, 2, 3)),
    st.booleans(),
)
@example(_four_nodes(cpu_taken=16), *_GROUPS, True)
@example(_four_nodes(cpu_taken=0), *_GROUPS, False)
def test_a_verdict_that_read_no_scores_is_the_same_under_any_scores(
    table: NodeTable, request: PodRequest, replicas: int, group_size: int, check_never_fits: bool
) -> None:
    gang = GangRequest(
        job="ml/job", replicas=replicas, requests=ReplicaRequests.uniform(request), group_size=group_size
    )
    results = {
        name: _planned_under(table, gang, request, name, check_never_fits=check_never_fits)
        for name, _ in SCORINGS
    }
    for name, result in results.items():
        if isinstance(result, Unplaceable) and not result.read_scores:
            assert all(other == result for other in results.values()), name


def test_a_cycle_that_places_more_jobs_than_are_checked_again_still_decides_as_afresh() -> None:
    """Past RECHECKED_PLACEMENTS placements in a cycle, a placement forgets its type's results
    instead of checking them again: the jobs after still get what planning afresh gives them."""
    nodes = [make_node(f"h100-{i}") for i in range(12)]
    pods = [make_pod(f"other-{i}", node=f"h100-{i}", gpus=i % 4) for i in range(12)]
    count = RECHECKED_PLACEMENTS + 10
    jobs = [
        replace(
            make_job(f"job-{i:03d}", created=i), shape=replace(make_job().shape, overrides=Overrides(gpus=g))
        )
        for i, g in zip(range(count), itertools.cycle((1, 1, 2, 8)), strict=False)
    ]
    remembered = cycle(jobs, nodes, pods, remember=True)
    assert sum(isinstance(s, Place) for s in remembered.steps) > RECHECKED_PLACEMENTS
    assert remembered.steps == cycle(jobs, nodes, pods, remember=False).steps


def test_a_job_like_one_that_never_fits_is_refused_with_its_own_name_in_every_reason() -> None:
    # Recalled verdicts keep the first job's name until a reason is read (planning.Attempt.result).
    first, second = (
        make_job(name, created=t, parameters=70 * B, replicas=3) for name, t in (("first", 0), ("second", 1))
    )
    result = cycle([first, second], [make_node("l4-0", gpus=1, product=L4, memory_gib=24)], [], remember=True)
    refused = [s for s in result.steps if isinstance(s, Unschedulable)]
    assert [s.job.name for s in refused] == ["first", "second"]
    assert refused[1].message == refused[0].message.replace("ml/first", "ml/second")
    assert "ml/first" not in refused[1].message
    assert "ml/second" in refused[1].message


def test_a_recalled_attempt_names_the_job_it_is_for_and_keeps_what_was_planned() -> None:
    verdict = Unplaceable(reason="ml/first: no room", never_fits=False, read_scores=False)
    candidate = size_job(make_job(), node_types([make_node("h100-0").view])).candidates[0]
    recalled = Attempt(candidate, verdict, "ml/first", "ml/second")
    assert recalled.result == replace(verdict, reason="ml/second: no room")
    assert recalled.reason == "ml/second: no room"
    assert recalled.planned is verdict
    assert Attempt(candidate, verdict).result is verdict
