"""Replay every openb trace under every policy and seed; write docs/placement-quality.md and its plot.

    python bench/placement_quality.py                     # everything (about an hour on 2 cores)
    python bench/placement_quality.py --traces default --policies default fgd --seeds 42 43

Each run's result is cached as JSON under --cache (keyed by trace, policy, seed, tune and, for
the default policy, its weights), so an interrupted run resumes and a re-run only renders.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from modeljob.adapters.trace_files import read_published_curves, read_trace_nodes, read_trace_pods
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from modeljob.core.simulation import PUBLISHED_NAMES, ReplayPolicy, replay_trace

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("/work/shared/data/openb")
SEEDS = tuple(range(42, 52))
TUNE = 1.3
HELD_BACK = ("cpu250", "gpushare60", "gpuspec25", "gpuspec33", "multigpu30", "multigpu40", "multigpu50")
POLICY_ORDER = (
    ReplayPolicy.RANDOM,
    ReplayPolicy.DOTPROD,
    ReplayPolicy.GPU_CLUSTERING,
    ReplayPolicy.GPU_PACKING,
    ReplayPolicy.BEST_FIT,
    ReplayPolicy.FGD,
    ReplayPolicy.DEFAULT,
)


def cache_key(trace: str, policy: ReplayPolicy, seed: int) -> str:
    suffix = ""
    if policy is ReplayPolicy.DEFAULT:
        weights = "-".join(
            f"{f.name}={getattr(DEFAULT_WEIGHTS, f.name):g}" for f in dataclasses.fields(DEFAULT_WEIGHTS)
        )
        suffix = "_" + weights
    return f"{trace}_{policy.value}_{seed}_{TUNE:g}{suffix}.json"


def run_one(task: tuple[str, str, int, str, str]) -> tuple[str, float]:
    data, trace, policy_name, seed, cache = task[0], task[1], ReplayPolicy(task[2]), task[3], Path(task[4])
    path = cache / cache_key(trace, policy_name, seed)
    if path.exists():
        return str(path), 0.0
    nodes = read_trace_nodes(Path(data) / "csv" / "openb_node_list_gpu_node.csv")
    pods = read_trace_pods(Path(data) / "csv" / f"openb_pod_list_{trace}.csv")
    started = time.perf_counter()
    result = replay_trace(nodes, pods, policy=policy_name, seed=seed, tune_ratio=TUNE)
    elapsed = time.perf_counter() - started
    payload = {
        "trace": trace,
        "policy": policy_name.value,
        "seed": seed,
        "seconds": elapsed,
        "podsArrived": result.pods_arrived,
        "failedPods": result.failed_pods,
        "allocation": result.allocation_percent_by_arrived_percent,
        "fragmentation": result.fragmentation_percent_by_arrived_percent,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload))
    temporary.replace(path)
    return str(path), elapsed


def published_summary(data: Path) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """(workload, artifact policy) -> (mean at 100, std at 100, mean at 130, std at 130) over seeds."""
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with (data / "reference_results" / "analysis_allo_discrete.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["workload"].removeprefix("openb_pod_list_"), row["sc_policy"])
            runs.setdefault(key, []).append((float(row["100"]), float(row["130"])))
    return {
        key: (
            statistics.fmean(a for a, _ in values),
            statistics.pstdev(a for a, _ in values),
            statistics.fmean(b for _, b in values),
            statistics.pstdev(b for _, b in values),
        )
        for key, values in runs.items()
    }


def load(cache: Path, trace: str, policy: ReplayPolicy, seeds: tuple[int, ...]) -> list[dict[str, object]]:
    found = []
    for seed in seeds:
        path = cache / cache_key(trace, policy, seed)
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def at(runs: list[dict[str, object]], percent: int) -> list[float]:
    values = []
    for run in runs:
        curve = run["allocation"]
        assert isinstance(curve, list)
        value = curve[percent]
        if value is not None:
            values.append(float(value))
    return values


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.pstdev(values)
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}"


def mean_curve(runs: list[dict[str, object]], key: str) -> list[float]:
    curves = [run[key] for run in runs]
    points = []
    for percent in range(131):
        values = [float(c[percent]) for c in curves if isinstance(c, list) and c[percent] is not None]
        points.append(statistics.fmean(values) if values else math.nan)
    return points


def plot(cache: Path, data: Path, seeds: tuple[int, ...], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    published = read_published_curves(
        data / "reference_results" / "analysis_allo_discrete.csv", "openb_pod_list_default"
    )
    figure, (whole, zoom) = pyplot.subplots(1, 2, figsize=(12, 4.8))
    arrived = list(range(131))
    for axes in (whole, zoom):
        for curve in published:
            axes.plot(
                arrived,
                curve.allocation_percent_by_arrived_percent,
                linewidth=1,
                linestyle="--",
                label=f"{curve.policy} (published)",
            )
        for policy, style in (
            (ReplayPolicy.FGD, {"color": "tab:brown"}),
            (ReplayPolicy.DEFAULT, {"color": "black"}),
        ):
            runs = load(cache, "default", policy, seeds)
            if runs:
                axes.plot(
                    arrived,
                    mean_curve(runs, "allocation"),
                    linewidth=2,
                    label=f"{policy.value} (ours, mean of {len(runs)} seeds)",
                    **style,
                )
        axes.set_xlabel("arrived GPU demand, % of cluster GPU capacity")
        axes.grid(alpha=0.3)
    whole.set_ylabel("GPU allocated, % of capacity")
    whole.set_xlim(0, 130)
    whole.set_title("openb default trace, 1,213 GPU nodes")
    zoom.set_xlim(80, 130)
    zoom.set_ylim(86, 97)
    zoom.set_title("saturation (80–130% arrived)")
    zoom.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def render(cache: Path, data: Path, traces: list[str], seeds: tuple[int, ...], command: str) -> str:
    published = published_summary(data)
    lines: list[str] = []
    add = lines.append
    add("# Placement quality on the openb trace")
    add("")
    add("Generated by `bench/placement_quality.py`; do not edit by hand. Reproduce with:")
    add("")
    add("```")
    add(command)
    add("```")
    add("")
    add(INTRO.strip())
    add("")
    # --- faithful baselines on the default trace
    add("## 1. The six published baselines, reproduced (default trace)")
    add("")
    add(
        "Seeds "
        + ", ".join(map(str, seeds))
        + f", tune {TUNE:g}. GPU allocation % of capacity at 130% arrived demand."
    )
    add("")
    add("| policy | ours (mean ± std) | published (mean ± std) | ours − published |")
    add("| --- | ---: | ---: | ---: |")
    ours_order = []
    for policy in POLICY_ORDER[:-1]:
        runs = load(cache, "default", policy, seeds)
        values = at(runs, 130)
        pub = published.get(("default", PUBLISHED_NAMES[policy]))
        diff = f"{statistics.fmean(values) - pub[2]:+.2f}" if values and pub else "–"
        pub_text = f"{pub[2]:.2f} ± {pub[3]:.2f}" if pub else "–"
        add(f"| {PUBLISHED_NAMES[policy]} | {mean_std(values)} | {pub_text} | {diff} |")
        if values:
            ours_order.append((statistics.fmean(values), PUBLISHED_NAMES[policy]))
    published_order = sorted(
        (published[("default", PUBLISHED_NAMES[p])][2], PUBLISHED_NAMES[p]) for p in POLICY_ORDER[:-1]
    )
    add("")
    same = [name for _, name in sorted(ours_order)] == [name for _, name in published_order]
    add(
        f"Order, worst to best: ours {' < '.join(n for _, n in sorted(ours_order))}; "
        f"published {' < '.join(n for _, n in published_order)} ({'same' if same else 'DIFFERENT'})."
    )
    add("")
    add(FAITHFULNESS.strip())
    add("")
    # --- default vs FGD on every trace
    add("## 2. The default policy against FGD, every trace in csv/")
    add("")
    add("GPU allocation % at 130% arrived, mean ± population std over the seeds. *Margin* is the default")
    add("policy's mean minus the published FGD mean where one exists (else minus our FGD, marked †).")
    add("")
    add("| trace | default (ours) | FGD (ours) | FGD (published) | margin |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for trace in traces:
        default_runs = at(load(cache, trace, ReplayPolicy.DEFAULT, seeds), 130)
        fgd_runs = at(load(cache, trace, ReplayPolicy.FGD, seeds), 130)
        pub = published.get((trace, PUBLISHED_NAMES[ReplayPolicy.FGD]))
        if default_runs and pub:
            margin = f"{statistics.fmean(default_runs) - pub[2]:+.2f}"
        elif default_runs and fgd_runs:
            margin = f"{statistics.fmean(default_runs) - statistics.fmean(fgd_runs):+.2f} †"
        else:
            margin = "–"
        pub_text = f"{pub[2]:.2f} ± {pub[3]:.2f}" if pub else "not published"
        add(f"| {trace} | {mean_std(default_runs)} | {mean_std(fgd_runs)} | {pub_text} | {margin} |")
    add("")
    add("Held back for an independent check (not in csv/, never run here): " + ", ".join(HELD_BACK) + ".")
    add("")
    # --- every policy x trace
    add("## 3. Every policy on every trace")
    add("")
    add("GPU allocation % at 100% / 130% arrived: ours (mean ± std over seeds); under it, published.")
    add("")
    header = "| trace | " + " | ".join(p.value for p in POLICY_ORDER) + " |"
    add(header)
    add("| --- |" + " ---: |" * len(POLICY_ORDER))
    for trace in traces:
        ours_cells = []
        pub_cells = []
        for policy in POLICY_ORDER:
            runs = load(cache, trace, policy, seeds)
            ours_cells.append(f"{mean_std(at(runs, 100))} / {mean_std(at(runs, 130))}" if runs else "–")
            pub = published.get((trace, PUBLISHED_NAMES.get(policy, "")))
            pub_cells.append(f"*{pub[0]:.2f} ± {pub[1]:.2f} / {pub[2]:.2f} ± {pub[3]:.2f}*" if pub else "")
        add(f"| {trace} | " + " | ".join(ours_cells) + " |")
        if any(pub_cells):
            add("| *published* | " + " | ".join(pub_cells) + " |")
    add("")
    add("![GPU allocation against arrived demand, default trace](placement-quality-default.png)")
    add("")
    add(DESIGN.strip())
    add("")
    return "\n".join(lines)


INTRO = """
The replay is the FGD artifact's experiment as `/work/shared/data/openb/README.md` describes it
(Weng et al., "Beware of Fragmentation", USENIX ATC '23; trace: Alibaba cluster-trace-gpu-v2023):
the 1,213 GPU nodes, tasks sorted by name and shuffled with the seed, topped up with copies drawn
with the same seed until 130% of the cluster's 6,212 GPUs has arrived, placed one at a time,
failures skipped. The number that matters is the share of GPU capacity allocated once demand
exceeds supply (130% arrived). `modeljob simulate` runs one replay; this script runs them all.
Published figures are the artifact's own (`reference_results/analysis_allo_discrete.csv`).
"""

FAITHFULNESS = """
All six land within 1 pp of their published means and in the published order. FGD, BestFit,
DotProd and Random are within about 0.2 pp, and for FGD and BestFit the fragmentation curve
(`analysis_frag_discrete.csv`) follows the published one to within about 0.1 pp from 0 to 130%.
GpuPacking and GpuClustering come out 0.7–0.8 pp low. What these two share, and the other four
do not, is that a CPU-only task scores 0 on every node, so the smallest-name tie-break alone
places it. Their published fragmentation curves already differ from ours at 2% arrived, long
before any task fails, so the difference is in where early tasks go, not in the saturation
tail. We checked both scorers against the artifact's source (case order, integer division, the
idle-node rule, the device choice), the scheduler's tie rule and its node sampling (all nodes
are scored), and found no difference. Replaying without the CPU check moves these two (and FGD
on cpu200) closer to the published numbers but moves BestFit and FGD on the default trace away
from theirs, so that is not the explanation either. We document the gap rather than tune it away.
The same pattern, smaller, shows in our FGD on the CPU-heavy variants (see section 2: the curves
agree until about 90% arrived and part where CPU-only tasks start to strand GPUs), which is why
the default policy's margins are measured against the published FGD, the harder bar.
"""

DESIGN = """
## 4. How the default policy is built, and why

The default policy is `DEFAULT_WEIGHTS` in `operator/modeljob/core/scoring/weights.py`: the
scorers, weights and tie rule that the operator and the scheduler extender use, replayed by
`core/simulation.py`'s `WeightedPlacer` (which only adds a per-node score cache).

1. **GPU fragmentation decides** (weight 1.0). FGD's measure, with the target workload learned
   from the tasks themselves (the most frequent shapes covering 95% of tasks, weighted by
   frequency) as FGD learns it, scored in whole points of 100·sigmoid(ΔF/1000) as FGD scores.
   The whole points matter: scored by the exact ΔF instead, the default trace drops to 92.43%
   (3 seeds), because near-equal nodes are then separated by noise-level differences in ΔF
   rather than by a packing order.
2. **CPU balance orders the ties** (weight 0.008). Among nodes tied on fragmentation, prefer the
   one left with fewer *stranded* GPUs: idle GPUs beyond what the node's free CPU and memory can
   feed at the workload's own CPU and memory per GPU (learned from the GPU tasks as a ratio of
   sums). FGD sees CPU only when a task shape stops fitting a node altogether; meanwhile
   CPU-only and CPU-hungry GPU tasks drain the CPU of nodes it rates equal. In the FGD replay of
   the default trace (seed 42), 65.6 GPUs end idle on nodes with less CPU left than any GPU
   task asks for; the tie order is where they are won back.
3. **Best fit breaks what is left** (weight 0.001): least CPU + GPU left over after placing, in
   units of the largest node. Best fit, not most-allocated, because it compares leftovers in
   absolute terms; with (relative) most-allocated in its place the default trace loses 0.3 pp.
4. **Then the node name**, as everywhere in the core.

The two tie-breakers weigh 0.009 together, less than one fragmentation point (0.01), so they
never override fragmentation. Their ratio makes one stranded GPU cost as much as the whole
leftover of the largest node. It was chosen on three traces (default, cpu200, gpushare100;
3 seeds each) among 0.15, 0.3, 0.6, 1, 2.5 and 10 largest-node leftovers per stranded GPU
(0.15–0.6 measured before the memory term was added, which changed nothing measurable at 0.3):
0.6 and 1 were best on all three, 2.5 and above worse on all three by 0.3–0.45 pp. Nothing is
set per trace: every trace runs the same weights, and the seven held-back variants exist to
check exactly that.

Tie orders matter more than one would guess. Keeping FGD's scores but breaking ties by the
largest node first gives 87.8% on the default trace; by CPU best fit alone, 86.9%; by best fit
for GPU tasks and by name for CPU-only tasks, 91.9% (3–4 seeds each). What works is one
consistent packing order for every task, with stranded GPUs the first thing to avoid.

The operator uses the same scorers on live clusters: `ScoringContext.workload` is the target
workload learned from the ModelJobs it has seen, and `host_demand` their CPU and memory per GPU.
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--traces", nargs="*", help="pod list suffixes (default: every file in csv/)")
    parser.add_argument("--policies", nargs="*", default=[p.value for p in POLICY_ORDER])
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "modeljob" / "placement-quality"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "placement-quality.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "placement-quality-default.png")
    parser.add_argument("--render-only", action="store_true", help="write the doc from cached runs only")
    args = parser.parse_args()

    csv_dir = args.data / "csv"
    all_traces = sorted(p.stem.removeprefix("openb_pod_list_") for p in csv_dir.glob("openb_pod_list_*.csv"))
    traces = args.traces or sorted(all_traces, key=lambda t: (t != "default", t))
    seeds = tuple(args.seeds)
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        # Most telling first: every policy on the default trace, then default and FGD everywhere,
        # then the other baselines on the variants, so a partial run already renders the key tables.
        def priority(task: tuple[str, str, str, int, str]) -> tuple[int, str, int, str]:
            _, trace, policy, seed, _ = task
            if trace == "default":
                rank = 0
            elif policy in (ReplayPolicy.DEFAULT.value, ReplayPolicy.FGD.value):
                rank = 1
            else:
                rank = 2
            return (rank, trace, seed, policy)

        tasks = sorted(
            (
                (str(args.data), trace, policy, seed, str(args.cache))
                for trace in traces
                for seed in seeds
                for policy in args.policies
            ),
            key=priority,
        )
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for done, (path, seconds) in enumerate(pool.map(run_one, tasks), start=1):
                if seconds:
                    print(f"[{done}/{len(tasks)}] {Path(path).name} {seconds:.1f}s", flush=True)
        print(f"all runs done in {time.perf_counter() - started:.0f}s", flush=True)
    command = "python bench/placement_quality.py" + (" --jobs N" if args.jobs else "")
    args.out.write_text(render(args.cache, args.data, traces, seeds, command))
    plot(args.cache, args.data, seeds, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
