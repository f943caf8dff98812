"""Deep-queue benchmark: scheduling-cycle p50/p99 and memory with 10,000 queued ModelJobs on 5,000
nodes, in process (the core cycle alone, no cluster). Rewrites `## Deep queue` in docs/benchmarks.md.

    python bench/deep_queue.py [--nodes 5000] [--jobs 10000] [--cycles 100] [--churn 5] [--seed 7]
                               [--no-write]

The cluster is openb-like: 8-GPU nodes of five GPU models (and a few CPU nodes), most of their
devices already taken by running pods, so the queue stays deep: few of the queued jobs fit. The
jobs are ModelJob manifests of mixed shapes (1B to 70B parameters, 1 to 8 replicas, gangs and
not, some with a GPU count of their own), read by the same adapter as the operator's
(adapters/kube_jobs.py), so they are sized, ordered and planned as the operator would.

Each cycle is `run_cycle`, the function the operator's scheduling loop calls, with one
CycleMemory kept across cycles as the loop keeps it; its placements are fed back (the jobs marked
Running, their pods bound where placed), as the loop's binding would. Two phases:

- the drain: the cluster as it is, cycle after cycle until one places nothing. Its first cycle
  (nothing remembered yet, and it places what fits) is reported alone, with the time until every
  fitting job is placed;
- the live queue: ``--cycles`` cycles with work coming and going between them, as in a live
  cluster: before each, ``--churn`` running units of work finish (a pod of the other work, or a
  ModelJob with all its pods, deleted once done) and as many new ModelJobs arrive, so the queue
  stays deep, some room frees up and some jobs are placed each cycle. The default, 5 a cycle,
  is what about 15,000 running pods of a mean run under an hour give at a cycle a second.
  p50/p99/max are over these cycles (p99 by nearest rank: over 100 cycles, the second largest).

Memory: the process's peak RSS and the cycle's own peak allocation (tracemalloc, on one extra
cycle). The collector runs as in the operator: after each cycle, and outside its time, the young
generations are collected and what is left frozen, the whole heap collected once every ten
minutes (adapters/heap.py).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]  # modeljob, and tests.operator_builders

from report import write_section  # noqa: E402

from modeljob.adapters import kube_jobs, kube_nodes, node_catalog  # noqa: E402
from modeljob.adapters.heap import LongLivedHeap  # noqa: E402
from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase  # noqa: E402
from modeljob.core.job_state import JobFacts, JobPhase  # noqa: E402
from modeljob.core.resources import GIB, TIB, Resources  # noqa: E402
from modeljob.core.scheduling_cycle import (  # noqa: E402
    CycleMemory,
    CycleResult,
    CycleSettings,
    SizingCache,
    run_cycle,
)
from modeljob.core.steps import Place  # noqa: E402
from tests.operator_builders import bound  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GPU = "nvidia.com/gpu"
# openb-like: its disclosed 8-GPU models (and G2, its most common undisclosed one), by share.
GPU_MIX = (("G2", 0.40), ("V100M32", 0.20), ("V100M16", 0.15), ("T4", 0.10), ("A10", 0.10))
CPU_NODE_SHARE = 0.05
PARAMETERS = ("1B", "3B", "7B", "8B", "13B", "34B", "70B")
REPLICAS = (1, 1, 1, 2, 2, 4, 4, 8)
GPU_COUNTS = (None, None, None, 1, 2, 4, 8)


def log(message: str) -> None:
    print(f"[deep-queue {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def build_nodes(count: int) -> list[NodeFacts]:
    """``count`` nodes, the GPU models in GPU_MIX's shares, read as the operator reads Nodes."""
    specs: list[node_catalog.NodeSpec] = []
    gpu_nodes = count - int(count * CPU_NODE_SHARE)
    for model, share in GPU_MIX:
        gpu = node_catalog.OPENB_GPU_MODELS[model]
        number = round(gpu_nodes * share / sum(s for _, s in GPU_MIX))
        specs += [
            node_catalog.NodeSpec(f"{model.lower()}-{i:05d}", 96_000, 384 * GIB, TIB, gpus=8, gpu=gpu)
            for i in range(number)
        ]
    specs += [
        node_catalog.NodeSpec(f"cpu-{i:05d}", 64_000, 256 * GIB, TIB)
        for i in range(max(0, count - len(specs)))
    ]
    return [kube_nodes.node_facts(_ready(node_catalog.node_manifest(s))) for s in specs[:count]]


def _ready(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    return manifest


def running_pods(nodes: Sequence[NodeFacts], *, fill: float, rng: random.Random) -> list[PodFacts]:
    """Pods of other work bound to the GPU nodes: about ``fill`` of every device taken, unevenly
    (most nodes full, some with a few devices free), in 1, 2, 4 and 8-GPU pods."""
    pods: list[PodFacts] = []
    for node in nodes:
        devices = node.view.allocatable.gpus
        if not devices:
            continue
        used = devices if rng.random() < fill else rng.choice(range(devices))
        while used > 0:
            gpus = min(used, rng.choice((1, 1, 2, 4, 8)))
            used -= gpus
            pods.append(
                PodFacts(
                    namespace="other",
                    name=f"{node.name}-{len(pods)}",
                    requests=Resources(cpu_milli=gpus * 8000, memory_bytes=gpus * 32 * GIB, gpus=gpus),
                    accelerator=GPU,
                    node=node.name,
                    phase=PodPhase.RUNNING,
                )
            )
    return pods


def job_manifest(index: int, rng: random.Random, *, created: datetime) -> dict[str, Any]:
    """One queued ModelJob, admitted (status Queued, observedGeneration 1), of a random shape."""
    spec: dict[str, Any] = {
        "model": {"parameters": rng.choice(PARAMETERS)},
        "replicas": rng.choice(REPLICAS),
        "template": {"spec": {"containers": [{"name": "main", "image": "registry.example/llm:1"}]}},
    }
    gpus = rng.choice(GPU_COUNTS)
    if gpus is not None:
        spec["resources"] = {"gpus": gpus}
    if rng.random() < 0.1:
        spec["scheduling"] = {"gang": False}
    return {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "metadata": {
            "namespace": f"team-{index % 20}",
            "name": f"job-{index:05d}",
            "uid": f"uid-{index:05d}",
            "generation": 1,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": spec,
        "status": {"phase": JobPhase.QUEUED.value, "observedGeneration": 1},
    }


def queued_jobs(
    count: int, rng: random.Random, *, first: int = 0, created: datetime | None = None
) -> list[JobFacts]:
    """``count`` jobs numbered from ``first``, created a second apart from T0 (or all at ``created``)."""
    return [
        kube_jobs.job_facts(
            job_manifest(i, rng, created=created if created is not None else T0 + timedelta(seconds=i))
        )
        for i in range(first, first + count)
    ]


def finish(jobs: list[JobFacts], pods: list[PodFacts], count: int, rng: random.Random) -> None:
    """``count`` running units of work end, each picked among the running pods (so a unit is
    picked by the room it holds): a pod of the other work, or a ModelJob whole, deleted once done
    with all its pods."""
    for _ in range(min(count, len(pods))):
        pod = pods[rng.randrange(len(pods))]
        if pod.job_uid is None:
            pods.remove(pod)
            continue
        pods[:] = [p for p in pods if p.job_uid != pod.job_uid]
        jobs[:] = [j for j in jobs if j.uid != pod.job_uid]


def bind(result: CycleResult, jobs: list[JobFacts], pods: list[PodFacts], now: datetime) -> int:
    """What the loop's binding leaves behind: each placed job Running, its pods bound. Returns
    how many jobs were placed."""
    placed = {s.job.ref: s for s in result.steps if isinstance(s, Place)}
    for index, job in enumerate(jobs):
        step = placed.get(job.ref)
        if step is None:
            continue
        running, new = bound(job, step, now=now)
        jobs[index] = replace(running, queued_since=None)
        pods += new
    return len(placed)


# The drain stops here even if cycles still place jobs (reported as "not within").
DRAIN_CYCLES_MAX = 50


@dataclass(frozen=True)
class Run:
    drain: tuple[float, ...]  # each drain cycle's run_cycle time, the first cycle first
    drain_placed: tuple[int, ...]  # jobs placed by each drain cycle
    live: tuple[float, ...]  # each live cycle's run_cycle time
    live_placed: tuple[int, ...]
    peak_rss_mib: float
    cycle_peak_mib: float  # tracemalloc's peak during one live cycle


@dataclass
class Bench:
    """The cluster, its queue and the cycle's memory, as the operator's loop holds them."""

    nodes: Sequence[NodeFacts]
    jobs: list[JobFacts]
    pods: list[PodFacts]
    now: datetime
    settings: CycleSettings = field(default_factory=CycleSettings)
    cache: SizingCache = field(default_factory=dict)
    memory: CycleMemory = field(default_factory=CycleMemory)  # kept across cycles, as the loop keeps it
    heap: LongLivedHeap = field(default_factory=LongLivedHeap)  # after each cycle, as the loop does

    def cycle(self) -> tuple[float, int]:
        """One cycle at ``now`` (a second after the last), its placements bound: seconds, placed."""
        self.now += timedelta(seconds=1)
        started = time.perf_counter()
        result = run_cycle(
            self.jobs,
            self.nodes,
            self.pods,
            now=self.now,
            settings=self.settings,
            sizing_cache=self.cache,
            memory=self.memory,
        )
        seconds = time.perf_counter() - started
        placed = bind(result, self.jobs, self.pods, self.now)
        self.heap.cycle_done()
        return seconds, placed


def run(bench: Bench, *, cycles: int, churn: int, rng: random.Random) -> Run:
    drain: list[float] = []
    drain_placed: list[int] = []
    while len(drain) < DRAIN_CYCLES_MAX and (not drain_placed or drain_placed[-1]):
        seconds, placed = bench.cycle()
        drain.append(seconds)
        drain_placed.append(placed)
        log(f"drain cycle {len(drain)}: {seconds * 1000:.0f} ms, {placed} placed")
    live: list[float] = []
    live_placed: list[int] = []
    arrived = len(bench.jobs)
    for number in range(cycles + 1):
        finish(bench.jobs, bench.pods, churn, rng)
        bench.jobs += queued_jobs(churn, rng, first=arrived, created=bench.now)
        arrived += churn
        if number == cycles:  # one more, for its allocation alone
            tracemalloc.start()
            bench.cycle()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            break
        seconds, placed = bench.cycle()
        live.append(seconds)
        live_placed.append(placed)
        log(f"live cycle {number + 1}: {seconds * 1000:.0f} ms, {placed} placed")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Run(tuple(drain), tuple(drain_placed), tuple(live), tuple(live_placed), rss, peak / 2**20)


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with ``percent`` of them at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]


def render(args: argparse.Namespace, outcome: Run, *, waiting: int, running_pods_count: int) -> str:
    drain, live = outcome.drain, outcome.live
    settled = next((i for i, n in enumerate(outcome.drain_placed) if n == 0), None)
    settled_text = (
        f"{settled} cycle(s), {sum(drain[:settled]):.1f} s"
        if settled is not None
        else f"not within {len(drain)} cycles"
    )
    placed = outcome.live_placed
    rows = [
        (
            "first cycle (nothing remembered; places what fits)",
            f"{drain[0] * 1000:.0f} ms, {outcome.drain_placed[0]} jobs placed",
        ),
        ("until every fitting job is placed (drain)", settled_text),
        (f"live cycle p50 over {len(live)}", f"{statistics.median(live) * 1000:.0f} ms"),
        (f"live cycle p99 over {len(live)} (nearest rank)", f"{percentile(live, 99) * 1000:.0f} ms"),
        ("live cycle max", f"{max(live) * 1000:.0f} ms"),
        ("jobs placed per live cycle (mean, max)", f"{statistics.mean(placed):.1f}, {max(placed)}"),
        ("jobs queued at the end", f"{waiting}"),
        ("peak resident memory of the process (ru_maxrss)", f"{outcome.peak_rss_mib:.0f} MiB"),
        ("peak allocation during one live cycle (tracemalloc)", f"{outcome.cycle_peak_mib:.0f} MiB"),
    ]
    table = "\n".join(["| what | result |", "| --- | ---: |", *(f"| {w} | {v} |" for w, v in rows)])
    load = os.getloadavg()[2]
    return f"""## Deep queue

Measured by `bench/deep_queue.py --nodes {args.nodes} --jobs {args.jobs} --cycles {args.cycles} --churn
{args.churn} --seed {args.seed}` (`make bench`) on {datetime.now(UTC):%Y-%m-%d}, on a machine with
{os.cpu_count()} CPUs (15-minute load average {load:.1f} at the end), in process: the scheduling cycle
(`run_cycle`, what the operator's loop calls) alone, no API server. {args.nodes} openb-like nodes
(8-GPU nodes of five models and {CPU_NODE_SHARE:.0%} CPU nodes) with {running_pods_count} running pods
taking about {args.fill:.0%} of the devices, and {args.jobs} queued ModelJobs of mixed shapes; each
cycle's placements are bound before the next. First the drain (cycles until one places nothing),
then {args.cycles} live cycles, before each of which {args.churn} running units of work finish and
{args.churn} new ModelJobs arrive. Target: cycle p99 under 1 s, memory under 1 GiB.

{table}
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=100, help="live cycles, after the drain")
    parser.add_argument(
        "--churn",
        type=int,
        default=5,
        help="units of work finishing, and jobs arriving, before each live cycle",
    )
    parser.add_argument("--fill", type=float, default=0.9, help="share of GPU nodes running full")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave the docs alone")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    nodes = build_nodes(args.nodes)
    pods = running_pods(nodes, fill=args.fill, rng=rng)
    jobs = queued_jobs(args.jobs, rng)
    running_pods_count = len(pods)
    log(f"{len(nodes)} nodes, {running_pods_count} running pods, {len(jobs)} queued jobs")
    # The clock starts after the last queued job's creation.
    bench = Bench(nodes, jobs, pods, now=T0 + timedelta(seconds=args.jobs))
    outcome = run(bench, cycles=args.cycles, churn=args.churn, rng=rng)
    waiting = sum(1 for job in bench.jobs if not job.placement)
    section = render(args, outcome, waiting=waiting, running_pods_count=running_pods_count)
    if not args.no_write:
        write_section(section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
