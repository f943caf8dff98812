"""The soak's world: its own control plane, fake nodes of two GPU types in two zones, two queues
under one parent, a kwok Stage that finishes training pods, and calls that ride out restarts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client  # type: ignore[import-untyped]

from modeljob.adapters import node_catalog
from modeljob.adapters.cluster import ClusterGateway, Watched
from modeljob.adapters.cluster_errors import AlreadyExistsError, ClusterError, NotFoundError
from modeljob.commands.nodes import apply_nodes, wait_until_ready
from tests.cluster import CONTROL_PLANES, REPO, create_ready_namespace, kubectl

PLANE = CONTROL_PLANES["chaos"]
NAMESPACE = "chaos"  # the well-formed jobs, and the operators' Lease
HOSTILE_NAMESPACE = "chaos-hostile"
LEASE = "modeljob-operator"
ZONE = "topology.kubernetes.io/zone"
ZONES = ("zone-a", "zone-b")
H100 = node_catalog.PRESETS["mixed"][0].nodes()[0]
L4 = node_catalog.PRESETS["mixed"][2].nodes()[0]
H100_PRODUCT, L4_PRODUCT = "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"  # the two nodes' product labels
FINISH_LABEL = "chaos.modeljob.dev/finish"  # kwok's chaos-pod-complete Stage ends these pods
GPU = "nvidia.com/gpu"
# Two teams under one parent that pools; team-b may borrow at most 8 H100 / 4 L4, team-a lends
# at most 4 of its L4. The checker holds every queue to these numbers (invariants.quota_limits).
QUEUES: Mapping[str, Mapping[str, Any]] = {
    "chaos-research": {},
    "chaos-a": {
        "parent": "chaos-research",
        "quota": [
            {"resource": GPU, "products": [H100_PRODUCT], "nominal": 32},
            {"resource": GPU, "products": [L4_PRODUCT], "nominal": 12, "lendingLimit": 4},
        ],
    },
    "chaos-b": {
        "parent": "chaos-research",
        # Preempting within itself too: a head's backfill then asks which of its own queue's
        # jobs it may really evict (the review of af563c9 found all of them counted).
        "preemption": {"reclaimBorrowed": True, "minRuntime": "0s", "withinQueue": "LowerPriority"},
        "quota": [
            {"resource": GPU, "products": [H100_PRODUCT], "nominal": 32, "borrowingLimit": 8},
            {"resource": GPU, "products": [L4_PRODUCT], "nominal": 12, "borrowingLimit": 4},
        ],
    },
}
RETRY_SECONDS = 240  # longer than any restart the soak causes
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[chaos {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def retry(call: Callable[[], T], what: str, *, timeout_seconds: float = RETRY_SECONDS) -> T:
    """``call`` until it returns; errors with no HTTP status (the API server or etcd restarting)
    and 5xx/429 are retried, others raised. TimeoutError after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            return call()
        except ClusterError as exc:
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still failing after {timeout_seconds} s: {exc}") from exc
        except client.ApiException as exc:
            if exc.status and exc.status < 500 and exc.status != 429:
                raise ClusterError(f"{what}: {exc.status} {exc.body}", status=exc.status) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still failing after {timeout_seconds} s: {exc}") from exc
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still failing after {timeout_seconds} s: {exc}") from exc
        except Exception as exc:  # urllib3 errors while the API server restarts
            if "urllib3" not in type(exc).__module__ or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


class Api:
    """The calls the soak makes, each retried through restarts (one instance per thread)."""

    def __init__(self) -> None:
        self.gateway: ClusterGateway = PLANE.gateway(connections=4)
        self.custom = client.CustomObjectsApi(self.gateway.api_client)

    def list(self, kind: Watched) -> list[dict[str, Any]]:
        return retry(lambda: self.gateway.list_collection(kind)[0], f"list {kind.value}")

    def events(self, namespace: str) -> list[dict[str, Any]]:
        """Every core/v1 Event in ``namespace`` (the API server keeps them an hour)."""
        core = client.CoreV1Api(self.gateway.api_client)

        def fetch() -> list[dict[str, Any]]:
            response = core.list_namespaced_event(namespace, _preload_content=False)
            items: list[dict[str, Any]] = json.loads(response.data)["items"]
            return items

        return retry(fetch, "list events")

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        with contextlib.suppress(AlreadyExistsError):  # an earlier try landed before a restart
            retry(lambda: self.gateway.create_modeljob(namespace, manifest), "create a ModelJob")

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        retry(
            lambda: self.custom.patch_namespaced_custom_object(
                "modeljob.dev", "v1alpha1", namespace, "modeljobs", name, dict(patch)
            ),
            f"patch {name}",
        )

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            retry(
                lambda: self.custom.delete_namespaced_custom_object(
                    "modeljob.dev", "v1alpha1", namespace, "modeljobs", name
                ),
                f"delete {name}",
            )
        except ClusterError as exc:
            if exc.status != 404:
                raise

    def apply_queue(self, name: str, spec: Mapping[str, Any], *, labels: Mapping[str, str]) -> None:
        body = {
            "apiVersion": "modeljob.dev/v1alpha1",
            "kind": "Queue",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"preemption": {"reclaimBorrowed": True, "minRuntime": "0s"}, **spec},
        }
        try:
            retry(
                lambda: self.custom.create_cluster_custom_object("modeljob.dev", "v1alpha1", "queues", body),
                f"create queue {name}",
            )
        except ClusterError as exc:
            if exc.status != 409:
                raise

    def lease_holder(self) -> str:
        try:
            lease = retry(
                lambda: self.gateway.read_lease(NAMESPACE, LEASE), "read the Lease", timeout_seconds=30
            )
        except NotFoundError:
            return ""
        return str((lease.get("spec") or {}).get("holderIdentity") or "")


@dataclass(frozen=True)
class Node:
    name: str
    manifest: Mapping[str, Any]


def node_specs(h100_nodes: int, l4_nodes: int) -> list[Node]:
    """H100 and L4 nodes, alternating between the two zones."""
    nodes = []
    for prefix, template, count in (("h100", H100, h100_nodes), ("l4", L4, l4_nodes)):
        for index in range(count):
            spec = node_catalog.NodeSpec(
                name=f"chaos-{prefix}-{index}",
                cpu_milli=template.cpu_milli,
                memory_bytes=template.memory_bytes,
                ephemeral_storage_bytes=template.ephemeral_storage_bytes,
                gpus=template.gpus,
                gpu=template.gpu,
            )
            manifest = node_catalog.node_manifest(spec)
            manifest["metadata"]["labels"][ZONE] = ZONES[index % len(ZONES)]
            nodes.append(Node(spec.name, manifest))
    return nodes


def add_nodes(api: Api, nodes: list[Node]) -> None:
    retry(lambda: apply_nodes(api.gateway, [dict(n.manifest) for n in nodes], workers=4), "create nodes")
    names = {n.name for n in nodes}
    if wait_until_ready(api.gateway, names, timeout_seconds=120) != names:
        raise SystemExit("the fake nodes did not become Ready")


FINISH_STAGE = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "chaos-pod-complete"},
    "spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": f'.metadata.labels["{FINISH_LABEL}"]', "operator": "In", "values": ["true"]},
            ]
        },
        "delay": {"durationMilliseconds": 20000, "jitterDurationMilliseconds": 40000},
        "next": {
            "statusTemplate": "phase: Succeeded\n"
            "containerStatuses:\n"
            "{{ range .spec.containers }}\n"
            "- name: {{ .name | Quote }}\n  image: {{ .image | Quote }}\n  ready: false\n"
            "  restartCount: 0\n  state: {terminated: {exitCode: 0, reason: Completed}}\n"
            "{{ end }}\n"
        },
    },
}
NOT_READY_STAGE = (
    PLANE.state.parent / "go-mod" / "sigs.k8s.io" / "kwok@v0.8.0" / "kustomize" / "stage" / "node" / "chaos"
)


def set_up(api: Api, *, h100_nodes: int, l4_nodes: int) -> list[Node]:
    """CRDs, kwok Stages, namespaces, queues and nodes on a fresh control plane."""
    for crd in ("modeljob.dev_modeljobs.yaml", "modeljob.dev_queues.yaml"):
        kubectl(PLANE.kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds" / crd))
    for crd in ("modeljobs", "queues"):
        kubectl(
            PLANE.kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            f"crd/{crd}.modeljob.dev",
        )
    kubectl(PLANE.kubeconfig, "apply", "-f", str(NOT_READY_STAGE / "node-not-ready.yaml"))
    kubectl(PLANE.kubeconfig, "apply", "-f", "-", stdin=json.dumps(FINISH_STAGE))
    for namespace in (NAMESPACE, HOSTILE_NAMESPACE):
        create_ready_namespace(api.gateway, namespace)
    for name, spec in QUEUES.items():
        api.apply_queue(name, spec, labels={"chaos": "well-formed"})
    nodes = node_specs(h100_nodes, l4_nodes)
    add_nodes(api, nodes)
    return nodes


def restart_component(name: str) -> float:
    """SIGKILL one control-plane process (etcd, kube-apiserver) and start it again with the same
    arguments (up.sh restarts exactly the components that are not running); seconds it took."""
    pid = int((PLANE.state / "pids" / f"{name}.pid").read_text().strip())
    began = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.05)
    PLANE.run("up.sh")
    return time.monotonic() - began


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"
    # A killed setsid'ed child of a script that has exited is reaped by init; until then a zombie.
    return not (os.path.exists(stat) and open(stat).read().split()[2] == "Z")
