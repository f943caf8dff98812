"""Keeping it true: lost nodes and pods re-queue gangs, restarts and crashes lose nothing."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest

from modeljob.adapters import kube_pods
from tests.cluster import CACHE
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import (
    Pool,
    apply,
    events,
    job_pods,
    model_job,
    status,
    wait_event,
    wait_phase,
)
from tests.e2e.test_multinode import llama_405b

NOT_READY_STAGE = CACHE / "go-mod" / "sigs.k8s.io" / "kwok@v0.8.0" / "kustomize" / "stage" / "node" / "chaos"
NOT_READY_LABEL = "node-not-ready.stage.kwok.x-k8s.io"


def _reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return [reason for reason, _ in events(cluster, namespace, name)]


def _placed_nodes(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return sorted(e["node"] for e in status(cluster, namespace, name).get("placement") or [])


def _running_pods(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName")
        for p in job_pods(cluster, namespace, name)
        if not p["metadata"].get("deletionTimestamp")
    }


def _replaced(cluster: Cluster, namespace: str, name: str, before: set[str]) -> bool:
    pods = _running_pods(cluster, namespace, name)
    return (
        status(cluster, namespace, name).get("phase") == "Running"
        and len(pods) == 2
        and not (set(pods) & before)
        and all(
            p["status"]["phase"] == "Running"
            for p in job_pods(cluster, namespace, name)
            if p["metadata"]["name"] in pods
        )
    )


def _running_gang(cluster: Cluster, namespace: str, pool: Pool, *, nodes: int, gpus: int) -> set[str]:
    """A ModelJob `gang` of 2 replicas x ``gpus`` GPUs, Running on ``nodes`` new H100 nodes; its pods."""
    pool.add("h100", nodes)
    apply(cluster, namespace, model_job("gang", pool, replicas=2, gpus=gpus))
    wait_phase(cluster, namespace, "gang", "Running")
    return set(_running_pods(cluster, namespace, "gang"))


def test_deleting_a_node_under_a_running_gang_requeues_and_replaces_the_whole_gang(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    first_pods = _running_gang(cluster, namespace, pool, nodes=3, gpus=8)
    lost = _placed_nodes(cluster, namespace, "gang")[0]
    pool.delete(lost)
    wait_for(lambda: _replaced(cluster, namespace, "gang", first_pods), "the gang re-placed with new pods")
    assert lost not in _placed_nodes(cluster, namespace, "gang")
    wait_event(cluster, namespace, "gang", "Scheduled", count=2)
    message = wait_event(cluster, namespace, "gang", "NodeLost")[0]
    assert _reasons(cluster, namespace, "gang").count("Scheduled") == 2
    assert f"node {lost} of replica" in message
    assert "the whole gang goes back to the queue" in message


@pytest.fixture(scope="module")
def not_ready_stage(cluster: Cluster) -> None:
    """kwok's chaos stage: a node labelled node-not-ready.stage.kwok.x-k8s.io=true turns NotReady."""
    cluster.kubectl("apply", "-f", str(NOT_READY_STAGE / "node-not-ready.yaml"))


def test_a_node_turning_not_ready_under_a_running_gang_requeues_and_replaces_it(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, not_ready_stage: None
) -> None:
    start_operator()
    first_pods = _running_gang(cluster, namespace, pool, nodes=3, gpus=8)
    sick = _placed_nodes(cluster, namespace, "gang")[0]
    cluster.kubectl("label", "node", sick, f"{NOT_READY_LABEL}=true")
    wait_for(
        lambda: _replaced(cluster, namespace, "gang", first_pods),
        "the gang re-placed away from the NotReady node",
    )
    assert sick not in _placed_nodes(cluster, namespace, "gang")
    message = wait_event(cluster, namespace, "gang", "NodeLost")[0]
    assert f"node {sick} of replica" in message
    assert "is NotReady" in message


def test_a_deleted_pod_requeues_its_gang(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    first_pods = _running_gang(cluster, namespace, pool, nodes=2, gpus=4)
    cluster.gateway.delete_pod(namespace, sorted(first_pods)[0], grace_period_seconds=0)
    wait_for(lambda: _replaced(cluster, namespace, "gang", first_pods), "the gang re-placed with new pods")
    wait_event(cluster, namespace, "gang", "PodLost")


def test_a_spec_change_re_plans_a_placed_job_but_a_priority_change_does_not(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    pool.add("h100", 2)
    job = model_job("job", pool, replicas=2, gpus=2)
    apply(cluster, namespace, job)
    wait_phase(cluster, namespace, "job", "Running")
    first_pods = set(_running_pods(cluster, namespace, "job"))
    job["spec"]["scheduling"] = {"priority": 7}
    apply(cluster, namespace, job)
    wait_for(
        lambda: status(cluster, namespace, "job").get("observedGeneration") == 2, "generation 2 admitted"
    )
    operator.wait_cycles_after_now()  # it planned again with priority 7, and kept the pods
    assert set(_running_pods(cluster, namespace, "job")) == first_pods
    job["spec"]["resources"] = {"gpus": 4}
    apply(cluster, namespace, job)
    wait_for(
        lambda: _replaced(cluster, namespace, "job", first_pods), "the job re-planned with 4 GPUs per replica"
    )
    assert status(cluster, namespace, "job")["estimate"]["gpus"] == 4
    # A serving job's replicas are replaced a few at a time (docs/operator.md, "Updates without an
    # outage"); the update ends with an Updated Event.
    wait_event(cluster, namespace, "job", "Updated")


def test_deleting_a_modeljob_removes_its_pods(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 1)
    apply(cluster, namespace, model_job("short-lived", pool, replicas=2, gpus=1))
    wait_phase(cluster, namespace, "short-lived", "Running")
    cluster.kubectl("-n", namespace, "delete", "modeljob", "short-lived", "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not job_pods(cluster, namespace, "short-lived"),
        "kube-controller-manager's GC to delete the pods",
    )


def test_a_restarted_operator_reconciles_from_the_cluster_not_from_memory(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    pool.add("h100", 2)
    apply(
        cluster,
        namespace,
        model_job("steady", pool, replicas=2, gpus=2),
        model_job("hurt", pool, replicas=2, gpus=2),
    )
    wait_phase(cluster, namespace, "steady", "Running")
    wait_phase(cluster, namespace, "hurt", "Running")
    steady = {p["metadata"]["uid"] for p in job_pods(cluster, namespace, "steady")}
    hurt = set(_running_pods(cluster, namespace, "hurt"))
    operator.stop()
    cluster.gateway.delete_pod(namespace, sorted(hurt)[0], grace_period_seconds=0)
    operator.start()
    wait_for(lambda: _replaced(cluster, namespace, "hurt", hurt), "the hurt gang re-placed after the restart")
    assert {p["metadata"]["uid"] for p in job_pods(cluster, namespace, "steady")} == steady, (
        "a job that was fine keeps its pods"
    )
    assert status(cluster, namespace, "steady")["phase"] == "Running"


# --- crash safety --------------------------------------------------------------------------------

GANGS = 30
KILLS_PER_SEED = 5  # each kill lands while a fresh batch of GANGS / KILLS_PER_SEED gangs is being placed


def _check_every_job_ended_right(cluster: Cluster, namespace: str, pool: Pool) -> None:
    pods = [p for p in job_pods(cluster, namespace) if not p["metadata"].get("deletionTimestamp")]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_job.setdefault(pod["metadata"]["labels"]["modeljob.dev/job"], []).append(pod)
    gpus_per_node: Counter[str] = Counter()
    for index in range(GANGS):
        name = f"gang-{index:02d}"
        job_status = status(cluster, namespace, name)
        assert job_status.get("phase") == "Running", (
            f"{name}: {job_status.get('phase')} {job_status.get('message')}"
        )
        binding = next(c for c in job_status["conditions"] if c["type"] == "Binding")
        assert binding["status"] == "False", f"{name} is left half-bound"
        placement = {e["pod"]: e["node"] for e in job_status["placement"]}
        bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in by_job.get(name, [])}
        assert bound == placement, (
            f"{name}: every pod bound once, where its placement says, and no other pods"
        )
        for pod in by_job[name]:
            gpus_per_node[pod["spec"]["nodeName"]] += kube_pods.pod_requests(pod["spec"])[0].gpus
    assert sum(len(v) for v in by_job.values()) == 2 * GANGS, "no pod lost, none left over"
    assert all(used <= 8 for used in gpus_per_node.values()), f"a node is over-committed: {gpus_per_node}"
    assert set(gpus_per_node) <= set(pool.nodes)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killing_the_operator_at_random_moments_while_30_gangs_are_placed_loses_nothing(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, seed: int
) -> None:
    chance = random.Random(seed)
    operator = start_operator()
    pool.add("h100", 8)  # 64 GPUs for 30 gangs x 2 replicas x 1 GPU
    batch = GANGS // KILLS_PER_SEED
    for kill in range(KILLS_PER_SEED):
        gangs = range(kill * batch, (kill + 1) * batch)
        apply(cluster, namespace, *(model_job(f"gang-{i:02d}", pool, replicas=2, gpus=1) for i in gangs))
        time.sleep(chance.uniform(0.0, 0.6))  # the kill's moment, at random: not a wait for anything
        operator.kill()
        operator.start()
    wait_for(
        lambda: all(
            status(cluster, namespace, f"gang-{i:02d}").get("phase") == "Running" for i in range(GANGS)
        ),
        "every gang to run",
        timeout_seconds=90,
    )
    _check_every_job_ended_right(cluster, namespace, pool)


GROUP_JOBS = 4  # Llama-3.1-405B jobs of one replica: 2 pods x 8 GPUs each, 8 nodes for all


def _check_every_group_bound_whole(cluster: Cluster, namespace: str, pool: Pool) -> None:
    gpus_per_node: Counter[str] = Counter()
    for index in range(GROUP_JOBS):
        name = f"group-{index}"
        job_status = status(cluster, namespace, name)
        binding = next(c for c in job_status["conditions"] if c["type"] == "Binding")
        assert binding["status"] == "False", f"{name} is left half-bound"
        placement = {e["pod"]: e["node"] for e in job_status["placement"]}
        assert sorted((e["replica"], e["member"]) for e in job_status["placement"]) == [(0, 0), (0, 1)]
        pods = [p for p in job_pods(cluster, namespace, name) if not p["metadata"].get("deletionTimestamp")]
        bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
        assert bound == placement, f"{name}: both pods of the group bound once, where its placement says"
        assert len(set(bound.values())) == 2, f"{name}: one node per pod of the group"
        for pod in pods:
            gpus_per_node[pod["spec"]["nodeName"]] += kube_pods.pod_requests(pod["spec"])[0].gpus
    assert all(used <= 8 for used in gpus_per_node.values()), f"a node is over-committed: {gpus_per_node}"
    assert set(gpus_per_node) <= set(pool.nodes)


@pytest.mark.parametrize("seed", [1, 2])
def test_killing_the_operator_while_multi_node_groups_are_placed_never_half_binds_one(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, seed: int
) -> None:
    chance = random.Random(seed)
    operator = start_operator()
    pool.add("h100", 2 * GROUP_JOBS)
    for index in range(GROUP_JOBS):
        apply(cluster, namespace, llama_405b(pool, name=f"group-{index}"))
        time.sleep(chance.uniform(0.0, 0.6))  # the kill's moment, at random: not a wait for anything
        operator.kill()
        operator.start()
    wait_for(
        lambda: all(
            status(cluster, namespace, f"group-{i}").get("phase") == "Running" for i in range(GROUP_JOBS)
        ),
        "every group job to run",
        timeout_seconds=120,
    )
    _check_every_group_bound_whole(cluster, namespace, pool)
