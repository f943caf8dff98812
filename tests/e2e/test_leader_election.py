"""Two operators against the real API server: only the Lease holder binds; the standby takes over.

Each test keeps its own Lease (in its namespace) and starts replicas with kube-scheduler's timings
(15 s / 10 s / 2 s, the defaults), so what is measured is what the chart runs.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from tests.cluster import http_get, sample_sum
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Operator, Pool, apply, job_pods, model_job, wait_phase

LEASE = "modeljob-operator"
DURATION_SECONDS, RETRY_SECONDS = 15, 2
# Past the Lease's duration + retry: the standby's next cycle (debounce, plan) and the pod's
# create + bind round trips on a shared, loaded test machine.
ACT_SLACK_SECONDS = 4


def _replica(start_operator: Any, namespace: str, identity: str) -> Operator:
    operator: Operator = start_operator(
        MODELJOB_LEADER_ELECTION__IDENTITY=identity,
        MODELJOB_LEADER_ELECTION__LEASE_NAMESPACE=namespace,
    )
    return operator


def _lease(cluster: Cluster, namespace: str) -> dict[str, Any]:
    listed = cluster.kubectl("-n", namespace, "get", "lease", LEASE, "-o", "json", check=False)
    spec: dict[str, Any] = json.loads(listed.stdout)["spec"] if listed.returncode == 0 else {}
    return spec


def _health(operator: Operator) -> dict[str, Any]:
    assert operator.running is not None
    reply = json.loads(http_get(f"http://127.0.0.1:{operator.running.liveness_port}/healthz"))
    probe: dict[str, Any] = reply["scheduling-loop"]
    return probe


def _wait_role(operator: Operator, role: str, holder: str) -> None:
    """/healthz says ``role`` and who holds the Lease (kopf caches probe results for up to 10 s)."""
    wait_for(
        lambda: (_health(operator)["role"], _health(operator)["holder"]) == (role, holder),
        f"/healthz: {role}, the Lease held by {holder}",
    )


def _wait_leader(cluster: Cluster, namespace: str, leader: Operator, identity: str) -> None:
    wait_for(
        lambda: _lease(cluster, namespace).get("holderIdentity") == identity, f"{identity} holds the Lease"
    )
    wait_for(lambda: sample_sum(leader.metrics(), "modeljob_leader") == 1, f"{identity}'s modeljob_leader")


def _bound(cluster: Cluster, namespace: str, name: str, pods: int = 1) -> bool:
    found = job_pods(cluster, namespace, name)
    return len(found) == pods and all(p["spec"].get("nodeName") for p in found)


def _scheduled_by(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """The reportingInstance of every Scheduled Event on the job: the replica that placed it."""
    items = cluster.gateway.list_events(namespace, field_selector=f"involvedObject.name={name}")
    return [str(e.get("reportingInstance")) for e in items if e.get("reason") == "Scheduled"]


def _bound_by(operator: Operator) -> float:
    return sample_sum(operator.metrics(), "modeljob_bindings_total", {"result": "bound"})


def _assert_each_job_placed_once(cluster: Cluster, namespace: str, jobs: dict[str, str]) -> None:
    """Every job has exactly its one pod, bound, placed by the replica named, and one Scheduled Event."""
    for name, by in jobs.items():
        assert _bound(cluster, namespace, name), f"{name}: {job_pods(cluster, namespace, name)}"
        # The Event is posted after the binding, from the recorder's own thread: wait for it.
        wait_for(lambda name=name: bool(_scheduled_by(cluster, namespace, name)), f"{name}'s Scheduled Event")
        assert _scheduled_by(cluster, namespace, name) == [by]
    assert len(job_pods(cluster, namespace)) == len(jobs)


def test_only_the_leader_binds_and_the_standby_takes_over_a_killed_leader_within_duration_and_retry(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    a = _replica(start_operator, namespace, "replica-a")
    _wait_leader(cluster, namespace, a, "replica-a")
    b = _replica(start_operator, namespace, "replica-b")
    pool.add("h100", 1)
    apply(cluster, namespace, model_job("first", pool, gpus=1))
    wait_phase(cluster, namespace, "first", "Running")
    _wait_role(a, "leader", "replica-a")
    _wait_role(b, "standby", "replica-a")
    assert sample_sum(a.metrics(), "modeljob_leader") == 1
    assert sample_sum(b.metrics(), "modeljob_leader") == 0
    assert _bound_by(b) == 0, "the standby bound nothing"
    transitions = int(_lease(cluster, namespace).get("leaseTransitions") or 0)

    a.kill()  # SIGKILL: no release, the standby must wait the Lease out
    killed = time.monotonic()
    apply(cluster, namespace, model_job("second", pool, gpus=1))
    limit = DURATION_SECONDS + RETRY_SECONDS + ACT_SLACK_SECONDS
    wait_for(lambda: _bound(cluster, namespace, "second"), "the standby binds", timeout_seconds=limit + 30)
    took = time.monotonic() - killed
    print(f"SIGKILL of the leader -> the standby's first bind: {took:.1f} s")
    assert took <= limit
    lease = _lease(cluster, namespace)
    assert lease["holderIdentity"] == "replica-b"
    assert lease["leaseTransitions"] == transitions + 1
    _wait_role(b, "leader", "replica-b")
    assert sample_sum(b.metrics(), "modeljob_leader") == 1
    _assert_each_job_placed_once(cluster, namespace, {"first": "replica-a", "second": "replica-b"})


def test_a_leader_that_exits_cleanly_hands_over_at_once(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    a = _replica(start_operator, namespace, "replica-a")
    _wait_leader(cluster, namespace, a, "replica-a")
    b = _replica(start_operator, namespace, "replica-b")
    pool.add("h100", 1)
    a.stop()  # SIGTERM: the Lease is given up, not left to expire
    stopped = time.monotonic()
    apply(cluster, namespace, model_job("after", pool, gpus=1))
    wait_for(lambda: _bound(cluster, namespace, "after"), "the standby binds", timeout_seconds=60)
    took = time.monotonic() - stopped
    assert took < DURATION_SECONDS, f"{took:.1f} s: the standby waited the Lease out"
    assert _lease(cluster, namespace)["holderIdentity"] == "replica-b"
    _assert_each_job_placed_once(cluster, namespace, {"after": "replica-b"})
    assert b.healthy()


def test_a_leader_frozen_past_its_lease_writes_nothing_when_it_wakes(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    """Fencing: a leader paused (SIGSTOP: a long GC pause, a stalled VM) while the standby took
    over must not act on what it knew when it wakes; its proof ran out on its own clock."""
    a = _replica(start_operator, namespace, "replica-a")
    _wait_leader(cluster, namespace, a, "replica-a")
    b = _replica(start_operator, namespace, "replica-b")
    pool.add("h100", 1)
    apply(cluster, namespace, model_job("before", pool, gpus=1))
    wait_phase(cluster, namespace, "before", "Running")
    bound_by_a = _bound_by(a)
    assert a.process is not None
    a.process.send_signal(signal.SIGSTOP)
    try:
        _wait_leader(cluster, namespace, b, "replica-b")
        apply(cluster, namespace, model_job("during", pool, gpus=1))
        wait_phase(cluster, namespace, "during", "Running")
    finally:
        a.process.send_signal(signal.SIGCONT)
    apply(cluster, namespace, model_job("after", pool, gpus=1))
    wait_phase(cluster, namespace, "after", "Running")
    wait_for(lambda: sample_sum(a.metrics(), "modeljob_leader") == 0, "the woken replica stands by")
    _wait_role(a, "standby", "replica-b")
    assert _bound_by(a) == bound_by_a, "the woken replica bound nothing"
    _assert_each_job_placed_once(
        cluster, namespace, {"before": "replica-a", "during": "replica-b", "after": "replica-b"}
    )
