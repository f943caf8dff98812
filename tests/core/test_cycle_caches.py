"""What the scheduling cycle keeps or counts so a deep queue costs less (the node masks jobs share,
each mask's key, the work counted by distinct request, the nodes' views, the pod rules' entries,
the steps of jobs with no placement and no pods, whether a gang fits the nodes emptied) gives
what working it out again gives: a changed input is seen at once."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from modeljob.core.cluster_state import AccountedViews, PodFacts, PodPhase, account
from modeljob.core.cycle_cluster import Cluster
from modeljob.core.fragmentation import TaskShape, learn_target_workload
from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.nodes import PodRequest, build_node_table
from modeljob.core.plan_memo import PlanMemo
from modeljob.core.planning import count_work, host_demand, target_workload
from modeljob.core.pod_index import IndexedPods, PodIndex
from modeljob.core.resources import GIB
from modeljob.core.scheduling_cycle import CycleMemory, CycleSettings, run_cycle
from modeljob.core.scoring.scorers.cpu_balance import learn_host_demand
from modeljob.core.steps import RollBack, Step, Unschedulable, Wait
from tests.operator_builders import at, make_job, make_node, make_pod


def _cluster() -> Cluster:
    return Cluster([make_node(f"gpu-{i}") for i in range(4)], [], {})


def test_the_nodes_a_job_may_use_drop_those_kept_for_a_preemption_reserved_after_asking() -> None:
    cluster, job = _cluster(), make_job("waiting")
    assert cluster.usable(job).tolist() == [True] * 4
    cluster.reserve_nodes("ml/preemptor", ["gpu-1"])
    assert cluster.usable(job).tolist() == [True, False, True, True]
    cluster.reserve_nodes("ml/other", ["gpu-3"])  # asked again since: seen
    assert cluster.usable(job).tolist() == [True, False, True, False]


def test_a_preemptor_may_use_the_nodes_kept_for_itself_but_not_those_kept_for_others() -> None:
    cluster, preemptor, other = _cluster(), make_job("preemptor"), make_job("other")
    cluster.reserve_nodes(preemptor.ref, ["gpu-0"])
    cluster.reserve_nodes(other.ref, ["gpu-2"])
    assert cluster.usable(preemptor).tolist() == [True, True, False, True]
    assert cluster.usable(other).tolist() == [False, True, True, True]
    assert cluster.usable(make_job("third")).tolist() == [False, True, False, True]


def test_jobs_that_may_use_the_same_nodes_share_one_mask_until_a_reservation() -> None:
    cluster = _cluster()
    cluster.reserve_nodes("ml/preemptor", ["gpu-1"])
    first, second = cluster.usable(make_job("a")), cluster.usable(make_job("b"))
    assert first is second
    cluster.reserve_nodes("ml/preemptor", ["gpu-2"])  # the same holder, other nodes
    assert cluster.usable(make_job("a")).tolist() == [True, True, False, True]


def test_a_masks_key_is_its_bytes_and_another_mask_gets_its_own() -> None:
    cluster = _cluster()
    memo = PlanMemo(build_node_table(cluster.views), node_type_of=cluster.type_of)
    mask = np.array([True, False, True, True])
    assert memo.mask_key(mask) == mask.tobytes()
    assert memo.mask_key(mask) is memo.mask_key(mask)  # worked out once
    other = np.array([True, True, True, False])
    assert memo.mask_key(other) == other.tobytes() != memo.mask_key(mask)
    for index in range(200):  # many short-lived masks (ids come round again): each keyed by its own
        fresh = np.array([index % 2 == 0, index % 3 == 0, False, True])
        assert memo.mask_key(fresh) == fresh.tobytes()


def _pods() -> list[PodFacts]:
    """GPU pods of a few requests (some alike), a CPU pod, and pods that hold nothing."""
    return [
        make_pod("a", node="gpu-0", gpus=1, cpu_milli=8000),
        make_pod("b", node="gpu-1", gpus=2, cpu_milli=16_000, memory_bytes=64 * GIB),
        make_pod("c", node="gpu-2", gpus=1, cpu_milli=8000),
        make_pod("cpu", node="gpu-2", cpu_milli=4000),
        make_pod("done", node="gpu-3", gpus=8, phase=PodPhase.SUCCEEDED),
        make_pod("unbound", gpus=4),
        make_pod("d", node="gpu-3", gpus=1, cpu_milli=8000),
    ]


def _one_by_one(cluster: Cluster, jobs: list[str], pods: list[PodFacts]) -> tuple[object, object]:
    """The target workload and host demand learned from every waiting job and pod, one by one."""
    preferred = [
        cluster.sizing(make_job(name, parameters=size)).candidates[0] for name, size in _JOBS if name in jobs
    ]
    shapes = [
        TaskShape(cpu_milli=c.request.resources.cpu_milli, gpu_milli=1000, gpus=c.estimate.gpus)
        for c in preferred
    ]
    holding = [p for p in pods if p.holds_resources]
    shapes += [s for p in holding if (s := TaskShape.of_running_pod(p.requests)) is not None]
    requests = [c.request for c in preferred] + [
        PodRequest(resources=p.requests) for p in holding if p.requests.gpus
    ]
    return learn_target_workload(shapes), learn_host_demand(requests)


_JOBS = [("small", 1 * 10**9), ("mid", 8 * 10**9), ("mid-2", 8 * 10**9), ("large", 70 * 10**9)]


@pytest.mark.parametrize(
    "jobs", [["small", "mid", "mid-2", "large"], ["mid", "mid-2"], []], ids=["mixed", "alike", "none waiting"]
)
def test_the_work_counted_by_distinct_request_teaches_what_each_job_and_pod_one_by_one_does(
    jobs: list[str],
) -> None:
    cluster, pods = _cluster(), _pods()
    sizings = [cluster.sizing(make_job(name, parameters=size)) for name, size in _JOBS if name in jobs]
    work = count_work(sizings, pods)
    assert (target_workload(work), host_demand(work)) == _one_by_one(cluster, jobs, pods)


def test_a_pod_that_stops_holding_its_node_is_no_longer_counted() -> None:
    cluster, pods = _cluster(), _pods()
    before = count_work([], pods)
    pods[1] = make_pod("b", node="gpu-1", gpus=2, cpu_milli=16_000, phase=PodPhase.FAILED)
    after = count_work([], pods)
    assert after != before
    assert (target_workload(after), host_demand(after)) == _one_by_one(cluster, [], pods)


def test_a_nodes_view_is_accounted_again_when_its_pods_or_the_node_change() -> None:
    nodes = [make_node(f"gpu-{i}") for i in range(3)]
    pods = [make_pod("a", node="gpu-0", gpus=2), make_pod("b", node="gpu-1", gpus=1)]
    known: AccountedViews = {}
    first = account(nodes, pods, known=known)
    again = account(nodes, pods, known=known)
    assert [a is b for a, b in zip(first, again, strict=True)] == [True, True, True]
    pods.append(make_pod("c", node="gpu-1", gpus=4))  # gpu-1's use changed
    nodes[2] = make_node("gpu-2", schedulable=False)  # gpu-2 is another object (cordoned)
    changed = account(nodes, pods, known=known)
    assert changed == account(nodes, pods)  # as accounted from scratch
    assert [v.requested.gpus for v in changed] == [2, 5, 0]
    assert changed[0] is first[0]
    assert not changed[2].ready
    assert sorted(known) == [n.name for n in nodes]
    account(nodes[:1], pods, known=known)  # nodes gone: forgotten
    assert sorted(known) == ["gpu-0"]


def test_the_pod_rules_index_sees_a_pod_that_changed_or_went() -> None:
    nodes = [make_node(f"gpu-{i}") for i in range(2)]
    job = make_job("served")
    pods = [make_pod("a", node="gpu-0", job=job), make_pod("b", node="gpu-1", job=job)]
    known: IndexedPods = {}
    first = PodIndex(nodes, pods, known=known)
    assert sorted(p.name for p in first.pods) == ["a", "b"]
    pods[1] = make_pod("b", node="gpu-1", job=job, phase=PodPhase.SUCCEEDED)  # finished: holds nothing
    pods.append(replace(make_pod("c", node="gpu-1"), labels={"role": "head"}))
    index = PodIndex(nodes, pods, known=known)
    assert [(p.name, p.node, dict(p.labels)) for p in index.pods] == [
        (p.name, p.node, dict(p.labels)) for p in PodIndex(nodes, pods).pods
    ]
    assert [p.name for p in index.pods] == ["a", "c"]
    assert index.by_job[job.uid] == ["gpu-0"]
    assert len(known) == 2


def _cycle(
    job: JobFacts, pods: list[PodFacts], memory: CycleMemory, *, ready: bool = True, free: int = 0
) -> Step:
    """The step the cycle gives ``job`` on two 2-GPU nodes, ``free`` GPUs free on the first, the
    second full (and Ready or not), with ``memory`` and without."""
    nodes = [make_node("gpu-0", gpus=2), make_node("gpu-1", gpus=2, ready=ready)]
    others = [make_pod("other-0", node="gpu-0", gpus=2 - free), make_pod("other-1", node="gpu-1", gpus=2)]
    with_memory = run_cycle([job], nodes, others + pods, now=at(60), settings=CycleSettings(), memory=memory)
    afresh = run_cycle([job], nodes, others + pods, now=at(60), settings=CycleSettings())
    assert with_memory.steps == afresh.steps
    (step,) = with_memory.steps
    return step


def test_a_waiting_job_that_changed_or_got_pods_is_reconciled_again() -> None:
    memory, job = CycleMemory(), make_job("queued")
    assert isinstance(_cycle(job, [], memory), Wait)
    assert isinstance(_cycle(job, [], memory), Wait)  # the same job object: its step kept
    stray = make_pod("queued-0-0", job=job)  # a pod of an earlier attempt, not bound
    step = _cycle(job, [stray], memory)
    assert isinstance(step, Wait)
    assert step.delete_pods == ("queued-0-0",)
    suspended = replace(job, suspend=True)  # a new object: the spec changed
    step = _cycle(suspended, [], memory)
    assert isinstance(step, RollBack)
    assert step.phase is JobPhase.SUSPENDED


def test_whether_a_gang_fits_the_nodes_emptied_is_asked_again_once_the_nodes_change() -> None:
    memory, job = CycleMemory(), make_job("three", replicas=3)  # a GPU a replica
    assert isinstance(_cycle(job, [], memory), Wait)  # fits once the nodes empty
    assert isinstance(_cycle(job, [], memory, free=1), Wait)  # planned again: the answer kept
    step = _cycle(job, [], memory, ready=False)  # a node lost: it never fits
    assert isinstance(step, Unschedulable)
    assert "do not fit even on an empty cluster" in step.message
    assert isinstance(_cycle(job, [], memory, free=1), Wait)


def test_a_jobs_ref_is_made_once_with_its_facts_and_anew_when_its_name_changes() -> None:
    job = make_job("a", namespace="team")
    assert job.ref == "team/a"
    assert replace(job, name="b").ref == "team/b"
    assert replace(job, namespace="other").ref == "other/a"
    # Not part of what the job is: equal facts are equal, and the repr is the facts'.
    assert replace(job, priority=job.priority) == job
    assert "ref=" not in repr(job)
