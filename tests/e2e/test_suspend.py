"""spec.suspend on the real control plane: the GPUs are freed for another job, and a resumed job is
queued and placed again."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, job_pods, model_job, status, wait_event, wait_phase


def _suspend(cluster: Cluster, namespace: str, name: str, *, suspend: bool) -> None:
    patch = json.dumps({"spec": {"suspend": suspend}})
    cluster.kubectl("-n", namespace, "patch", "modeljob", name, "--type=merge", "-p", patch)


def _live_pods(cluster: Cluster, namespace: str, name: str) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in job_pods(cluster, namespace, name)
        if not p["metadata"].get("deletionTimestamp")
    }


def test_suspend_frees_the_gpus_for_another_job_and_resume_queues_and_places_it_again(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("h100", 1)  # 8 GPUs: room for one of the two jobs at a time
    apply(cluster, namespace, model_job("first", pool, gpus=8))
    running = wait_phase(cluster, namespace, "first", "Running", timeout_seconds=60)
    first_pods = _live_pods(cluster, namespace, "first")
    apply(cluster, namespace, model_job("second", pool, gpus=8))
    wait_phase(cluster, namespace, "second", "Queued")

    _suspend(cluster, namespace, "first", suspend=True)
    suspended = wait_phase(cluster, namespace, "first", "Suspended")
    assert suspended.get("placement", []) == []
    assert suspended["estimate"] == running["estimate"], "the job keeps its estimate"
    wait_phase(cluster, namespace, "second", "Running", timeout_seconds=60)
    assert not job_pods(cluster, namespace, "first"), "the suspended job's pods are gone"
    message = wait_event(cluster, namespace, "first", "Suspended")[0]
    assert message.startswith("suspended (spec.suspend is true): deleting pods ")

    _suspend(cluster, namespace, "first", suspend=False)
    queued = wait_phase(cluster, namespace, "first", "Queued")
    assert queued["queuePosition"] == 1
    cluster.kubectl("-n", namespace, "delete", "modeljob", "second", "--wait=false")
    wait_phase(cluster, namespace, "first", "Running", timeout_seconds=60)
    wait_for(
        lambda: len(_live_pods(cluster, namespace, "first")) == 1,
        "the resumed job running on one new pod",
    )
    assert not _live_pods(cluster, namespace, "first") & first_pods
    assert "restarts" not in status(cluster, namespace, "first"), "a suspension is no failure"
