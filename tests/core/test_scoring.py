"""Node filtering and scoring: what is filtered out and why, each scorer's direction, the weighted choice."""

from __future__ import annotations

import numpy as np
import pytest

from modeljob.core.fragmentation import (
    TargetWorkload,
    TaskShape,
    compile_workload,
    fragmentation_milli,
    learn_target_workload,
)
from modeljob.core.scoring.filters import Rejection, filter_nodes
from modeljob.core.scoring.ranking import NodeChoice, NoFit, ScoringContext, choose_devices, choose_node
from modeljob.core.scoring.registry import registered_scorers
from modeljob.core.scoring.scorers.best_fit import score_best_fit
from modeljob.core.scoring.scorers.cost import score_cost
from modeljob.core.scoring.scorers.cpu_balance import (
    HostDemand,
    learn_host_demand,
    score_cpu_balance,
    stranded_gpus,
)
from modeljob.core.scoring.scorers.gpu_fragmentation import score_gpu_fragmentation
from modeljob.core.scoring.scorers.least_allocated import score_least_allocated
from modeljob.core.scoring.scorers.most_allocated import score_most_allocated
from modeljob.core.scoring.scorers.random_order import score_random
from modeljob.core.scoring.scorers.round_robin import score_round_robin
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from tests.builders import make_node, make_pod, make_table


def feasible_names(table, request) -> list[str]:
    result = filter_nodes(table, request)
    return [table.names[i] for i in np.flatnonzero(result.feasible)]


@pytest.mark.parametrize(
    ("node", "pod", "fits"),
    [
        (make_node(cpu=4), make_pod(cpu=8), False),
        (make_node(memory_gib=32), make_pod(memory_gib=64), False),
        (make_node(storage_gib=10), make_pod(storage_gib=20), False),
        (make_node(gpus=2), make_pod(gpus=4), False),
        (make_node(gpus=2), make_pod(gpus=2), True),
        (make_node(gpus=0), make_pod(gpus=1), False),
        (make_node(gpus=0), make_pod(gpus=0), True),
        (make_node(accelerator="amd.com/gpu"), make_pod(accelerator="nvidia.com/gpu"), False),
        (make_node(accelerator="amd.com/gpu"), make_pod(accelerator="amd.com/gpu"), True),
        (make_node(product="NVIDIA-L4"), make_pod(products=["NVIDIA-H100-80GB-HBM3"]), False),
        (make_node(product="NVIDIA-L4"), make_pod(products=["NVIDIA-A100", "NVIDIA-L4"]), True),
        (make_node(gpu_memory_gib=24), make_pod(min_gpu_memory_gib=40), False),
        (make_node(gpu_memory_gib=None), make_pod(min_gpu_memory_gib=40), False),
        (make_node(gpu_memory_gib=80), make_pod(min_gpu_memory_gib=40), True),
        (make_node(gpus=2, gpu_free_milli=(300, 1000)), make_pod(gpus=2), False),
        (make_node(gpus=2, gpu_free_milli=(300, 1000)), make_pod(gpu_milli=300), True),
        (make_node(gpus=2, gpu_free_milli=(200, 0)), make_pod(gpu_milli=300), False),
        (make_node(ready=False), make_pod(), False),
    ],
    ids=[
        "cpu-short",
        "memory-short",
        "storage-short",
        "too-few-gpus",
        "exactly-enough-gpus",
        "cpu-node-never-gets-gpu-pod",
        "cpu-pod-on-cpu-node",
        "other-accelerator",
        "same-accelerator",
        "product-not-allowed",
        "product-allowed",
        "device-memory-too-small",
        "device-memory-unknown",
        "device-memory-enough",
        "whole-gpus-need-idle-devices",
        "share-fits-partly-used-device",
        "share-fits-no-device",
        "not-ready",
    ],
)
def test_filter_admits_a_node_only_when_everything_fits(node, pod, fits) -> None:
    assert feasible_names(make_table(node), pod) == ([node.name] if fits else [])


def test_filter_reports_each_node_under_its_first_failing_check() -> None:
    table = make_table(
        make_node("a", gpus=0),
        make_node("b", cpu=2),
        make_node("c", gpus=1),
        make_node("d", ready=False),
        make_node("e"),
    )
    result = filter_nodes(table, make_pod(gpus=2, cpu=4))
    assert dict(result.rejected) == {
        Rejection.NOT_READY: 1,
        Rejection.NO_ACCELERATOR: 1,
        Rejection.CPU: 1,
        Rejection.GPUS: 1,
    }
    assert result.explain() == (
        "1 × node not ready; 1 × node has no such accelerator; 1 × not enough CPU; 1 × not enough free GPUs"
    )


def test_least_and_most_allocated_point_opposite_ways() -> None:
    table = make_table(
        make_node("busy", requested_cpu=80, gpu_free_milli=(0,) * 6 + (1000,) * 2), make_node("idle")
    )
    rows = np.arange(2)
    pod = make_pod()
    least = score_least_allocated(table, rows, pod)
    most = score_most_allocated(table, rows, pod)
    assert least[1] > least[0]
    assert most[0] > most[1]
    np.testing.assert_allclose(least + most, 1.0)
    assert ((most >= 0) & (most <= 1)).all()


def test_cost_prefers_cheaper_nodes_and_never_rewards_an_unknown_price() -> None:
    table = make_table(
        make_node("cheap", price_per_hour=2.0),
        make_node("dear", price_per_hour=10.0),
        make_node("mid", price_per_hour=6.0),
        make_node("unpriced"),
    )
    np.testing.assert_allclose(score_cost(table, np.arange(4)), [1.0, 0.0, 0.5, 0.0])


def test_round_robin_continues_after_the_last_chosen_node_and_wraps() -> None:
    table = make_table(*(make_node(name) for name in ("n1", "n2", "n3", "n4")))
    scores = score_round_robin(table, np.arange(4), last_chosen="n2")
    assert [table.names[i] for i in np.argsort(-scores)] == ["n3", "n4", "n1", "n2"]


def test_random_is_reproducible_per_seed_and_independent_of_other_nodes() -> None:
    table = make_table(*(make_node(f"n{i}") for i in range(50)))
    rows = np.arange(50)
    first = score_random(table, rows, seed=7)
    np.testing.assert_array_equal(first, score_random(table, rows, seed=7))
    assert not np.array_equal(first, score_random(table, rows, seed=8))
    np.testing.assert_array_equal(first[10:20], score_random(table, rows[10:20], seed=7))
    assert ((first >= 0) & (first < 1)).all()


@pytest.mark.parametrize(
    ("free", "gpu_milli", "gpus", "devices"),
    [
        ((1000, 300, 500, 1000), 250, 1, (1,)),
        ((1000, 300, 300, 1000), 250, 1, (1,)),
        ((1000, 200, 500, 1000), 1000, 2, (0, 3)),
        ((100, 200), 500, 1, ()),
    ],
    ids=["share-to-fullest-fitting", "tie-to-lowest-index", "whole-to-idle-lowest", "nothing-fits"],
)
def test_device_choice_is_best_fit(free, gpu_milli, gpus, devices) -> None:
    assert choose_devices(np.array(free), gpu_milli, gpus) == devices


def test_learned_target_workload_keeps_the_popular_shapes_covering_the_threshold() -> None:
    common = TaskShape(cpu_milli=4000, gpu_milli=1000, gpus=1)
    share = TaskShape(cpu_milli=2000, gpu_milli=500, gpus=1)
    rare = TaskShape(cpu_milli=8000, gpu_milli=0, gpus=0)
    workload = learn_target_workload([common] * 70 + [share] * 26 + [rare] * 4, coverage=0.95)
    assert workload.shapes == (common, share)
    np.testing.assert_allclose(workload.weights, [70 / 96, 26 / 96])


def test_equally_popular_shapes_are_cut_larger_first() -> None:
    small = TaskShape(cpu_milli=1000, gpu_milli=1000, gpus=1)
    large = TaskShape(cpu_milli=9000, gpu_milli=1000, gpus=1)
    assert learn_target_workload([small, large], coverage=0.5).shapes == (large,)


@pytest.mark.parametrize(
    ("cpu_free", "gpu_free", "expected"),
    [
        (8000, (1000, 1000), 0.0),
        (8000, (400, 1000), 400.0),
        (1000, (1000, 1000), 2000.0),
        (8000, (400, 300), 700.0),
    ],
    ids=["fits-nothing-stranded", "small-leftover-stranded", "cpu-short-strands-all", "no-device-fits"],
)
def test_fragmentation_counts_idle_gpu_the_target_shapes_cannot_use(cpu_free, gpu_free, expected) -> None:
    workload = compile_workload(
        TargetWorkload(shapes=(TaskShape(cpu_milli=4000, gpu_milli=500, gpus=1),), weights=(1.0,)), ()
    )
    value = fragmentation_milli(np.array([cpu_free]), np.array([gpu_free]), np.array([-1]), workload)
    assert value[0] == pytest.approx(expected)


def test_a_cpu_only_shape_counts_all_idle_gpu_as_fragment() -> None:
    workload = compile_workload(TargetWorkload(shapes=(TaskShape(4000, 0, 0),), weights=(1.0,)), ())
    value = fragmentation_milli(np.array([96000]), np.array([[1000, 500]]), np.array([-1]), workload)
    assert value[0] == pytest.approx(1500.0)


def test_gpu_fragmentation_sends_a_share_to_the_device_that_leaves_a_usable_remainder() -> None:
    # Half-GPU tasks are expected. A 600 share fills the device with 600 free exactly; on the
    # idle device it would leave 400 there, which no half-GPU task can use.
    table = make_table(make_node("n", gpus=2, gpu_free_milli=(600, 1000)))
    workload = compile_workload(
        TargetWorkload(shapes=(TaskShape(cpu_milli=1000, gpu_milli=500, gpus=1),), weights=(1.0,)),
        table.products,
    )
    result = score_gpu_fragmentation(table, np.arange(1), make_pod(gpu_milli=600, cpu=1), workload=workload)
    assert result.devices[0] == 0


def test_gpu_fragmentation_prefers_the_node_whose_fragmentation_grows_least() -> None:
    # Whole-GPU tasks are expected: half of an idle device would be stranded, while the half
    # left on a partly used device is stranded already and gets used up.
    table = make_table(
        make_node("a-fresh", gpus=2),
        make_node("b-partly-used", gpus=2, gpu_free_milli=(500, 1000)),
    )
    workload = compile_workload(
        TargetWorkload(shapes=(TaskShape(cpu_milli=1000, gpu_milli=1000, gpus=1),), weights=(1.0,)),
        table.products,
    )
    choice = choose_node(
        table,
        make_pod(gpu_milli=500, cpu=1),
        weights=ScoringWeights(gpu_fragmentation=1.0),
        context=ScoringContext(workload=workload),
    )
    assert isinstance(choice, NodeChoice)
    assert (choice.node, choice.devices) == ("b-partly-used", (0,))


def test_ties_break_by_node_name_whatever_the_input_order() -> None:
    nodes = [make_node(name) for name in ("node-c", "node-a", "node-b")]
    from modeljob.core.nodes import build_node_table

    table = build_node_table(nodes)  # deliberately not sorted
    choice = choose_node(
        table, make_pod(), weights=ScoringWeights(least_allocated=1), context=ScoringContext()
    )
    assert isinstance(choice, NodeChoice)
    assert choice.node == "node-a"
    assert "tie broken by node name" in choice.reason


def test_choice_names_the_scorer_that_decided_and_what_was_filtered() -> None:
    table = make_table(
        make_node("cheap", price_per_hour=1.0),
        make_node("dear", price_per_hour=9.0),
        make_node("small", gpus=1),
    )
    choice = choose_node(table, make_pod(gpus=2), weights=ScoringWeights(cost=1.0), context=ScoringContext())
    assert isinstance(choice, NodeChoice)
    assert choice.node == "cheap"
    assert "cost decided" in choice.reason
    assert "1 × not enough free GPUs" in choice.reason


def test_no_fit_says_why_every_node_was_filtered() -> None:
    table = make_table(make_node("a", gpus=0), make_node("b", gpus=2))
    result = choose_node(table, make_pod(gpus=4), weights=DEFAULT_WEIGHTS, context=ScoringContext())
    assert isinstance(result, NoFit)
    assert result.reason == "no node fits: 1 × node has no such accelerator; 1 × not enough free GPUs"


def test_gpu_fragmentation_without_a_target_workload_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="target workload"):
        choose_node(make_table(make_node()), make_pod(), weights=DEFAULT_WEIGHTS, context=ScoringContext())


@pytest.mark.parametrize(
    "weights",
    [
        {},
        {"cost": -1.0},
        {"cost": float("nan")},
        {"random": float("inf")},
    ],
    ids=["all-zero", "negative", "nan", "infinite"],
)
def test_weights_must_be_finite_non_negative_and_not_all_zero(weights) -> None:
    with pytest.raises(ValueError, match="weight"):
        ScoringWeights(**weights)


def test_only_weighted_scorers_are_active() -> None:
    active = ScoringWeights(cost=2.0, random=0.5).active()
    assert [(scorer.name, weight) for scorer, weight in active] == [("cost", 2.0), ("random", 0.5)]


def test_an_unknown_scorer_weight_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown scorer 'tea_leaves'; known: least_allocated, "):
        ScoringWeights(tea_leaves=1.0)


def test_the_registry_lists_every_scorer_once_in_the_order_users_have_always_seen() -> None:
    assert [scorer.name for scorer in registered_scorers()] == [
        "least-allocated",
        "most-allocated",
        "best-fit",
        "gpu-fragmentation",
        "cpu-balance",
        "cost",
        "round-robin",
        "random",
        "template-preferences",
    ]


def test_a_scorer_is_weighed_by_its_setting_name() -> None:
    assert DEFAULT_WEIGHTS.cpu_balance == 3.0
    assert DEFAULT_WEIGHTS.best_fit == 0.0
    assert DEFAULT_WEIGHTS.replaced(best_fit=0.5).best_fit == 0.5
    with pytest.raises(AttributeError):
        _ = DEFAULT_WEIGHTS.tea_leaves


def test_default_weights_cost_a_stranded_gpu_about_what_a_fragmented_one_costs() -> None:
    active = {scorer.name: weight for scorer, weight in DEFAULT_WEIGHTS.active()}
    # template-preferences abstains for a template that prefers nothing: packing is these two.
    assert set(active) == {"gpu-fragmentation", "cpu-balance", "template-preferences"}
    # Per GPU on an 8-GPU cluster: fragmentation's score moves 0.25 at its steepest (sigmoid
    # slope), CPU balance's 1/16. Weighted, the two stay within a factor of two of each other.
    fragmented = active["gpu-fragmentation"] * 0.25
    stranded = active["cpu-balance"] / (2 * 8)
    assert 0.5 < stranded / fragmented < 2


def test_best_fit_prefers_the_smallest_absolute_leftover() -> None:
    # Relative to its size the big node ends fuller; in absolute terms the small one leaves less.
    table = make_table(
        make_node("big", gpus=8, cpu=96, gpu_free_milli=(0,) * 5 + (1000,) * 3),
        make_node("small", gpus=2, cpu=16),
    )
    scores = score_best_fit(table, np.arange(2), make_pod(cpu=8))
    assert scores[1] > scores[0]
    assert ((scores >= 0) & (scores <= 1)).all()


def test_host_demand_is_cpu_and_memory_per_requested_gpu() -> None:
    demand = learn_host_demand(
        [
            make_pod(gpus=2, cpu=16, memory_gib=100),
            make_pod(gpu_milli=500, cpu=4, memory_gib=50),
            make_pod(gpus=0),
        ]
    )
    assert demand is not None
    assert demand.cpu_milli_per_gpu == pytest.approx(20_000 / 2.5)
    assert demand.memory_bytes_per_gpu == pytest.approx(150 * 2**30 / 2.5)
    assert learn_host_demand([make_pod(gpus=0)]) is None


@pytest.mark.parametrize(
    ("cpu_free", "stranded"),
    [(64, 0.0), (32, 2.0), (16, 3.0), (0, 4.0)],
    ids=["cpu-for-every-idle-gpu", "cpu-for-two", "cpu-for-one", "no-cpu-left"],
)
def test_stranded_gpus_are_the_idle_ones_the_free_cpu_cannot_feed(cpu_free, stranded) -> None:
    demand = HostDemand(cpu_milli_per_gpu=16_000, memory_bytes_per_gpu=0)
    result = stranded_gpus(np.array([4000.0]), np.array([cpu_free * 1000.0]), np.array([0.0]), demand=demand)
    assert result[0] == pytest.approx(stranded)


@pytest.mark.parametrize(
    ("node", "pod", "change"),
    [
        (make_node("busy", gpus=4, cpu=100, gpu_free_milli=(0,) * 4), make_pod(gpus=0, cpu=50), 0.0),
        (make_node("idle", gpus=4, cpu=64), make_pod(gpus=0, cpu=32), 2.0),
        (make_node("starved", gpus=4, cpu=20, requested_cpu=12), make_pod(gpus=0, cpu=8), 0.5),
        (make_node("idle", gpus=4, cpu=40), make_pod(gpus=1, cpu=16), 0.0),
        (make_node("starved", gpus=4, cpu=40, requested_cpu=24), make_pod(gpus=1, cpu=4), -0.75),
    ],
    ids=[
        "cpu-beside-busy-gpus-is-free",
        "cpu-that-idle-gpus-need-costs",
        "more-of-a-starved-node-costs-less",
        "a-balanced-gpu-task-changes-nothing",
        "using-a-stranded-gpu-gains",
    ],
)
def test_cpu_balance_scores_the_change_in_stranded_gpus(node, pod, change) -> None:
    demand = HostDemand(cpu_milli_per_gpu=16_000, memory_bytes_per_gpu=0)
    score = score_cpu_balance(make_table(node), np.arange(1), pod, demand=demand)
    assert score[0] == pytest.approx(0.5 - change / (2 * 4))


def test_cpu_balance_keeps_cpu_beside_idle_gpus_when_fragmentation_ties() -> None:
    # A CPU-only task leaves either node enough CPU for one more 8-core GPU task, so fragmentation
    # ties; balance takes the CPU from the node whose GPUs are all busy, not from the one whose
    # eight idle GPUs would be left with 10 cores.
    table = make_table(
        make_node("a-idle-gpus", gpus=8, cpu=96, requested_cpu=56),
        make_node("b-busy-gpus", gpus=8, cpu=96, requested_cpu=56, gpu_free_milli=(0,) * 8),
    )
    workload = compile_workload(
        TargetWorkload(shapes=(TaskShape(8000, 1000, 1),), weights=(1.0,)), table.products
    )
    context = ScoringContext(
        workload=workload, host_demand=HostDemand(cpu_milli_per_gpu=8000, memory_bytes_per_gpu=0)
    )
    choice = choose_node(table, make_pod(gpus=0, cpu=30), weights=DEFAULT_WEIGHTS, context=context)
    assert isinstance(choice, NodeChoice)
    assert choice.node == "b-busy-gpus"
    assert "cpu-balance decided" in choice.reason


def test_default_policy_will_not_strand_gpus_for_a_better_fragmentation_score() -> None:
    # Half a GPU, 24 cores. On "a" it fills a half-used device (fragmentation likes that, by 25
    # points) but leaves 8 cores for 3 idle GPUs that need 8 each: 2 of them stranded. On "b" it
    # splits a whole device and strands nothing. Fragmentation alone picks "a"; the default picks
    # "b", because a stranded GPU is as lost as a fragmented one.
    table = make_table(
        make_node("a", gpus=4, cpu=32, gpu_free_milli=(500, 1000, 1000, 1000)),
        make_node("b", gpus=2, cpu=64),
    )
    workload = compile_workload(
        TargetWorkload(shapes=(TaskShape(8000, 1000, 1),), weights=(1.0,)), table.products
    )
    context = ScoringContext(
        workload=workload, host_demand=HostDemand(cpu_milli_per_gpu=8000, memory_bytes_per_gpu=0)
    )
    pod = make_pod(gpu_milli=500, cpu=24)
    fragmentation_only = choose_node(table, pod, weights=ScoringWeights(gpu_fragmentation=1), context=context)
    assert isinstance(fragmentation_only, NodeChoice)
    assert fragmentation_only.node == "a"
    choice = choose_node(table, pod, weights=DEFAULT_WEIGHTS, context=context)
    assert isinstance(choice, NodeChoice)
    assert choice.node == "b"
    assert "cpu-balance decided" in choice.reason


def test_cpu_balance_is_neutral_without_an_expected_host_demand() -> None:
    table = make_table(make_node("n"))
    workload = compile_workload(TargetWorkload(shapes=(), weights=()), table.products)
    choice = choose_node(
        table, make_pod(), weights=ScoringWeights(cpu_balance=1.0), context=ScoringContext(workload=workload)
    )
    assert isinstance(choice, NodeChoice)
    assert choice.score == 1.0  # no expectation: every node scores the same
