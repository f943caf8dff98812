"""The local control plane behaves like a real GPU cluster: Ready GPU nodes, real scheduling, RBAC.

Kept lean (a few seconds in all): loading the 1,213 openb nodes is measured by bench/cluster.sh,
not tested here. It would add ~1,200 nodes to the shared cluster for every later test, and the
CSV-to-manifest translation it would exercise is unit-tested in tests/adapters.
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest

from modeljob.adapters import node_catalog
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import ForbiddenError, NotFoundError
from modeljob.commands.nodes import is_ready
from tests.cluster import CONTROL_PLANES, LOCK_WAIT_SECONDS, ControlPlaneError, binaries, exists, kwok_pod
from tests.e2e.kube import Cluster, wait_for

PreparedNodes = tuple[node_catalog.NodeSpec, ...]


def _pod_phase(cluster: Cluster, namespace: str, name: str) -> str:
    return str(cluster.gateway.read_pod(namespace, name).get("status", {}).get("phase", ""))


def _scheduling_events(cluster: Cluster, namespace: str, pod: str) -> list[dict[str, Any]]:
    return cluster.gateway.list_events(namespace, field_selector=f"involvedObject.name={pod}")


def test_preset_nodes_are_ready_and_offer_their_gpus(cluster: Cluster, preset_nodes: PreparedNodes) -> None:
    live = {n["metadata"]["name"]: n for n in cluster.gateway.list_nodes(label_selector="type=kwok")}

    for spec in preset_nodes:
        node = live[spec.name]
        assert is_ready(node), spec.name
        assert not node["spec"].get("taints"), (spec.name, node["spec"].get("taints"))
        allocatable = node["status"]["allocatable"]
        if spec.gpus:
            assert allocatable["nvidia.com/gpu"] == str(spec.gpus)
            assert node["metadata"]["labels"]["nvidia.com/gpu.count"] == str(spec.gpus)
        else:
            assert "nvidia.com/gpu" not in allocatable


def test_gpu_pod_is_bound_by_kube_scheduler_to_a_gpu_node_and_runs(
    cluster: Cluster, preset_nodes: PreparedNodes, namespace: str
) -> None:
    cluster.gateway.create_pod(namespace, kwok_pod("trainer", gpus=1))

    wait_for(lambda: _pod_phase(cluster, namespace, "trainer") == "Running", "pod trainer Running")

    pod = cluster.gateway.read_pod(namespace, "trainer")
    gpu_nodes = {spec.name for spec in preset_nodes if spec.gpus}
    assert pod["spec"]["nodeName"] in gpu_nodes
    scheduled = [e for e in _scheduling_events(cluster, namespace, "trainer") if e["reason"] == "Scheduled"]
    assert scheduled, "no Scheduled event"
    assert scheduled[0]["reportingComponent"] == "default-scheduler"  # the real kube-scheduler bound it


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending(
    cluster: Cluster, preset_nodes: PreparedNodes, namespace: str
) -> None:
    cluster.gateway.create_pod(namespace, kwok_pod("too-big", gpus=9))

    def refused() -> bool:
        events = _scheduling_events(cluster, namespace, "too-big")
        return any(e["reason"] == "FailedScheduling" for e in events)

    wait_for(refused, "a FailedScheduling event for too-big")
    events = _scheduling_events(cluster, namespace, "too-big")
    assert any(
        "Insufficient nvidia.com/gpu" in e["message"] for e in events if e["reason"] == "FailedScheduling"
    )
    assert _pod_phase(cluster, namespace, "too-big") == "Pending"


def test_deleting_a_namespace_with_a_running_pod_completes(
    cluster: Cluster, preset_nodes: PreparedNodes, namespace: str
) -> None:
    cluster.gateway.create_pod(namespace, kwok_pod("worker", gpus=1))
    wait_for(lambda: _pod_phase(cluster, namespace, "worker") == "Running", "pod worker Running")

    cluster.gateway.delete_namespace(namespace)

    # kcm's namespace controller empties it and kwok's pod-delete stage stands in for the kubelet.
    wait_for(
        lambda: not exists(lambda: cluster.gateway.read_namespace(namespace)),
        f"namespace {namespace} to disappear",
        timeout_seconds=90,
    )


def test_anonymous_request_is_refused(cluster: Cluster) -> None:
    context = ssl.create_default_context(cafile=str(cluster.kubeconfig.parent / "pki" / "ca.crt"))
    request = urllib.request.Request(f"{cluster.gateway.server}/api/v1/nodes")  # no client certificate

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=10)

    refused.value.close()
    assert refused.value.code in {401, 403}


def test_rbac_refuses_a_service_account_without_a_role(cluster: Cluster, namespace: str) -> None:
    who = f"system:serviceaccount:{namespace}:default"

    result = cluster.kubectl("get", "nodes", f"--as={who}", check=False)

    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
    assert (
        cluster.kubectl("auth", "can-i", "list", "nodes", f"--as={who}", check=False).stdout.strip() == "no"
    )


def test_rbac_refuses_kwok_what_its_cluster_role_does_not_grant(cluster: Cluster, namespace: str) -> None:
    # up.sh binds kwok's upstream ClusterRole to the kwok-controller user: pods and node status,
    # but no namespaces. The refusal also shows the gateway's 403 -> ForbiddenError mapping.
    kwok_kubeconfig = cluster.kubeconfig.parent / "kubeconfigs" / "kwok.kubeconfig"

    with ClusterGateway.from_kubeconfig(kwok_kubeconfig) as as_kwok:
        assert as_kwok.list_pods(namespace) == []
        with pytest.raises(ForbiddenError, match="forbidden"):
            as_kwok.create_namespace(f"{namespace}-x")


def test_gateway_reports_a_missing_object_as_not_found(cluster: Cluster, namespace: str) -> None:
    with pytest.raises(NotFoundError, match="no-such-pod"):
        cluster.gateway.read_pod(namespace, "no-such-pod")


def test_up_refuses_to_start_a_component_whose_port_another_process_holds() -> None:
    # A leftover that outlived its pid file would answer the health check in the new component's
    # place (while the new one exits, unable to bind), and the plane would look up but not be.
    plane = CONTROL_PLANES["e2e-taken-port"]
    port = plane.ports()["MODELJOB_ETCD_PORT"]
    binaries()  # built before the lock is taken, as every other test does
    with plane.held_by_this_process(wait_seconds=LOCK_WAIT_SECONDS), socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        try:
            with pytest.raises(ControlPlaneError) as refused:
                plane.run("up.sh")
        finally:
            plane.run("down.sh")
    message = str(refused.value)
    assert f"port {port}, which etcd is to listen on, is taken" in message
    assert f"pid={os.getpid()}" in message, "names the process that holds it"
