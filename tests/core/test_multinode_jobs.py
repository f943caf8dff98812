"""A job whose replica spans nodes, through the cycle: placed whole or waiting whole, in one
topology domain, and recreated a whole group at a time after a failure or a lost node."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase
from modeljob.core.job_state import JobFacts, JobPhase, Placed, RestartScope
from modeljob.core.jobs import WorkloadType
from modeljob.core.scheduling_cycle import CycleResult, CycleSettings, run_cycle
from modeljob.core.steps import Keep, Place, RollBack, SetPhase, Wait
from tests.operator_builders import H100, at, make_job, make_node, make_pod

B = 10**9
ZONE = "topology.kubernetes.io/zone"


def h100(name: str, zone: str | None = None) -> NodeFacts:
    return make_node(name, labels={ZONE: zone} if zone else None)


def big_job(replicas: int = 1, **changes: object) -> JobFacts:
    """Llama-3.1-405B sized: 2 pods of 8 × 80 GiB GPUs per replica."""
    job = make_job("llama-405b", parameters=405 * B, replicas=replicas, products=(H100,))
    return replace(job, **changes)  # type: ignore[arg-type]


def cycle(jobs: Sequence[JobFacts], nodes: Sequence[NodeFacts], pods: Sequence[PodFacts] = ()) -> CycleResult:
    return run_cycle(jobs, nodes, pods, now=at(1000), settings=CycleSettings())


def busy(node: str) -> PodFacts:
    return make_pod(f"other-on-{node}", node=node, gpus=8)


def test_a_405b_replica_is_placed_as_two_pods_on_two_nodes_of_one_zone() -> None:
    nodes = [h100("a0", "a"), h100("b0", "b"), h100("b1", "b")]
    (step,) = cycle([big_job()], nodes).steps
    assert isinstance(step, Place)
    assert [(a.replica, a.member, a.node) for a in step.placement] == [(0, 0, "b0"), (0, 1, "b1")]
    assert step.candidate.pods_per_replica == 2
    assert step.tried[0].gpus_per_replica == 16


def test_with_one_free_node_the_job_waits_whole() -> None:
    nodes = [h100("a0", "a"), h100("a1", "a")]
    (step,) = cycle([big_job()], nodes, [busy("a1")]).steps
    assert isinstance(step, Wait)
    assert "needs 2 pods of 8 × 80 GiB GPUs, one node each, per replica" in step.message


def test_required_topology_waits_naming_the_zones_and_their_free_gpus() -> None:
    nodes = [h100("a0", "a"), h100("a1", "a"), h100("b0", "b"), h100("b1", "b")]
    job = big_job(topology_required=True)
    (step,) = cycle([job], nodes, [busy("a1"), busy("b1")]).steps
    assert isinstance(step, Wait)
    assert "no topology.kubernetes.io/zone domain has 2 nodes" in step.message
    assert "a: 1 node(s) with room, 8 free GPU(s); b: 1 node(s) with room, 8 free GPU(s)" in step.message


def test_the_job_names_its_own_topology_key() -> None:
    rack = "example.com/rack"
    nodes = [make_node(n, labels={rack: r}) for n, r in [("a0", "r1"), ("b0", "r2"), ("b1", "r2")]]
    (step,) = cycle([big_job(topology_key=rack, topology_required=True)], nodes).steps
    assert isinstance(step, Place)
    assert {a.node for a in step.placement} == {"b0", "b1"}


def grouped(job: JobFacts, *nodes: str) -> JobFacts:
    """``job`` bound with each replica's two pods on consecutive ``nodes`` (global index i)."""
    entries = tuple(
        Placed(replica=i // 2, member=i % 2, pod=f"{job.name}-{i}-abcde", node=node)
        for i, node in enumerate(nodes)
    )
    return replace(job, placement=entries, placed_generation=job.generation, phase=JobPhase.RUNNING)


def pods(job: JobFacts, failed: str = "") -> list[PodFacts]:
    return [
        make_pod(
            e.pod,
            node=e.node,
            gpus=8,
            job=job,
            replica=e.replica,
            phase=PodPhase.FAILED if e.pod == failed else PodPhase.RUNNING,
        )
        for e in job.placement
    ]


def test_a_running_group_is_kept_running() -> None:
    job = grouped(big_job(), "n0", "n1")
    (step,) = cycle([job], [h100("n0"), h100("n1")], pods(job)).steps
    assert isinstance(step, Keep)


def test_restart_scope_replica_recreates_the_failed_pods_whole_group_only() -> None:
    job = grouped(big_job(2, gang=False, restart_scope=RestartScope.REPLICA), "n0", "n1", "n2", "n3")
    nodes = [h100(f"n{i}") for i in range(4)]
    step = cycle([job], nodes, pods(job, failed="llama-405b-3-abcde")).steps[0]
    assert isinstance(step, RollBack)
    assert step.restart
    assert sorted(step.delete_pods) == ["llama-405b-2-abcde", "llama-405b-3-abcde"]
    assert [(e.replica, e.member) for e in step.keep] == [(0, 0), (0, 1)]


def test_a_lost_node_under_a_group_sends_the_gang_back_whole() -> None:
    job = grouped(big_job(), "n0", "n1")
    nodes = [h100("n0"), replace(h100("n1"), ready=False, not_ready_since=at(0))]
    step = cycle([job], nodes, pods(job)).steps[0]
    assert isinstance(step, RollBack)
    assert sorted(step.delete_pods) == ["llama-405b-0-abcde", "llama-405b-1-abcde"]
    assert step.keep == ()


def test_a_training_group_succeeds_when_all_its_pods_have() -> None:
    job = grouped(big_job(), "n0", "n1")
    training = replace(job.shape.workload, type=WorkloadType.TRAINING)
    job = replace(job, shape=replace(job.shape, workload=training))
    done = [replace(p, phase=PodPhase.SUCCEEDED) for p in pods(job)]
    step = cycle([job], [h100("n0"), h100("n1")], done).steps[0]
    assert isinstance(step, SetPhase)
    assert step.phase is JobPhase.SUCCEEDED
