"""Operator benchmarks: binding throughput against kube-scheduler on 1,000 and 5,000 fake nodes in
one run, side by side, and the operator's memory at each. Rewrites `## Operator` in docs/benchmarks.md.

It runs its own control plane (registered as "bench-operator" in tests/cluster.py) and removes
it at the end, so a development cluster and its tests are left alone.

    python bench/operator_throughput.py [--nodes 1000,5000] [--pods 2000] [--total-pods 5000] [--keep]
        [--no-write]

Throughput is "pods bound per second from the first submission": kube-scheduler gets N plain
pods (1 GPU each) created by this script; the operator gets N / 4 ModelJobs of 4 replicas (1 GPU
each), and itself creates every pod on its node (the create binds it). Both are timed from the
first create to the moment the API server lists no unbound pod in the namespace (polled).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]  # modeljob, and tests.cluster

from report import write_section  # noqa: E402

from modeljob.adapters.cluster import ClusterGateway  # noqa: E402
from modeljob.commands.nodes import apply_nodes, wait_until_ready  # noqa: E402
from tests.cluster import (  # noqa: E402
    CONTROL_PLANES,
    KWOK_IMAGE,
    ControlPlaneError,
    create_ready_namespace,
    gpu_node_manifests,
    kubectl,
    kwok_pod,
    sample_sum,
    start_operator,
)

PLANE = CONTROL_PLANES["bench-operator"]
STATE = PLANE.state
WORKERS = 32
REPLICAS = 4
POLL_SECONDS = 0.25


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.M)


def api_requests(kubeconfig: Path = PLANE.kubeconfig) -> Counter[str]:
    """Requests the API server has served so far, by verb, resource and subresource (its metrics).
    Watches and the long-running calls are left out: they are not work per pod."""
    counts: Counter[str] = Counter()
    for match in REQUEST.finditer(kubectl(kubeconfig, "get", "--raw", "/metrics").stdout):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        if labels.get("verb") in ("WATCH", "CONNECT"):
            continue
        resource = labels.get("resource", "") + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        counts[f"{labels.get('verb')} {resource}"] += int(float(match.group("value")))
    return counts


def mean(text: str, histogram: str) -> float:
    """A histogram's mean observation in a Prometheus exposition (NaN before the first)."""
    count = sample_sum(text, f"{histogram}_count")
    return sample_sum(text, f"{histogram}_sum") / count if count else float("nan")


def in_parallel(work: Callable[[Any], object], items: list[Any]) -> None:
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(work, items))


def wait_all_bound(gateway: ClusterGateway, namespace: str, expected: int, timeout: float = 900) -> float:
    """Seconds until ``expected`` pods exist in ``namespace`` and none is unbound (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Cheap polls: the unbound pods (few), and the total from a one-item list's count.
        unbound = gateway.list_pods(namespace, field_selector="spec.nodeName=")
        if not unbound and gateway.count_pods(namespace) >= expected:
            return time.monotonic()
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"{namespace}: pods still unbound after {timeout} s")


def plain_pod(name: str) -> dict[str, Any]:
    return kwok_pod(name, gpus=1, cpu="1", memory="1Gi")


def model_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"parameters": "1B"},
            "replicas": REPLICAS,
            "resources": {"gpus": 1, "cpu": "1", "memory": "1Gi", "ephemeralStorage": "1Gi"},
            "template": {"spec": {"containers": [{"name": "main", "image": KWOK_IMAGE}]}},
        },
    }


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS), or another of /proc's memory fields (VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_cpu() -> dict[str, float]:
    return {
        name: cpu_seconds(int((STATE / "pids" / f"{name}.pid").read_text()))
        for name in ("kube-apiserver", "etcd", "kube-scheduler", "kwok", "kube-controller-manager")
    }


@dataclass
class SizeRun:
    """One node count's runs: kube-scheduler's and the operator's, on the same nodes."""

    nodes: int
    pods: int
    scheduler_seconds: float
    operator_seconds: float
    scheduler_cpu: dict[str, float]
    operator_cpu: dict[str, float]
    scheduler_requests: Counter[str]
    operator_requests: Counter[str]
    cycles: float
    cycle_mean: float
    binding_mean: float
    idle_rss: float
    loaded_rss: float
    pods_total: int


def add_nodes(gateway: ClusterGateway, count: int) -> None:
    """Fake 8-GPU nodes bench-00000 .. up to ``count`` (those there already are kept), Ready."""
    names = [f"bench-{i:05d}" for i in range(count)]
    apply_nodes(gateway, gpu_node_manifests(names), workers=WORKERS)
    if wait_until_ready(gateway, set(names), timeout_seconds=1800) != set(names):
        raise SystemExit("the fake nodes did not become Ready")
    wait_schedulable(gateway, set(names))


# Taints kcm's node lifecycle controller puts on a node that is (or was) not Ready, and lifts some
# time after it is: until then neither scheduler may place pods there.
UNSCHEDULABLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def wait_schedulable(gateway: ClusterGateway, names: set[str], timeout: float = 1800) -> None:
    """Until every node of ``names`` has been Ready for SETTLE_SECONDS and none carries a not-ready
    or unreachable taint. kcm taints a node it sees not Ready (a restarted control plane's kwok
    turns every node's Ready over again) and lifts the taint a few nodes a second, behind its own
    writes: a run begun before would measure that, and the first scheduler would take the few nodes
    free of them (one run at 1,000 nodes found 359 still tainted three minutes after they were all
    Ready, and the operator's jobs waiting for room; another began while kcm had not tainted them
    yet, and 912 were tainted 30 s later)."""
    deadline = time.monotonic() + timeout
    turned_over_by = time.monotonic() + TURN_OVER_SECONDS
    while True:
        now = datetime.now(UTC)
        # A restarted control plane's nodes still show the Ready of the last run until kwok turns
        # them over, and kcm taints them as it does: wait for that, unless it does not come.
        since = PLANE_STARTED if time.monotonic() < turned_over_by else None
        unsettled = [
            node["metadata"]["name"]
            for node in gateway.list_nodes()
            if node["metadata"]["name"] in names and not _settled(node, now, since=since)
        ]
        if not unsettled:
            return
        if time.monotonic() >= deadline:
            raise SystemExit(f"{len(unsettled)} nodes not settled Ready and untainted, e.g. {unsettled[0]}")
        time.sleep(1.0)


SETTLE_SECONDS = 20.0  # kcm's node lifecycle controller looks at each node every 5 s
TURN_OVER_SECONDS = 120.0  # kcm marks a node it has not heard of for 40 s not Ready
PLANE_STARTED = datetime.now(UTC)  # set again as main() starts the control plane


def _settled(node: dict[str, Any], now: datetime, *, since: datetime | None = None) -> bool:
    """Ready (turned so after ``since``, if given) for SETTLE_SECONDS, and free of kcm's taints."""
    if any(t.get("key") in UNSCHEDULABLE_TAINTS for t in (node.get("spec") or {}).get("taints") or []):
        return False
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None
    )
    if ready is None or ready.get("status") != "True":
        return False
    turned = datetime.fromisoformat(str(ready.get("lastTransitionTime", "")).replace("Z", "+00:00"))
    return (since is None or turned >= since) and (now - turned).total_seconds() >= SETTLE_SECONDS


@dataclass(frozen=True)
class Binding:
    """One scheduler's run: seconds until every pod was bound, CPU seconds per process and the API
    server's requests meanwhile."""

    seconds: float
    cpu: dict[str, float]
    requests: Counter[str]


def run_size(gateway: ClusterGateway, nodes: int, pods: int, *, top_up_to: int) -> SizeRun:
    """kube-scheduler binds ``pods`` plain pods, then a fresh operator binds as many pods of
    4-replica ModelJobs, on the same ``nodes``; the operator's memory after topping the cluster up
    to ``top_up_to`` pods (if more than it holds)."""
    log(f"{nodes} nodes: kube-scheduler, {pods} pods")
    add_nodes(gateway, nodes)
    scheduler = _scheduler_binds(gateway, nodes, pods)

    log(f"{nodes} nodes: starting the operator")
    operator_log = STATE / "logs" / f"modeljob-operator-{nodes}.log"
    level = os.environ.get("MODELJOB_LOGGING__LEVEL", "WARNING")
    operator = start_operator(
        PLANE.kubeconfig, operator_log, {"MODELJOB_LOGGING__LEVEL": level}, timeout_seconds=300
    )
    try:
        idle_rss = rss_mib(operator.process.pid)
        wait_schedulable(gateway, {f"bench-{i:05d}" for i in range(nodes)})  # none flapped meanwhile
        ours = _operator_binds(gateway, operator.process.pid, nodes, pods)
        _top_up(gateway, nodes, top_up_to)
        log("letting the watches settle")
        time.sleep(20)
        text = operator.metrics()
        return SizeRun(
            nodes=nodes,
            pods=pods,
            scheduler_seconds=scheduler.seconds,
            operator_seconds=ours.seconds,
            scheduler_cpu=scheduler.cpu,
            operator_cpu=ours.cpu,
            scheduler_requests=scheduler.requests,
            operator_requests=ours.requests,
            cycles=sample_sum(text, "modeljob_scheduling_cycle_duration_seconds_count"),
            cycle_mean=mean(text, "modeljob_scheduling_cycle_duration_seconds"),
            binding_mean=mean(text, "modeljob_binding_duration_seconds"),
            idle_rss=idle_rss,
            loaded_rss=rss_mib(operator.process.pid),
            pods_total=len(gateway.list_pods()),
        )
    finally:
        if operator.process.poll() is None:
            operator.process.send_signal(signal.SIGTERM)
            operator.process.wait(timeout=60)


def _scheduler_binds(gateway: ClusterGateway, nodes: int, pods: int) -> Binding:
    """kube-scheduler binds ``pods`` plain pods in a namespace of their own."""
    namespace = f"bench-kube-scheduler-{nodes}"
    create_ready_namespace(gateway, namespace)
    cpu_before, requests_before = control_plane_cpu(), api_requests()
    started = time.monotonic()
    in_parallel(lambda i: gateway.create_pod(namespace, plain_pod(f"p-{i:05d}")), list(range(pods)))
    seconds = wait_all_bound(gateway, namespace, pods) - started
    cpu = {k: v - cpu_before[k] for k, v in control_plane_cpu().items()}
    return Binding(seconds, cpu, api_requests() - requests_before)


def _operator_binds(gateway: ClusterGateway, pid: int, nodes: int, pods: int) -> Binding:
    """The operator (process ``pid``) binds ``pods`` pods of 4-replica ModelJobs; its own CPU
    seconds are counted beside the control plane's."""
    jobs = pods // REPLICAS
    log(f"{nodes} nodes: operator, {jobs} ModelJobs x {REPLICAS} replicas")
    namespace = f"bench-operator-{nodes}"
    create_ready_namespace(gateway, namespace)
    manifests = [model_job(f"job-{i:05d}") for i in range(jobs)]
    cpu_before, requests_before = control_plane_cpu(), api_requests()
    operator_cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    in_parallel(lambda m: create_modeljob(gateway, namespace, m), manifests)
    seconds = wait_all_bound(gateway, namespace, jobs * REPLICAS) - started
    cpu = {k: v - cpu_before[k] for k, v in control_plane_cpu().items()}
    cpu["modeljob operator"] = cpu_seconds(pid) - operator_cpu_before
    return Binding(seconds, cpu, api_requests() - requests_before)


def _top_up(gateway: ClusterGateway, nodes: int, top_up_to: int) -> None:
    """Plain pods until the cluster holds ``top_up_to`` (none if it holds that many already)."""
    extra = top_up_to - len(gateway.list_pods())
    if extra > 0:
        log(f"topping the cluster up to {top_up_to} pods")
        namespace = f"bench-extra-{nodes}"
        create_ready_namespace(gateway, namespace)
        in_parallel(lambda i: gateway.create_pod(namespace, plain_pod(f"x-{i:05d}")), list(range(extra)))
        wait_all_bound(gateway, namespace, extra)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="1000,5000", help="comma-separated node counts, ascending")
    parser.add_argument("--pods", type=int, default=2000, help="pods bound by each scheduler (multiple of 4)")
    parser.add_argument(
        "--total-pods", type=int, default=5000, help="pods in the cluster for the memory reading"
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave the docs alone")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.nodes.split(","))

    log(f"starting a bench control plane in {STATE}")
    global PLANE_STARTED  # noqa: PLW0603 - this run's start, which wait_schedulable reads
    PLANE_STARTED = datetime.now(UTC)
    PLANE.run("up.sh")
    try:
        gateway = PLANE.gateway(connections=WORKERS)
        kubectl(
            PLANE.kubeconfig,
            "apply",
            "--server-side",
            "-f",
            str(REPO / "crds" / "modeljob.dev_modeljobs.yaml"),
        )
        # Each size adds its nodes to the last one's, and its pods to those already bound: both
        # schedulers of one size find the same nodes and the same pods.
        runs = [run_size(gateway, n, args.pods, top_up_to=args.total_pods) for n in sizes]
        load = os.getloadavg()[2]
    finally:
        if not args.keep:
            with contextlib.suppress(ControlPlaneError):
                PLANE.run("down.sh")
    section = render(runs, load=load)
    if not args.no_write:
        write_section(section)
    print(section)
    return 0


def render(runs: list[SizeRun], *, load: float) -> str:
    jobs = runs[0].pods // REPLICAS
    pods = runs[0].pods
    columns = [f"{r.nodes} nodes" for r in runs]
    rows = [
        (
            f"kube-scheduler: {pods} pods (1 GPU each) bound, from the first create",
            [f"{r.scheduler_seconds:.1f} s = {r.pods / r.scheduler_seconds:.0f} pods/s" for r in runs],
        ),
        (
            f"operator: {jobs} ModelJobs x {REPLICAS} replicas sized, planned as gangs, created and bound",
            [f"{r.operator_seconds:.1f} s = {r.pods / r.operator_seconds:.0f} pods/s" for r in runs],
        ),
        ("operator / kube-scheduler", [f"{r.scheduler_seconds / r.operator_seconds:.2f}x" for r in runs]),
        (
            "operator: mean scheduling cycle (snapshot, plan, act)",
            [f"{r.cycle_mean * 1000:.0f} ms over {r.cycles:.0f}" for r in runs],
        ),
        ("operator: mean pod create + bind", [f"{r.binding_mean * 1000:.1f} ms" for r in runs]),
        ("operator resident memory (VmRSS), no ModelJobs", [f"{r.idle_rss:.0f} MiB" for r in runs]),
        (
            "operator resident memory (VmRSS), after its run and the top-up",
            [f"{r.loaded_rss:.0f} MiB with {r.pods_total} pods" for r in runs],
        ),
    ]
    table = "\n".join(
        [
            f"| what | {' | '.join(columns)} |",
            f"| --- |{' ---: |' * len(runs)}",
            *(f"| {what} | {' | '.join(values)} |" for what, values in rows),
        ]
    )
    details = "\n\n".join(_details(r) for r in runs)
    sizes = " and ".join(str(r.nodes) for r in runs)
    return f"""## Operator

Measured by `bench/operator_throughput.py` (`make bench`) on {datetime.now(UTC):%Y-%m-%d}, on a machine with
{os.cpu_count()} CPUs, against its own local control plane (Kubernetes v1.36.3, kwok v0.8.0) with
{sizes} fake 8-GPU nodes, in one run: for each node count kube-scheduler binds its pods, then the
operator (started afresh) binds as many, on the same nodes beside the pods already bound. The
control plane, kwok, the operator and this script share the machine's CPUs, so both throughputs
are lower bounds of what each scheduler can do alone (the 15-minute load average at the end of
the run was {load:.1f}: other work was running too). kube-scheduler runs with its default client
rate limit (50 requests/s), which caps its bindings.

{table}

{details}

{PROSE}"""


def _details(run: SizeRun) -> str:
    """CPU seconds and API requests of one node count's two runs."""
    cpu_rows = [
        "| process | CPU seconds while kube-scheduler bound | CPU seconds while the operator bound |",
        "| --- | ---: | ---: |",
        *(
            f"| {name} | {run.scheduler_cpu.get(name, 0.0):.1f} | {run.operator_cpu[name]:.1f} |"
            for name in run.operator_cpu
        ),
    ]
    scheduler, operator, pods = run.scheduler_requests, run.operator_requests, run.pods
    kinds = sorted(set(scheduler) | set(operator), key=lambda k: -(scheduler[k] + operator[k]))
    request_rows = [
        "| request | while kube-scheduler bound | per pod | while the operator bound | per pod |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {kind} | {scheduler[kind]} | {scheduler[kind] / pods:.2f} "
            f"| {operator[kind]} | {operator[kind] / pods:.2f} |"
            for kind in kinds
            if scheduler[kind] + operator[kind] >= pods // 20
        ),
        f"| all | {sum(scheduler.values())} | {sum(scheduler.values()) / pods:.2f} "
        f"| {sum(operator.values())} | {sum(operator.values()) / pods:.2f} |",
    ]
    return f"""At {run.nodes} nodes, CPU time used during each run (the machine has {os.cpu_count()} CPUs):

{chr(10).join(cpu_rows)}

At {run.nodes} nodes, requests the API server served during each run (its `apiserver_request_total`,
watches left out; kinds under 5% of the pod count not shown, but counted in *all*):

{chr(10).join(request_rows)}"""


PROSE = f"""kube-scheduler binds pods someone else created (here: this script, {WORKERS} threads); the
operator also creates them (one POST per pod, made on its node so that the create binds it; the
runs before 2026-12-03 evening also posted a pods/binding per pod) and each job's headless Service
(the pods' DNS names for rendezvous, whose Endpoints and EndpointSlices the controllers then
write), and each job costs three status writes: the plan (written before any pod exists, so a
crash never leaves a half-bound gang unknown, and carrying the job's admission: validated,
sized, queued), Scheduled and Running. Those are custom-resource writes, JSON only, validated
against the CRD's schema and CEL rules, with managed fields: a CPU profile of the API server
during an earlier run (`kubectl get --raw /debug/pprof/profile`) put 22% of its time in
custom-resource handling. The ratio depends on what else the machine runs. Earlier runs at 1,000
nodes, before admission moved into the loop (each job then also cost kopf's annotation patch and
a separate admission write): 0.85x and 0.77x on an otherwise idle machine (2026-11-23), 0.80x
(morning of 2026-12-03), 0.53x with the Services' endpoint writes and other work on the machine
(afternoon of 2026-12-03), and 0.40-0.50x in eight runs beside two CPU-bound trace replays
(2026-11-23). The operator's chain of writes per job is more sensitive to CPU contention than
kube-scheduler's one binding per pod; more workers (MODELJOB_SCHEDULING__JOB_WORKERS=32,
BIND_WORKERS=64) did not help under contention. docs/operator.md says what would shorten the
chain. Each scheduler's run starts once every node has been Ready for 20 s and carries no
not-ready or unreachable taint: runs before 2026-12-03 22:00 began while kcm was still lifting the
taints it put on every node of the restarted control plane (a few nodes a second, behind its own
writes), so the operator, running second, often found the few untainted nodes filled by
kube-scheduler's pods and its jobs waiting for room (378 status writes of one run were such waits).
"""


def create_modeljob(gateway: ClusterGateway, namespace: str, manifest: dict[str, Any]) -> None:
    gateway.create_modeljob(namespace, manifest)


if __name__ == "__main__":
    raise SystemExit(main())
