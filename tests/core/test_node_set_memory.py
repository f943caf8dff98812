"""A node that changes otherwise than by its pods (a taint, its readiness, a cordon, its zone or
price) is worked into what cycles keep (core/node_set_memory.py): the next cycle decides what a
cycle working everything out afresh decides, and sizings the change did not touch are kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modeljob.core.cluster_state import NodeFacts, PodFacts, Taint, TaintEffect
from modeljob.core.job_state import JobFacts
from modeljob.core.scheduling_cycle import CycleMemory, CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Place, Unschedulable, Wait
from tests.operator_builders import H100, L4, at, make_job, make_node, make_pod

B = 10**9
ZONE = "topology.kubernetes.io/zone"
LAGGING = Taint(key="node.kubernetes.io/unreachable", effect=TaintEffect.NO_SCHEDULE)


def decide(
    jobs: Sequence[JobFacts], nodes: Sequence[NodeFacts], pods: Sequence[PodFacts], memory: CycleMemory | None
) -> CycleResult:
    return run_cycle(
        jobs,
        nodes,
        pods,
        now=at(1000),
        settings=CycleSettings(),
        memory=memory,
        remember_plans=memory is not None,
    )


def twice(
    jobs: Sequence[JobFacts],
    first: Sequence[NodeFacts],
    then: Sequence[NodeFacts],
    pods: Sequence[PodFacts] = (),
    pods_then: Sequence[PodFacts] | None = None,
) -> tuple[CycleMemory, CycleResult]:
    """A cycle on ``first``, then one on ``then`` with what the first left; the second's steps
    are checked against a cycle without memory, and returned."""
    memory = CycleMemory()
    decide(jobs, first, pods, memory)
    later = pods if pods_then is None else pods_then
    result = decide(jobs, then, later, memory)
    assert result.steps == decide(jobs, then, later, None).steps
    return memory, result


def gpus(count: int) -> JobFacts:
    job = make_job("job", created=1)
    return replace(job, shape=replace(job.shape, overrides=replace(job.shape.overrides, gpus=count)))


def test_a_node_tainted_as_it_frees_up_is_not_used_by_a_job_that_waited_for_it() -> None:
    nodes = [make_node("h100-0"), make_node("h100-1")]
    full = [make_pod("a", node="h100-0", gpus=8), make_pod("b", node="h100-1", gpus=8)]
    tainted = [nodes[0], replace(nodes[1], taints=(LAGGING,))]
    _, result = twice([gpus(8)], nodes, tainted, full, pods_then=full[:1])
    (step,) = result.steps
    assert isinstance(step, Wait)
    assert "1 more node(s) of this type do not admit the job" in step.message


def test_a_taint_that_leaves_a_jobs_node_types_alone_keeps_its_sizing_and_the_carried_plans() -> None:
    nodes = [make_node("h100-0"), make_node("h100-1"), make_node("h100-2")]
    full = [make_pod(f"p{i}", node=f"h100-{i}", gpus=8) for i in range(3)]
    memory = CycleMemory()
    job = gpus(8)
    decide([job], nodes, full, memory)
    sizing, generation = memory.nodes.by_job[job.uid][1], memory.nodes.generation
    tainted = [*nodes[:2], replace(nodes[2], taints=(LAGGING,))]
    result = decide([job], tainted, full, memory)
    assert result.steps == decide([job], tainted, full, None).steps
    assert memory.nodes.by_job[job.uid][1] is sizing
    assert memory.nodes.generation == generation


def test_tainting_the_only_nodes_of_a_type_sizes_the_job_for_the_types_left() -> None:
    nodes = [make_node("h100-0"), make_node("l4-0", gpus=4, product=L4, memory_gib=24)]
    full = [make_pod("a", node="h100-0", gpus=8), make_pod("b", node="l4-0", gpus=4)]
    job = gpus(1)
    first = decide([job], nodes, full, None)
    (waits,) = first.steps
    assert isinstance(waits, Wait)
    assert waits.candidate is not None
    assert waits.candidate.node_type.product == H100
    tainted = [replace(nodes[0], taints=(LAGGING,)), nodes[1]]
    _, result = twice([job], nodes, tainted, full)
    (step,) = result.steps
    assert isinstance(step, Wait)
    assert step.candidate is not None
    assert step.candidate.node_type.product == L4


def test_a_node_repriced_reprices_the_jobs_sized_for_its_type() -> None:
    nodes = [make_node("h100-0", price=2.0), make_node("h100-1", price=2.0)]
    repriced = [nodes[0], replace(nodes[1], view=replace(nodes[1].view, price_per_hour=1.0))]
    _, result = twice([gpus(8)], nodes, repriced)
    (step,) = result.steps
    assert isinstance(step, Place)
    assert step.candidate.price_per_replica_hour == 1.0


def test_a_node_gone_not_ready_makes_a_gang_that_needed_it_unschedulable_at_once() -> None:
    nodes = [make_node("h100-0"), make_node("h100-1")]
    gang = replace(make_job("gang", replicas=2, created=1), shape=gpus(8).shape)
    full = [make_pod("a", node="h100-0", gpus=8), make_pod("b", node="h100-1", gpus=8)]
    down = [nodes[0], replace(nodes[1], ready=False, view=replace(nodes[1].view, ready=False))]
    memory = CycleMemory()
    assert isinstance(decide([gang], nodes, full, memory).steps[0], Wait)
    result = decide([gang], down, full, memory)
    assert result.steps == decide([gang], down, full, None).steps
    assert isinstance(result.steps[0], Unschedulable)


def test_a_node_moved_into_the_zone_of_another_lets_a_group_that_needs_one_zone_be_placed() -> None:
    nodes = [make_node("h100-0", labels={ZONE: "a"}), make_node("h100-1", labels={ZONE: "b"})]
    job = replace(make_job("llama-405b", parameters=405 * B, products=(H100,)), topology_required=True)
    moved = [nodes[0], replace(nodes[1], labels={ZONE: "a"})]
    memory = CycleMemory()
    assert isinstance(decide([job], nodes, [], memory).steps[0], Unschedulable)
    result = decide([job], moved, [], memory)
    assert result.steps == decide([job], moved, [], None).steps
    assert isinstance(result.steps[0], Place)


def test_a_node_whose_allocatable_shrank_is_judged_on_its_new_allocatable() -> None:
    node = make_node("h100-0")
    busy = [make_pod("cpu", node="h100-0", cpu_milli=192_000)]
    allocatable = replace(node.view.allocatable, cpu_milli=1_000)
    shrunk = replace(node, view=replace(node.view, allocatable=allocatable))
    _, result = twice([gpus(1)], [node], [shrunk], busy)
    (step,) = result.steps
    assert isinstance(step, Unschedulable)


def test_a_node_repriced_within_its_type_moves_what_the_cost_scorer_weighs() -> None:
    nodes = [make_node("h100-0", price=1.0), make_node("h100-1", price=3.0), make_node("h100-2", price=3.0)]
    repriced = [nodes[0], replace(nodes[1], view=replace(nodes[1].view, price_per_hour=2.0)), nodes[2]]
    memory = CycleMemory()
    decide([gpus(8)], nodes, [make_pod("a", node="h100-0", gpus=8)], memory)
    generation = memory.nodes.generation
    decide([gpus(8)], repriced, [make_pod("a", node="h100-0", gpus=8)], memory)
    assert memory.nodes.generation == generation + 1  # plans that read scores are not carried
