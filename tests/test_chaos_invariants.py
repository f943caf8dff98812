"""The chaos soak's invariant checker (bench/chaos/invariants.py) catches each kind of violation
it reports on: a checker that cannot fail would make docs/reliability.md say nothing."""

from __future__ import annotations

from typing import Any

from bench.chaos.invariants import Checker, Snapshot, over_quota, overcommitted, partly_bound, quota_limits
from bench.chaos.outcome import wrong_ends
from bench.chaos.workload import JobPlan

from modeljob.adapters import kube_pods

H100 = "NVIDIA-H100-80GB-HBM3"


def node(name: str, gpus: int = 8, product: str = H100) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def pod(
    name: str, job: str, node_name: str | None, *, gpus: int = 1, replica: int = 0, **meta: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "chaos",
            "uid": f"uid-{name}",
            "labels": {
                kube_pods.LABEL_JOB: job,
                kube_pods.LABEL_JOB_UID: f"uid-{job}",
                kube_pods.LABEL_REPLICA: str(replica),
                kube_pods.LABEL_GROUP_MEMBER: "0",
            },
            "annotations": {kube_pods.ANNOTATION_SPEC_HASH: "h"},
            **meta,
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": "Running"},
    }


def job(name: str, queue: str, placement: list[tuple[str, str]], *, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "chaos", "uid": f"uid-{name}"},
        "spec": {"scheduling": {"queue": queue, "gang": True}},
        "status": {
            "phase": phase,
            "placement": [{"pod": p, "node": n, "replica": i} for i, (p, n) in enumerate(placement)],
        },
    }


def test_a_node_asked_for_more_gpus_than_it_has_is_over_committed() -> None:
    snapshot = Snapshot([], [pod("a", "j", "n1", gpus=6), pod("b", "k", "n1", gpus=4)], [node("n1")])
    assert overcommitted(snapshot) == ["node n1 over-committed: 10 GPUs bound, 8 allocatable"]
    deleting = pod("b", "k", "n1", gpus=4, deletionTimestamp="2026-01-01T00:00:00Z")
    assert overcommitted(Snapshot([], [pod("a", "j", "n1", gpus=6), deleting], [node("n1")])) == []


def test_a_pod_whose_node_changes_is_bound_twice() -> None:
    checker = Checker()
    checker.check(Snapshot([], [pod("a", "j", "n1")], [node("n1"), node("n2")]))
    checker.check(Snapshot([], [pod("a", "j", "n2")], [node("n1"), node("n2")]))
    assert checker.violations == ["pod a bound twice: n1, then n2"]


def test_two_live_pods_for_one_replica_of_one_spec_are_a_violation() -> None:
    checker = Checker()
    checker.check(Snapshot([], [pod("a", "j", "n1"), pod("b", "j", "n2")], [node("n1"), node("n2")]))
    assert checker.violations == ["chaos/j: 2 live pods for replica 0 member 0"]


def test_a_gang_partly_bound_is_found_and_is_a_violation_at_rest() -> None:
    snapshot = Snapshot(
        [job("g", "chaos-a", [("g-0", "n1"), ("g-1", "n2")])],
        [pod("g-0", "g", "n1")],
        [node("n1"), node("n2")],
    )
    assert list(partly_bound(snapshot).values()) == ["chaos/g (all): 1 of 2 bound"]
    checker = Checker()
    checker.check(snapshot)
    assert checker.violations == [], "in flight, briefly: allowed"
    checker.check(snapshot, at_rest=True)
    assert checker.violations == ["partly bound at rest: chaos/g (all): 1 of 2 bound"]


def test_a_queue_above_its_nominal_plus_what_it_may_borrow_is_over_quota() -> None:
    assert quota_limits()[("chaos-b", H100)] == 32 + 8, "team-b's borrowingLimit"
    assert quota_limits()[("chaos-b", "NVIDIA-L4")] == 12 + 4, "team-a lends at most 4 L4"
    nodes = [node(f"n{i}") for i in range(6)]
    pods = [pod(f"p{i}", "big", f"n{i}", gpus=8, replica=i) for i in range(6)]  # 48 > 40
    jobs = [job("big", "chaos-b", [(f"p{i}", f"n{i}") for i in range(6)])]
    assert over_quota(Snapshot(jobs, pods, nodes)) == [f"queue chaos-b holds 48 {H100} GPUs, limit 40"]


def test_a_failed_job_is_a_right_end_only_when_lost_nodes_used_its_restarts_up() -> None:
    policy = "not recreated: failurePolicy.maxRestarts is 3 and the job was recreated 3 time(s)"
    lost = f"node n2 of replica 3 was deleted; {policy}"
    crashed = f"pod s-0 of replica 0 failed: container m Error (exit code 1); {policy}"
    plan = JobPlan("s", "single", {"spec": {}}, 0.0)

    def ends(message: str, restarts: int) -> list[str]:
        failed = job("s", "chaos-a", [])
        failed["status"].update(phase="Failed", message=message, restarts=restarts)
        return wrong_ends([plan], Snapshot([failed], [], []), "chaos")

    assert ends(lost, 3) == []
    assert ends(crashed, 3) == [
        f"s: serving job Failed ({crashed}), neither Running nor Queued with a reason"
    ]
    assert ends(lost, 1) != [], "a node lost with restarts left is recreated, not Failed"
