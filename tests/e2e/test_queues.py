"""Queues on the real control plane: two teams under one parent share 16 H100 GPUs; a team takes
back what the other borrowed by preempting whole gangs, and the victims run again when room frees."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, job_pods, model_job, status, wait_event, wait_phase

REPO = Path(__file__).resolve().parents[2]
QUEUE_CRD = REPO / "crds" / "modeljob.dev_queues.yaml"
H100 = "NVIDIA-H100-80GB-HBM3"


def queue(name: str, *, parent: str | None = None, nominal: int | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"preemption": {"reclaimBorrowed": True, "minRuntime": "0s"}, **spec}
    if parent is not None:
        body["parent"] = parent
    if nominal is not None:
        body["quota"] = [{"resource": "nvidia.com/gpu", "products": [H100], "nominal": nominal}]
    return {"apiVersion": "modeljob.dev/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": body}


@pytest.fixture
def queues(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The Queue CRD installed; yields a prefix for this test's Queues (cluster-scoped), deleted after."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(QUEUE_CRD))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/queues.modeljob.dev")
    yield namespace
    cluster.kubectl("delete", "queues.modeljob.dev", "-l", f"test={namespace}", "--wait=false", check=False)


def apply_queues(cluster: Cluster, prefix: str, *documents: dict[str, Any]) -> None:
    for document in documents:
        document["metadata"]["labels"] = {"test": prefix}
    apply(cluster, "default", *documents)


def gang(
    name: str, pool: Pool, queue_name: str, *, replicas: int, gpus: int, **scheduling: Any
) -> dict[str, Any]:
    job = model_job(name, pool, replicas=replicas, gpus=gpus, products=[H100])
    job["spec"]["scheduling"] = {"queue": queue_name, "gang": True, **scheduling}
    return job


class GangWatch:
    """Samples every job's status and pods until stopped: a Running job must have every pod of
    its placement bound and alive (no half-bound, no half-evicted gang at any sample)."""

    def __init__(self, cluster: Cluster, namespace: str, sizes: Mapping[str, int]) -> None:
        self.cluster, self.namespace, self.sizes = cluster, namespace, sizes
        self.violations: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GangWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, size in self.sizes.items():
                before = status(self.cluster, self.namespace, name)
                pods = [
                    p
                    for p in job_pods(self.cluster, self.namespace, name)
                    if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
                ]
                after = status(self.cluster, self.namespace, name)
                steady = before.get("phase") == after.get("phase") == "Running"
                if steady and before.get("placement") == after.get("placement") and len(pods) != size:
                    self.violations.append(f"{name} Running with {len(pods)} of {size} pods bound")
            self.samples += 1


def queue_status(cluster: Cluster, name: str) -> dict[str, Any]:
    reply = cluster.kubectl("get", "queues.modeljob.dev", name, "-o", "json")
    return dict(json.loads(reply.stdout).get("status") or {})


def condition(job_status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in job_status.get("conditions") or [] if c.get("type") == kind), {})


def test_a_team_takes_back_what_the_other_borrowed_by_preempting_whole_gangs(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    team_a, team_b, parent = f"{queues}-a", f"{queues}-b", f"{queues}-research"
    apply_queues(
        cluster,
        queues,
        queue(parent),
        queue(team_a, parent=parent, nominal=8),
        queue(team_b, parent=parent, nominal=8),
    )
    operator = start_operator()
    pool.add("h100", 2)  # 16 H100 GPUs
    sizes = {f"a{i}": 2 for i in range(1, 5)} | {"b1": 4}
    with GangWatch(cluster, namespace, sizes) as watch:
        for index in range(1, 5):  # four 4-GPU gangs: two within team-a's 8, two borrowing team-b's
            apply(cluster, namespace, gang(f"a{index}", pool, team_a, replicas=2, gpus=2))
            wait_phase(cluster, namespace, f"a{index}", "Running", timeout_seconds=60)
        apply(cluster, namespace, gang("b1", pool, team_b, replicas=4, gpus=2))
        wait_phase(cluster, namespace, "b1", "Running", timeout_seconds=30)

        victims = sorted(
            n for n in ("a1", "a2", "a3", "a4") if condition(status(cluster, namespace, n), "Preempted")
        )
        assert victims == ["a3", "a4"], "the youngest jobs hold the borrowed GPUs: exactly two gangs go"
        for victim in victims:
            victim_status = status(cluster, namespace, victim)
            assert victim_status["phase"] == "Queued"
            preempted = condition(victim_status, "Preempted")
            assert (preempted["status"], preempted["reason"]) == ("True", "ReclaimBorrowed")
            assert f"preempted by {namespace}/b1" in preempted["message"]
            assert f"queue {team_b} takes back the quota queue {team_a} borrowed" in preempted["message"]
            assert victim_status["preemptedBy"] == [f"{namespace}/b1"]
            assert victim_status["preemptions"] == 1
            assert wait_event(cluster, namespace, victim, "Preempted")[0].startswith(
                f"preempted by {namespace}/b1"
            )
        assert "preempting" in wait_event(cluster, namespace, "b1", "Preempting")[0]
        assert "preempting" not in status(cluster, namespace, "b1"), "the plan is cleared once placed"
        waiting = status(cluster, namespace, "a3")["message"]
        assert waiting.startswith(f"queue {team_a}: needs 4 {H100} GPUs, nominal 8, used 8")

        wait_for(
            lambda: queue_status(cluster, team_a).get("pendingJobs") == 2,
            "team-a's Queue status counting its two waiting jobs",
        )
        assert queue_status(cluster, team_b)["used"] == f"8 {H100} GPUs"
        assert "modeljob_preemptions_total" in operator.metrics()

        cluster.kubectl("-n", namespace, "delete", "modeljob", "b1", "--wait=false")
        for victim in victims:  # room frees: the victims run again
            wait_phase(cluster, namespace, victim, "Running", timeout_seconds=60)
    assert watch.samples >= 3, "the watch sampled throughout"
    assert not watch.violations, watch.violations[:5]


def test_children_above_their_parents_nominal_mark_the_queue_and_its_jobs_wait_with_that_reason(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, queues: str
) -> None:
    parent, team = f"{queues}-small", f"{queues}-team"
    apply_queues(cluster, queues, queue(parent, nominal=4), queue(team, parent=parent, nominal=8))
    start_operator()
    pool.add("h100", 1)
    apply(cluster, namespace, gang("stuck", pool, team, replicas=1, gpus=2))
    wait_for(
        lambda: "its children's nominal 8" in (status(cluster, namespace, "stuck").get("message") or ""),
        "the job waiting with its parent queue's problem",
    )
    assert status(cluster, namespace, "stuck")["phase"] == "Queued"
    wait_for(
        lambda: condition(queue_status(cluster, parent), "Valid").get("reason") == "ChildrenAboveNominal",
        "the parent Queue's Valid condition naming the problem",
    )
    # Fixed, the job is admitted and runs: nothing was lost meanwhile.
    apply_queues(cluster, queues, queue(parent, nominal=8))
    wait_phase(cluster, namespace, "stuck", "Running", timeout_seconds=60)
    assert condition(queue_status(cluster, parent), "Valid")["status"] == "True"
