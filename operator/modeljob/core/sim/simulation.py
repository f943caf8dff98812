"""Replay the openb trace against a cluster, one task at a time, the way the FGD artifact does.

The steps (openb README, "How the FGD simulator replays the trace"): sort tasks by name, shuffle
them with the seed, then append copies drawn uniformly with replacement (same random stream)
until the arrived GPU request reaches ``tune_ratio`` × cluster GPU capacity; schedule one task at
a time, skipping (and counting) the ones that fit nowhere. One step the README leaves out: the
artifact prefixes every node name with a random rank from the same stream (``prefixed_nodes``),
so its smallest-name tie-break is a random node order fixed per seed. After each task record the arrived
and allocated GPU and the cluster's fragmentation; the curves are indexed by arrived % of GPU
capacity (0..130), each point the mean of the samples whose arrived % rounds to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from modeljob.core.fragmentation import compile_workload, learn_target_workload
from modeljob.core.nodes import FloatArray, IntArray, PodRequest
from modeljob.core.scoring.filters import feasible_nodes
from modeljob.core.scoring.ranking import ScoringContext, best_position, devices_for, score_rows
from modeljob.core.scoring.scorers.cpu_balance import HostDemand, learn_host_demand
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.sim import baselines
from modeljob.core.sim.traces import ReplayState, TraceNode, TracePod, build_trace_table, trace_request

DEFAULT_TUNE_RATIO = 1.3
DEFAULT_SEED = 42
CURVE_POINTS = 131  # arrived 0%..130% of GPU capacity


class ReplayPolicy(StrEnum):
    RANDOM = "random"
    DOTPROD = "dotprod"
    BEST_FIT = "best-fit"
    GPU_PACKING = "gpu-packing"
    GPU_CLUSTERING = "gpu-clustering"
    FGD = "fgd"
    DEFAULT = "default"


# The published baselines' names in reference_results/ (directory names of the artifact).
PUBLISHED_NAMES = {
    ReplayPolicy.RANDOM: "01-Random",
    ReplayPolicy.DOTPROD: "02-DotProd",
    ReplayPolicy.GPU_CLUSTERING: "03-GpuClustering",
    ReplayPolicy.GPU_PACKING: "04-GpuPacking",
    ReplayPolicy.BEST_FIT: "05-BestFit",
    ReplayPolicy.FGD: "06-FGD",
}


@dataclass(frozen=True, slots=True)
class ReplayResult:
    policy: ReplayPolicy
    seed: int
    tune_ratio: float
    capacity_gpus: int
    pods_arrived: int
    failed_pods: int
    allocation_percent_by_arrived_percent: tuple[float | None, ...]
    fragmentation_percent_by_arrived_percent: tuple[float | None, ...]

    def allocation_at(self, arrived_percent: int) -> float | None:
        return self.allocation_percent_by_arrived_percent[arrived_percent]


def arrival_order(
    pods: Sequence[TracePod], *, seed: int, tune_ratio: float, capacity_gpu_milli: int
) -> list[TracePod]:
    """The tasks in the order the replay tries them: shuffled, then topped up (or cut) to the ratio."""
    return _arrivals(
        pods, np.random.default_rng(seed), tune_ratio=tune_ratio, capacity_gpu_milli=capacity_gpu_milli
    )


def _arrivals(
    pods: Sequence[TracePod], rng: np.random.Generator, *, tune_ratio: float, capacity_gpu_milli: int
) -> list[TracePod]:
    by_name = sorted(pods, key=lambda p: p.name)
    order = [by_name[i] for i in rng.permutation(len(by_name))]
    if tune_ratio <= 0 or not by_name:
        return order
    target = tune_ratio * capacity_gpu_milli
    total = sum(p.total_gpu_milli for p in by_name)
    if total < target:
        # As the artifact: stop at the first draw whose per-device share would overshoot.
        while True:
            pod = by_name[int(rng.integers(len(by_name)))]
            if total + (pod.gpu_milli if pod.gpus else 0) > target:
                break
            total += pod.total_gpu_milli
            order.append(pod)
    else:
        while total > target and order:
            total -= order.pop(int(rng.integers(len(order)))).total_gpu_milli
    return order


def prefixed_nodes(nodes: Sequence[TraceNode], rng: np.random.Generator) -> list[TraceNode]:
    """The nodes as the artifact creates them: sorted by name, then each renamed ``NNNN-<name>``
    with NNNN a random permutation drawn after the arrivals (simulator.go,
    syncClusterResourceList). The smallest-name tie-break therefore follows a random order
    that is fixed for the seed, not the trace's own node numbering."""
    by_name = sorted(nodes, key=lambda n: n.name)
    ranks = rng.permutation(len(by_name))
    return [
        dataclasses.replace(node, name=f"{int(rank):04d}-{node.name}")
        for node, rank in zip(by_name, ranks, strict=True)
    ]


@dataclass
class _CachedScores:
    total: FloatArray  # the weighted total per table row, valid where stamp == the row's version
    devices: IntArray  # gpu-fragmentation's device for a GPU share; -1 = best fit
    stamp: IntArray


@dataclass
class WeightedPlacer:
    """The product's own policy in the replay: the core scorers, weighted as the operator weighs them.

    Same decision as ``scoring.ranking.choose_node``; the only difference is speed. When every
    active scorer is row-local, a row's weighted total for a request changes only when the row
    does, so totals are cached per request (a trace has about 150 distinct ones) and recomputed
    only for rows whose version moved. The arithmetic is element-wise, so a cached total is
    bit-for-bit the total a fresh computation over all rows gives.
    """

    weights: ScoringWeights
    host_demand: HostDemand | None = None
    seed: int = DEFAULT_SEED
    cache: dict[PodRequest, _CachedScores] = field(default_factory=dict)
    last_chosen: str | None = None

    def choose(self, state: ReplayState, pod: TracePod, rows: IntArray) -> tuple[int, tuple[int, ...]]:
        request = state.request_of(pod)
        table = state.table
        context = ScoringContext(
            workload=state.workload,
            host_demand=self.host_demand,
            fragmentation_before=state.fragmentation,
            seed=self.seed,
            last_chosen=self.last_chosen,
        )

        def fresh(part: IntArray) -> tuple[FloatArray, IntArray]:
            scores = score_rows(table, part, request, weights=self.weights, context=context)
            return scores.total, scores.devices

        if all(scorer.row_local for scorer, _ in self.weights.active()):
            entry = self.cache.get(request)
            if entry is None:
                size = len(table)
                entry = self.cache[request] = _CachedScores(
                    total=np.zeros(size, dtype=np.float64),
                    devices=np.full(size, -1, dtype=np.int64),
                    stamp=np.full(size, -1, dtype=np.int64),
                )
            stale = rows[entry.stamp[rows] != state.version[rows]]
            if len(stale):
                entry.total[stale], entry.devices[stale] = fresh(stale)
                entry.stamp[stale] = state.version[stale]
            total, devices = entry.total[rows], entry.devices[rows]
        else:
            total, devices = fresh(rows)
        position = best_position(table, rows, total)
        row = int(rows[position])
        self.last_chosen = table.names[row]
        return row, devices_for(table, row, request, int(devices[position]))


def make_placer(
    policy: ReplayPolicy,
    *,
    seed: int,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    host_demand: HostDemand | None = None,
) -> baselines.Placer:
    if policy is ReplayPolicy.RANDOM:
        # A stream apart from the arrival order's, so changing the policy never changes the arrivals.
        return baselines.RandomPlacer(rng=np.random.default_rng([seed, 1]))
    if policy is ReplayPolicy.FGD:
        return baselines.FgdPlacer()
    if policy is ReplayPolicy.DEFAULT:
        return WeightedPlacer(weights=weights, host_demand=host_demand, seed=seed)
    scores = {
        ReplayPolicy.DOTPROD: baselines.dot_product_scores,
        ReplayPolicy.BEST_FIT: baselines.best_fit_scores,
        ReplayPolicy.GPU_PACKING: baselines.gpu_packing_scores,
        ReplayPolicy.GPU_CLUSTERING: baselines.gpu_clustering_scores,
    }[policy]
    return baselines.ScoringPlacer(scores=scores)


def discretise(
    arrived_milli: FloatArray, values_milli: FloatArray, *, capacity_gpus: int, round_samples: bool
) -> tuple[float | None, ...]:
    """Mean of ``values`` (as % of GPU capacity) per whole arrived %, as the artifact's analysis does.

    Percentages round half to even (the allocation samples to 2 decimals first, when
    ``round_samples``); an empty bucket borrows its neighbours (i-1..i+1); a bucket with no
    sample near it is None.
    """
    arrived = np.round(arrived_milli / capacity_gpus / 10)
    values = values_milli / capacity_gpus / 10
    if round_samples:
        values = np.round(values, 2)
    curve: list[float | None] = []
    for percent in range(CURVE_POINTS):
        bucket = values[arrived == percent]
        if bucket.size == 0:
            bucket = values[(arrived >= percent - 1) & (arrived <= percent + 1)]
        curve.append(round(float(bucket.mean()), 2) if bucket.size else None)
    return tuple(curve)


def replay_trace(
    nodes: Sequence[TraceNode],
    pods: Sequence[TracePod],
    *,
    policy: ReplayPolicy,
    seed: int = DEFAULT_SEED,
    tune_ratio: float = DEFAULT_TUNE_RATIO,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
) -> ReplayResult:
    """Replay ``pods`` on ``nodes`` under ``policy``; deterministic for a given seed.

    ``weights`` are the scorer weights of the ``default`` policy (the operator's setting).
    """
    # One random stream, used in the artifact's order: shuffle, top-up, node name prefixes.
    rng = np.random.default_rng(seed)
    capacity_milli = sum(node.gpus for node in nodes) * 1000
    order = _arrivals(pods, rng, tune_ratio=tune_ratio, capacity_gpu_milli=capacity_milli)
    table = build_trace_table(prefixed_nodes(nodes, rng))
    capacity_gpus = int(table.gpu_count.sum())
    workload = learn_target_workload(p.shape for p in pods)
    state = ReplayState(table, compile_workload(workload, table.products))
    # The default policy learns what to expect from the trace's own tasks, as FGD does.
    host_demand = learn_host_demand(trace_request(p) for p in pods)
    placer = make_placer(policy, seed=seed, weights=weights, host_demand=host_demand)

    arrived = np.zeros(len(order) + 1, dtype=np.float64)
    allocated = np.zeros(len(order) + 1, dtype=np.float64)
    fragmented = np.zeros(len(order) + 1, dtype=np.float64)
    fragmented[0] = state.fragmentation.sum()
    arrived_milli = 0
    failed = 0
    for step, pod in enumerate(order, start=1):
        arrived_milli += pod.total_gpu_milli
        rows = np.flatnonzero(feasible_nodes(table, state.request_of(pod)))
        if len(rows):
            row, devices = placer.choose(state, pod, rows)
            state.place(pod, row, devices)
        else:
            failed += 1
        arrived[step] = arrived_milli
        allocated[step] = state.allocated_gpu_milli
        fragmented[step] = state.fragmentation.sum()
    return ReplayResult(
        policy=policy,
        seed=seed,
        tune_ratio=tune_ratio,
        capacity_gpus=capacity_gpus,
        pods_arrived=len(order),
        failed_pods=failed,
        allocation_percent_by_arrived_percent=discretise(
            arrived, allocated, capacity_gpus=capacity_gpus, round_samples=True
        ),
        fragmentation_percent_by_arrived_percent=discretise(
            arrived, fragmented, capacity_gpus=capacity_gpus, round_samples=False
        ),
    )
