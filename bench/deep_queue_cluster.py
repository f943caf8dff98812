"""Deep-queue benchmark on the real control plane: the operator's scheduling-cycle p50/p99, memory and
time until every fitting job is placed, with 10,000 queued ModelJobs on 5,000 fake nodes. Rewrites
`## Deep queue (control plane)` in docs/benchmarks.md, at the default sizes only.

    python bench/deep_queue_cluster.py [--nodes 5000] [--jobs 10000] [--fill 0.9] [--churn 5]
        [--live-cycles 100] [--live-timeout 1800] [--seed 7] [--own-cpu] [--keep] [--no-write]

bench/deep_queue.py times the core cycle in process; here `modeljob run` runs as a process on a
control plane of its own ("bench-deep-queue" in tests/cluster.py), so a cycle also snapshots the
watch caches, admits and writes, and the memory is the whole process's. The cluster is
deep_queue.py's on real objects: 8-GPU kwok nodes (their Leases renewed every 150 s, as in
bench/extender.py: tests/cluster.py, BENCH_NODE_LEASE_SECONDS), about --fill of them full and the rest partly
used by pods of other work (deep_queue.running_pods) created bound (spec.nodeName) and waited
Running, then deep_queue.job_manifest's mixed shapes created by 32 threads (the Python client has
no client-side rate limit; the API server keeps its default in-flight limits). The operator starts
only then, and once kube-controller-manager has lifted every node's not-ready taint
(operator_throughput.wait_schedulable): the queue is there when it arrives (as after a restart or
failover), so the time from its start counts its initial lists, admitting every job and placing
those that fit, not how fast this script creates jobs. "Fits" is what it places with nothing
finishing: the drain is over once `scheduling_attempts_total{result="placed"}` stayed put for two
whole cycles and no job is Pending;
the time reported is the first scrape showing the final count. Then the live queue, as in
deep_queue.py: every second --churn pods of other work end and as many jobs arrive, until the
operator has run --live-cycles cycles (or --live-timeout seconds passed). It starts after a whole
cycle that no reading of this script's overlapped (``quiet``).

Cycle times come from the operator's /metrics, scraped every 0.5 s (bench/cycle_metrics.py, only
the series it reads: well under a millisecond of the operator's time each). Its cycle metric is a
histogram: a phase's p50 and p99 are given as the bucket holding them, and the cycles within 1 s
(a bucket bound) counted exactly. Where one scrape interval held one cycle alone, the rise of the
histogram's sum is that cycle's own time (long cycles are likelier alone: these lean high).
Memory: VmRSS after the drain and at the end, VmHWM (the peak) at the end. ModelJob status writes
in each phase: the API server's own count (apiserver_request_total), as bench/operator_throughput.py
reads it; a cycle waits for the writes of its decisions other than placements, and every write
is work for the API server on the CPUs the operator shares here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]  # modeljob, and tests.cluster

from cycle_metrics import CYCLE, SCRAPE_SECONDS, Cycles, Scrape, cycle_rows, scrape  # noqa: E402
from deep_queue import job_manifest, running_pods  # noqa: E402
from operator_throughput import (  # noqa: E402
    WORKERS,
    api_requests,
    cpu_seconds,
    in_parallel,
    rss_mib,
    wait_schedulable,
)
from report import write_section  # noqa: E402

from modeljob.adapters import kube_jobs, kube_nodes  # noqa: E402
from modeljob.adapters.cluster import ClusterGateway, Watched  # noqa: E402
from modeljob.commands.nodes import apply_nodes, wait_until_ready  # noqa: E402
from tests.cluster import (  # noqa: E402
    BENCH_NODE_LEASE_SECONDS,
    CONTROL_PLANES,
    KWOK_IMAGE,
    NODE_LEASE_VARIABLE,
    ControlPlaneError,
    OperatorProcess,
    create_ready_namespace,
    gpu_node_manifests,
    kubectl,
    kwok_pod,
    one_cpu_apart,
    poll,
    start_operator,
)

PLANE = CONTROL_PLANES["bench-deep-queue"]
DEFAULT_NODES, DEFAULT_JOBS = 5000, 10_000
OTHER = "other-work"  # the namespace of the pods that keep the nodes busy
SETTLED_CYCLES = 2  # whole cycles after the last placing one that end the drain
Manifest = tuple[str, dict[str, Any]]  # a ModelJob's namespace and manifest
OPTIONS = (  # flag, type, default, help
    ("--nodes", int, DEFAULT_NODES, "fake 8-GPU nodes"),
    ("--jobs", int, DEFAULT_JOBS, "ModelJobs queued before the operator starts"),
    ("--fill", float, 0.9, "share of the nodes running full"),
    ("--churn", int, 5, "pods of other work ending, and jobs arriving, each second of the live queue"),
    ("--live-cycles", int, 100, "cycles of the live queue"),
    ("--live-timeout", int, 1800, "seconds the live queue may take"),
    ("--drain-timeout", float, 3600, "seconds the drain may take"),
    ("--seed", int, 7, "the cluster's and the jobs' random seed"),
)


def log(message: str) -> None:
    print(f"[deep-queue-cluster {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def add_nodes(gateway: ClusterGateway, count: int) -> list[dict[str, Any]]:
    """``count`` fake 8-GPU nodes, Ready; their manifests."""
    manifests = gpu_node_manifests(f"deep-{i:05d}" for i in range(count))
    apply_nodes(gateway, manifests, workers=WORKERS)
    names = {m["metadata"]["name"] for m in manifests}
    if wait_until_ready(gateway, names, timeout_seconds=1800) != names:
        raise SystemExit("the fake nodes did not become Ready")
    return manifests


def fill_nodes(
    gateway: ClusterGateway, nodes: list[dict[str, Any]], *, fill: float, rng: random.Random
) -> list[str]:
    """Pods of other work bound to the nodes (deep_queue.running_pods' shares of their devices),
    waited Running; their names."""
    facts = [kube_nodes.node_facts(manifest) for manifest in nodes]
    pods = [
        kwok_pod(
            pod.name,
            gpus=pod.requests.gpus,
            cpu=f"{pod.requests.cpu_milli}m",
            memory=str(pod.requests.memory_bytes),
            node=pod.node,
        )
        for pod in running_pods(facts, fill=fill, rng=rng)
    ]
    create_ready_namespace(gateway, OTHER)
    in_parallel(lambda pod: gateway.create_pod(OTHER, pod), pods)
    poll(
        lambda: not gateway.list_pods(OTHER, field_selector="status.phase!=Running"),
        "the other work's pods Running",
        timeout_seconds=1800,
        interval_seconds=2,
    )
    return [pod["metadata"]["name"] for pod in pods]


def model_jobs(count: int, rng: random.Random) -> list[Manifest]:
    """deep_queue.job_manifest's shapes as ModelJobs to create: no status, no server-set fields."""
    made: list[Manifest] = []
    for index in range(count):
        manifest = job_manifest(index, rng, created=datetime.now(UTC))
        del manifest["status"]
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        manifest["metadata"] = {"name": name}
        manifest["spec"]["template"]["spec"]["containers"][0]["image"] = KWOK_IMAGE
        made.append((namespace, manifest))
    return made


def drain(
    operator: OperatorProcess, started: float, *, timeout_seconds: float
) -> tuple[list[Scrape], float | None]:
    """Scrapes from the operator's start until the drain is over (the module docstring says when),
    and the seconds until the final placed count was first seen (None: not over in time)."""
    scrapes = [scrape(operator, started)]
    changed = scrapes[0]  # the first scrape showing the current placed count
    while scrapes[-1].at_seconds < timeout_seconds:
        time.sleep(SCRAPE_SECONDS)
        scrapes.append(latest := scrape(operator, started))
        if latest.placed != changed.placed:
            if int(latest.at_seconds) // 10 != int(changed.at_seconds) // 10:
                log(f"{latest.at_seconds:.0f} s: {latest.placed} placed, {latest.cycles} cycles")
            changed = latest
        # The cycle that placed may still be running at ``changed``: it does not count.
        elif latest.cycles > changed.cycles + SETTLED_CYCLES and not latest.pending and not latest.binding:
            return scrapes, changed.at_seconds
    return scrapes, None


def quiet(operator: OperatorProcess, started: float) -> None:
    """Returns once the operator has run a whole cycle after this call. Reading the API server's
    request counts (`kubectl get --raw /metrics`: megabytes rendered by the API server, read by
    kubectl and parsed here) takes both CPUs for a moment; the cycle it overlapped is not the live
    queue's (on 2026-12-05 the first live cycle, under that reading, was the live queue's
    slowest: 1,256 ms, half of it waiting for a CPU)."""
    first = scrape(operator, started)
    while scrape(operator, started).cycles < first.cycles + SETTLED_CYCLES:
        time.sleep(SCRAPE_SECONDS)


def live(
    gateway: ClusterGateway,
    operator: OperatorProcess,
    started: float,
    *,
    others: list[str],
    jobs: list[Manifest],
    churn: int,
    cycles: int,
    timeout_seconds: int,
) -> list[Scrape]:
    """Scrapes while every second ``churn`` of ``others`` end and as many ``jobs`` arrive (both in
    the order given), until the operator has run ``cycles`` cycles or ``timeout_seconds`` passed."""
    scrapes = [scrape(operator, started)]
    begun, second, sent = time.monotonic(), 0, list[Future[Any]]()
    with ThreadPoolExecutor(WORKERS) as pool:
        while scrapes[-1].cycles - scrapes[0].cycles < cycles and second < timeout_seconds:
            batch = slice(second * churn, (second + 1) * churn)
            sent += [pool.submit(gateway.delete_pod, OTHER, n, grace_period_seconds=0) for n in others[batch]]
            sent += [pool.submit(gateway.create_modeljob, *job) for job in jobs[batch]]
            second += 1
            while time.monotonic() - begun < second:
                time.sleep(SCRAPE_SECONDS)
                scrapes.append(scrape(operator, started))
    for future in sent:
        future.result()  # a failed delete or create fails the benchmark
    return scrapes


@dataclass(frozen=True)
class Outcome:
    other_pods: int
    create_seconds: float
    healthy_seconds: float  # from the operator's start to its /healthz answering
    drained: Sequence[Scrape]
    placed_seconds: float | None  # from its start to the final placed count (None: drain not over)
    lived: Sequence[Scrape]
    memory_mib: tuple[float, float, float]  # VmRSS after the drain, VmRSS at the end, VmHWM
    cpu_seconds: float
    phases: Counter[str]  # every ModelJob by status phase at the end
    status_writes: tuple[int, int]  # ModelJob status writes the API server served in the drain, live


def status_writes(before: Counter[str], after: Counter[str]) -> int:
    """ModelJob status writes (PATCH or PUT modeljobs/status) between two api_requests readings."""
    return sum(n for kind, n in (after - before).items() if kind.endswith(" modeljobs/status"))


def job_phases(gateway: ClusterGateway) -> Counter[str]:
    """Every ModelJob by status phase, as the API server lists them (no phase: Pending)."""
    phases: Counter[str] = Counter()
    for (_, phase), count in kube_jobs.count_by_phase(gateway.list_collection(Watched.MODELJOBS)[0]).items():
        phases[phase.value] += count
    return phases


def prepare(
    gateway: ClusterGateway, args: argparse.Namespace, rng: random.Random
) -> tuple[list[str], list[Manifest], float]:
    """The nodes, the other work's pods and the queued ModelJobs: the other pods in the order the
    live queue ends them, every job (the first --jobs created, the rest left for the live queue)
    and the seconds their creation took."""
    log(f"{args.nodes} nodes")
    nodes = add_nodes(gateway, args.nodes)
    others = fill_nodes(gateway, nodes, fill=args.fill, rng=rng)
    rng.shuffle(others)
    jobs = model_jobs(args.jobs + args.live_timeout * args.churn, rng)
    for namespace in sorted({namespace for namespace, _ in jobs}):
        create_ready_namespace(gateway, namespace)
    log(f"{len(others)} pods of other work Running; creating {args.jobs} ModelJobs")
    created = time.monotonic()
    in_parallel(lambda job: gateway.create_modeljob(*job), jobs[: args.jobs])
    create_seconds = time.monotonic() - created
    # kcm lifts the not-ready taint of new nodes for minutes (on 2026-12-04, 133 of 5,000 still
    # tainted nine minutes after they were created; 229 lifted in one 8 s window): until then the
    # node set changes under the operator many times a second and a tainted node takes no job.
    # Runs before this wait measured their drain, and perhaps some their live queue, in it.
    waiting = time.monotonic()
    wait_schedulable(gateway, {node["metadata"]["name"] for node in nodes})
    log(f"every node Ready and untainted {time.monotonic() - waiting:.0f} s after the ModelJobs were created")
    return others, jobs, create_seconds


def measure(gateway: ClusterGateway, args: argparse.Namespace, rng: random.Random) -> Outcome:
    """Queue the jobs, start the operator and follow its drain and then the live queue."""
    others, jobs, create_seconds = prepare(gateway, args, rng)
    log(f"created in {create_seconds:.1f} s; starting the operator")
    settings = {"MODELJOB_LOGGING__LEVEL": os.environ.get("MODELJOB_LOGGING__LEVEL", "WARNING")}
    log_path = PLANE.state / "logs" / "modeljob-operator.log"
    requests = [api_requests(PLANE.kubeconfig)]
    started = time.monotonic()
    cpus = one_cpu_apart(PLANE) if args.own_cpu else None
    if cpus is not None:
        log(f"the operator on CPU {sorted(cpus)}; the control plane and this script on the others")
    operator = start_operator(PLANE.kubeconfig, log_path, settings, timeout_seconds=900, cpus=cpus)
    pid = operator.process.pid
    try:
        healthy = time.monotonic() - started
        drained, placed_at = drain(operator, started, timeout_seconds=args.drain_timeout)
        log(f"drain over after {drained[-1].at_seconds:.0f} s: {drained[-1].placed} placed")
        rss_drained, requests = rss_mib(pid), [*requests, api_requests(PLANE.kubeconfig)]
        quiet(operator, started)
        lived = live(
            gateway,
            operator,
            started,
            others=others,
            jobs=jobs[args.jobs :],
            churn=args.churn,
            cycles=args.live_cycles,
            timeout_seconds=args.live_timeout,
        )
        memory = (rss_drained, rss_mib(pid), rss_mib(pid, "VmHWM"))
        requests.append(api_requests(PLANE.kubeconfig))
        writes = (status_writes(*requests[:2]), status_writes(*requests[1:]))
        return Outcome(
            len(others),
            create_seconds,
            healthy,
            drained,
            placed_at,
            lived,
            memory,
            cpu_seconds(pid),
            job_phases(gateway),
            writes,
        )
    finally:
        operator.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            operator.process.wait(timeout=60)


OWN_CPU = ", on one CPU alone, the control plane, kwok and this script on the others"


def render(args: argparse.Namespace, outcome: Outcome) -> str:
    drained, lived, (rss_drained, rss_end, peak) = outcome.drained, outcome.lived, outcome.memory_mib
    last, live_cycles = drained[-1], Cycles.between(lived)
    drain_writes, live_writes = outcome.status_writes
    writes_text = f"{drain_writes}, {live_writes} ({live_writes / max(1, live_cycles.count):.0f})"
    placed = (
        f"{outcome.placed_seconds:.1f} s ({last.placed} jobs; seen over at {last.at_seconds:.0f} s)"
        if outcome.placed_seconds is not None
        else f"not within {args.drain_timeout} s ({last.placed} jobs placed by then)"
    )
    rows = [
        (f"{args.jobs} ModelJobs created ({WORKERS} threads)", f"{outcome.create_seconds:.1f} s"),
        ("operator start to /healthz (initial lists)", f"{outcome.healthy_seconds:.1f} s"),
        ("operator start to every fitting job placed", placed),
        *cycle_rows("drain", Cycles.between(drained)),
        *cycle_rows(f"live queue ({lived[-1].at_seconds - lived[0].at_seconds:.0f} s)", live_cycles),
        ("live queue: jobs placed", f"{lived[-1].placed - lived[0].placed}"),
        (
            "placements being written or bound (modeljob_handoffs_pending): live queue's start, most, end",
            f"{lived[0].binding}, {max(s.binding for s in lived)}, {lived[-1].binding}",
        ),
        ("ModelJob status writes: drain, live queue (per live cycle)", writes_text),
        (
            "operator resident memory (VmRSS) after the drain, at the end",
            f"{rss_drained:.0f}, {rss_end:.0f} MiB",
        ),
        ("operator peak resident memory (VmHWM)", f"{peak:.0f} MiB"),
        ("operator CPU time, all of the run", f"{outcome.cpu_seconds:.0f} s"),
        ("ModelJobs by phase at the end", ", ".join(f"{k} {v}" for k, v in sorted(outcome.phases.items()))),
    ]
    table = "\n".join(["| what | result |", "| --- | ---: |", *(f"| {w} | {v} |" for w, v in rows)])
    load = os.getloadavg()
    return f"""## Deep queue (control plane)

Measured by `bench/deep_queue_cluster.py --nodes {args.nodes} --jobs {args.jobs} --fill {args.fill}
--churn {args.churn} --live-cycles {args.live_cycles} --live-timeout {args.live_timeout} --seed
{args.seed}{" --own-cpu" if args.own_cpu else ""}` (`make bench`) on
{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} /
{load[2]:.1f} at the end; its own local control plane, `modeljob run` as a process (watches and
all){OWN_CPU if args.own_cpu else ""}. {args.nodes} fake 8-GPU nodes (kwok renews each one's Lease every
{BENCH_NODE_LEASE_SECONDS // 4} s, not a kubelet's 10 s: tests/cluster.py says why),
{outcome.other_pods} bound pods of other work (about
{args.fill:.0%} of the nodes full, the rest partly used), and {args.jobs} ModelJobs of mixed shapes
created before the operator starts. The drain: from its start until two whole cycles place nothing
and every job is admitted. Then the live queue: every second {args.churn} pods of other work end
and {args.churn} ModelJobs arrive, until {args.live_cycles} cycles have run or {args.live_timeout} s
passed. A cycle is the operator's whole loop: snapshot, plan, and the API writes of every step it
acts on that a later cycle reads (roll-backs, preemptions); a placement's plan (read as written
meanwhile) and pods, and waiting jobs' writes (admitted as Queued, positions, reasons), land beside
the next cycles (docs/operator.md), and every status write is counted, by the API server's own count. p50
and p99 are given as the bucket of the operator's histogram (`{CYCLE}`) that holds them; exact
times for the cycles alone between two scrapes of its /metrics (every {SCRAPE_SECONDS} s). Target:
cycle p99 under 1 s, resident memory under 1 GiB.

{table}
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for flag, kind, default, what in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=what)
    parser.add_argument(
        "--own-cpu",
        action="store_true",
        help="the operator on one CPU alone, the control plane and this script on the others",
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave the docs alone")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with PLANE.held_by_this_process(wait_seconds=60):
        log(f"starting a bench control plane in {PLANE.state}")
        os.environ[NODE_LEASE_VARIABLE] = str(BENCH_NODE_LEASE_SECONDS)  # up.sh reads it
        PLANE.run("up.sh")
        try:
            gateway = PLANE.gateway(connections=WORKERS)
            for crd in ("modeljob.dev_modeljobs.yaml", "modeljob.dev_queues.yaml"):
                kubectl(PLANE.kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds" / crd))
            outcome = measure(gateway, args, rng)
        finally:
            if not args.keep:
                with contextlib.suppress(ControlPlaneError):
                    PLANE.run("down.sh")
    section = render(args, outcome)
    # Only the sizes the issue names, on the machine as it is shared, go into the docs; smaller
    # runs are for development, and a run with --own-cpu is read beside one without.
    if not args.no_write and not args.own_cpu and (args.nodes, args.jobs) == (DEFAULT_NODES, DEFAULT_JOBS):
        log(f"wrote {write_section(section)}")
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
