"""The extender answers with the core's filter and scoring, mapped onto kube-scheduler's wire shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeljob.adapters.extender.decisions import (
    MAX_PRIORITY,
    UNRESOLVABLE,
    Priorities,
    decide_filter,
    decide_priorities,
    reach_points,
    to_extender_scale,
)
from modeljob.core.fragmentation import TaskShape, compile_workload, learn_target_workload
from modeljob.core.nodes import NodeTable, NodeView, PodRequest
from modeljob.core.scoring.filters import Rejection, filter_nodes
from modeljob.core.scoring.ranking import NodeChoice, ScoringContext, choose_node
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from tests.builders import make_node, make_pod, make_table


def rows_of(table: NodeTable) -> dict[str, int]:
    return {name: row for row, name in enumerate(table.names)}


def context_for(table: NodeTable, *shapes: TaskShape) -> ScoringContext:
    return ScoringContext(workload=compile_workload(learn_target_workload(shapes), table.products))


@pytest.mark.parametrize(
    ("node", "request_", "reason"),
    [
        (make_node("n", gpus=0), make_pod(gpus=1), Rejection.NO_ACCELERATOR),
        (make_node("n", ready=False), make_pod(gpus=1), Rejection.NOT_READY),
        (make_node("n", gpu_free_milli=(0,) * 7 + (1000,)), make_pod(gpus=2), Rejection.GPUS),
        (make_node("n", cpu=4), make_pod(gpus=1, cpu=8), Rejection.CPU),
        (make_node("n", memory_gib=32), make_pod(gpus=1, memory_gib=64), Rejection.MEMORY),
        (make_node("n"), make_pod(gpus=1, products=("NVIDIA-L4",)), Rejection.PRODUCT),
        (make_node("n", gpu_memory_gib=40), make_pod(gpus=1, min_gpu_memory_gib=80), Rejection.GPU_MEMORY),
    ],
    ids=["cpu-node", "not-ready", "gpus-taken", "cpu", "memory", "product", "device-memory"],
)
def test_a_filtered_node_says_why_and_whether_preemption_could_help(
    node: NodeView, request_: PodRequest, reason: Rejection
) -> None:
    table = make_table(node)
    decision = decide_filter(table, request_, ["n"], row_of=rows_of(table))
    assert decision.passed == ()
    where = decision.unresolvable if reason in UNRESOLVABLE else decision.failed
    assert where["n"].startswith(f"modeljob: {reason.value}")
    assert len(decision.failed) + len(decision.unresolvable) == 1


def test_nodes_failing_the_same_way_get_the_same_reason_so_the_event_aggregates_them() -> None:
    table = make_table(*(make_node(f"n{i}") for i in range(3)))
    decision = decide_filter(table, make_pod(gpus=16), ["n0", "n1", "n2"], row_of=rows_of(table))
    assert set(decision.failed.values()) == {
        "modeljob: not enough free GPUs (the pod asks for 16 nvidia.com/gpu)"
    }


def test_names_the_cache_does_not_know_are_reported_not_guessed() -> None:
    table = make_table(make_node("n0"))
    decision = decide_filter(table, make_pod(), ["n0", "new-node"], row_of=rows_of(table))
    assert decision.passed == ("n0",)
    assert decision.unknown == ("new-node",)


node_states = st.lists(
    st.tuples(
        st.integers(0, 8),  # GPUs in use
        st.sampled_from((8, 16, 96)),  # cores
        st.booleans(),  # ready
        st.sampled_from(("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-40GB")),
    ),
    min_size=1,
    max_size=12,
)


def table_from(states: list[tuple[int, int, bool, str]]) -> NodeTable:
    return make_table(
        *(
            make_node(
                f"node-{i:02d}",
                cpu=cores,
                ready=ready,
                product=product,
                gpu_free_milli=(0,) * used + (1000,) * (8 - used),
            )
            for i, (used, cores, ready, product) in enumerate(states)
        )
    )


@settings(max_examples=100, deadline=None)
@given(node_states, st.integers(1, 8), st.sampled_from((1, 8, 32)))
def test_filter_passes_exactly_the_nodes_the_core_filter_keeps(
    states: list[tuple[int, int, bool, str]], gpus: int, cores: int
) -> None:
    table = table_from(states)
    request = make_pod(gpus=gpus, cpu=cores)
    decision = decide_filter(table, request, list(table.names), row_of=rows_of(table))
    kept = {table.names[row] for row in np.flatnonzero(filter_nodes(table, request).feasible)}
    assert set(decision.passed) == kept
    assert set(decision.failed) | set(decision.unresolvable) == set(table.names) - kept


@settings(max_examples=100, deadline=None)
@given(node_states, st.integers(1, 8))
def test_the_node_with_the_top_score_alone_is_the_node_the_core_chooses(
    states: list[tuple[int, int, bool, str]], gpus: int
) -> None:
    table = table_from(states)
    request = make_pod(gpus=gpus, cpu=1)
    context = context_for(table, TaskShape(cpu_milli=1000, gpu_milli=1000, gpus=gpus))
    priorities = decide_priorities(
        table,
        request,
        list(reversed(table.names)),
        row_of=rows_of(table),
        weights=DEFAULT_WEIGHTS,
        context=context,
    )
    choice = choose_node(table, request, weights=DEFAULT_WEIGHTS, context=context)
    top = int(priorities.values.max())
    tops = [name for name, score in priorities.scores if score == top]
    assert priorities.values.min() == 0, "scores are stated from the lowest candidate's"
    if isinstance(choice, NodeChoice):
        assert priorities.chosen == choice.node
        assert tops == [choice.node]
        if len(table) > 1:  # a lone candidate is its own lowest (kube-scheduler does not ask then)
            assert top in (1, MAX_PRIORITY), "10, or 1 when every other candidate ties with it"
    else:
        assert priorities.chosen is None
        assert top == 0
    assert [name for name, _ in priorities.scores] == list(reversed(table.names)), (
        "answered in the order asked"
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=50), st.data())
def test_the_extender_scale_keeps_the_cores_order_and_gives_10_to_the_winner_alone(
    totals: list[float], data: st.DataObject
) -> None:
    values = np.array(totals)
    winner = data.draw(st.sampled_from([int(i) for i in np.flatnonzero(values == values.max())]))
    scaled = to_extender_scale(values, winner)
    assert scaled[winner] == MAX_PRIORITY
    assert int((scaled == MAX_PRIORITY).sum()) == 1
    assert scaled.min() >= 0
    for a in range(len(values)):
        for b in range(len(values)):
            if values[a] > values[b]:
                assert scaled[a] >= scaled[b]


def test_when_every_candidate_ties_the_reply_names_the_winner_alone_and_kube_scheduler_picks_it() -> None:
    table = make_table(*(make_node(f"n{i:04d}") for i in range(300)))
    context = context_for(table, TaskShape(cpu_milli=1000, gpu_milli=1000, gpus=1))
    priorities = decide_priorities(
        table,
        make_pod(gpus=1),
        list(table.names),
        row_of=rows_of(table),
        weights=DEFAULT_WEIGHTS,
        context=context,
    )
    hosts, scores = priorities.above_zero()
    assert (hosts, scores.tolist()) == ((priorities.chosen,), [1])
    # kube-scheduler: its own plugins' total (alike nodes: equal) + score x weight 50 x (100 / 10),
    # a node left out of the reply counting 0. The winner leads by 500, as 10 against 9 did.
    listed = dict(zip(hosts, scores.tolist(), strict=True))
    totals = {name: 200 + listed.get(name, 0) * 50 * 10 for name in table.names}
    assert max(totals, key=lambda name: totals[name]) == priorities.chosen
    assert sorted(set(totals.values()))[-2:] == [200, 700]


def test_infeasible_candidates_score_0_and_unknown_names_are_listed() -> None:
    table = make_table(
        make_node("full", gpu_free_milli=(0,) * 8), make_node("free"), make_node("cpu", gpus=0)
    )
    context = context_for(table, TaskShape(cpu_milli=8000, gpu_milli=1000, gpus=1))
    priorities = decide_priorities(
        table,
        make_pod(gpus=1),
        ["full", "free", "cpu", "ghost"],
        row_of=rows_of(table),
        weights=DEFAULT_WEIGHTS,
        context=context,
    )
    assert priorities.scores == (("full", 0), ("free", 10), ("cpu", 0), ("ghost", 0))
    assert priorities.unknown == ("ghost",)


def test_kube_schedulers_plugins_make_up_whole_points_of_ours_only() -> None:
    # 1500 plugin points at weight 50 (500 per point): three points can be made up, a fourth not;
    # exactly three is a tie kube-scheduler may break for the other node, so it counts.
    assert reach_points(1500, 50) == 3
    assert reach_points(1499, 50) == 2
    assert reach_points(0, 50) == 0
    assert reach_points(1500, 1) == 150  # a light extender: every node stays a contender


def test_contenders_are_the_nodes_within_reach_of_the_top_scored_the_same() -> None:
    priorities = Priorities(
        hosts=("a", "b", "c", "d", "e"), values=np.array([7, 10, 6, 0, 9]), chosen="b", unknown=()
    )
    kept = priorities.contenders(3)
    assert kept.tolist() == [0, 1, 4]
    shortlist = priorities.keeping(kept)
    # The same differences, from the lowest of the shortlist: a 0 that kube-scheduler need not read.
    assert shortlist.scores == (("a", 0), ("b", 3), ("e", 2))
    assert shortlist.chosen == "b"
    assert priorities.contenders(10).tolist() == [0, 1, 2, 3, 4]
