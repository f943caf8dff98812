"""bench/extender.py's results: a run's counts, pooled runs, and the docs/benchmarks.md section
they make (the section's text, its tables, the extender's answer-time quantiles)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

SECTION = "## Scheduler extender"
VERBS = ("filter", "prioritize", "bind")
# The pods of a run, by name: each asks for the GPUs of its turn in the cycle, and 1 CPU and 1 GiB
# per GPU. "uniform": 1 GPU each, every empty node alike to both schedulers. "mixed": 1, 2, 4 and
# 8 GPUs in turn, as jobs of several sizes share a cluster (where scores tell nodes apart).
WORKLOADS = {"uniform": (1,), "mixed": (1, 2, 4, 8)}
WORKLOAD_TEXT = {
    "uniform": "*uniform*, 1 GPU, 1 CPU and 1 GiB each (every empty node alike)",
    "mixed": (
        "*mixed*, 1, 2, 4 and 8 GPUs in turn with 1 CPU and 1 GiB per GPU, as jobs of several sizes "
        "share a cluster"
    ),
}


Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), in order


@dataclass
class Run:
    """One batch, or several of one kind pooled (`pooled`): sums, so pooling is adding."""

    nodes: int
    workload: str
    extender: bool
    pods: int
    wall_seconds: float
    algorithm_seconds: float  # kube-scheduler's histogram sums and counts over the batch
    algorithms: float
    attempt_seconds: float
    attempts: float
    answers: dict[str, Buckets]  # verb -> the extender's answer-time buckets over the batch
    repeat: int = 0  # which round (pooled runs: 0)

    @property
    def algorithm_ms(self) -> float:  # mean per pod
        return 1000 * self.algorithm_seconds / max(self.algorithms, 1)

    @property
    def attempt_ms(self) -> float:
        return 1000 * self.attempt_seconds / max(self.attempts, 1)

    def latency(self, verb: str) -> tuple[float, float, int]:
        """The extender's p50 ms, p99 ms and requests for ``verb``."""
        counts = self.answers.get(verb) or []
        requests = int(counts[-1][1]) if counts else 0
        return 1000 * quantile(0.5, counts), 1000 * quantile(0.99, counts), requests


def pooled(runs: list[Run]) -> Run:
    """Runs of one kind (node count, workload, with or without the extender) as one."""
    first = runs[0]
    answers: dict[str, Buckets] = {}
    for run in runs:
        for verb, counts in run.answers.items():
            sums = answers.get(verb) or [(bound, 0.0) for bound, _ in counts]
            answers[verb] = [(bound, a + b) for (bound, a), (_, b) in zip(sums, counts, strict=True)]
    return Run(
        nodes=first.nodes,
        workload=first.workload,
        extender=first.extender,
        pods=sum(r.pods for r in runs),
        wall_seconds=sum(r.wall_seconds for r in runs),
        algorithm_seconds=sum(r.algorithm_seconds for r in runs),
        algorithms=sum(r.algorithms for r in runs),
        attempt_seconds=sum(r.attempt_seconds for r in runs),
        attempts=sum(r.attempts for r in runs),
        answers=answers,
    )


def quantile(q: float, counts: Buckets) -> float:
    """histogram_quantile over one histogram's buckets (linear within a bucket)."""
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in counts:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(
                count - lower_count, 1e-12
            )
        lower_bound, lower_count = bound, count
    return float("nan")


def render(
    runs: list[Run],
    node_bytes: int,
    *,
    rounds: int,
    node_lease_seconds: int,
    settle_seconds: float,
    own_cpu: bool = False,
) -> str:
    """The `## Scheduler extender` section of docs/benchmarks.md for ``runs``; ``settle_seconds``: how
    long every node had been Ready before a node count was measured; ``own_cpu``: the extender ran
    on a CPU of its own, everything else on the others."""
    by = {
        (n, w, e): pooled([r for r in runs if (r.nodes, r.workload, r.extender) == (n, w, e)])
        for n, w, e in {(r.nodes, r.workload, r.extender) for r in runs}
    }
    order = list(WORKLOADS)
    rows = sorted({(r.nodes, r.workload) for r in runs}, key=lambda row: (row[0], order.index(row[1])))
    cpus = os.cpu_count()
    lines = [
        SECTION,
        "",
        f"Measured by `bench/extender.py` (`make bench`) on {datetime.now(UTC):%Y-%m-%d}, on a machine with",
        f"{cpus} CPUs, against its own local control plane (Kubernetes v1.36.3, kwok v0.8.0) with fake",
        "8-GPU nodes, `percentageOfNodesToScore: 100`, and hack/extender/extenders.yaml",
        "(nodeCacheCapable: true, weight 50, bind through the extender). Each run starts from an empty",
        f"cluster, restarts kube-scheduler, and schedules the same {runs[0].pods} pods: "
        + "; ".join(WORKLOAD_TEXT[w] for w in WORKLOADS if any(r.workload == w for r in runs))
        + ". They are created by 16 threads at once, so kube-scheduler meets them in an order that",
        "differs from run to run. Each node count is measured only once kube-controller-manager has",
        "lifted the not-ready taint of every new node (a few a second: minutes at 5,000) and every node",
        f"has been Ready for {settle_seconds:.0f} s, so no node update streams through either scheduler "
        "while it is timed",
        "and every node is a candidate in both runs. "
        + (
            "The extender ran on one CPU alone (`--own-cpu`), the control plane, kwok and this script "
            "on the others,"
            if own_cpu
            else "The control plane, kwok, the extender and this script share the machine's CPUs,"
        ),
        "with whatever else ran on it: compare the two columns of a row,",
        "not rows of different days. kwok renews each node's Lease every",
        f"{node_lease_seconds // 4} s (a {node_lease_seconds} s Lease) instead of a kubelet's 10 s:",
        "the fake kubelets of 5,000 nodes renewing every 10 s are ~500 writes a second that the API",
        "server and etcd would serve on the CPUs the schedulers are measured on, where a real control",
        "plane serves them on machines of its own; both runs see the same.",
        f"Each row pools {rounds} rounds of the two runs, in the order alone, with, with, alone, ... so",
        "a drift of the machine's load over the minutes of a row weighs on both alike.",
        "",
        "Per-pod time is kube-scheduler's own mean: *algorithm* = filter + score (extender calls included),",
        "the time its queue waits per pod; *attempt* = algorithm + binding.",
        "",
        "| nodes | pods | algorithm ms/pod: alone | with extender | ratio | attempt ms/pod: alone"
        " | with extender | ratio | pods/s: alone | with extender |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += _comparison_rows(by, rows)
    lines += ["", "The algorithm ratio of each round alone: " + _round_ratios(runs, rows) + "."]
    lines += [
        "",
        "The extender's answer time per verb (its `modeljob_extender_request_seconds` histogram, from",
        "reading the request to the reply; bind includes the pods/binding call to the API server):",
        "",
        "| nodes | pods | verb | requests | p50 ms | p99 ms |",
        "| ---: | --- | --- | ---: | ---: | ---: |",
    ]
    lines += _latency_rows(by, rows)
    lines += [
        "",
        f"One Node object as the API server serves it here is {node_bytes:,} bytes: what each node",
        "would add to every filter and prioritize body with nodeCacheCapable: false.",
        "",
        "Reading the ratios: the extender costs kube-scheduler up to two HTTP round trips per GPU pod",
        "plus our filter and score. The extender runs with its default settings: its shortlist",
        "(docs/extender.md: the filter passes only the nodes kube-scheduler could still choose) is on,",
        "so where our scores tell nodes apart kube-scheduler scores a few of them. The runs are short",
        "and share the machine's CPUs with everything else on it: run the script more than once before",
        "reading a difference of a few tenths into the ratio.",
        "kube-scheduler also turns off its opportunistic batching for profiles with extenders",
        "(framework.go, computeBatchablePlugins); it would not apply to these pods anyway (several fit",
        "on one node).",
        "",
    ]
    return "\n".join(lines)


Row = tuple[int, str]  # node count, workload
Pooled = dict[tuple[int, str, bool], Run]


def _comparison_rows(by: Pooled, rows: list[Row]) -> list[str]:
    """Per row run both ways: kube-scheduler's per-pod times alone and with the extender."""
    lines = []
    for n, workload in rows:
        alone, with_ = by.get((n, workload, False)), by.get((n, workload, True))
        if alone is None or with_ is None:
            continue
        lines.append(
            f"| {n} | {workload} | {alone.algorithm_ms:.1f} | {with_.algorithm_ms:.1f} | "
            f"{with_.algorithm_ms / alone.algorithm_ms:.2f} | "
            f"{alone.attempt_ms:.1f} | {with_.attempt_ms:.1f} | "
            f"{with_.attempt_ms / alone.attempt_ms:.2f} | {alone.pods / alone.wall_seconds:.0f} | "
            f"{with_.pods / with_.wall_seconds:.0f} |"
        )
    return lines


def _round_ratios(runs: list[Run], rows: list[Row]) -> str:
    """Per row, with / alone of each round's two runs: how far the rounds agree."""
    parts = []
    for n, workload in rows:
        by_round = {(r.repeat, r.extender): r for r in runs if (r.nodes, r.workload) == (n, workload)}
        ratios = [
            f"{by_round[k, True].algorithm_ms / by_round[k, False].algorithm_ms:.2f}"
            for k in sorted({k for k, _ in by_round})
            if (k, True) in by_round and (k, False) in by_round
        ]
        parts.append(f"{n:,} nodes {workload} {', '.join(ratios)}")
    return "; ".join(parts)


def _latency_rows(by: Pooled, rows: list[Row]) -> list[str]:
    """Per row run with the extender: its answer time per verb."""
    lines = []
    for n, workload in rows:
        with_ = by.get((n, workload, True))
        if with_ is None:
            continue
        for verb in VERBS:
            p50, p99, requests = with_.latency(verb)
            lines.append(f"| {n} | {workload} | {verb} | {requests} | {p50:.2f} | {p99:.2f} |")
    return lines
