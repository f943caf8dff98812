"""Queue orders, quotas and preemption on the seeded synthetic workload: write the `## Results`
section of docs/queueing.md (every number there comes from this script).

    python bench/queueing.py              # all tables (about a minute and a half on one core)
    python bench/queueing.py --no-write   # print them only
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
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
from modeljob.core.sim.workload_generator import WorkloadSpec, generate_workload  # noqa: E402
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
)
GPU = QuotaKey("nvidia.com/gpu")
# Two teams of 16 GPUs nominal under a parent that declares none: it pools what they lend.
QUEUES = (
    QueueSpec("research"),
    QueueSpec("team-a", parent="research", quota=(QuotaEntry(GPU, 16),)),
    QueueSpec("team-b", parent="research", quota=(QuotaEntry(GPU, 16),)),
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
        "priority (LowerPriority)": orders()["priority + preemption"],
        "quota reclaim (16 + 16 GPUs nominal)": SharingSettings(
            queues=QUEUES, rules=PreemptionRules(reclaim_borrowed=True, min_runtime_seconds=MIN_RUNTIME)
        ),
    }


def victims_table(seeds: Sequence[int]) -> str:
    lines = [
        "### Our victim choice against the Kueue-like rule",
        "",
        "Same decision: at every preemption of a run with our chooser, the Kueue-like rule is asked "
        "too, on the very same cluster state, preemptor and candidates (both end with the same reverse "
        "pass). Whole run: each chooser runs its own run (what it evicts changes what happens next).",
        "",
        "| scenario | decisions | ours lost GPU-h | Kueue-like lost GPU-h (same decisions) | ours worse in | "
        "whole runs: ours GPU-h | whole runs: Kueue-like GPU-h | runs ours loses less |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, base in victim_scenarios().items():
        paired = [0, 0.0, 0.0, 0]
        whole = dict.fromkeys(VictimOrder, 0.0)
        wins = 0
        for seed in seeds:
            jobs = generate_workload(WORKLOAD, seed=seed)
            lost = {}
            for order in VictimOrder:
                shadow = VictimOrder.KUEUE_LIKE if order is VictimOrder.LEAST_LOST_WORK else None
                run = run_shared_queues(
                    jobs, NODES, settings=dataclasses.replace(base, victim_order=order, shadow_order=shadow)
                )
                check(run)
                lost[order] = sum(event.lost_gpu_hours for event in run.events)
                whole[order] += lost[order]
                for decision in run.decisions:
                    if decision.shadow_lost_gpu_hours is not None:
                        paired[0] += 1
                        paired[1] += decision.lost_gpu_hours
                        paired[2] += decision.shadow_lost_gpu_hours
                        paired[3] += decision.lost_gpu_hours > decision.shadow_lost_gpu_hours + 1e-9
            wins += lost[VictimOrder.LEAST_LOST_WORK] < lost[VictimOrder.KUEUE_LIKE]
        lines.append(
            f"| {name} | {paired[0]} | {paired[1]:.1f} | {paired[2]:.1f} | {paired[3]} | "
            f"{whole[VictimOrder.LEAST_LOST_WORK]:.1f} | {whole[VictimOrder.KUEUE_LIKE]:.1f} | "
            f"{wins} of {len(seeds)} |"
        )
    return "\n".join(lines)


def per_queue_table() -> str:
    spec = dataclasses.replace(WORKLOAD, queues=("team-a", "team-a", "team-b"))
    settings = victim_scenarios()["quota reclaim (16 + 16 GPUs nominal)"]
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
        "--victim-seeds", type=int, default=6, help="seeds of the victim comparison (default 6)"
    )
    args = parser.parse_args()
    started = time.process_time()
    parts = [
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
