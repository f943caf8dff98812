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
from typing import Any

from bench.chaos.checker import IN_FLIGHT_LIMIT_SECONDS, WatchStats
from bench.chaos.env import REPO
from bench.chaos.hostile import HOSTILE_QUEUES, MIXED_SHARE

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
    checks: int
    watch: WatchStats
    longest_half_bound_seconds: float
    half_bound_seen: int
    longest_lingering_seconds: float
    vacuous_quota: list[str]
    delays: dict[str, Any]
    hostile_mixed: int
    peak_rss_mib: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        held = self.delays.get("held_by_hostile") or []
        return not (
            self.violations
            or self.wrong_ends
            or self.hostile_wrong
            or self.problems
            or held
            or self.watch.errors
        )


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
    return "\n".join((_header(result), _did(result), _invariants(result), _delays(result), _found(result)))


def _header(result: Result) -> str:
    args, load = result.args, os.getloadavg()
    verdict = "every invariant held" if result.passed else "VIOLATIONS FOUND (below)"
    return f"""# Reliability: the chaos soak

This run: `{_command(args)}` (`make chaos` runs the defaults, `--seed 17`). A control plane of its own
(`tests/cluster.py`'s "chaos" plane), two `modeljob run` replicas with leader election, {args.h100_nodes}
H100 and {args.l4_nodes} L4 kwok nodes in two zones, two Queues under one parent (borrowing, a
borrowingLimit, a lendingLimit, reclaimBorrowed preemption, and one preempting lower priorities
within itself), a seeded stream of ModelJobs and a
seeded schedule of faults, watched by an invariant checker (`bench/chaos/checker.py`) from
start to end. Anyone can rerun it with the same seed; the moments are the seed's, the machine's
timing is not, so a rerun is the same schedule, not the same interleaving.

Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} Linux, {os.cpu_count()} CPUs
(load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end; the Findings say what else ran),
{result.minutes:.1f} minutes. Result: **{verdict}**.

The Lease timings are {args.lease[0]:g} s / {args.lease[1]:g} s / {args.lease[2]:g} s (duration, renew
deadline, retry period) rather than the chart's 15 / 10 / 2, so that {args.leader_kills} leader kills fit
in the run; `--lease 15 10 2` soaks the chart's defaults.
"""


def _did(result: Result) -> str:
    args, watch = result.args, result.watch
    mixed = (
        f"{result.hostile_mixed} of them (about {MIXED_SHARE:.0%} of those the API server accepts) among "
        "the well-formed jobs, in their namespace and queues"
    )
    gap, queues = watch.longest_gap_seconds, len(HOSTILE_QUEUES)
    resumed = f"each resumed from its last resourceVersion; the longest down {gap:.1f} s"
    return f"""## What it did

| | count |
| --- | --- |
| well-formed ModelJobs | {args.jobs} ({_counts(result.shapes)}) |
| what was done to them | {_counts(result.actions)} |
| hostile ModelJobs | {args.hostile} ({_counts(result.hostile)}), {mixed}; plus {queues} hostile Queues |
| faults | {_counts(result.faults)} |
| invariant checks | {result.checks} (one per pod or ModelJob watch event, and after each list) |
| watch events | {_counts(watch.events)} |
| watches broken (API server restarts) | {_counts(watch.breaks)}; {resumed} |
| lists after 410 Gone (and the first) | {_counts(watch.relists)} |
| largest operator RSS seen | {result.peak_rss_mib:.0f} MiB |

Final phases of the well-formed jobs: {_counts(result.phases)}.
"""


def _invariants(result: Result) -> str:
    args = result.args
    vacuous = "; ".join(result.vacuous_quota) or "none"
    return f"""## Invariants

Checked on every pod and ModelJob event of the checker's watches (a copy of the cluster kept by
watching pods, ModelJobs and nodes; a broken watch resumes from its last resourceVersion, so the API
server replays what it missed, and lists again on 410 Gone, then checks), and once more at rest on a
fresh list. Only while a watch is down (above) can a state go unseen, and only if it is gone by the
time the watch is back without a 410.

1. **No replica member held twice**: no two bound, live pods of one job (by its uid) hold the same
   replica and group member, whatever spec they were made from; the one exception is a serving
   job's rolling update (docs/operator.md), whose old pod, outside the placement and made from
   another spec, serves beside the new one while the `Updating` condition is True, and after that
   for at most {IN_FLIGHT_LIMIT_SECONDS:.0f} s (its deletion follows the status write; longest seen
   {result.longest_lingering_seconds:.1f} s), never at rest.
2. **No node over-committed**: the GPUs, CPU and memory asked by the pods bound to a node and not
   finished (terminating ones too: they hold their resources until gone) never exceed its allocatable.
3. **Quotas held**: the GPUs a queue's unfinished bound pods hold (terminating too, charged to their
   job's queue even after the job is deleted), per product, never exceed its nominal plus what it may
   borrow (its borrowingLimit, and at most what the other team lends). Checks that cannot fail on this
   cluster, their limit being the product's whole capacity: {vacuous}.
4. **No gang or group half-bound** for longer than {IN_FLIGHT_LIMIT_SECONDS:.0f} s while faults run, and
   none at all at rest. Partly bound gangs seen in flight: {result.half_bound_seen}; the longest
   lasted {result.longest_half_bound_seconds:.1f} s.
5. **No job lost or stuck, every end right** (at rest, within {args.settle_minutes:g} minutes of the
   last fault): a deleted job is gone with its pods; a training job has Succeeded (its pods end
   through a kwok Stage); a serving job Runs on every pod of its placement, or waits Queued for a
   reason that holds at rest: its pods (their shape from its status estimate: GPUs a pod, pods a
   replica) do not fit the free room of the Ready nodes of its products, or its queue has no quota
   for it, or it waits behind a job that so waits; a job waiting for quota while its queue holds
   less than its nominal less what it needs is stuck. A training job whose nodes were lost more
   often than `failurePolicy.maxRestarts` allows has Failed saying so (docs/operator.md: a lost node
   is a training job's failure; the soak fails no pod); a serving job never ends Failed here (it is
   recreated after a lost node without counting it).
6. **Hostile input explained**: each hostile ModelJob is refused by the API server with its reason
   (256 products) or ends Queued, Unschedulable or Invalid with a message, and one among the
   well-formed jobs Unschedulable or Invalid (never waiting in their queues); each broken Queue shows
   its condition (ParentCycle, ParentMissing, ChildrenAboveNominal); no replica exits by itself.
"""


def _delays(result: Result) -> str:
    d = result.delays
    return f"""## Well-formed jobs beside hostile ones

Cycles: {d["cycles"]:.0f} run by the leaders, {d["cycle_mean_seconds"] * 1000:.0f} ms on average, the
99th percentile in the histogram bucket up to {d["cycle_p99_bucket"]} s (the replicas' /metrics).
Of {d["created"]} well-formed jobs created, {d["placed"]} were placed: {d["placed_first"]} at their
first scheduling attempt (the first cycle of the leader that placed them that decided for them, by
their Scheduled Events), {d["waited"]} after the operator left them waiting (a later attempt, a
Preempting Event before the placement, or seen waiting on the watch), for: {_counts(d["waited_for"])};
placed with no attempt in their first Scheduled Event (an interrupted binding completed by a new
leader, or the Event's post failed): {_names(d["no_event"])}.
For those placed at their first attempt, the most cycles that completed between the moment before
the create call and the moment the placement was seen on the watch: **{d["worst_cycles"]:.0f}**
({d["worst_job"]}). The count adds to the cycles that decided for it the cycle in flight at its
creation, the cycles that ran while the watch brought it to the leader and while its plan's write
landed, and, after a leader change, those of the leader before (which may have left it waiting:
attempts are counted per leader); leader kills and API server restarts included. In seconds:
median {d["median_seconds"]:.2f} s, worst {d["worst_seconds"]:.1f} s (cycles are not counted while
nobody leads). How it is measured:
`bench/chaos/delays.py`. Well-formed jobs whose waiting reason named a hostile job (held by one):
{_list(d["held_by_hostile"], "none")}
"""


def _names(names: list[str]) -> str:
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "") or "none"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in counts.items()) or "none"


def _found(result: Result) -> str:
    return f"""Violations:
{_list(result.violations, "none")}

Jobs not at their right end:
{_list(result.wrong_ends, "none")}

Hostile input without a clear reason:
{_list(result.hostile_wrong, "none")}

Operator crashes, fault and checker problems:
{_list(result.problems + result.watch.errors, "none")}
{"".join(chr(10) + n for n in result.notes)}"""


FINDINGS = "## Findings"


def findings(document: Path) -> str:
    """The document's hand-written `## Findings` section (violations found and how each was
    fixed), kept from run to run; empty when there is none yet."""
    text = document.read_text() if document.exists() else ""
    start = text.find(f"\n{FINDINGS}\n")
    return "\n" + text[start + 1 :].rstrip("\n") + "\n" if start >= 0 else ""
