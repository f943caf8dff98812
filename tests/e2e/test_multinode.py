"""Llama-3.1-405B in bf16 on the real control plane: one replica is a group of two pods, one per
8 × 80 GiB node, in one topology domain; with no domain that holds it (Required) or one free node
it waits whole, never half bound."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from modeljob.adapters import kube_pods
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, hold_gpus, job_pods, status, wait_phase

ZONE = "topology.kubernetes.io/zone"
EXAMPLE = Path(__file__).resolve().parents[2] / "crds" / "examples" / "llama-3-1-405b-multinode.yaml"


def llama_405b(pool: Pool, *, mode: str = "Preferred", name: str = "llama-3-1-405b-chat") -> dict[str, Any]:
    """The 405B example's model and workload, on this test's pool."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"]["name"] = name
    spec = document["spec"]
    spec["template"] = pool.template()
    spec["template"]["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8000}]
    spec["scheduling"] = {"topology": {"mode": mode}}  # key: the operator's setting (zone)
    return document


def zoned(cluster: Cluster, pool: Pool, zones: Sequence[str]) -> list[str]:
    """One new H100 node per entry of ``zones``, labelled with it."""
    names = pool.add("h100", len(zones))
    for name, zone in zip(names, zones, strict=True):
        cluster.kubectl("label", "node", name, f"{ZONE}={zone}")
    return names


def bound_pods(cluster: Cluster, namespace: str) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in job_pods(cluster, namespace, "llama-3-1-405b-chat")
        if p["spec"].get("nodeName")
    }


def waits_whole(cluster: Cluster, namespace: str, operator: Any, *, cycles: int = 3) -> dict[str, Any]:
    """Queued over several cycles of the operator, and at each look no pod of it exists or is bound."""
    for _ in range(cycles):
        operator.wait_cycles_after_now()
        assert job_pods(cluster, namespace, "llama-3-1-405b-chat") == [], "no group is ever half placed"
        assert status(cluster, namespace, "llama-3-1-405b-chat").get("phase") == "Queued"
    return status(cluster, namespace, "llama-3-1-405b-chat")


def test_405b_runs_on_two_whole_nodes_of_one_zone_with_the_lws_environment(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    a0, b0, b1 = zoned(cluster, pool, ["zone-a", "zone-b", "zone-b"])
    apply(cluster, namespace, llama_405b(pool))
    running = wait_phase(cluster, namespace, "llama-3-1-405b-chat", "Running", timeout_seconds=60)
    assert running["pods"] == 2
    assert running["gpus"] == 16
    assert running["nodes"] == ",".join(sorted([b0, b1])), "both pods in zone-b, the zone with room"
    assert [(e["replica"], e["member"]) for e in running["placement"]] == [(0, 0), (0, 1)]
    pods = sorted(job_pods(cluster, namespace, "llama-3-1-405b-chat"), key=lambda p: p["spec"]["hostname"])
    assert [p["spec"]["hostname"] for p in pods] == ["llama-3-1-405b-chat-0", "llama-3-1-405b-chat-1"]
    assert {p["spec"]["nodeName"] for p in pods} == {b0, b1}
    assert all(kube_pods.pod_requests(p["spec"])[0].gpus == 8 for p in pods)
    leader = f"llama-3-1-405b-chat-0.llama-3-1-405b-chat.{namespace}.svc"
    for member, pod in enumerate(pods):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["LWS_LEADER_ADDRESS"] == env["MASTER_ADDR"] == leader
        assert (env["LWS_GROUP_SIZE"], env["LWS_WORKER_INDEX"]) == ("2", str(member))
        assert (env["MODELJOB_NODES_PER_REPLICA"], env["MODELJOB_TENSOR_PARALLEL_SIZE"]) == ("2", "8")
        assert env["MODELJOB_PIPELINE_PARALLEL_SIZE"] == "2"
    serve = cluster.gateway.read_service(namespace, "llama-3-1-405b-chat-serve")
    assert serve["spec"]["selector"][kube_pods.LABEL_GROUP_ROLE] == "leader"
    listed = cluster.kubectl("-n", namespace, "get", "mj", "llama-3-1-405b-chat", "--no-headers").stdout
    assert listed.split()[2:5] == ["1", "2", "16"], f"Replicas, Pods and GPUs columns: {listed}"
    assert ",".join(sorted([b0, b1])) in listed
    assert a0 not in listed


def test_required_waits_whole_naming_the_zones_and_their_free_gpus_until_one_has_room(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    a0, a1, b0, b1 = zoned(cluster, pool, ["zone-a", "zone-a", "zone-b", "zone-b"])
    hold_gpus(cluster, namespace, pool, "holder-a", node=a1, gpus=8)
    hold_gpus(cluster, namespace, pool, "holder-b", node=b1, gpus=8)
    apply(cluster, namespace, llama_405b(pool, mode="Required"))
    wait_phase(cluster, namespace, "llama-3-1-405b-chat", "Queued")
    waiting = waits_whole(cluster, namespace, operator)
    assert "spec.scheduling.topology is Required" in waiting["message"]
    assert (
        "zone-a: 1 node(s) with room, 8 free GPU(s); zone-b: 1 node(s) with room, 8 free GPU(s)"
        in (waiting["message"])
    )
    cluster.gateway.delete_pod(namespace, "holder-b", grace_period_seconds=0)
    wait_phase(cluster, namespace, "llama-3-1-405b-chat", "Running", timeout_seconds=60)
    assert sorted(bound_pods(cluster, namespace).values()) == sorted([b0, b1])
    assert a0 not in bound_pods(cluster, namespace).values()


def test_with_one_free_node_the_job_waits_whole_then_takes_both_nodes(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    free, busy = zoned(cluster, pool, ["zone-a", "zone-a"])
    hold_gpus(cluster, namespace, pool, "holder", node=busy, gpus=8)
    apply(cluster, namespace, llama_405b(pool))
    wait_phase(cluster, namespace, "llama-3-1-405b-chat", "Queued")
    waiting = waits_whole(cluster, namespace, operator)
    assert "needs 2 pods of 8 × 80 GiB GPUs, one node each, per replica" in waiting["message"]
    cluster.gateway.delete_pod(namespace, "holder", grace_period_seconds=0)
    wait_phase(cluster, namespace, "llama-3-1-405b-chat", "Running", timeout_seconds=60)
    wait_for(lambda: sorted(bound_pods(cluster, namespace).values()) == sorted([free, busy]), "both nodes")
