"""docs/reliability.md from one soak: the command, the machine, the counts, every invariant and
what it found."""

from __future__ import annotations

import argparse
import os
import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.chaos.env import REPO
from bench.chaos.invariants import HALF_BOUND_LIMIT_SECONDS

DOCUMENT = REPO / "docs" / "reliability.md"


@dataclass
class Result:
    args: argparse.Namespace
    minutes: float
    faults: Counter[str]
    actions: Counter[str]
    shapes: Counter[str]
    hostile: Counter[str]
    phases: dict[str, int]
    violations: list[str]
    wrong_ends: list[str]
    hostile_wrong: list[str]
    problems: list[str]
    samples: int
    longest_half_bound_seconds: float
    half_bound_seen: int
    peak_rss_mib: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.violations or self.wrong_ends or self.hostile_wrong or self.problems)


def _command(args: argparse.Namespace) -> str:
    lease = " ".join(f"{v:g}" for v in args.lease)
    return (
        f"python -m bench.chaos --seed {args.seed} --jobs {args.jobs} --hostile {args.hostile} "
        f"--leader-kills {args.leader_kills} --standby-kills {args.standby_kills} "
        f"--apiserver-restarts {args.apiserver_restarts} --etcd-restarts {args.etcd_restarts} "
        f"--node-flaps {args.node_flaps} --minutes {args.minutes:g} --lease {lease}"
    )


def _list(items: list[str], empty: str) -> str:
    if not items:
        return empty
    more = f"\n- … {len(items) - 50} more" if len(items) > 50 else ""
    return "\n".join(f"- {item}" for item in items[:50]) + more


def _counts(counter: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "none"


def render(result: Result) -> str:
    args, load = result.args, os.getloadavg()
    verdict = "every invariant held" if result.passed else "VIOLATIONS FOUND (below)"
    return f"""# Reliability: the chaos soak

This run: `{_command(args)}` (`make chaos` runs the defaults, `--seed 17`). A control plane of its own
(`tests/cluster.py`'s "chaos" plane), two `modeljob run` replicas with leader election, {args.h100_nodes}
H100 and {args.l4_nodes} L4 kwok nodes in two zones, two Queues under one parent (borrowing, a
borrowingLimit, a lendingLimit, reclaimBorrowed preemption), a seeded stream of ModelJobs and a
seeded schedule of faults, watched by an invariant checker (`bench/chaos/invariants.py`) from
start to end. Anyone can rerun it with the same seed; the moments are the seed's, the machine's
timing is not, so a rerun is the same schedule, not the same interleaving.

Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} Linux, {os.cpu_count()} CPUs
(shared with other work; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end),
{result.minutes:.1f} minutes. Result: **{verdict}**.

The Lease timings are {args.lease[0]:g} s / {args.lease[1]:g} s / {args.lease[2]:g} s (duration, renew
deadline, retry period) rather than the chart's 15 / 10 / 2, so that {args.leader_kills} leader kills fit
in the run; `--lease 15 10 2` soaks the chart's defaults.

## What it did

| | count |
| --- | --- |
| well-formed ModelJobs | {args.jobs} ({_counts(result.shapes)}) |
| what was done to them | {_counts(result.actions)} |
| hostile ModelJobs | {args.hostile} ({_counts(result.hostile)}), plus 47 hostile Queues |
| faults | {_counts(result.faults)} |
| checker samples | {result.samples} |
| largest operator RSS seen | {result.peak_rss_mib:.0f} MiB |

Final phases of the well-formed jobs: {_counts(result.phases)}.

## Invariants

Checked at every sample and once more at rest:

1. **No pod bound twice**: a pod's `nodeName`, once set, never changes; no two live pods of one
   job hold the same replica and member of one spec.
2. **No node over-committed**: the GPUs asked by the bound, live pods of a node never exceed its
   allocatable.
3. **Quotas held**: the GPUs a queue's bound, live pods hold, per product, never exceed its
   nominal plus what it may borrow (its borrowingLimit, and at most what the other team lends).
4. **No gang or group half-bound** for longer than {HALF_BOUND_LIMIT_SECONDS:.0f} s while faults run, and
   none at all at rest. Partly bound gangs seen in flight: {result.half_bound_seen}; the longest
   lasted {result.longest_half_bound_seconds:.1f} s.
5. **No job lost or stuck, every end right** (at rest, within {args.settle_minutes:g} minutes of the
   last fault): a deleted job is gone with its pods; a training job has Succeeded (its pods end
   through a kwok Stage); a serving job Runs on every pod of its placement, or waits Queued with
   a reason; and a job whose nodes were lost more often than `failurePolicy.maxRestarts` allows
   has Failed saying so (docs/operator.md: a lost node is a failure; the soak fails no pod).
6. **Hostile input explained**: each hostile ModelJob is refused by the API server with its reason
   (256 products) or ends Queued, Unschedulable or Invalid with a message; each broken Queue shows
   its condition (ParentCycle, ParentMissing, ChildrenAboveNominal); no replica exits by itself.

Violations:
{_list(result.violations, "none")}

Jobs not at their right end:
{_list(result.wrong_ends, "none")}

Hostile input without a clear reason:
{_list(result.hostile_wrong, "none")}

Operator crashes and fault problems:
{_list(result.problems, "none")}
{"".join(chr(10) + n for n in result.notes)}"""


FINDINGS = "## Findings"


def findings(document: Path) -> str:
    """The document's hand-written `## Findings` section (violations found and how each was
    fixed), kept from run to run; empty when there is none yet."""
    text = document.read_text() if document.exists() else ""
    start = text.find(f"\n{FINDINGS}\n")
    return "\n" + text[start + 1 :].rstrip("\n") + "\n" if start >= 0 else ""
