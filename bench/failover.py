"""Failover benchmark: SIGKILL the leader of two operator replicas, time until the standby's first bind.

Two `modeljob run` processes with the chart's defaults (leader election on, kube-scheduler's
15 s / 10 s / 2 s) share a small pool of fake nodes. Each round waits until both are warm and the
leader has renewed, waits a random part of a retry period (seeded: the kill lands anywhere in the
renew cycle), SIGKILLs the leader, creates one 1-GPU ModelJob at once and polls until its pod is
bound; the killed replica is started again (it comes back as the standby). At the end every job
must have exactly one pod, bound, and one Scheduled Event: no double bind. Rewrites `## Failover`
in docs/benchmarks.md.

It uses the "bench-operator" control plane (as bench/operator_throughput.py does, one after the
other) and stops it at the end unless --keep.

    python bench/failover.py [--kills 20] [--seed 17] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Mapping
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
    OperatorProcess,
    create_ready_namespace,
    gpu_node_manifests,
    kubectl,
    poll,
    sample_sum,
    start_operator,
)

PLANE = CONTROL_PLANES["bench-operator"]
NAMESPACE = "bench-failover"
LEASE = "modeljob-operator"
NODES = 4  # 8 GPUs each: room for 32 one-GPU jobs
POLL_SECONDS = 0.05


def log(message: str) -> None:
    print(f"[failover {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def model_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"parameters": "1B"},
            "resources": {"gpus": 1, "cpu": "1", "memory": "1Gi", "ephemeralStorage": "1Gi"},
            "template": {"spec": {"containers": [{"name": "main", "image": KWOK_IMAGE}]}},
        },
    }


class Replicas:
    """The two operator processes, by identity."""

    def __init__(
        self,
        logs: Path,
        *,
        kubeconfig: Path = PLANE.kubeconfig,
        lease_namespace: str = NAMESPACE,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """``settings`` (MODELJOB_* -> value) are added to every start (bench/chaos's lease timings)."""
        self.logs = logs
        self.kubeconfig, self.lease_namespace = kubeconfig, lease_namespace
        self.settings = dict(settings or {})
        self.running: dict[str, OperatorProcess] = {}

    def start(self, identity: str) -> None:
        settings = {
            "MODELJOB_LEADER_ELECTION__IDENTITY": identity,
            "MODELJOB_LEADER_ELECTION__LEASE_NAMESPACE": self.lease_namespace,
            "MODELJOB_LOGGING__LEVEL": os.environ.get("MODELJOB_LOGGING__LEVEL", "WARNING"),
            **self.settings,
        }
        log_path = self.logs / f"modeljob-operator-{identity}.log"
        self.running[identity] = start_operator(self.kubeconfig, log_path, settings, timeout_seconds=120)

    def kill(self, identity: str) -> None:
        process = self.running.pop(identity).process
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for identity in list(self.running):
            process = self.running.pop(identity).process
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                process.wait(timeout=30)

    def leads(self, identity: str) -> bool:
        return sample_sum(self.running[identity].metrics(), "modeljob_leader") == 1


def lease_spec() -> dict[str, Any]:
    listed = kubectl(PLANE.kubeconfig, "-n", NAMESPACE, "get", "lease", LEASE, "-o", "json", check=False)
    spec: dict[str, Any] = json.loads(listed.stdout)["spec"] if listed.returncode == 0 else {}
    return spec


def bound(gateway: ClusterGateway, job: str) -> bool:
    pods = gateway.list_pods(NAMESPACE)
    mine = [p for p in pods if (p["metadata"].get("labels") or {}).get("modeljob.dev/job") == job]
    return len(mine) == 1 and bool(mine[0]["spec"].get("nodeName"))


def one_round(gateway: ClusterGateway, replicas: Replicas, index: int, rng: random.Random) -> float:
    """Kill the leader, submit a job, return seconds from the kill to the job's pod bound."""
    poll(lambda: lease_spec().get("holderIdentity") in replicas.running, "a live replica holds the Lease")
    leader = str(lease_spec()["holderIdentity"])
    standby = next(i for i in replicas.running if i != leader)
    poll(lambda: replicas.leads(leader), f"{leader} leads", timeout_seconds=60)
    renewed = lease_spec().get("renewTime")
    poll(lambda: lease_spec().get("renewTime") != renewed, "a renewal", timeout_seconds=30)
    time.sleep(rng.uniform(0, 2.0))  # somewhere in the renew cycle, by the seed
    killed = time.monotonic()
    replicas.kill(leader)
    name = f"job-{index:03d}"
    gateway.create_modeljob(NAMESPACE, model_job(name))
    poll(lambda: bound(gateway, name), f"{name} bound", timeout_seconds=120, interval_seconds=POLL_SECONDS)
    took = time.monotonic() - killed
    if not replicas.leads(standby):
        raise SystemExit(f"round {index}: {name} was bound, but not by the standby {standby}")
    replicas.start(leader)  # back as the standby
    log(f"round {index}: {leader} killed, {standby} bound {name} after {took:.2f} s")
    return took


def check_no_double_bind(gateway: ClusterGateway, jobs: int) -> None:
    pods = gateway.list_pods(NAMESPACE)
    per_job: dict[str, int] = {}
    for pod in pods:
        job = (pod["metadata"].get("labels") or {}).get("modeljob.dev/job", "?")
        per_job[job] = per_job.get(job, 0) + 1
        if not pod["spec"].get("nodeName"):
            raise SystemExit(f"pod {pod['metadata']['name']} is not bound")
    events = gateway.list_events(NAMESPACE)
    scheduled: dict[str, int] = {}
    for event in events:
        if event.get("reason") == "Scheduled":
            name = str((event.get("involvedObject") or {}).get("name"))
            scheduled[name] = scheduled.get(name, 0) + int(event.get("count") or 1)
    if len(per_job) != jobs or set(per_job.values()) != {1} or set(scheduled.values()) != {1}:
        raise SystemExit(f"a job placed twice or not at all: pods {per_job}, Scheduled {scheduled}")


def report(times: list[float], *, seed: int) -> str:
    load = os.getloadavg()
    rows = "\n".join(f"| {i} | {t:.2f} |" for i, t in enumerate(times))
    return f"""## Failover

`python bench/failover.py --kills {len(times)} --seed {seed}` ({datetime.now(UTC):%Y-%m-%d},
{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end).
Two `modeljob run` replicas with the chart's defaults (Lease 15 s / 10 s / 2 s) on {NODES} fake
8-GPU nodes; each round SIGKILLs the leader at a seeded moment of its renew cycle and times one
1-GPU ModelJob from the kill to its pod bound by the standby. No double bind: every job has one
pod, bound, and one Scheduled Event.

| | seconds |
| --- | --- |
| median | {statistics.median(times):.2f} |
| max | {max(times):.2f} |
| min | {min(times):.2f} |

<details><summary>every round</summary>

| round | seconds |
| --- | --- |
{rows}

</details>
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--no-report", action="store_true", help="print, do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log(f"starting a bench control plane in {PLANE.state}")
    PLANE.run("up.sh")
    replicas = Replicas(PLANE.state / "logs")
    try:
        gateway = PLANE.gateway(connections=8)
        for crd in ("modeljob.dev_modeljobs.yaml", "modeljob.dev_queues.yaml"):
            kubectl(PLANE.kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds" / crd))
        names = [f"failover-{i}" for i in range(NODES)]
        apply_nodes(gateway, gpu_node_manifests(names), workers=4)
        if wait_until_ready(gateway, set(names), timeout_seconds=120) != set(names):
            raise SystemExit("the fake nodes did not become Ready")
        create_ready_namespace(gateway, NAMESPACE)
        replicas.start("replica-0")
        replicas.start("replica-1")
        times = [one_round(gateway, replicas, i, rng) for i in range(args.kills)]
        check_no_double_bind(gateway, args.kills)
    finally:
        replicas.stop_all()
        if not args.keep:
            with contextlib.suppress(ControlPlaneError):
                PLANE.run("down.sh")
    text = report(times, seed=args.seed)
    print(text)
    if not args.no_report:
        log(f"wrote {write_section(text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
