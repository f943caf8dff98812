"""Crash safety through preemption: the operator is SIGKILLed with a preemption half done (its
plan written, one victim evicted, the other not yet), and after the restart every victim is fully
evicted, the preemptor is placed once, no pod is bound twice and no gang is left half-bound."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from modeljob.adapters import kube_pods
from tests.e2e import test_queues
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, events, job_pods, status, wait_phase
from tests.e2e.test_queues import GangWatch, apply_queues, condition, gang, queue

queues = test_queues.queues  # the fixture: Queue CRD installed, this test's Queues deleted after

HELD = "a4"  # the victim whose eviction the API server refuses until the operator has been killed


def _hold_policy(namespace: str) -> list[dict[str, Any]]:
    """An admission policy refusing the status write that evicts ``HELD``: the operator's
    preemption stops after its plan and the first victim, the state a crash there leaves."""
    name = f"{namespace}-hold-eviction"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["modeljob.dev"],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": ["modeljobs/status"],
                    }
                ]
            },
            "matchConditions": [{"name": "held-victim", "expression": f"object.metadata.name == '{HELD}'"}],
            "validations": [
                {"expression": "!has(object.status.preemptedBy)", "message": f"e2e: {HELD} is held"}
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    return [policy, binding]


@pytest.fixture
def hold(cluster: Cluster, namespace: str) -> Iterator[list[dict[str, Any]]]:
    documents = _hold_policy(namespace)
    yield documents
    _release(cluster, documents, check=False)


def _release(cluster: Cluster, documents: list[dict[str, Any]], *, check: bool = True) -> None:
    stdin = "\n---\n".join(json.dumps(d) for d in documents)
    cluster.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=stdin, check=check)


def _held(cluster: Cluster, namespace: str) -> bool:
    """Whether the API server refuses ``HELD``'s eviction now (a server-side dry run)."""
    patch = json.dumps({"status": {"preemptedBy": ["probe/probe"]}})
    reply = cluster.kubectl(
        "-n", namespace, "patch", "modeljob", HELD, "--subresource=status", "--type=merge",
        "-p", patch, "--dry-run=server", check=False,
    )  # fmt: skip
    return reply.returncode != 0 and f"{HELD} is held" in reply.stderr


def _live_pods(cluster: Cluster, namespace: str, name: str) -> dict[str, str | None]:
    return {
        p["metadata"]["uid"]: p["spec"].get("nodeName")
        for p in job_pods(cluster, namespace, name)
        if not p["metadata"].get("deletionTimestamp")
    }


def _check_every_pod_bound_once_where_placed(cluster: Cluster, namespace: str, pool: Pool) -> None:
    pods = [p for p in job_pods(cluster, namespace) if not p["metadata"].get("deletionTimestamp")]
    gpus_per_node: Counter[str] = Counter()
    for name in ("a1", "a2", "b1"):
        job_status = status(cluster, namespace, name)
        assert condition(job_status, "Binding")["status"] == "False", f"{name} is left half-bound"
        placement = {e["pod"]: e["node"] for e in job_status["placement"]}
        mine = [p for p in pods if p["metadata"]["labels"]["modeljob.dev/job"] == name]
        bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in mine}
        assert bound == placement, f"{name}: every pod bound once, where its placement says"
        for pod in mine:
            gpus_per_node[pod["spec"]["nodeName"]] += kube_pods.pod_requests(pod["spec"])[0].gpus
    for victim in ("a3", "a4"):
        assert not [p for p in pods if p["metadata"]["labels"]["modeljob.dev/job"] == victim]
    assert all(used <= 8 for used in gpus_per_node.values()), f"a node is over-committed: {gpus_per_node}"
    assert set(gpus_per_node) <= set(pool.nodes)


@pytest.mark.usefixtures("queues")
def test_a_preemption_half_done_when_the_operator_is_killed_is_finished_after_the_restart(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, hold: list[dict[str, Any]]
) -> None:
    team_a, team_b, parent = f"{namespace}-a", f"{namespace}-b", f"{namespace}-research"
    apply_queues(  # the queues fixture labels and deletes them by the namespace
        cluster,
        namespace,
        queue(parent),
        queue(team_a, parent=parent, nominal=8),
        queue(team_b, parent=parent, nominal=8),
    )
    operator = start_operator()
    pool.add("h100", 2)  # 16 H100 GPUs
    sizes = {f"a{i}": 2 for i in range(1, 5)} | {"b1": 4}
    with GangWatch(cluster, namespace, sizes) as watch:
        for index in range(1, 5):  # team-a borrows all 16: a3 and a4 hold team-b's nominal
            apply(cluster, namespace, gang(f"a{index}", pool, team_a, replicas=2, gpus=2))
            wait_phase(cluster, namespace, f"a{index}", "Running", timeout_seconds=60)
        kept = {name: _live_pods(cluster, namespace, name) for name in ("a1", "a2")}
        apply(cluster, "default", *hold)
        wait_for(lambda: _held(cluster, namespace), "the API server refusing a4's eviction")

        apply(cluster, namespace, gang("b1", pool, team_b, replicas=4, gpus=2))
        wait_for(  # the plan is written and the first victim evicted; the second is refused
            lambda: (
                sorted(status(cluster, namespace, "b1").get("preempting") or [])
                == [f"{namespace}/a3", f"{namespace}/a4"]
                and not _live_pods(cluster, namespace, "a3")
            ),
            "b1's preemption half done: a3 evicted, a4 not",
        )
        operator.kill()
        a3, a4 = status(cluster, namespace, "a3"), status(cluster, namespace, "a4")
        assert a3["phase"] == "Queued", f"a3 half evicted: {a3}"
        assert not a3.get("placement"), f"a3 half evicted: {a3}"
        assert a4["phase"] == "Running", "the kill landed with a4 still fully kept"
        assert len(_live_pods(cluster, namespace, "a4")) == 2, "the kill landed with a4 still fully kept"
        assert not status(cluster, namespace, "b1").get("placement")

        _release(cluster, hold)
        wait_for(lambda: not _held(cluster, namespace), "the API server letting a4's eviction through")
        operator.start()
        wait_phase(cluster, namespace, "b1", "Running", timeout_seconds=60)
        wait_for(
            lambda: not _live_pods(cluster, namespace, "a4") and not _live_pods(cluster, namespace, "a3"),
            "the victims' pods gone",
        )
        operator.wait_cycles_after_now()  # at rest: whatever the restart does, it has done
    assert watch.samples >= 3, "the watch sampled throughout"
    assert not watch.violations, watch.violations[:5]

    for victim in ("a3", "a4"):  # fully evicted, once, naming the preemptor
        victim_status = status(cluster, namespace, victim)
        assert victim_status["phase"] == "Queued"
        assert not victim_status.get("placement")
        assert condition(victim_status, "Preempted")["reason"] == "ReclaimBorrowed"
        assert victim_status["preemptedBy"] == [f"{namespace}/b1"]
        assert victim_status["preemptions"] == 1, f"{victim} evicted once"
    for name, pods in kept.items():  # the jobs not chosen keep their pods
        assert _live_pods(cluster, namespace, name) == pods
    b1 = status(cluster, namespace, "b1")
    assert "preempting" not in b1, "the plan is cleared once placed"
    scheduled = [r for r, _ in events(cluster, namespace, "b1") if r == "Scheduled"]
    assert len(scheduled) == 1, f"the preemptor placed once: {scheduled}"
    _check_every_pod_bound_once_where_placed(cluster, namespace, pool)
