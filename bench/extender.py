"""Scheduler-extender benchmark: kube-scheduler's per-pod time with and without the modeljob extender
at 1,000 and 5,000 fake 8-GPU nodes, and the extender's own latency per verb. Rewrites the
`## Scheduler extender` section of docs/benchmarks.md.

It runs its own control plane (registered as "bench-extender" in tests/cluster.py) and removes
it at the end, so a development cluster and its tests are left alone.
The extender runs as a separate process (`modeljob extender`), configured by
hack/extender/extenders.yaml (nodeCacheCapable: true) pointed at its port.

    python bench/extender.py [--nodes 1000,5000] [--workloads uniform,mixed] [--pods 400]
                             [--rounds 2] [--own-cpu] [--keep]

For each node count and workload (uniform: 1 GPU, 1 CPU, 1 GiB each; mixed: 1, 2, 4 and 8 GPUs in
turn, 1 CPU and 1 GiB per GPU), kube-scheduler is restarted without and with the extender, in the
order alone, with, with, alone (two rounds: a drift in the machine's load over the minutes of a
row weighs on both alike), and each run gets the same batch of pods from an empty cluster (created
by 16 threads at once, so kube-scheduler meets them in an order that differs from run to run); the
table pools the runs of each kind. Per-pod time is read from
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]  # modeljob, and tests.cluster

from extender_report import SECTION, VERBS, WORKLOADS, Buckets, Run, render  # noqa: E402
from operator_throughput import SETTLE_SECONDS, wait_schedulable  # noqa: E402
from report import write_section  # noqa: E402

from modeljob.adapters.cluster import ClusterGateway  # noqa: E402
from modeljob.commands.nodes import apply_nodes  # noqa: E402
from tests.cluster import (  # noqa: E402
    BENCH_NODE_LEASE_SECONDS,
    CONTROL_PLANES,
    NODE_LEASE_VARIABLE,
    create_ready_namespace,
    free_ports,
    gpu_node_manifests,
    http_get,
    kubectl,
    kwok_pod,
    one_cpu_apart,
    poll,
    popen_on,
    sample_sum,
)

PLANE = CONTROL_PLANES["bench-extender"]
STATE = PLANE.state
EXTENDERS = REPO / "hack" / "extender" / "extenders.yaml"
WORKERS = 16
# The fake nodes' Lease (tests/cluster.py says why); both runs of a row see the same.
NODE_LEASE_SECONDS = BENCH_NODE_LEASE_SECONDS
POLL_SECONDS = 0.5


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


def gpu_pod(name: str, index: int, workload: str) -> dict[str, Any]:
    cycle = WORKLOADS[workload]
    gpus = cycle[index % len(cycle)]
    return kwok_pod(name, gpus=gpus, cpu=str(gpus), memory=f"{gpus}Gi")


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
            # kcm lifts the not-ready taint of new nodes a few a second (minutes at 5,000), and
            # each lift is a node update both schedulers' caches take in while they are timed.
            wait_schedulable(gateway, set(names))
            return len(json.dumps(ready[0], separators=(",", ":")))
        time.sleep(max(2.0, count / 500))  # each poll lists every node: ~20 MB at 5,000
    raise SystemExit(f"fewer than {count} nodes Ready after 900 s")


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


def start_extender(port: int, cpus: set[int] | None) -> subprocess.Popen[bytes]:
    """`modeljob extender` on ``port`` (on ``cpus`` alone, if given), once it answers /healthz."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO / "operator"),
        "KUBECONFIG": str(STATE / "kubeconfig"),
        "MODELJOB_LOGGING__LEVEL": "WARNING",
    }
    with (STATE / "logs" / "modeljob-extender.log").open("ab") as log_file:
        process = popen_on(
            cpus,
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
    parser.add_argument(
        "--own-cpu",
        action="store_true",
        help="the extender on one CPU alone, the control plane and this script on the others (prints only)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]
    workloads = args.workloads.split(",")
    if unknown := set(workloads) - set(WORKLOADS):
        parser.error(f"--workloads: no such workload {', '.join(sorted(unknown))}")

    log(f"starting a bench control plane in {STATE}")
    os.environ[NODE_LEASE_VARIABLE] = str(NODE_LEASE_SECONDS)  # the plane's scripts read it
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
        cpus = one_cpu_apart(PLANE) if args.own_cpu else None
        if cpus is not None:
            log(f"the extender on CPU {sorted(cpus)}; the control plane and this script on the others")
        extender = start_extender(port, cpus)
        node_bytes = 0
        for size in sizes:
            log(f"growing the cluster to {size} nodes")
            node_bytes = add_nodes(gateway, size)
            wait_extender_nodes(base, size)
            for workload in workloads:
                runs += run_rounds(
                    gateway, base, extenders, size=size, workload=workload, pods=args.pods, rounds=args.rounds
                )
        text = render(
            runs,
            node_bytes,
            rounds=args.rounds,
            node_lease_seconds=NODE_LEASE_SECONDS,
            settle_seconds=SETTLE_SECONDS,
            own_cpu=args.own_cpu,
        )
        print(text)
        if not args.own_cpu:  # the docs' section is the shared machine's; --own-cpu is read beside it
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
