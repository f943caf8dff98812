"""The failure policy on the real control plane: a failed pod (its status written as kubelet would,
kwok runs nothing) recreates the gang or the replica, counts it, and fails the job past maxRestarts."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from modeljob.adapters import kube_pods
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, job_pods, model_job, status, wait_event, wait_phase

TRAINING = {"type": "Training", "sequenceLength": 2048, "batchSize": 1}


def _live_pods(cluster: Cluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """The job's pods not being deleted, by name."""
    return {
        p["metadata"]["name"]: p
        for p in job_pods(cluster, namespace, name)
        if not p["metadata"].get("deletionTimestamp")
    }


def _running(cluster: Cluster, namespace: str, name: str, count: int) -> dict[str, dict[str, Any]]:
    """Wait until the job is Running on exactly ``count`` Running pods; those pods."""
    pods: dict[str, dict[str, Any]] = {}

    def running() -> bool:
        pods.clear()
        pods.update(_live_pods(cluster, namespace, name))
        return (
            status(cluster, namespace, name).get("phase") == "Running"
            and len(pods) == count
            and all(p["status"].get("phase") == "Running" for p in pods.values())
        )

    wait_for(running, f"{namespace}/{name} Running on {count} pods", timeout_seconds=60)
    return dict(pods)


def _finish(cluster: Cluster, namespace: str, pod: dict[str, Any], *, exit_code: int) -> None:
    """Write the pod's status as kubelet does when its container exits (exit code 0: Succeeded)."""
    container = pod["spec"]["containers"][0]
    terminated = {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}
    patch = {
        "status": {
            "phase": "Failed" if exit_code else "Succeeded",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
    }
    name = pod["metadata"]["name"]
    cluster.kubectl(
        "-n", namespace, "patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )


def test_a_failed_pod_recreates_the_whole_training_gang_until_max_restarts_then_the_job_fails(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 2)
    job = model_job("train", pool, parameters="1B", replicas=2, gpus=4, workload=TRAINING)
    job["spec"]["failurePolicy"] = {"maxRestarts": 1}
    apply(cluster, namespace, job)
    wait_phase(cluster, namespace, "train", "Running", timeout_seconds=60)
    first = _running(cluster, namespace, "train", 2)
    assert {p["spec"]["restartPolicy"] for p in first.values()} == {"Never"}
    failed = sorted(first)[1]
    _finish(cluster, namespace, first[failed], exit_code=1)

    second = _running(cluster, namespace, "train", 2)
    assert not set(second) & set(first), "the whole gang was recreated"
    assert status(cluster, namespace, "train")["restarts"] == 1
    message = wait_event(cluster, namespace, "train", "PodFailed")[0]
    assert message.startswith(f"pod {failed} of replica ")
    assert "failed: container main Error (exit code 1)" in message
    assert message.endswith("the whole gang goes back to the queue (restart 1 of 1)")

    again = sorted(second)[0]
    _finish(cluster, namespace, second[again], exit_code=1)
    done = wait_phase(cluster, namespace, "train", "Failed")
    assert done["message"].startswith(f"pod {again} of replica ")
    assert done["message"].endswith(
        "not recreated: failurePolicy.maxRestarts is 1 and the job was recreated 1 time(s)"
    )
    assert done["restarts"] == 1
    # The pod still running is stopped, so the GPUs are free; the failed one stays for its logs.
    wait_for(
        lambda: set(_live_pods(cluster, namespace, "train")) == {again},
        "the failed job's other pod to be deleted",
    )
    wait_event(cluster, namespace, "train", "Failed")


def test_a_failed_serving_replica_recreates_only_that_replica(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 2)
    job = model_job("serve", pool, replicas=2, gpus=4, scheduling={"gang": False})
    apply(cluster, namespace, job)
    first = _running(cluster, namespace, "serve", 2)
    failed, kept = sorted(first)
    _finish(cluster, namespace, first[failed], exit_code=1)

    def replaced() -> bool:
        pods = _live_pods(cluster, namespace, "serve")
        return (
            status(cluster, namespace, "serve").get("restarts") == 1
            and kept in pods
            and len(pods) == 2
            and failed not in pods
            and all(p["status"].get("phase") == "Running" for p in pods.values())
        )

    wait_for(replaced, "the failed replica recreated beside the one still serving", timeout_seconds=60)
    assert _running(cluster, namespace, "serve", 2)[kept]["metadata"]["uid"] == first[kept]["metadata"]["uid"]
    message = wait_event(cluster, namespace, "serve", "PodFailed")[0]
    assert message.endswith("those replicas go back to the queue (restart 1 of 3)")


def test_a_training_job_whose_pods_succeed_ends_succeeded(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 1)
    apply(cluster, namespace, model_job("run", pool, parameters="1B", replicas=2, gpus=2, workload=TRAINING))
    pods = _running(cluster, namespace, "run", 2)
    for pod in pods.values():
        _finish(cluster, namespace, pod, exit_code=0)
    done = wait_phase(cluster, namespace, "run", "Succeeded")
    assert done["message"] == "all 2 pods succeeded"
    assert "restarts" not in done
    assert set(_live_pods(cluster, namespace, "run")) == set(pods), "nothing restarted"


GANGS = 8
KILLS = 3  # each kill lands while a batch of the gangs is being recreated


@pytest.mark.parametrize("seed", [1, 2])
def test_killing_the_operator_while_gangs_are_recreated_counts_each_failure_exactly_once(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, seed: int
) -> None:
    chance = random.Random(seed)
    operator = start_operator()
    pool.add("h100", 5)  # 40 GPUs for 8 gangs x 2 replicas x 2 GPUs, and room to turn over
    names = [f"train-{i}" for i in range(GANGS)]
    apply(
        cluster,
        namespace,
        *(model_job(n, pool, parameters="1B", replicas=2, gpus=2, workload=TRAINING) for n in names),
    )
    first = {name: _running(cluster, namespace, name, 2) for name in names}
    for kill in range(KILLS):
        for name in names[kill::KILLS]:
            _finish(cluster, namespace, first[name][sorted(first[name])[0]], exit_code=1)
        time.sleep(chance.uniform(0.0, 0.6))  # the kill's moment, at random: not a wait for anything
        operator.kill()
        operator.start()
    gpus_per_node: dict[str, int] = {}
    for name in names:
        pods = _running(cluster, namespace, name, 2)
        job_status = status(cluster, namespace, name)
        assert job_status["restarts"] == 1, f"{name}: one failure, counted {job_status['restarts']} time(s)"
        assert not set(pods) & set(first[name]), f"{name}: the whole gang was recreated"
        placement = {e["pod"]: e["node"] for e in job_status["placement"]}
        assert {n: p["spec"]["nodeName"] for n, p in pods.items()} == placement, (
            f"{name}: every pod bound once, where its placement says"
        )
        for pod in pods.values():
            node = pod["spec"]["nodeName"]
            gpus_per_node[node] = gpus_per_node.get(node, 0) + kube_pods.pod_requests(pod["spec"])[0].gpus
    assert all(used <= 8 for used in gpus_per_node.values()), f"a node is over-committed: {gpus_per_node}"
