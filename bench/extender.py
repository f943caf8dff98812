"""Scheduler-extender benchmark: kube-scheduler's per-pod time with and without the modeljob extender
at 1,000 and 5,000 fake 8-GPU nodes, and the extender's own latency per verb. Rewrites the
`## Scheduler extender` section of docs/benchmarks.md.

It runs its own control plane (registered as "bench-extender" in tests/cluster.py) and removes
it at the end, so a development cluster and its tests are left alone.
The extender runs as a separate process (`modeljob extender`), configured by
hack/extender/extenders.yaml (nodeCacheCapable: true) pointed at its port.

    python bench/extender.py [--nodes 1000,5000] [--pods 400] [--rounds 2] [--keep]

For each node count, kube-scheduler is restarted without and with the extender, in the order
alone, with, with, alone (two rounds: a drift in the machine's load over the minutes of a size
weighs on both alike), and each run gets the same batch of pods (1 GPU, 1 CPU, 1 GiB each) from
an empty cluster; the table pools the runs of each kind. Per-pod time is read from
kube-scheduler's own histograms: scheduling_algorithm_duration_seconds (filter + score, extender
calls included: the time the scheduling queue waits per pod) and scheduling_attempt_duration_seconds
(algorithm + binding). The extender's p50/p99 per verb come from its request histogram (bucket
interpolation, as Prometheus' histogram_quantile does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]  # modeljob, and tests.cluster

from report import write_section  # noqa: E402

from modeljob.adapters.cluster import ClusterGateway  # noqa: E402
from modeljob.commands.nodes import apply_nodes  # noqa: E402
from tests.cluster import (  # noqa: E402
    CONTROL_PLANES,
    create_ready_namespace,
    free_ports,
    gpu_node_manifests,
    http_get,
    kubectl,
    kwok_pod,
    poll,
    sample_sum,
)

PLANE = CONTROL_PLANES["bench-extender"]
STATE = PLANE.state
EXTENDERS = REPO / "hack" / "extender" / "extenders.yaml"
SECTION = "## Scheduler extender"
WORKERS = 16
# kwok renews each fake node's Lease every quarter of this (150 s, not a kubelet's 10 s): 5,000
# fake kubelets renewing every 10 s are ~500 writes a second, served here on the 2 CPUs the
# schedulers are measured on, where a real control plane serves them on machines of its own.
# Both runs of a row see the same; hack/control-plane/up.sh reads it (MODELJOB_NODE_LEASE_SECONDS).
NODE_LEASE_SECONDS = 600
POLL_SECONDS = 0.5
VERBS = ("filter", "prioritize", "bind")


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def control_plane(script: str, extenders: Path | None = None) -> None:
    PLANE.run(script, extenders=extenders)


def scheduler_get(path: str) -> str:
    """GET a kube-scheduler endpoint as the admin user (system:masters passes its delegated authz)."""
    pki = STATE / "pki"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its self-signed serving cert; loopback only
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return http_get(f"https://127.0.0.1:{PLANE.ports()['MODELJOB_SCHEDULER_PORT']}{path}", context=context)


def scheduler_metrics() -> str:
    return scheduler_get("/metrics")


def scheduler_ready() -> bool:
    """/readyz: its informers have listed and its event handlers synced (sched-handler-sync)."""
    try:
        return scheduler_get("/readyz").strip() == "ok"
    except OSError:  # HTTPError (not ready yet: 500) and refused connections
        return False


def buckets(text: str, name: str, labels: Mapping[str, str]) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of one histogram series, in order."""
    result = []
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}_bucket\{{(.*)\}} ([0-9.e+-]+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            bound = float("inf") if found["le"] == "+Inf" else float(found["le"])
            result.append((bound, float(match.group(2))))
    return sorted(result)


def quantile(q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float:
    """histogram_quantile over the observations made between two scrapes (linear within a bucket)."""
    counts = [
        (bound, a - b)
        for (bound, a), (_, b) in zip(after, before or [(x, 0.0) for x, _ in after], strict=True)
    ]
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


# The pods of a run, by name: each asks for the GPUs of its turn in the cycle, and 1 CPU and 1 GiB
# per GPU. "uniform": 1 GPU each, every empty node alike to both schedulers. "mixed": 1, 2, 4 and
# 8 GPUs in turn, as jobs of several sizes share a cluster (where scores tell nodes apart).
WORKLOADS = {"uniform": (1,), "mixed": (1, 2, 4, 8)}


def gpu_pod(name: str, index: int, workload: str) -> dict[str, Any]:
    # kcm lifts the not-ready taint it finds on new nodes at a few nodes per second (minutes at
    # 5,000); tolerating it keeps every Ready node feasible in both runs alike.
    not_ready = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
    cycle = WORKLOADS[workload]
    gpus = cycle[index % len(cycle)]
    return kwok_pod(name, gpus=gpus, cpu=str(gpus), memory=f"{gpus}Gi", tolerations=[not_ready])


def add_nodes(gateway: ClusterGateway, count: int) -> int:
    """Grow the cluster to ``count`` 8-GPU nodes; returns the bytes of one Node as the API serves it."""
    names = [f"bench-{i:05d}" for i in range(count)]
    apply_nodes(gateway, gpu_node_manifests(names), workers=WORKERS)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        nodes = gateway.list_nodes(label_selector="type=kwok")
        ready = [
            n
            for n in nodes
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in n["status"].get("conditions") or []
            )
        ]
        if len(ready) >= count:
            return len(json.dumps(ready[0], separators=(",", ":")))
        time.sleep(max(2.0, count / 500))  # each poll lists every node: ~20 MB at 5,000
    raise SystemExit(f"fewer than {count} nodes Ready after 900 s")


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
    repeat: int = 0  # which round (pooled: the first's)

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
        return 1000 * quantile(0.5, [], counts), 1000 * quantile(0.99, [], counts), requests


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


def namespace_of(nodes: int, workload: str, extender: bool, repeat: int) -> str:
    return f"bench-{nodes}-{workload}-{'with' if extender else 'without'}-{repeat}"


def schedule_batch(
    gateway: ClusterGateway,
    *,
    nodes: int,
    workload: str,
    pods: int,
    extender_base: str | None,
    repeat: int,
) -> Run:
    namespace = namespace_of(nodes, workload, extender_base is not None, repeat)
    create_ready_namespace(gateway, namespace)
    ours_before = http_get(f"{extender_base}/metrics") if extender_base else ""  # the server root
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(
            pool.map(lambda i: gateway.create_pod(namespace, gpu_pod(f"p-{i:05d}", i, workload)), range(pods))
        )
    while True:
        unbound = gateway.list_pods(namespace, field_selector="spec.nodeName=")
        if not unbound:
            break
        if time.monotonic() - started > 1800:
            raise SystemExit(f"{namespace}: {len(unbound)} pods still unbound after 1800 s")
        time.sleep(POLL_SECONDS)
    wall = time.monotonic() - started
    theirs = scheduler_metrics()  # kube-scheduler was restarted for this run: its counters start at 0
    scheduled = {"result": "scheduled"}
    count = sample_sum(theirs, "scheduler_scheduling_attempt_duration_seconds_count", scheduled)
    attempt = sample_sum(theirs, "scheduler_scheduling_attempt_duration_seconds_sum", scheduled)
    algorithm = sample_sum(theirs, "scheduler_scheduling_algorithm_duration_seconds_sum")
    algorithm_count = sample_sum(theirs, "scheduler_scheduling_algorithm_duration_seconds_count")
    answers: dict[str, Buckets] = {}
    if extender_base:
        ours_after = http_get(f"{extender_base}/metrics")
        for verb in VERBS:
            name = "modeljob_extender_request_seconds"
            before = buckets(ours_before, name, {"verb": verb})
            after = buckets(ours_after, name, {"verb": verb})
            answers[verb] = [
                (bound, a - b)
                for (bound, a), (_, b) in zip(after, before or [(x, 0.0) for x, _ in after], strict=True)
            ]
    return Run(
        nodes=nodes,
        workload=workload,
        extender=extender_base is not None,
        pods=pods,
        wall_seconds=wall,
        algorithm_seconds=algorithm,
        algorithms=algorithm_count,
        attempt_seconds=attempt,
        attempts=count,
        answers=answers,
        repeat=repeat,
    )


def clear(namespace: str, gateway: ClusterGateway) -> None:
    """Delete a run's pods at once (kwok runs no kubelet to wait for) so the next run starts empty."""
    kubectl(
        PLANE.kubeconfig,
        "delete",
        "pods",
        "--all",
        "-n",
        namespace,
        "--grace-period=0",
        "--force",
        "--wait=false",
    )
    while gateway.list_pods(namespace):
        time.sleep(POLL_SECONDS)


def start_extender(port: int) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO / "operator"),
        "KUBECONFIG": str(STATE / "kubeconfig"),
        "MODELJOB_LOGGING__LEVEL": "WARNING",
    }
    with (STATE / "logs" / "modeljob-extender.log").open("ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from modeljob.commands.extender import main; sys.exit(main())",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http_get(f"http://127.0.0.1:{port}/healthz").startswith("ok"):
                return process
        except OSError:
            pass
        if process.poll() is not None:
            raise SystemExit(
                f"the extender exited ({process.returncode}); see {STATE}/logs/modeljob-extender.log"
            )
        time.sleep(0.3)
    raise SystemExit("the extender did not become healthy within 60 s")


def wait_extender_nodes(base: str, count: int) -> None:
    def cached() -> float:
        http_get(f"{base}/healthz")  # sets the cached-nodes gauge
        return sample_sum(http_get(f"{base}/metrics"), "modeljob_extender_cached_nodes")

    poll(lambda: cached() >= count, f"the extender's cache to reach {count} nodes", timeout_seconds=300)


def render(runs: list[Run], node_bytes: int, *, rounds: int) -> str:
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
        f"cluster, restarts kube-scheduler, and schedules the same {runs[0].pods} pods: *uniform*, 1 GPU,",
        "1 CPU and 1 GiB each (every empty node alike); *mixed*, 1, 2, 4 and 8 GPUs in turn with 1 CPU",
        "and 1 GiB per GPU, as jobs of several sizes share a cluster. They tolerate the not-ready",
        "taint that kcm lifts from new nodes only a few per second, so every Ready node is a candidate",
        "in both runs. The control plane, kwok, the extender and this",
        "script share the machine's CPUs, with whatever else ran on it: compare the two columns of a row,",
        "not rows of different days. kwok renews each node's Lease every",
        f"{NODE_LEASE_SECONDS // 4} s (a {NODE_LEASE_SECONDS} s Lease) instead of a kubelet's 10 s:",
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
        "Reading the ratios: the extender costs kube-scheduler two HTTP round trips per GPU pod plus our",
        "filter and score, a cost that grows more slowly with the node count than kube-scheduler's own",
        "per-pod work, so the ratio falls as the cluster grows. The runs are short and share the",
        "machine's CPUs with everything else on it: run the script more than once before reading a",
        "difference of a few tenths into the ratio.",
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


def run_rounds(
    gateway: ClusterGateway, base: str, extenders: Path, *, size: int, workload: str, pods: int, rounds: int
) -> list[Run]:
    """One row: ``rounds`` rounds of the two runs, alone then with, the next round reversed."""
    runs = []
    for repeat in range(rounds):
        for with_extender in (False, True) if repeat % 2 == 0 else (True, False):
            control_plane("up.sh", extenders if with_extender else None)  # restarts kube-scheduler
            poll(scheduler_ready, "kube-scheduler's /readyz", timeout_seconds=120)
            kind = "with" if with_extender else "without"
            log(f"{size} nodes, {workload}, {kind} the extender: {pods} pods")
            run = schedule_batch(
                gateway,
                nodes=size,
                workload=workload,
                pods=pods,
                extender_base=base if with_extender else None,
                repeat=repeat,
            )
            log(f"  algorithm {run.algorithm_ms:.1f} ms/pod, attempt {run.attempt_ms:.1f} ms/pod")
            if with_extender:
                log(f"  extender (p50 ms, p99 ms, requests): { {v: run.latency(v) for v in VERBS} }")
            runs.append(run)
            clear(namespace_of(size, workload, with_extender, repeat), gateway)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="1000,5000", help="comma-separated node counts, ascending")
    parser.add_argument("--pods", type=int, default=400, help="pods per run")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="per node count: alone then with, the next round reversed"
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]
    workloads = args.workloads.split(",")
    if unknown := set(workloads) - set(WORKLOADS):
        parser.error(f"--workloads: no such workload {', '.join(sorted(unknown))}")

    log(f"starting a bench control plane in {STATE}")
    os.environ["MODELJOB_NODE_LEASE_SECONDS"] = str(NODE_LEASE_SECONDS)  # the plane's scripts read it
    control_plane("down.sh")
    control_plane("up.sh")
    [port] = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/scheduler"
    document = yaml.safe_load(EXTENDERS.read_text())
    document["extenders"][0]["urlPrefix"] = url
    extenders = STATE / "extenders.yaml"
    extenders.write_text(yaml.safe_dump(document))
    extender: subprocess.Popen[bytes] | None = None
    runs: list[Run] = []
    try:
        gateway = PLANE.gateway(connections=WORKERS)
        extender = start_extender(port)
        node_bytes = 0
        for size in sizes:
            log(f"growing the cluster to {size} nodes")
            node_bytes = add_nodes(gateway, size)
            wait_extender_nodes(base, size)
            for workload in workloads:
                runs += run_rounds(
                    gateway, base, extenders, size=size, workload=workload, pods=args.pods, rounds=args.rounds
                )
        text = render(runs, node_bytes, rounds=args.rounds)
        print(text)
        log(f"wrote {SECTION!r} in {write_section(text)}")
    finally:
        if extender is not None:
            extender.send_signal(signal.SIGTERM)
            try:
                extender.wait(timeout=15)
            except subprocess.TimeoutExpired:
                extender.kill()
        if not args.keep:
            control_plane("down.sh")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
