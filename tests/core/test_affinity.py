"""A template's own rules as Kubernetes defines them: required ones filter, preferred ones score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from modeljob.core.affinity import (
    LabelSelector,
    NodeAffinity,
    NodeSelectorTerm,
    PodAffinityTerm,
    PreferredNodeTerm,
    Requirement,
    SelectorOperator,
    SpreadConstraint,
    TemplateRules,
    WeightedPodAffinityTerm,
    WhenUnsatisfiable,
)
from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.jobs import WorkloadType
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Step, Unschedulable, Wait
from tests.operator_builders import at, make_job, make_node, make_pod

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
ANTI = f"spec.template.spec.affinity.podAntiAffinity.{REQUIRED}[0]"

In, NotIn, Exists, Absent, Gt, Lt = (
    SelectorOperator.IN,
    SelectorOperator.NOT_IN,
    SelectorOperator.EXISTS,
    SelectorOperator.DOES_NOT_EXIST,
    SelectorOperator.GT,
    SelectorOperator.LT,
)


def node(name: str, *, zone: str = "a", gpus: int = 8, **labels: str) -> NodeFacts:
    return make_node(name, gpus=gpus, labels={HOST: name, ZONE: zone, **labels})


def job_with(rules: TemplateRules, *, name: str = "job", replicas: int = 2, app: str = "llm") -> JobFacts:
    job = make_job(name, replicas=replicas)
    return replace(job, rules=replace(rules, pod_labels=(("app", app),)))


def app_is(app: str) -> LabelSelector:
    return LabelSelector(match_labels=(("app", app),))


def term(key: str = HOST, *, app: str = "llm", namespaces: tuple[str, ...] = ("ml",)) -> PodAffinityTerm:
    return PodAffinityTerm(topology_key=key, selector=app_is(app), namespaces=namespaces, field=ANTI)


def bound(name: str, on: str, *, app: str, namespace: str = "ml", **changes: object) -> PodFacts:
    return replace(make_pod(name, namespace=namespace, node=on, gpus=1), labels={"app": app}, **changes)  # type: ignore[arg-type]


def cycle(jobs: Sequence[JobFacts], nodes: Sequence[NodeFacts], pods: Sequence[PodFacts] = ()) -> CycleResult:
    return run_cycle(jobs, nodes, pods, now=at(1000), settings=CycleSettings())


def step_of(result: CycleResult, name: str = "job") -> Step:
    return next(s for s in result.steps if s.job.name == name)


def nodes_of(step: Step) -> list[str]:
    assert isinstance(step, Place), step
    return [a.node for a in step.placement]


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "labels", "matches"),
    [
        (Requirement("gpu", In, ("h100", "a100")), {"gpu": "a100"}, True),
        (Requirement("gpu", In, ("h100",)), {}, False),
        (Requirement("gpu", NotIn, ("l4",)), {}, True),
        (Requirement("gpu", NotIn, ("l4",)), {"gpu": "l4"}, False),
        (Requirement("gpu", Exists), {"gpu": ""}, True),
        (Requirement("gpu", Absent), {"gpu": "x"}, False),
        (Requirement("gen", Gt, ("3",)), {"gen": "4"}, True),
        (Requirement("gen", Gt, ("3",)), {"gen": "3"}, False),
        (Requirement("gen", Lt, ("3",)), {"gen": "x"}, False),
    ],
    ids=[
        "in",
        "in-missing",
        "notin-missing",
        "notin",
        "exists",
        "doesnotexist",
        "gt",
        "gt-equal",
        "lt-not-int",
    ],
)
def test_a_requirement_matches_as_kubernetes_defines_its_operator(
    requirement: Requirement, labels: dict[str, str], matches: bool
) -> None:
    assert requirement.matches(labels) is matches


def test_node_selector_terms_are_ored_their_expressions_anded_and_an_empty_term_matches_nothing() -> None:
    h100_in_a = NodeSelectorTerm(
        expressions=(Requirement("gpu", In, ("h100",)), Requirement("zone", In, ("a",)))
    )
    by_name = NodeSelectorTerm(fields=(Requirement("metadata.name", In, ("n-9",)),))
    affinity = NodeAffinity(required=(h100_in_a, by_name))
    assert affinity.admits("n-1", {"gpu": "h100", "zone": "a"})
    assert not affinity.admits("n-1", {"gpu": "h100", "zone": "b"})
    assert affinity.admits("n-9", {})
    assert not NodeAffinity(required=(NodeSelectorTerm(),)).admits("n-1", {"gpu": "h100"})
    assert NodeAffinity().admits("anything", {})


def test_a_term_looks_only_in_its_namespaces_and_a_null_selector_selects_no_pod() -> None:
    assert term(namespaces=("ml",)).selects("ml", {"app": "llm"})
    assert not term(namespaces=("ml",)).selects("other", {"app": "llm"})
    assert replace(term(), all_namespaces=True).selects("other", {"app": "llm"})
    assert not replace(term(), selector=None).selects("ml", {"app": "llm"})


# --- required node affinity ----------------------------------------------------------------------


def test_a_required_hostname_affinity_places_the_job_on_that_node_only() -> None:
    pinned = NodeAffinity(required=(NodeSelectorTerm(expressions=(Requirement(HOST, In, ("gpu-h100-1",)),)),))
    job = job_with(TemplateRules(node_affinity=pinned), replicas=1)
    result = cycle([job], [node("gpu-h100-0"), node("gpu-h100-1"), node("gpu-h100-2")])
    assert nodes_of(step_of(result)) == ["gpu-h100-1"]


def test_a_job_no_node_admits_is_unschedulable_naming_the_field() -> None:
    pinned = NodeAffinity(required=(NodeSelectorTerm(expressions=(Requirement(HOST, In, ("gone",)),)),))
    step = step_of(cycle([job_with(TemplateRules(node_affinity=pinned))], [node("gpu-h100-0")]))
    assert isinstance(step, Unschedulable)
    assert step.message == (
        f"no node admits the job's pods: 1 node(s): spec.template.spec.affinity.nodeAffinity.{REQUIRED}: "
        "no term matches"
    )


def test_a_pinned_node_without_room_makes_the_job_wait_rather_than_go_elsewhere() -> None:
    pinned = NodeAffinity(required=(NodeSelectorTerm(expressions=(Requirement(HOST, In, ("gpu-h100-1",)),)),))
    job = job_with(TemplateRules(node_affinity=pinned), replicas=1)
    busy = replace(make_pod("hog", node="gpu-h100-1", gpus=8), labels={})
    step = step_of(cycle([job], [node("gpu-h100-0"), node("gpu-h100-1")], [busy]))
    assert isinstance(step, Wait)
    assert "gpu-h100-0" not in step.message


# --- required pod anti-affinity and affinity -----------------------------------------------------


def test_replicas_with_required_anti_affinity_on_hostname_land_on_different_nodes() -> None:
    job = job_with(TemplateRules(anti_affinity=(term(),)), replicas=3)
    result = cycle([job], [node("n-0"), node("n-1"), node("n-2")])
    assert sorted(nodes_of(step_of(result))) == ["n-0", "n-1", "n-2"]


def test_more_anti_affine_replicas_than_nodes_never_fit_and_the_reason_names_the_rule() -> None:
    job = job_with(TemplateRules(anti_affinity=(term(),)), replicas=3)
    step = step_of(cycle([job], [node("n-0"), node("n-1")]))
    assert isinstance(step, Unschedulable)
    assert f"of the nodes with room: 2 × {ANTI}: a pod it selects is in the node's {HOST}" in step.message


def test_anti_affinity_avoids_the_node_of_a_bound_pod_it_selects_in_its_namespace() -> None:
    job = job_with(TemplateRules(anti_affinity=(term(app="db"),)), replicas=1)
    nodes = [node("n-0"), node("n-1")]
    assert nodes_of(step_of(cycle([job], nodes, [bound("db-0", "n-0", app="db")]))) == ["n-1"]
    # the same pod in another namespace is not one the term looks at
    elsewhere = bound("db-0", "n-0", app="db", namespace="other")
    assert nodes_of(step_of(cycle([job], nodes, [elsewhere]))) == ["n-0"]


def test_a_bound_pods_own_anti_affinity_keeps_the_job_off_its_zone() -> None:
    guard = PodAffinityTerm(
        topology_key=ZONE, selector=app_is("llm"), namespaces=("ml",), field="spec.affinity"
    )
    loner = bound("loner", "n-0", app="loner", anti_affinity=(guard,))
    job = job_with(TemplateRules(), replicas=1)
    step = step_of(
        cycle([job], [node("n-0", zone="a"), node("n-1", zone="a"), node("n-2", zone="b")], [loner])
    )
    assert nodes_of(step) == ["n-2"]


def test_required_affinity_follows_the_pods_it_selects_into_their_zone() -> None:
    near_db = TemplateRules(affinity=(replace(term(ZONE, app="db"), field="affinity"),))
    nodes = [node("n-0", zone="a"), node("n-1", zone="b")]
    step = step_of(cycle([job_with(near_db, replicas=1)], nodes, [bound("db-0", "n-1", app="db")]))
    assert nodes_of(step) == ["n-1"]


def test_affinity_to_pods_that_do_not_exist_yet_waits_but_self_affinity_starts_anywhere() -> None:
    nodes = [node("n-0", zone="a"), node("n-1", zone="b")]
    near_db = job_with(TemplateRules(affinity=(replace(term(ZONE, app="db"), field="affinity"),)), replicas=1)
    assert isinstance(step_of(cycle([near_db], nodes)), Wait)
    together = job_with(TemplateRules(affinity=(replace(term(ZONE), field="affinity"),)), replicas=3)
    zones = {"n-0": "a", "n-1": "b"}
    assert len({zones[n] for n in nodes_of(step_of(cycle([together], nodes)))}) == 1


def test_a_job_planned_earlier_in_the_cycle_counts_for_the_anti_affinity_of_the_next() -> None:
    first = job_with(TemplateRules(), name="a-db", replicas=1, app="db")
    second = replace(
        job_with(TemplateRules(anti_affinity=(term(app="db"),)), name="b-llm", replicas=1), created=at(5)
    )
    result = cycle([first, second], [node("n-0"), node("n-1")])
    assert nodes_of(step_of(result, "a-db")) != nodes_of(step_of(result, "b-llm"))


def test_a_replica_planned_alone_sees_the_replicas_planned_before_it() -> None:
    job = replace(job_with(TemplateRules(anti_affinity=(term(),)), replicas=2), gang=False)
    assert sorted(nodes_of(step_of(cycle([job], [node("n-0"), node("n-1")])))) == ["n-0", "n-1"]


# --- topology spread -----------------------------------------------------------------------------


def spread(when: WhenUnsatisfiable, *, key: str = ZONE, skew: int = 1) -> SpreadConstraint:
    return SpreadConstraint(
        max_skew=skew, topology_key=key, when_unsatisfiable=when, selector=app_is("llm"), field="spread"
    )


def test_do_not_schedule_spread_keeps_zones_within_max_skew() -> None:
    job = job_with(TemplateRules(spread=(spread(WhenUnsatisfiable.DO_NOT_SCHEDULE),)), replicas=4)
    nodes = [node("n-0", zone="a"), node("n-1", zone="a"), node("n-2", zone="b")]
    zones = {"n-0": "a", "n-1": "a", "n-2": "b"}
    placed = [zones[n] for n in nodes_of(step_of(cycle([job], nodes)))]
    assert sorted(placed) == ["a", "a", "b", "b"]


def test_do_not_schedule_spread_counts_the_pods_already_there() -> None:
    job = job_with(TemplateRules(spread=(spread(WhenUnsatisfiable.DO_NOT_SCHEDULE),)), replicas=1)
    nodes = [node("n-0", zone="a"), node("n-1", zone="b")]
    assert nodes_of(step_of(cycle([job], nodes, [bound("old", "n-0", app="llm")]))) == ["n-1"]


def test_schedule_anyway_spread_prefers_the_emptier_zone_but_never_refuses() -> None:
    job = job_with(TemplateRules(spread=(spread(WhenUnsatisfiable.SCHEDULE_ANYWAY),)), replicas=1)
    nodes = [node("n-0", zone="a"), node("n-1", zone="b")]
    assert nodes_of(step_of(cycle([job], nodes, [bound("old", "n-0", app="llm")]))) == ["n-1"]
    full = replace(make_pod("hog", node="n-1", gpus=8), labels={})
    assert nodes_of(step_of(cycle([job], nodes, [bound("old", "n-0", app="llm"), full]))) == ["n-0"]


# --- preferences score ---------------------------------------------------------------------------


def test_preferred_node_affinity_wins_over_the_name_tie_break() -> None:
    likes_b = PreferredNodeTerm(
        weight=50, term=NodeSelectorTerm(expressions=(Requirement(ZONE, In, ("b",)),))
    )
    job = job_with(TemplateRules(node_affinity=NodeAffinity(preferred=(likes_b,))), replicas=1)
    assert nodes_of(step_of(cycle([job], [node("n-0", zone="a"), node("n-1", zone="b")]))) == ["n-1"]


def test_preferred_anti_affinity_moves_away_from_pods_it_selects() -> None:
    rules = TemplateRules(preferred_anti_affinity=(WeightedPodAffinityTerm(100, term(app="db")),))
    job = job_with(rules, replicas=1)
    nodes = [node("n-0"), node("n-1")]
    assert nodes_of(step_of(cycle([job], nodes, [bound("db-0", "n-0", app="db")]))) == ["n-1"]


# --- serving replicas spread by default ----------------------------------------------------------


def test_serving_replicas_go_to_different_nodes_when_nodes_with_room_allow() -> None:
    job = job_with(TemplateRules(), replicas=2)
    assert sorted(nodes_of(step_of(cycle([job], [node("n-0"), node("n-1")])))) == ["n-0", "n-1"]


def test_serving_replicas_share_a_node_rather_than_wait_when_only_one_has_room() -> None:
    job = job_with(TemplateRules(), replicas=2)
    full = replace(make_pod("hog", node="n-1", gpus=8), labels={})
    assert nodes_of(step_of(cycle([job], [node("n-0"), node("n-1")], [full]))) == ["n-0", "n-0"]


def test_training_replicas_are_not_spread_by_default() -> None:
    job = job_with(TemplateRules(), replicas=2)
    trains = replace(job.shape.workload, type=WorkloadType.TRAINING)
    job = replace(job, shape=replace(job.shape, workload=trains))
    result = cycle([job], [node("n-0"), node("n-1")])
    assert len(set(nodes_of(step_of(result)))) == 1
