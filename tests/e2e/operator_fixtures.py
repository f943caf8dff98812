"""Running the operator for e2e tests: a real `python -m modeljob run` subprocess, node pools, ModelJobs.

The test modules wrap `install_crds`, `operators` and `pools` in fixtures. Each test gets its own
pool of fake GPU nodes, tainted and labelled with the test's namespace, and its jobs select and
tolerate exactly that pool; so tests never compete for GPUs, and the `mixed` preset nodes stay
free for the examples. The operator runs as a subprocess so that SIGKILL is real.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modeljob.adapters import node_catalog
from modeljob.adapters.cluster_errors import ClusterError, NotFoundError
from modeljob.commands.nodes import apply_nodes, wait_until_ready
from tests.cluster import (
    KWOK_IMAGE,
    ControlPlaneError,
    OperatorProcess,
    condition_taints_lifted,
    kwok_pod,
    sample_sum,
    start_operator,
)
from tests.e2e.kube import Cluster, wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "modeljob.dev_modeljobs.yaml"
QUEUE_CRD = REPO / "crds" / "modeljob.dev_queues.yaml"
POOL_KEY = "modeljob.dev/e2e-pool"
IDENTITY = "e2e-operator"  # one Lease holder for every operator the tests start: a restart leads at once

GROUP, VERSION, PLURAL = "modeljob.dev", "v1alpha1", "modeljobs"


@dataclass
class Operator:
    """One `modeljob run` process; start(), kill() (SIGKILL), stop() (SIGTERM)."""

    cluster: Cluster
    log_path: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    running: OperatorProcess | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} =====\n".encode())
        settings = {
            "MODELJOB_LEADER_ELECTION__IDENTITY": IDENTITY,
            "MODELJOB_SCHEDULING__NODE_LOST_AFTER_SECONDS": "0",
            "MODELJOB_SCHEDULING__RESYNC_SECONDS": "2",
            **self.settings,
        }
        try:
            self.running = start_operator(self.cluster.kubeconfig, self.log_path, settings)
        except ControlPlaneError as exc:
            pytest.fail(str(exc))

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.running.process if self.running is not None else None

    def healthy(self) -> bool:
        return self.running is not None and self.running.healthy()

    def metrics(self) -> str:
        assert self.running is not None, "the operator is not running"
        return self.running.metrics()

    def cycles(self) -> float:
        """Scheduling cycles completed so far (the cycle histogram's count on /metrics)."""
        return sample_sum(self.metrics(), "modeljob_scheduling_cycle_duration_seconds_count")

    def wait_cycles_after_now(self, *, timeout_seconds: float = 30) -> None:
        """Wait until a whole scheduling cycle has started and finished after this call: two more
        completions than now (the first may be a cycle already running with an older snapshot).
        The positive signal that the operator has looked at the cluster as it is now."""
        seen = self.cycles()
        wait_for(
            lambda: self.cycles() >= seen + 2,
            f"two scheduling cycles after {seen:.0f}",
            timeout_seconds=timeout_seconds,
        )

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        self.running = None

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        self.running = None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def install_crds(cluster: Cluster) -> None:
    """The ModelJob and Queue CRDs, installed and established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(QUEUE_CRD))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/modeljobs.modeljob.dev")
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/queues.modeljob.dev")


def operators(cluster: Cluster, tmp_path: Path) -> Iterator[Any]:
    """For a fixture: yields start(**settings) (MODELJOB_* -> value); every operator started is
    stopped afterwards and its log printed (pytest shows it when the test failed)."""
    started: list[Operator] = []

    def start(**settings: str) -> Operator:
        operator = Operator(
            cluster=cluster, log_path=tmp_path / f"operator-{len(started)}.log", settings=settings
        )
        started.append(operator)
        operator.start()
        return operator

    yield start
    for operator in started:
        operator.stop()
        # Shown by pytest only when the test failed: the operator's own account of what it did.
        print(f"--- {operator.log_path} ---\n{operator.log_tail(200)}")


@dataclass
class Pool:
    """Fake GPU nodes only this test's jobs can use (taint + label = the namespace)."""

    cluster: Cluster
    name: str
    nodes: list[str] = field(default_factory=list)

    def add(self, prefix: str, count: int, *, preset_group: int = 0) -> list[str]:
        """``count`` nodes shaped like the `mixed` preset's group ``preset_group`` (0 = H100, 2 = L4)."""
        group = node_catalog.PRESETS["mixed"][preset_group]
        manifests = []
        names = []
        for index in range(len(self.nodes), len(self.nodes) + count):
            spec = group.nodes()[0]
            name = f"{self.name}-{prefix}-{index}"
            manifest = node_catalog.node_manifest(
                node_catalog.NodeSpec(
                    name=name,
                    cpu_milli=spec.cpu_milli,
                    memory_bytes=spec.memory_bytes,
                    ephemeral_storage_bytes=spec.ephemeral_storage_bytes,
                    gpus=spec.gpus,
                    gpu=spec.gpu,
                )
            )
            manifest["metadata"]["labels"][POOL_KEY] = self.name
            manifest["spec"]["taints"] = [{"key": POOL_KEY, "value": self.name, "effect": "NoSchedule"}]
            manifests.append(manifest)
            names.append(name)
        apply_nodes(self.cluster.gateway, manifests, workers=4)
        ready = wait_until_ready(self.cluster.gateway, set(names), timeout_seconds=60)
        assert ready == set(names), f"pool nodes not Ready: {sorted(set(names) - ready)}"
        wait_for(
            lambda: condition_taints_lifted(self.cluster.gateway, set(names)),
            "kcm to lift the not-ready taint from the pool's new nodes",
        )
        self.nodes.extend(names)
        return names

    def delete(self, name: str) -> None:
        self.cluster.gateway.delete_node(name)
        self.nodes.remove(name)

    def template(self, image: str = KWOK_IMAGE) -> dict[str, Any]:
        """A pod template that lands only on this pool."""
        return {
            "spec": {
                "containers": [{"name": "main", "image": image}],
                "nodeSelector": {POOL_KEY: self.name},
                "tolerations": [
                    {"key": POOL_KEY, "operator": "Equal", "value": self.name, "effect": "NoSchedule"}
                ],
                "terminationGracePeriodSeconds": 0,
            }
        }


def pools(cluster: Cluster, namespace: str) -> Iterator[Pool]:
    """For a fixture: yields this test's (empty) node pool, deleting its nodes afterwards."""
    created = Pool(cluster=cluster, name=namespace)
    yield created
    for name in list(created.nodes):
        with contextlib.suppress(NotFoundError):
            cluster.gateway.delete_node(name)


# --- ModelJobs ----------------------------------------------------------------------------------


def model_job(
    name: str,
    pool: Pool | None,
    *,
    parameters: str = "8B",
    replicas: int = 1,
    gpus: int | None = None,
    products: Sequence[str] = (),
    expected_duration: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A small inference ModelJob; ``gpus`` pins each replica's GPU count (spec.resources.gpus)."""
    body: dict[str, Any] = {
        "model": {"parameters": parameters, "precision": "bf16"},
        "workload": {"type": "Inference", "sequenceLength": 4096, "batchSize": 1},
        "replicas": replicas,
        "template": pool.template()
        if pool is not None
        else {"spec": {"containers": [{"name": "m", "image": "x"}]}},
    }
    if gpus is not None:
        body["resources"] = {"gpus": gpus}
    if products:
        body["accelerator"] = {"products": list(products)}
    if expected_duration is not None:
        body["scheduling"] = {"expectedDuration": expected_duration}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelJob", "metadata": {"name": name}, "spec": body}


def apply(cluster: Cluster, namespace: str, *documents: Mapping[str, Any]) -> None:
    stdin = "\n---\n".join(json.dumps(d) for d in documents)
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=stdin)


def get_job(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.gateway.read_modeljob(namespace, name)


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    try:
        return dict(get_job(cluster, namespace, name).get("status") or {})
    except ClusterError:
        return {}


def phase(cluster: Cluster, namespace: str, name: str) -> str | None:
    return status(cluster, namespace, name).get("phase")


def wait_phase(
    cluster: Cluster, namespace: str, name: str, expected: str, *, timeout_seconds: float = 30
) -> dict[str, Any]:
    wait_for(
        lambda: phase(cluster, namespace, name) == expected,
        f"{namespace}/{name} to be {expected} (it is {phase(cluster, namespace, name)}: "
        f"{status(cluster, namespace, name).get('message')})",
        timeout_seconds=timeout_seconds,
    )
    return status(cluster, namespace, name)


def job_pods(cluster: Cluster, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    pods = cluster.gateway.list_pods(namespace)
    if name is None:
        return pods
    return [p for p in pods if (p["metadata"].get("labels") or {}).get("modeljob.dev/job") == name]


def events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    """(reason, message) of the Events about one ModelJob, oldest first."""
    items = cluster.gateway.list_events(namespace, field_selector=f"involvedObject.name={name}")
    items.sort(key=lambda e: (e.get("firstTimestamp") or "", e["metadata"].get("resourceVersion", "")))
    return [(str(e.get("reason")), str(e.get("message"))) for e in items]


def wait_event(
    cluster: Cluster, namespace: str, name: str, reason: str, *, count: int = 1, timeout_seconds: float = 30
) -> list[str]:
    """The messages of the Events with ``reason`` about one ModelJob, once there are ``count``.
    The operator posts an Event after the status write it reports, so a test that has seen the
    status waits here for the Event."""
    found: list[str] = []

    def enough() -> bool:
        found[:] = [message for r, message in events(cluster, namespace, name) if r == reason]
        return len(found) >= count

    wait_for(enough, f"{count} {reason} Event(s) on {namespace}/{name}", timeout_seconds=timeout_seconds)
    return found


def hold_gpus(cluster: Cluster, namespace: str, pool: Pool, name: str, *, node: str, gpus: int) -> None:
    """A plain pod, bound by kube-scheduler to ``node`` of the pool, holding ``gpus`` GPUs."""
    template = pool.template()["spec"]
    pod = kwok_pod(
        name,
        gpus=gpus,
        node_selector={**template["nodeSelector"], "kubernetes.io/hostname": node},
        tolerations=template["tolerations"],
    )
    cluster.gateway.create_pod(namespace, pod)
    wait_for(
        lambda: (cluster.gateway.read_pod(namespace, name).get("status") or {}).get("phase") == "Running",
        f"pod {name} to run",
    )
