"""The chaos soak's invariant checker (bench/chaos/invariants.py, checker.py, outcome.py) catches
each kind of violation it reports on: a checker that cannot fail would make docs/reliability.md
say nothing."""

from __future__ import annotations

from typing import Any

from bench.chaos.checker import IN_FLIGHT_LIMIT_SECONDS, Checker
from bench.chaos.hostile import HostileJob, unexplained_jobs
from bench.chaos.invariants import (
    Snapshot,
    duplicates,
    over_quota,
    overcommitted,
    partly_bound,
    quota_limits,
    vacuous_quota_checks,
)
from bench.chaos.outcome import wrong_ends
from bench.chaos.workload import JobPlan

from modeljob.adapters import kube_pods

H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"
DELETING = {"deletionTimestamp": "2026-01-01T00:00:00Z"}


def node(
    name: str, gpus: int = 8, product: str = H100, *, ready: bool = True, cpu: str = "100"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": cpu, "memory": "1000Gi"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    name: str,
    job: str,
    node_name: str | None,
    *,
    gpus: int = 1,
    replica: int = 0,
    spec_hash: str = "h",
    cpu: str = "1",
    phase: str = "Running",
    **meta: Any,
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
            "annotations": {kube_pods.ANNOTATION_SPEC_HASH: spec_hash},
            **meta,
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": str(gpus), "cpu": cpu}}}],
        },
        "status": {"phase": phase},
    }


def job(
    name: str,
    queue: str,
    placement: list[tuple[str, str]],
    *,
    phase: str = "Running",
    workload: str = "Inference",
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "chaos", "uid": f"uid-{name}"},
        "spec": {
            "replicas": 1,
            "resources": {"gpus": 1},
            "accelerator": {"products": [H100]},
            "workload": {"type": workload},
            "scheduling": {"queue": queue, "gang": True},
        },
        "status": {
            "phase": phase,
            "placement": [{"pod": p, "node": n, "replica": i} for i, (p, n) in enumerate(placement)],
            **status,
        },
    }


# --- no node over-committed ----------------------------------------------------------------------


def test_a_node_asked_for_more_gpus_than_it_has_is_over_committed() -> None:
    snapshot = Snapshot([], [pod("a", "j", "n1", gpus=6), pod("b", "k", "n1", gpus=4)], [node("n1")])
    assert overcommitted(snapshot) == ["node n1 over-committed: 10 GPUs bound, 8 allocatable"]


def test_a_terminating_pod_still_holds_its_gpus_a_finished_one_does_not() -> None:
    deleting = pod("b", "k", "n1", gpus=4, **DELETING)
    assert overcommitted(Snapshot([], [pod("a", "j", "n1", gpus=6), deleting], [node("n1")])) == [
        "node n1 over-committed: 10 GPUs bound, 8 allocatable"
    ]
    done = pod("b", "k", "n1", gpus=4, phase="Succeeded")
    assert overcommitted(Snapshot([], [pod("a", "j", "n1", gpus=6), done], [node("n1")])) == []


def test_cpu_is_checked_as_well_as_gpus() -> None:
    snapshot = Snapshot(
        [], [pod("a", "j", "n1", cpu="3"), pod("b", "k", "n1", cpu="2")], [node("n1", cpu="4")]
    )
    assert overcommitted(snapshot) == ["node n1 over-committed: 5000 milli-CPU bound, 4000 allocatable"]


# --- no replica member held twice ----------------------------------------------------------------


def test_two_live_pods_for_one_replica_are_a_violation_whatever_spec_they_come_from() -> None:
    pods = [pod("a", "j", "n1", spec_hash="h1"), pod("b", "j", "n2", spec_hash="h2")]
    training = job("j", "chaos-a", [("b", "n2")], workload="Training")
    checker = Checker()
    checker.check(Snapshot([training], pods, [node("n1"), node("n2")]))
    assert checker.violations == ["chaos/j: 2 live pods for replica 0 member 0 (a@n1, b@n2)"]


def test_two_placed_pods_of_one_replica_from_two_specs_are_a_violation_even_for_serving() -> None:
    pods = [pod("a", "j", "n1", spec_hash="h1"), pod("b", "j", "n2", spec_hash="h2")]
    both = job(
        "j", "chaos-a", [("a", "n1"), ("b", "n2")], conditions=[{"type": "Updating", "status": "True"}]
    )
    assert duplicates(Snapshot([both], pods, [node("n1"), node("n2")]))[0] != []


def test_a_rolling_updates_old_and_new_pod_are_allowed_while_it_runs_and_bounded_after() -> None:
    pods = [pod("old", "j", "n1", spec_hash="h1"), pod("new", "j", "n2", spec_hash="h2")]
    nodes = [node("n1"), node("n2")]
    rolling = job("j", "chaos-a", [("new", "n2")], conditions=[{"type": "Updating", "status": "True"}])
    checker = Checker()
    checker.check(Snapshot([rolling], pods, nodes), now=0.0)
    assert checker.violations == []
    done = job("j", "chaos-a", [("new", "n2")], conditions=[{"type": "Updating", "status": "False"}])
    checker.check(Snapshot([done], pods, nodes), now=1.0)
    assert checker.violations == [], "the stray's deletion follows the status write"
    checker.check(Snapshot([done], pods, nodes), now=2.0 + IN_FLIGHT_LIMIT_SECONDS)
    assert len(checker.violations) == 1
    assert "old pod still bound" in checker.violations[0]
    same_spec = [pod("old", "j", "n1", spec_hash="h2"), pod("new", "j", "n2", spec_hash="h2")]
    assert duplicates(Snapshot([rolling], same_spec, nodes))[0] != [], "a surge pod has another spec"


def test_a_terminating_pod_beside_its_replacement_is_no_duplicate() -> None:
    pods = [pod("a", "j", "n1", **DELETING), pod("b", "j", "n2")]
    assert duplicates(Snapshot([job("j", "chaos-a", [("b", "n2")])], pods, [node("n1"), node("n2")])) == (
        [],
        {},
    )


# --- quotas --------------------------------------------------------------------------------------


def test_a_queue_above_its_nominal_plus_what_it_may_borrow_is_over_quota() -> None:
    assert quota_limits()[("chaos-b", H100)] == 32 + 8, "team-b's borrowingLimit"
    assert quota_limits()[("chaos-b", L4)] == 12 + 4, "team-a lends at most 4 L4"
    nodes = [node(f"n{i}") for i in range(6)]
    pods = [pod(f"p{i}", "big", f"n{i}", gpus=8, replica=i) for i in range(6)]  # 48 > 40
    jobs = [job("big", "chaos-b", [(f"p{i}", f"n{i}") for i in range(6)])]
    assert over_quota(Snapshot(jobs, pods, nodes)) == [f"queue chaos-b holds 48 {H100} GPUs, limit 40"]


def test_terminating_pods_count_against_the_queue_even_after_their_job_is_gone() -> None:
    nodes = [node(f"n{i}") for i in range(6)]
    pods = [pod(f"p{i}", "big", f"n{i}", gpus=8, replica=i, **DELETING) for i in range(6)]
    checker = Checker()
    checker.check(Snapshot([job("big", "chaos-b", [])], [], nodes))  # its queue is remembered
    checker.check(Snapshot([], pods, nodes))
    assert checker.violations == [f"queue chaos-b holds 48 {H100} GPUs, limit 40"]


def test_the_report_names_the_quota_checks_that_cannot_fail_here() -> None:
    nodes = [node(f"h{i}") for i in range(8)] + [node(f"l{i}", 4, L4) for i in range(6)]
    assert vacuous_quota_checks(Snapshot([], [], nodes)) == [
        f"chaos-a {H100} (limit 64, the cluster has 64)",
        f"chaos-a {L4} (limit 24, the cluster has 24)",
    ]


# --- gangs ---------------------------------------------------------------------------------------


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
    assert checker.violations == ["at rest: partly bound: chaos/g (all): 1 of 2 bound"]


# --- ends ----------------------------------------------------------------------------------------

SERVING = JobPlan("s", "single", {"spec": {}}, 0.0)


def ends(one: dict[str, Any], pods: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> list[str]:
    return wrong_ends([SERVING], Snapshot([one], pods, nodes), "chaos")


def test_a_failed_training_job_is_a_right_end_only_when_lost_nodes_used_its_restarts_up() -> None:
    policy = "not recreated: failurePolicy.maxRestarts is 3 and the job was recreated 3 time(s)"
    lost = f"node n2 of replica 3 was deleted; {policy}"
    crashed = f"pod s-0 of replica 0 failed: container m Error (exit code 1); {policy}"
    training = JobPlan("s", "train", {"spec": {}}, 0.0)

    def failed(message: str, restarts: int, plan: JobPlan = training) -> list[str]:
        one = job("s", "chaos-a", [], phase="Failed", message=message, restarts=restarts, workload="Training")
        return wrong_ends([plan], Snapshot([one], [], []), "chaos")

    assert failed(lost, 3) == []
    assert failed(crashed, 3) == [f"s: training job Failed ({crashed}), not Succeeded"]
    assert failed(lost, 1) != [], "a node lost with restarts left is recreated, not Failed"
    assert failed(lost, 3, SERVING) != [], "a serving job outlives lost nodes (docs/operator.md)"


def test_a_job_queued_at_rest_while_its_gpus_idle_on_ready_nodes_is_stuck() -> None:
    queued = job("s", "chaos-a", [], phase="Queued", message="waiting for room: no node fits now")
    full = [pod("x", "other", "n1", gpus=8)]
    assert ends(queued, full, [node("n1"), node("n2", ready=False)]) == [], "no room on a Ready node"
    stuck = ends(queued, full, [node("n1"), node("n2")])
    assert stuck == [
        "s: serving job Queued (waiting for room: no node fits now) at rest, yet 1 pod(s) of 1 "
        f"{H100} GPUs fit the idle Ready nodes, within chaos-a's quota"
    ]


def test_a_group_needs_whole_nodes_as_its_status_sizes_it() -> None:
    group = job(
        "s",
        "chaos-a",
        [],
        phase="Queued",
        message="waiting for room",
        estimate={"gpus": 8, "nodesPerReplica": 2},
    )
    one_free = [pod(f"x{i}", "other", f"n{i}", gpus=1) for i in (1, 2)]
    nodes = [node("n0"), node("n1"), node("n2")]
    assert ends(group, one_free, nodes) == [], "one whole node free, two asked"
    assert ends(group, one_free[:1], nodes) != []


def test_a_job_waiting_for_quota_its_queue_has_unused_is_stuck() -> None:
    message = f"queue chaos-a: needs 1 {H100} GPUs, nominal 32, used 39; can borrow 0"
    queued = job("s", "chaos-a", [], phase="Queued", message=message)
    full = [pod(f"x{i}", "other", f"n{i}", gpus=8) for i in range(2)]
    assert ends(queued, full, [node("n0"), node("n1")]) != [], "chaos-a holds none of its 32"


def test_a_job_behind_a_head_that_rightly_waits_rightly_waits_too() -> None:
    head = job("h", "chaos-a", [], phase="Queued", message="waiting for room: no node fits now")
    head["spec"]["resources"]["gpus"] = 8
    behind = job("s", "chaos-a", [], phase="Queued", message="waiting behind chaos/h (strict queue order)")
    snapshot = Snapshot([head, behind], [pod("x", "other", "n0", gpus=4)], [node("n0")])
    assert wrong_ends([SERVING], snapshot, "chaos") == []
    head["spec"]["resources"]["gpus"] = 2  # the head fits now: neither should wait
    assert wrong_ends([SERVING], snapshot, "chaos") != []


# --- hostile input -------------------------------------------------------------------------------


def test_a_hostile_job_among_the_well_formed_ones_must_not_wait_in_their_queue() -> None:
    manifest = {"spec": {"scheduling": {"queue": "chaos-a"}}}
    mixed = HostileJob("hostile-replicas-0001", "replicas", manifest, namespace="chaos")
    apart = HostileJob("hostile-replicas-0002", "replicas", manifest)
    status = {"status": {"phase": "Queued", "message": "queue chaos-a: needs 10000 GPUs"}}
    found = {mixed.name: status, apart.name: status}
    assert [p.split(" ")[0] for p in unexplained_jobs([mixed, apart], found, {})] == [mixed.name]
    found[mixed.name] = {"status": {"phase": "Unschedulable", "message": "the job can never fit"}}
    assert unexplained_jobs([mixed, apart], found, {}) == []
