"""The extender's watch-fed cache keeps the node table the core would build from scratch, event by event."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.cache_feed import attach_to_view
from modeljob.adapters.extender.fragmentation_memo import FragmentationMemo
from modeljob.core.cluster_state import AssumedPod, NodeFacts, PodFacts, PodPhase, account, merge_assumed
from modeljob.core.fragmentation import (
    TargetWorkload,
    TaskShape,
    compile_workload,
    fragmentation_milli,
    learn_target_workload,
)
from modeljob.core.nodes import NodeTable, PodRequest, build_node_table
from modeljob.core.resources import Resources
from modeljob.core.scoring.scorers.cpu_balance import learn_host_demand
from modeljob.core.scoring.scorers.gpu_fragmentation import fragmentation_after
from tests.operator_builders import H100, L4, at, make_node, make_pod

TTL_SECONDS = 30.0
NODE_NAMES = ("n0", "n1", "n2", "n3")
POD_NAMES = ("p0", "p1", "p2", "p3", "p4", "p5")


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


class Model:
    """The truth the cache must match: the operator's rule (ClusterView + merge_assumed + account)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeFacts] = {}
        self.pods: dict[tuple[str, str], PodFacts] = {}
        self.assumed: dict[tuple[str, str], AssumedPod] = {}

    def merged(self, now: float) -> list[PodFacts]:
        return merge_assumed(self.pods.values(), self.assumed.values(), now=at(now), ttl_seconds=TTL_SECONDS)

    def table(self, now: float) -> NodeTable:
        nodes = sorted(self.nodes.values(), key=lambda n: n.name)
        return build_node_table(account(nodes, self.merged(now)))


def assert_same_table(got: NodeTable, want: NodeTable) -> None:
    assert got.names == want.names
    for column in (
        "cpu_free_milli",
        "memory_free_bytes",
        "storage_free_bytes",
        "gpu_count",
        "accelerator_index",
        "product_index",
        "ready",
    ):
        np.testing.assert_array_equal(getattr(got, column), getattr(want, column), err_msg=column)
    width = max(got.gpu_free_milli.shape[1], want.gpu_free_milli.shape[1])

    def padded(array: np.ndarray) -> np.ndarray:
        return np.pad(array, ((0, 0), (0, width - array.shape[1])))

    np.testing.assert_array_equal(padded(got.gpu_free_milli), padded(want.gpu_free_milli))


nodes = st.builds(
    lambda name, gpus, product, ready, schedulable: make_node(
        name, gpus=gpus, product=product, ready=ready, schedulable=schedulable
    ),
    st.sampled_from(NODE_NAMES),
    st.sampled_from((0, 4, 8)),
    st.sampled_from((H100, L4)),
    st.booleans(),
    st.booleans(),
)
pods = st.builds(
    lambda name, node, gpus, cpu, phase, terminating: make_pod(
        name, node=node, gpus=gpus, cpu_milli=cpu, phase=phase, terminating=terminating
    ),
    st.sampled_from(POD_NAMES),
    st.one_of(st.none(), st.sampled_from((*NODE_NAMES, "elsewhere"))),
    st.integers(0, 3),
    st.sampled_from((500, 4000)),
    st.sampled_from((PodPhase.PENDING, PodPhase.RUNNING, PodPhase.SUCCEEDED)),
    st.booleans(),
)
operations = st.one_of(
    st.tuples(st.just("node"), nodes),
    st.tuples(st.just("flip-node"), st.sampled_from(NODE_NAMES), st.sampled_from(("ready", "schedulable"))),
    st.tuples(st.just("delete-node"), st.sampled_from(NODE_NAMES)),
    st.tuples(st.just("pod"), pods),
    st.tuples(st.just("delete-pod"), st.sampled_from(POD_NAMES)),
    st.tuples(st.just("assume"), st.sampled_from(POD_NAMES), st.sampled_from(NODE_NAMES), st.integers(0, 2)),
    st.tuples(st.just("forget"), st.sampled_from(POD_NAMES)),
    st.tuples(st.just("wait"), st.sampled_from((1.0, 20.0, 31.0))),
    st.tuples(st.just("relist-pods")),
    st.tuples(st.just("relist-nodes")),
    st.tuples(st.just("snapshot")),
)


TARGETS = (  # the first is sensitive to every GPU taken (a 4-GPU shape strands 1-3 idle GPUs)
    learn_target_workload(
        [TaskShape(cpu_milli=4000, gpu_milli=1000, gpus=4), TaskShape(cpu_milli=500, gpu_milli=1000, gpus=1)]
    ),
    learn_target_workload([TaskShape(cpu_milli=1000, gpu_milli=1000, gpus=1)] * 3),
)


PLACED = (  # pod shapes whose "after" fragmentation the memo keeps: whole devices, or none
    PodRequest(resources=Resources(cpu_milli=500, gpus=1)),
    PodRequest(resources=Resources(cpu_milli=4000, gpus=4)),
    PodRequest(resources=Resources(cpu_milli=2000)),
)


def check_snapshot(
    cache: ClusterCache,
    model: Model,
    clock: Clock,
    memo: FragmentationMemo,
    targets: tuple[TargetWorkload, ...],
) -> None:
    """The table is the core's; the remembered fragmentation, before and after placing each pod
    shape, is what the core would compute now (rows changed since the memo's last call
    recomputed, or all of them for another target)."""
    snapshot = cache.snapshot()
    assert_same_table(snapshot.table, model.table(clock.seconds))
    table = snapshot.table
    every_row = np.arange(len(table))
    for target in targets:
        workload = compile_workload(target, table.products)
        fresh = fragmentation_milli(table.cpu_free_milli, table.gpu_free_milli, table.product_index, workload)
        np.testing.assert_array_equal(memo.before(snapshot, target, workload), fresh)
        for request in PLACED:
            after = memo.after(snapshot, target, workload, request)
            np.testing.assert_array_equal(after, fragmentation_after(table, every_row, request, workload))


def test_no_after_is_kept_for_a_share_of_one_device() -> None:
    """A share is scored per device (the scorer picks the device), so no per-row value exists."""
    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    cache.replace_nodes([make_node("n0")])
    cache.replace_pods([])
    snapshot = cache.snapshot()
    workload = compile_workload(TARGETS[0], snapshot.table.products)
    share = PodRequest(resources=Resources(cpu_milli=500, gpus=1, gpu_milli=300))
    assert FragmentationMemo().after(snapshot, TARGETS[0], workload, share) is None


def apply(
    operation: tuple[object, ...], cache: ClusterCache, model: Model, clock: Clock, memo: FragmentationMemo
) -> None:
    kind = operation[0]
    if kind == "node":
        node = operation[1]
        assert isinstance(node, NodeFacts)
        model.nodes[node.name] = node
        cache.node_event("MODIFIED", node, ("", node.name))
    elif kind == "flip-node":  # the same node with one fact changed: its row is rewritten in place
        name, fact = str(operation[1]), str(operation[2])
        if name in model.nodes:
            node = model.nodes[name]
            if fact == "ready":
                flipped = replace(node, ready=not node.ready, view=replace(node.view, ready=not node.ready))
            else:
                flipped = replace(node, schedulable=not node.schedulable)
            model.nodes[name] = flipped
            cache.node_event("MODIFIED", flipped, ("", name))
    elif kind == "delete-node":
        name = str(operation[1])
        model.nodes.pop(name, None)
        cache.node_event("DELETED", None, ("", name))
    elif kind == "pod":
        pod = operation[1]
        assert isinstance(pod, PodFacts)
        model.pods[pod.key] = pod
        if pod.node is not None:
            model.assumed.pop(pod.key, None)  # ClusterView forgets once the watch shows it bound
        cache.pod_event("MODIFIED", pod, pod.key)
    elif kind == "delete-pod":
        key = ("ml", str(operation[1]))
        model.pods.pop(key, None)
        model.assumed.pop(key, None)
        cache.pod_event("DELETED", None, key)
    elif kind == "assume":
        _, name, node, gpus = operation
        pod = make_pod(str(name), node=str(node), gpus=int(str(gpus)), phase=PodPhase.PENDING)
        model.assumed[pod.key] = AssumedPod(pod=pod, since=at(clock.seconds))
        cache.assume(pod)
    elif kind == "forget":
        key = ("ml", str(operation[1]))
        model.assumed.pop(key, None)
        cache.forget(key)
    elif kind == "wait":
        clock.seconds += float(str(operation[1]))
        expired = [
            k for k, a in model.assumed.items() if (at(clock.seconds) - a.since).total_seconds() > TTL_SECONDS
        ]
        for key in expired:
            del model.assumed[key]
    elif kind == "relist-pods":
        cache.replace_pods(list(model.pods.values()))
    elif kind == "relist-nodes":
        cache.replace_nodes(list(model.nodes.values()))
    else:
        check_snapshot(cache, model, clock, memo, TARGETS[:1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(nodes, max_size=len(NODE_NAMES)),
    # Each step is followed by a snapshot about half the time: changes are seen one by one and in batches.
    st.lists(st.tuples(operations, st.booleans()), max_size=40).map(
        lambda pairs: [step for operation, look in pairs for step in (operation, ("snapshot",))[: 1 + look]]
    ),
)
@example(  # a node's row rewritten in place: product indices are the table's, not the node's own
    initial=[make_node("n0", product=H100), make_node("n1", product=L4)],
    steps=[("snapshot",), ("flip-node", "n1", "ready"), ("snapshot",), ("flip-node", "n0", "schedulable")],
)
@example(  # a node changing its GPUs: the table's columns cannot hold the new row, so it is rebuilt
    initial=[make_node("n0", gpus=4), make_node("n1", gpus=0)],
    steps=[
        ("snapshot",),
        ("node", make_node("n1", gpus=8)),
        ("snapshot",),
        ("node", make_node("n0", gpus=0)),
    ],
)
def test_cache_table_equals_the_core_accounting_of_the_same_events(
    initial: list[NodeFacts], steps: list[tuple[object, ...]]
) -> None:
    clock = Clock()
    cache = ClusterCache(assume_seconds=TTL_SECONDS, clock=clock)
    model = Model()
    model.nodes = {node.name: node for node in initial}
    cache.replace_nodes(list(model.nodes.values()))
    cache.replace_pods([])
    memo = FragmentationMemo()
    for step in steps:
        apply(step, cache, model, clock, memo)
    check_snapshot(cache, model, clock, memo, TARGETS)
    merged = model.merged(clock.seconds)
    waiting_or_running = [
        p
        for p in merged
        if p.holds_resources or (p.node is None and not p.phase.finished and not p.terminating)
    ]
    shapes = [s for s in (TaskShape.of_running_pod(p.requests) for p in waiting_or_running) if s is not None]
    assert cache.workload() == learn_target_workload(shapes)
    # cpu-balance's host demand from the same pods, by the core's formula: CPU and memory per GPU.
    gpu_pods = [
        PodRequest(resources=p.requests) for p in waiting_or_running if TaskShape.of_running_pod(p.requests)
    ]
    assert cache.host_demand() == learn_host_demand(gpu_pods)


def test_a_pod_the_extender_chose_counts_on_its_node_before_the_watch_shows_it() -> None:
    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    cache.replace_nodes([make_node("gpu-a")])
    cache.replace_pods([])
    cache.assume(make_pod("p", node="gpu-a", gpus=3, phase=PodPhase.PENDING))
    assert int((cache.snapshot().table.gpu_free_milli[0] == 0).sum()) == 3
    cache.pod_event("MODIFIED", make_pod("p", node="gpu-a", gpus=3), ("ml", "p"))
    assert int((cache.snapshot().table.gpu_free_milli[0] == 0).sum()) == 3, "counted once, not twice"
    assert cache.assumed(("ml", "p")) is None


def test_an_assumed_pod_stops_counting_when_it_expires() -> None:
    clock = Clock()
    cache = ClusterCache(assume_seconds=TTL_SECONDS, clock=clock)
    cache.replace_nodes([make_node("gpu-a")])
    cache.replace_pods([])
    cache.assume(make_pod("p", node="gpu-a", gpus=8, phase=PodPhase.PENDING))
    clock.seconds = TTL_SECONDS + 1
    assert int(cache.snapshot().table.gpu_free_milli[0].sum()) == 8000


def test_node_heartbeats_that_change_nothing_keep_the_table() -> None:
    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    node = make_node("gpu-a")
    cache.replace_nodes([node])
    cache.replace_pods([])
    first = cache.snapshot().table
    cache.node_event("MODIFIED", replace(node), ("", "gpu-a"))
    assert cache.snapshot().table.names is first.names


def test_snapshots_are_read_only_and_later_changes_do_not_reach_them() -> None:
    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    cache.replace_nodes([make_node("gpu-a")])
    cache.replace_pods([])
    before = cache.snapshot()
    with pytest.raises(ValueError, match="read-only"):
        before.table.gpu_free_milli[0, :] = 0
    cache.pod_event("MODIFIED", make_pod("p", node="gpu-a", gpus=2), ("ml", "p"))
    after = cache.snapshot()
    assert int(after.table.gpu_free_milli[0].sum()) == 6000
    assert int(before.table.gpu_free_milli[0].sum()) == 8000, "the earlier snapshot is unchanged"
    assert int(after.stamps[0]) != int(before.stamps[0])


def test_requests_with_nothing_changed_between_them_share_one_snapshot() -> None:
    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    cache.replace_nodes([make_node("gpu-a"), make_node("gpu-b")])
    cache.replace_pods([])
    first = cache.snapshot()
    cache.forget(("ml", "never-assumed"))
    assert cache.snapshot() is first


def test_the_cache_follows_the_operators_informers_without_replacing_their_callbacks() -> None:
    class FakeInformer:
        def __init__(self, values: list[object]) -> None:
            self._values = values
            self.synced = threading.Event()
            self.seen: list[str] = []
            self.on_change: Callable[[str, object, tuple[str, str]], None] = lambda kind, _v, _k: (
                self.seen.append(kind)
            )

        def values(self) -> list[object]:
            return self._values

    node_informer = FakeInformer([make_node("gpu-a")])
    pod_informer = FakeInformer([make_pod("p", node="gpu-a", gpus=2)])
    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    attach_to_view(cache, node_informer, pod_informer)  # type: ignore[arg-type]
    node_informer.on_change("RELISTED", None, ("", ""))
    pod_informer.on_change("RELISTED", None, ("", ""))
    pod_informer.on_change("MODIFIED", make_pod("q", node="gpu-a", gpus=1), ("ml", "q"))
    assert cache.synced
    assert int((cache.snapshot().table.gpu_free_milli[0] == 0).sum()) == 3
    assert node_informer.seen == ["RELISTED"]
    assert pod_informer.seen == ["RELISTED", "MODIFIED"]


def test_attached_after_the_operators_informers_listed_the_cache_copies_them_at_once() -> None:
    class ListedInformer:
        def __init__(self, values: list[object]) -> None:
            self._values = values
            self.synced = threading.Event()
            self.synced.set()
            self.on_change: Callable[[str, object, tuple[str, str]], None] = lambda *_: None

        def values(self) -> list[object]:
            return self._values

    cache = ClusterCache(assume_seconds=TTL_SECONDS)
    nodes, pods = ListedInformer([make_node("gpu-a")]), ListedInformer([make_pod("p", node="gpu-a", gpus=8)])
    attach_to_view(cache, nodes, pods)  # type: ignore[arg-type]
    assert cache.synced
    assert int(cache.snapshot().table.gpu_free_milli[0].sum()) == 0
