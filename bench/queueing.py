"""Queue orders, quotas and preemption on the seeded synthetic workload: write the `## Results`
section of docs/queueing.md (every number there comes from this script).

    python bench/queueing.py              # all tables (about three and a half minutes on one core)
    python bench/queueing.py --no-write   # print them only
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

from modeljob.core.nodes import NodeView  # noqa: E402
from modeljob.core.preemption import VictimOrder  # noqa: E402
from modeljob.core.preemption_rules import PreemptionRules, WithinQueue  # noqa: E402
from modeljob.core.queueing import QueueOrder, QueueSettings  # noqa: E402
from modeljob.core.quota_tree import QueueSpec, QuotaEntry, QuotaKey  # noqa: E402
from modeljob.core.sim.queue_report import SharedRun, queue_stats  # noqa: E402
from modeljob.core.sim.shared_queues import SharingSettings, run_shared_queues  # noqa: E402
from modeljob.core.sim.workload_generator import SyntheticJob, WorkloadSpec, generate_workload  # noqa: E402
from tests.builders import make_node  # noqa: E402

DOCUMENT = ROOT / "docs" / "queueing.md"
SEEDS = (1, 2, 3)
HOUR = 3600.0
NODES = tuple(make_node(f"gpu-{i}", gpus=8) for i in range(4))
MIN_RUNTIME = 600.0
WORKLOAD = WorkloadSpec(
    jobs=150,
    queues=("team-a", "team-b"),
    priorities=(0, 0, 1, 2),
    mean_interarrival_seconds=120,
    checkpoint_share=0.5,
    checkpoint_intervals_seconds=(600.0, 1800.0, 3600.0),
)
GPU = QuotaKey("nvidia.com/gpu")
# Two teams of 16 GPUs nominal under a parent that declares none: it pools what they lend.
QUEUES = (
    QueueSpec("research"),
    QueueSpec("team-a", parent="research", quota=(QuotaEntry(GPU, 16),)),
    QueueSpec("team-b", parent="research", quota=(QuotaEntry(GPU, 16),)),
)

RECLAIM = SharingSettings(
    queues=QUEUES, rules=PreemptionRules(reclaim_borrowed=True, min_runtime_seconds=MIN_RUNTIME)
)


def orders() -> dict[str, SharingSettings]:
    def order(name: QueueOrder) -> QueueSettings:
        return QueueSettings(order=name)

    return {
        "FCFS": SharingSettings(queue=order(QueueOrder.FCFS)),
        "SJF": SharingSettings(queue=order(QueueOrder.SHORTEST_JOB_FIRST)),
        "SRTF (+ ShorterRemainingTime)": SharingSettings(
            queue=order(QueueOrder.SHORTEST_REMAINING_TIME_FIRST),
            rules=PreemptionRules(
                within_queue=WithinQueue.SHORTER_REMAINING_TIME, min_runtime_seconds=MIN_RUNTIME
            ),
        ),
        "priority + preemption": SharingSettings(
            queue=order(QueueOrder.PRIORITY),
            rules=PreemptionRules(within_queue=WithinQueue.LOWER_PRIORITY, min_runtime_seconds=MIN_RUNTIME),
        ),
        "time-slice 1 h": SharingSettings(
            queue=order(QueueOrder.TIME_SLICE),
            rules=PreemptionRules(time_slice_seconds=HOUR, min_runtime_seconds=MIN_RUNTIME),
        ),
    }


def mean_over_seeds(settings: SharingSettings, spec: WorkloadSpec, nodes: Sequence[NodeView]) -> list[float]:
    """(mean wait, p95 wait, mean completion, utilisation, preemptions, lost GPU-h), mean of seeds."""
    rows = []
    for seed in SEEDS:
        run = run_shared_queues(generate_workload(spec, seed=seed), nodes, settings=settings)
        check(run)
        whole = queue_stats(run)[-1]
        rows.append(
            [
                whole.mean_wait_hours,
                whole.p95_wait_hours,
                whole.mean_completion_hours,
                whole.gpu_utilisation,
                whole.preemptions,
                whole.lost_gpu_hours,
            ]
        )
    return [statistics.fmean(column) for column in zip(*rows, strict=True)]


def check(run: SharedRun) -> None:
    """The invariants every run must keep; a table built on a broken run would mislead."""
    assert run.partial_placements == 0, "a gang was bound in part"
    assert run.preemptor_misfits == 0, "a preemptor did not fit after its victims left"
    assert run.quota_overruns == 0, "a queue used more than nominal + borrowing limit"
    assert all(event.pods_released == event.pods_of_job for event in run.events), "a gang was evicted in part"


def gpu_hours(item: SyntheticJob) -> float:
    return item.job.demand.gpus * item.duration_seconds / HOUR


def workload_table() -> str:
    """The stream's mix as generated (not as configured): job sizes, their GPU-hours, checkpoints."""
    jobs = [item for seed in SEEDS for item in generate_workload(WORKLOAD, seed=seed)]
    total = sum(gpu_hours(item) for item in jobs)
    sizes = sorted({item.job.demand.gpus for item in jobs})
    durations = sorted(item.duration_seconds / HOUR for item in jobs)
    intervals = Counter(item.checkpoint_interval_seconds for item in jobs)
    checkpointing = ", ".join(
        f"{count / len(jobs):.0%} every {interval / 60:.0f} min"
        for interval, count in sorted((i, c) for i, c in intervals.items() if i is not None)
    )
    lines = [
        "### The workload",
        "",
        f"Seeds {', '.join(map(str, SEEDS))} of the generator, {len(jobs)} jobs in all: gangs of "
        f"{'/'.join(map(str, sorted(set(WORKLOAD.replicas))))} replicas of "
        f"{'/'.join(map(str, sorted(set(WORKLOAD.gpus_per_replica))))} GPUs; durations log-normal, "
        f"median {statistics.median(durations):.2f} h, p90 {durations[int(0.9 * len(durations))]:.2f} h; "
        f"{intervals[None] / len(jobs):.0%} never checkpoint, {checkpointing}.",
        "",
        "| GPUs per job | share of jobs | share of GPU-hours |",
        "|---|---|---|",
    ]
    for size in sizes:
        of_size = [item for item in jobs if item.job.demand.gpus == size]
        hours = sum(gpu_hours(item) for item in of_size)
        lines.append(f"| {size} | {len(of_size) / len(jobs):.0%} | {hours / total:.0%} |")
    return "\n".join(lines)


def orders_table() -> str:
    lines = [
        "### Orders side by side",
        "",
        f"{WORKLOAD.jobs} jobs, two queues without quotas, priorities 0/0/1/2, half the jobs checkpoint, "
        f"declared durations off by a log-normal sigma of {WORKLOAD.declared_error_sigma}; 4 nodes x 8 GPUs; "
        f"minRuntime {MIN_RUNTIME / 60:.0f} min; mean of seeds {', '.join(map(str, SEEDS))}.",
        "",
        "| order | mean wait h | p95 wait h | mean completion h | GPU utilisation | preemptions "
        "| lost GPU-h |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, settings in orders().items():
        wait, p95, done, used, preempted, lost = mean_over_seeds(settings, WORKLOAD, NODES)
        lines.append(
            f"| {name} | {wait:.2f} | {p95:.2f} | {done:.2f} | {used:.1%} | {preempted:.1f} | {lost:.1f} |"
        )
    return "\n".join(lines)


def known_durations_table() -> str:
    spec = dataclasses.replace(
        WORKLOAD,
        declared_error_sigma=0.0,
        priorities=(0,),
        checkpoint_share=1.0,
        checkpoint_intervals_seconds=(300.0,),
    )
    lines = [
        "### Mean completion time when durations are known",
        "",
        "The same stream with every job declaring its true duration, one priority, and every job "
        "checkpointing every 5 minutes (SRTF assumes a preempted job resumes where it was).",
        "",
        "| order | mean completion h | mean wait h | preemptions |",
        "|---|---|---|---|",
    ]
    for name in ("FCFS", "SJF", "SRTF (+ ShorterRemainingTime)"):
        wait, _, done, _, preempted, _ = mean_over_seeds(orders()[name], spec, NODES)
        lines.append(f"| {name} | {done:.2f} | {wait:.2f} | {preempted:.1f} |")
    return "\n".join(lines)


def victim_scenarios() -> dict[str, SharingSettings]:
    return {
        "priority (LowerPriority), priorities 0/0/1/2": orders()["priority + preemption"],
        "quota reclaim, two teams of 16 GPUs nominal": RECLAIM,
    }


@dataclasses.dataclass
class VictimTally:
    """One scenario over the seeds: whole runs per chooser, and our runs' paired decisions."""

    lost: dict[VictimOrder, list[float]] = dataclasses.field(
        default_factory=lambda: {o: [] for o in VictimOrder}
    )
    preemptions: dict[VictimOrder, list[int]] = dataclasses.field(
        default_factory=lambda: {o: [] for o in VictimOrder}
    )
    by_priority: dict[VictimOrder, Counter[tuple[int, int]]] = dataclasses.field(
        default_factory=lambda: {o: Counter() for o in VictimOrder}
    )
    decisions: int = 0
    differ: int = 0
    ours_worse: int = 0
    ours_gpu_hours: float = 0.0
    kueue_gpu_hours: float = 0.0
    ours_where_differ: float = 0.0
    kueue_where_differ: float = 0.0

    def add_decisions(self, run: SharedRun) -> None:
        for decision in run.decisions:
            if decision.shadow_lost_gpu_hours is None:
                continue
            ours, theirs = decision.lost_gpu_hours, decision.shadow_lost_gpu_hours
            self.decisions += 1
            self.ours_gpu_hours += ours
            self.kueue_gpu_hours += theirs
            self.ours_worse += ours > theirs + 1e-9
            if abs(ours - theirs) > 1e-9:
                self.differ += 1
                self.ours_where_differ += ours
                self.kueue_where_differ += theirs


def compare_victims(base: SharingSettings, seeds: Sequence[int]) -> VictimTally:
    """Each seed's stream run once per chooser; our runs also ask the Kueue-like rule at each decision."""
    tally = VictimTally()
    for seed in seeds:
        jobs = generate_workload(WORKLOAD, seed=seed)
        priority = {item.job.name: item.job.priority for item in jobs}
        for order in VictimOrder:
            shadow = VictimOrder.KUEUE_LIKE if order is VictimOrder.LEAST_LOST_WORK else None
            settings = dataclasses.replace(base, victim_order=order, shadow_order=shadow)
            run = run_shared_queues(jobs, NODES, settings=settings)
            check(run)
            tally.lost[order].append(sum(event.lost_gpu_hours for event in run.events))
            tally.preemptions[order].append(len(run.events))
            tally.by_priority[order].update((priority[e.preemptor], priority[e.victim]) for e in run.events)
            if shadow is not None:
                tally.add_decisions(run)
    return tally


def spread(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def victims_table(seeds: Sequence[int]) -> str:
    ours, kueue = VictimOrder.LEAST_LOST_WORK, VictimOrder.KUEUE_LIKE
    tallies = {name: compare_victims(base, seeds) for name, base in victim_scenarios().items()}
    lines = [
        "### Our victim choice against the Kueue-like rule",
        "",
        f"The stream above, seeds 1 to {len(seeds)}. Whole runs: each chooser runs "
        "its own simulation of the same stream (what it evicts changes what happens next); lost GPU-hours "
        "per run as mean ± standard deviation over the seeds, and the paired difference (ours minus "
        "Kueue-like, same seed) as mean ± 2 standard errors.",
        "",
        "| scenario | preemptions per run: ours / Kueue-like | lost GPU-h per run: ours | "
        "lost GPU-h per run: Kueue-like | ours − Kueue-like per run | runs where ours loses less / "
        "the same / more |",
        "|---|---|---|---|---|---|",
    ]
    for name, tally in tallies.items():
        diffs = [a - b for a, b in zip(tally.lost[ours], tally.lost[kueue], strict=True)]
        error = 2 * statistics.stdev(diffs) / len(diffs) ** 0.5
        counts = (
            sum(d < -1e-9 for d in diffs),
            sum(abs(d) <= 1e-9 for d in diffs),
            sum(d > 1e-9 for d in diffs),
        )
        lines.append(
            f"| {name} | {statistics.fmean(tally.preemptions[ours]):.1f} / "
            f"{statistics.fmean(tally.preemptions[kueue]):.1f} | {spread(tally.lost[ours])} | "
            f"{spread(tally.lost[kueue])} | {statistics.fmean(diffs):+.1f} ± {error:.1f} | "
            f"{' / '.join(map(str, counts))} |"
        )
    lines += [
        "",
        "Same decision: in our runs, at every preemption the Kueue-like rule is asked too, on the very "
        "same cluster, preemptor and candidates (both end with the same reverse pass).",
        "",
        "| scenario | decisions | where the two choose differently | lost GPU-h: ours / Kueue-like, "
        "all decisions | lost GPU-h: ours / Kueue-like, where they differ | "
        "decisions where ours loses more |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in tallies.items():
        lines.append(
            f"| {name} | {t.decisions} | {t.differ} ({t.differ / max(t.decisions, 1):.0%}) | "
            f"{t.ours_gpu_hours:.1f} / {t.kueue_gpu_hours:.1f} | "
            f"{t.ours_where_differ:.1f} / {t.kueue_where_differ:.1f} | {t.ours_worse} |"
        )
    first = next(iter(tallies))
    pairs = sorted(set(tallies[first].by_priority[ours]) | set(tallies[first].by_priority[kueue]))
    lines += [
        "",
        f"Who evicts whom in the first scenario (preemptor priority → victim priority, all {len(seeds)} "
        "runs of each chooser):",
        "",
        "| chooser | " + " | ".join(f"{p} → {v}" for p, v in pairs) + " |",
        "|---|" + "---|" * len(pairs),
    ]
    for order, label in ((ours, "ours"), (kueue, "Kueue-like")):
        evicted = tallies[first].by_priority[order]
        lines.append(f"| {label} | " + " | ".join(str(evicted[pair]) for pair in pairs) + " |")
    return "\n".join(lines)


def per_queue_table() -> str:
    spec = dataclasses.replace(WORKLOAD, queues=("team-a", "team-a", "team-b"))
    settings = RECLAIM
    run = run_shared_queues(generate_workload(spec, seed=SEEDS[0]), NODES, settings=settings)
    check(run)
    lines = [
        "### Per queue: two teams, 16 GPUs nominal each, reclaimBorrowed",
        "",
        f"team-a submits twice as many jobs as team-b; seed {SEEDS[0]}.",
        "",
        "| queue | jobs | mean wait h | p95 wait h | mean completion h | GPU utilisation | preemptions | "
        "lost GPU-h | share received | share entitled |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in queue_stats(run):
        entitled = "-" if row.share_entitled is None else f"{row.share_entitled:.0%}"
        lines.append(
            f"| {row.queue} | {row.jobs} | {row.mean_wait_hours:.2f} | {row.p95_wait_hours:.2f} | "
            f"{row.mean_completion_hours:.2f} | {row.gpu_utilisation:.1%} | {row.preemptions} | "
            f"{row.lost_gpu_hours:.1f} | {row.share_received:.0%} | {entitled} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-write", action="store_true", help="print the tables, leave docs/queueing.md alone"
    )
    parser.add_argument(
        "--victim-seeds", type=int, default=20, help="seeds of the victim comparison (default 20)"
    )
    args = parser.parse_args()
    started = time.process_time()
    parts = [
        workload_table(),
        orders_table(),
        known_durations_table(),
        victims_table(range(1, args.victim_seeds + 1)),
        per_queue_table(),
    ]
    took = time.process_time() - started
    text = (
        "\n\n".join(["## Results", f"Written by `python bench/queueing.py` ({took:.0f} CPU s).", *parts])
        + "\n"
    )
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(text, DOCUMENT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
