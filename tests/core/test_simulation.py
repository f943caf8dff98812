"""The trace replay: arrival order and tuning, the curves, and each published policy's rule."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from modeljob.core.fragmentation import TargetWorkload, TaskShape, compile_workload, learn_target_workload
from modeljob.core.scoring.ranking import NodeChoice, ScoringContext, choose_node
from modeljob.core.scoring.scorers.cpu_balance import learn_host_demand
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from modeljob.core.sim import baselines
from modeljob.core.sim.simulation import (
    CURVE_POINTS,
    ReplayPolicy,
    WeightedPlacer,
    arrival_order,
    discretise,
    prefixed_nodes,
    replay_trace,
)
from modeljob.core.sim.traces import ReplayState, TracePod, build_trace_table, trace_request
from tests.builders import make_trace_node, make_trace_pod


def pods(count: int, **fields) -> list[TracePod]:
    return [make_trace_pod(f"openb-pod-{i:04d}", **fields) for i in range(count)]


def state_of(nodes, workload_pods) -> ReplayState:
    table = build_trace_table(nodes)
    workload = learn_target_workload(p.shape for p in workload_pods)
    return ReplayState(table, compile_workload(workload, table.products))


# --- arrival order and tuning -----------------------------------------------------------


def test_arrivals_are_the_tasks_sorted_by_name_then_shuffled_by_the_seed() -> None:
    tasks = list(reversed(pods(50)))
    first = arrival_order(tasks, seed=42, tune_ratio=0, capacity_gpu_milli=1)
    assert sorted(p.name for p in first) == sorted(p.name for p in tasks)
    assert first == arrival_order(list(reversed(tasks)), seed=42, tune_ratio=0, capacity_gpu_milli=1)
    assert first != arrival_order(tasks, seed=43, tune_ratio=0, capacity_gpu_milli=1)


def test_tuning_tops_up_with_copies_until_the_target_gpu_demand() -> None:
    tasks = pods(10)  # 10 GPUs of demand
    order = arrival_order(tasks, seed=1, tune_ratio=1.3, capacity_gpu_milli=20_000)
    total = sum(p.total_gpu_milli for p in order)
    assert order[:10] == arrival_order(tasks, seed=1, tune_ratio=0, capacity_gpu_milli=20_000)
    assert 25_000 <= total <= 26_000  # stops at the first copy that would overshoot 26 GPUs


def test_tuning_below_the_demand_drops_random_tasks() -> None:
    order = arrival_order(pods(10), seed=1, tune_ratio=0.5, capacity_gpu_milli=10_000)
    assert sum(p.total_gpu_milli for p in order) == 5_000


def test_nodes_get_a_random_rank_prefix_fixed_by_the_seed() -> None:
    # The artifact renames node i (in name order) to "%04d-<name>" with a random permutation,
    # so "ties go to the smallest name" means a random node order, the same for every policy.
    nodes = [make_trace_node(f"openb-node-{i:04d}") for i in range(20)]
    renamed = prefixed_nodes(nodes, np.random.default_rng(7))
    assert [n.name.split("-", 1)[1] for n in renamed] == [n.name for n in nodes]
    assert sorted(int(n.name[:4]) for n in renamed) == list(range(20))
    assert renamed == prefixed_nodes(nodes, np.random.default_rng(7))
    assert renamed != prefixed_nodes(nodes, np.random.default_rng(8))


def test_cpu_only_copies_never_stop_the_top_up() -> None:
    tasks = [*pods(4), *pods(4, gpus=0, gpu_milli=0)]
    tasks = [make_trace_pod(f"p{i}", gpus=t.gpus, gpu_milli=t.gpu_milli) for i, t in enumerate(tasks)]
    order = arrival_order(tasks, seed=3, tune_ratio=2.0, capacity_gpu_milli=4_000)
    assert sum(p.total_gpu_milli for p in order) == 8_000


# --- the curves ---------------------------------------------------------------------------


def test_a_curve_point_is_the_mean_of_the_samples_whose_arrived_percent_rounds_to_it() -> None:
    capacity = 10  # GPUs: 100 milli = 1%
    arrived = np.array([0, 40, 60, 140, 160, 250, 350], dtype=np.float64)
    values = np.array([0, 40, 60, 100, 100, 200, 300], dtype=np.float64)
    curve = discretise(arrived, values, capacity_gpus=capacity, round_samples=True)
    assert len(curve) == CURVE_POINTS
    # arrived 0, 0.4 | 0.6, 1.4 | 1.6, 2.5 (half to even) | - | 3.5 (half to even)
    assert curve[0] == pytest.approx(0.2)
    assert curve[1] == pytest.approx(0.8)
    assert curve[2] == pytest.approx(1.5)
    assert curve[3] == pytest.approx(2.0)  # empty: the samples of buckets 2..4
    assert curve[4] == pytest.approx(3.0)
    assert curve[5] == pytest.approx(3.0)  # empty: borrows bucket 4
    assert curve[6] is None


def test_replay_counts_tasks_that_fit_nowhere_and_carries_on() -> None:
    nodes = [make_trace_node("n0", gpus=2, cpu_milli=64_000)]
    tasks = [
        make_trace_pod("a", gpus=2),
        make_trace_pod("b", gpus=8),  # larger than any node
        make_trace_pod("c", gpus=0, gpu_milli=0, cpu_milli=1000),
    ]
    result = replay_trace(nodes, tasks, policy=ReplayPolicy.FGD, seed=1, tune_ratio=0)
    assert result.pods_arrived == 3
    assert result.failed_pods == 1
    assert result.capacity_gpus == 2


@pytest.mark.parametrize("policy", list(ReplayPolicy), ids=lambda p: p.value)
def test_every_policy_fills_a_small_cluster_without_overcommitting(policy) -> None:
    nodes = [
        make_trace_node(f"n{i}", gpus=g, model=m)
        for i, (g, m) in enumerate([(8, "G2"), (2, "T4"), (4, "V100")])
    ]
    tasks = [
        make_trace_pod(f"p{i:03d}", gpus=g, gpu_milli=m, cpu_milli=c)
        for i, (g, m, c) in enumerate(
            [(1, 1000, 8000), (1, 500, 4000), (1, 300, 2000), (0, 0, 6000), (2, 1000, 16000)] * 4
        )
    ]
    result = replay_trace(nodes, tasks, policy=policy, seed=5)
    allocation = [v for v in result.allocation_percent_by_arrived_percent if v is not None]
    assert allocation
    assert max(allocation) <= 100.0
    assert all(later >= earlier - 1e-9 for earlier, later in itertools.pairwise(allocation))


# --- each published rule ------------------------------------------------------------------


def two_nodes(first_gpu_free, second_gpu_free, *, cpu=96_000):
    nodes = [
        make_trace_node("n-a", gpus=len(first_gpu_free)),
        make_trace_node("n-b", gpus=len(second_gpu_free)),
    ]
    state = state_of(nodes, pods(4))
    state.table.gpu_free_milli[0, : len(first_gpu_free)] = first_gpu_free
    state.table.gpu_free_milli[1, : len(second_gpu_free)] = second_gpu_free
    state.table.cpu_free_milli[:] = cpu
    return state


def choose(placer, state, pod) -> tuple[str, tuple[int, ...]]:
    rows = np.arange(len(state.table))
    row, devices = placer.choose(state, pod, rows)
    return state.table.names[row], devices


def test_dot_product_prefers_the_node_with_less_free_where_the_pod_asks() -> None:
    state = two_nodes((1000,) * 8, (0,) * 6 + (1000,) * 2)
    assert (
        choose(baselines.ScoringPlacer(baselines.dot_product_scores), state, make_trace_pod(gpus=1))[0]
        == "n-b"
    )


def test_best_fit_prefers_the_least_leftover_and_takes_the_tightest_device() -> None:
    state = two_nodes((1000, 1000, 1000, 1000), (600, 1000, 300, 1000))
    node, devices = choose(
        baselines.ScoringPlacer(baselines.best_fit_scores), state, make_trace_pod(gpu_milli=250)
    )
    assert (node, devices) == ("n-b", (2,))


@pytest.mark.parametrize(
    ("first", "second", "gpu_milli", "winner"),
    [
        ((0, 1000, 1000, 1000), (500, 1000, 1000, 1000), 500, "n-b"),
        ((0, 1000, 1000, 1000), (1000,) * 4, 1000, "n-a"),
        ((1000,) * 8, (1000, 1000), 1000, "n-b"),
    ],
    ids=["shared-device-before-fresh-device", "used-node-before-idle-node", "smaller-idle-node-first"],
)
def test_gpu_packing_fills_used_devices_then_used_nodes_then_small_idle_nodes(
    first, second, gpu_milli, winner
) -> None:
    state = two_nodes(first, second)
    pod = make_trace_pod(gpu_milli=gpu_milli)
    assert choose(baselines.ScoringPlacer(baselines.gpu_packing_scores), state, pod)[0] == winner


def test_gpu_clustering_keeps_tasks_of_a_kind_together() -> None:
    state = two_nodes((1000,) * 8, (1000,) * 8)
    state.place(make_trace_pod("share", gpu_milli=300), 1, (0,))
    state.place(make_trace_pod("whole"), 0, (0,))
    assert (
        choose(
            baselines.ScoringPlacer(baselines.gpu_clustering_scores), state, make_trace_pod(gpu_milli=200)
        )[0]
        == "n-b"
    )
    assert (
        choose(baselines.ScoringPlacer(baselines.gpu_clustering_scores), state, make_trace_pod())[0] == "n-a"
    )


def test_cpu_only_tasks_go_to_the_first_node_by_name_when_every_score_is_zero() -> None:
    state = two_nodes((1000,) * 8, (0,) * 8)
    cpu_task = make_trace_pod(gpus=0, gpu_milli=0)
    for scores in (baselines.gpu_packing_scores, baselines.gpu_clustering_scores):
        assert choose(baselines.ScoringPlacer(scores), state, cpu_task)[0] == "n-a"


def test_fgd_scores_are_truncated_so_near_equal_nodes_tie_to_the_smaller_name() -> None:
    state = two_nodes((1000,) * 8, (1000,) * 8)
    scores, _ = baselines.fgd_scores(state, make_trace_pod(), np.arange(2))
    assert scores.dtype.kind == "i"
    assert scores[0] == scores[1]
    assert choose(baselines.FgdPlacer(), state, make_trace_pod())[0] == "n-a"


def test_random_placement_is_reproducible_per_seed() -> None:
    def picks(seed: int) -> list[str]:
        state = two_nodes((1000,) * 8, (1000,) * 8)
        placer = baselines.RandomPlacer(rng=np.random.default_rng(seed))
        return [choose(placer, state, make_trace_pod(gpu_milli=100))[0] for _ in range(20)]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)


# --- the default policy in the replay ---------------------------------------------------------


def test_default_policy_in_the_replay_decides_exactly_as_the_operator_would() -> None:
    nodes = [
        make_trace_node(f"n{i}", gpus=g, cpu_milli=c)
        for i, (g, c) in enumerate([(8, 96_000), (2, 104_000), (4, 32_000)])
    ]
    tasks = [
        make_trace_pod(f"p{i}", gpu_milli=m, cpu_milli=c)
        for i, (m, c) in enumerate([(1000, 8000), (500, 4000), (250, 12000)] * 6)
    ]
    state = state_of(nodes, tasks)
    demand = learn_host_demand(trace_request(p) for p in tasks)
    placer = WeightedPlacer(weights=DEFAULT_WEIGHTS, host_demand=demand)
    context = ScoringContext(workload=state.workload, host_demand=demand)
    for pod in tasks:
        request = trace_request(pod)
        expected = choose_node(state.table, request, weights=DEFAULT_WEIGHTS, context=context)
        rows = np.flatnonzero(
            np.ones(len(state.table), dtype=bool) & (state.table.cpu_free_milli >= pod.cpu_milli)
        )
        rows = rows[(state.table.gpu_free_milli[rows] >= pod.gpu_milli).sum(axis=1) >= pod.gpus]
        if not isinstance(expected, NodeChoice):
            assert len(rows) == 0
            continue
        row, devices = placer.choose(state, pod, rows)
        assert (state.table.names[row], devices) == (expected.node, expected.devices)
        state.place(pod, row, devices)


def test_cached_fgd_scores_match_fresh_ones_on_a_slice_of_the_real_trace(openb_csv: Path) -> None:
    from modeljob.adapters.trace_files import read_trace_nodes, read_trace_pods

    nodes = read_trace_nodes(openb_csv / "openb_node_list_gpu_node.csv")[:60]
    tasks = read_trace_pods(openb_csv / "openb_pod_list_default.csv")[:400]
    checked = 0

    class CheckingFgd(baselines.FgdPlacer):
        def choose(self, state, pod, rows):
            nonlocal checked
            row, devices = super().choose(state, pod, rows)
            fresh = baselines.fgd_scores(state, pod, rows)[0]
            assert state.table.names[row] == state.table.names[int(rows[int(np.argmax(fresh))])]
            checked += 1
            return row, devices

    from modeljob.core.sim import simulation

    original = simulation.make_placer
    simulation.make_placer = lambda policy, **kw: CheckingFgd()  # type: ignore[assignment]
    try:
        replay_trace(nodes, tasks, policy=ReplayPolicy.FGD, seed=42, tune_ratio=0)
    finally:
        simulation.make_placer = original
    assert checked > 300


def test_cached_default_totals_are_bit_identical_to_fresh_ones_on_a_slice_of_the_real_trace(
    openb_csv: Path,
) -> None:
    # The replay caches each request's weighted total per node and recomputes only nodes that
    # changed: every decision must see exactly the totals a fresh scoring of all rows gives.
    from modeljob.adapters.trace_files import read_trace_nodes, read_trace_pods
    from modeljob.core.scoring.ranking import best_position, score_rows

    nodes = read_trace_nodes(openb_csv / "openb_node_list_gpu_node.csv")[:60]
    tasks = read_trace_pods(openb_csv / "openb_pod_list_cpu300.csv")[:600]
    checked = 0

    class CheckingPlacer(WeightedPlacer):
        def choose(self, state, pod, rows):
            nonlocal checked
            row, devices = super().choose(state, pod, rows)
            request = trace_request(pod)
            context = ScoringContext(
                workload=state.workload,
                host_demand=self.host_demand,
                fragmentation_before=state.fragmentation,
            )
            fresh = score_rows(state.table, rows, request, weights=self.weights, context=context)
            cached = self.cache[request]
            assert np.array_equal(cached.total[rows], fresh.total)
            assert row == int(rows[best_position(state.table, rows, fresh.total)])
            checked += 1
            return row, devices

    from modeljob.core.sim import simulation

    original = simulation.make_placer
    simulation.make_placer = lambda policy, **kw: CheckingPlacer(  # type: ignore[assignment]
        weights=kw["weights"], host_demand=kw["host_demand"], seed=kw["seed"]
    )
    try:
        replay_trace(nodes, tasks, policy=ReplayPolicy.DEFAULT, seed=42, tune_ratio=0)
    finally:
        simulation.make_placer = original
    assert checked > 200


def test_the_bench_cache_key_hashes_the_sources_that_decide_each_policy(
    tmp_path: Path, openb_csv: Path
) -> None:
    # bench/placement_quality.py must never render a result that older code or data produced.
    from bench import placement_quality

    default_sources = {p.name for p in placement_quality.sources(ReplayPolicy.DEFAULT)}
    fgd_sources = {p.name for p in placement_quality.sources(ReplayPolicy.FGD)}
    assert {"simulation.py", "baselines.py", "fragmentation.py", "traces.py"} <= fgd_sources
    assert {"cpu_balance.py", "weights.py", "best_fit.py", "gpu_fragmentation.py"} <= default_sources
    assert fgd_sources < default_sources
    assert "cpu_balance.py" not in fgd_sources  # tuning the default policy keeps the baselines' runs

    source = tmp_path / "source.py"
    source.write_text("A = 1\n")
    before = placement_quality.digest((source,))
    source.write_text("A = 2\n")
    placement_quality.digest.cache_clear()
    assert placement_quality.digest((source,)) != before

    keys = {
        placement_quality.cache_key(openb_csv.parent, "default", policy, 42)
        for policy in (ReplayPolicy.DEFAULT, ReplayPolicy.FGD)
    }
    assert len(keys) == 2


def test_fragmentation_at_the_start_is_the_cpu_only_share_of_the_target_workload() -> None:
    # openb README: at 0% arrived, fragmentation equals the CPU-only share of the target workload,
    # because for a CPU-only shape all idle GPU counts as a fragment.
    nodes = [make_trace_node(f"n{i}") for i in range(4)]
    tasks = [*pods(30), *[make_trace_pod(f"cpu-{i}", gpus=0, gpu_milli=0) for i in range(10)]]
    result = replay_trace(nodes, tasks, policy=ReplayPolicy.FGD, seed=1, tune_ratio=0)
    first = result.fragmentation_percent_by_arrived_percent[0]
    assert first is not None
    assert first == pytest.approx(25.0, abs=3.0)


def test_target_workload_shapes_follow_the_task_fields() -> None:
    assert make_trace_pod(gpus=0, gpu_milli=0).shape == TaskShape(cpu_milli=8000, gpu_milli=0, gpus=0)
    shape = make_trace_pod(gpu_milli=300, gpu_spec=["T4", "P100"]).shape
    assert shape == TaskShape(cpu_milli=8000, gpu_milli=300, gpus=1, products=("T4", "P100"))
    assert TargetWorkload(shapes=(shape,), weights=(1.0,)).shapes[0].products_label == "T4|P100"
