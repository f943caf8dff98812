"""Time the trace simulator: each policy on the openb default trace, the 7-policy × 10-seed table,
and one placement decision on a 5,000-node cluster; write the `## Trace simulator` section of
docs/benchmarks.md.

    python bench/simulate.py                       # the full table (minutes)
    python bench/simulate.py --seeds 42 --no-write # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from report import write_section

from modeljob.adapters.trace_files import read_trace_nodes, read_trace_pods
from modeljob.core.fragmentation import compile_workload, learn_target_workload
from modeljob.core.nodes import NodeView, build_node_table
from modeljob.core.resources import GIB, Resources
from modeljob.core.scoring.ranking import ScoringContext, choose_node
from modeljob.core.scoring.scorers.cpu_balance import learn_host_demand
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from modeljob.core.sim.simulation import ReplayPolicy, replay_trace
from modeljob.core.sim.traces import trace_request

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "openb" / "csv"
SECTION = "## Trace simulator"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_replays(
    policies: list[ReplayPolicy], seeds: list[int]
) -> tuple[list[tuple[str, float, float, float, float]], float, float]:
    """Per policy: (name, mean wall s, mean CPU s, tasks per CPU second, mean allocation at 130%);
    then the whole table's wall and CPU seconds. CPU time is this process's own (the replay is
    single-threaded), so on a shared machine it is what the replay would take alone."""
    nodes = read_trace_nodes(DATA / "openb_node_list_gpu_node.csv")
    pods = read_trace_pods(DATA / "openb_pod_list_default.csv")
    rows = []
    started_all = time.perf_counter()
    cpu_all = time.process_time()
    for policy in policies:
        seconds = []
        cpu_seconds = []
        tried = []
        allocation = []
        for seed in seeds:
            started = time.perf_counter()
            cpu_started = time.process_time()
            result = replay_trace(nodes, pods, policy=policy, seed=seed)
            cpu_seconds.append(time.process_time() - cpu_started)
            seconds.append(time.perf_counter() - started)
            tried.append(result.pods_arrived)
            allocation.append(result.allocation_at(130) or 0.0)
            print(
                f"{policy.value:>15} seed {seed}: {seconds[-1]:5.1f}s wall, {cpu_seconds[-1]:5.1f}s CPU",
                flush=True,
            )
        rows.append(
            (
                policy.value,
                statistics.fmean(seconds),
                statistics.fmean(cpu_seconds),
                statistics.fmean(tried) / statistics.fmean(cpu_seconds),
                statistics.fmean(allocation),
            )
        )
    return rows, time.perf_counter() - started_all, time.process_time() - cpu_all


def time_one_decision(nodes_count: int, repeats: int) -> float:
    """Median ms for one default-weights decision on ``nodes_count`` partly used 8-GPU nodes."""
    rng = np.random.default_rng(0)
    views = []
    for i in range(nodes_count):
        free = tuple(int(v) for v in rng.choice([0, 200, 500, 1000], size=8))
        views.append(
            NodeView(
                name=f"gpu-{i:05d}",
                allocatable=Resources(cpu_milli=96_000, memory_bytes=768 * GIB, gpus=8),
                requested=Resources(cpu_milli=int(rng.integers(0, 80)) * 1000, memory_bytes=0, gpus=0),
                gpu_free_milli=free,
                accelerator="nvidia.com/gpu",
                gpu_product="NVIDIA-H100-80GB-HBM3",
                gpu_memory_bytes=80 * GIB,
            )
        )
    table = build_node_table(views)
    pods = read_trace_pods(DATA / "openb_pod_list_default.csv")
    requests = [dataclasses.replace(trace_request(p), accelerator="nvidia.com/gpu") for p in pods[:repeats]]
    shapes = [p.shape for p in pods]
    workload = compile_workload(learn_target_workload(shapes), table.products)
    context = ScoringContext(workload=workload, host_demand=learn_host_demand(requests))
    timings = []
    for request in requests:
        started = time.perf_counter()
        choose_node(table, request, weights=DEFAULT_WEIGHTS, context=context)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", nargs="*", default=[p.value for p in ReplayPolicy])
    parser.add_argument("--seeds", nargs="*", type=int, default=list(range(42, 52)))
    parser.add_argument("--nodes", type=int, default=5000, help="cluster size for the one-decision timing")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    policies = [ReplayPolicy(p) for p in args.policies]
    rows, total, total_cpu = time_replays(policies, args.seeds)
    decision_ms = time_one_decision(args.nodes, repeats=300)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    command = "python bench/simulate.py"
    if args.seeds != list(range(42, 52)):
        command += " --seeds " + " ".join(map(str, args.seeds))
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (venv Python, `modeljob` from this checkout). "
        f"Machine: `nproc` = {os.cpu_count()}, {cpu_model()}, load average {load:.1f} at the end "
        f"(the machine is shared). Date: {datetime.date.today().isoformat()}.",
        "",
        "openb default trace (8,152 tasks topped up to about 10,800 at 130%, 1,213 nodes), one process, "
        f"mean over {len(args.seeds)} seed{'s' if len(args.seeds) != 1 else ''}:",
        "",
        "| policy | wall time per replay (s) | CPU time per replay (s) | tasks per CPU second"
        " | GPU allocated at 130% arrived |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {seconds:.1f} | {cpu:.1f} | {rate:,.0f} | {allocation:.2f}% |"
            for name, seconds, cpu, rate, allocation in rows
        ),
        "",
        f"Whole table ({len(policies)} policies × {len(args.seeds)} seeds, sequential): "
        f"{total / 60:.1f} min wall, {total_cpu / 60:.1f} min CPU "
        "(target: under 20 min; the default policy alone: under 30 s per replay). The replay is "
        "single-threaded and runs at nice 19 beside whatever else the machine runs, so wall time "
        "is CPU time plus waiting for the CPU; CPU time is what it takes on an idle core.",
        "",
        f"One placement decision with the default weights on {args.nodes:,} partly used 8-GPU nodes "
        "(filter + every scorer + choice, the extender's per-pod work): "
        f"median {decision_ms:.1f} ms over 300 trace tasks.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
