"""Accounting as kube-scheduler does it, assumed pods, and which nodes a pod may use at all."""

from __future__ import annotations

import pytest

from modeljob.core.cluster_state import (
    AssumedPod,
    PodPhase,
    Taint,
    TaintEffect,
    Toleration,
    account,
    admits,
    merge_assumed,
)
from modeljob.core.resources import GIB
from tests.operator_builders import at, h100_nodes, make_node, make_pod


def test_every_unfinished_pod_bound_to_a_node_counts_whoever_bound_it() -> None:
    pods = [
        make_pod("ours", node="gpu-h100-0", gpus=2, cpu_milli=8000, memory_bytes=10 * GIB),
        make_pod("kube-scheduler-s", namespace="default", node="gpu-h100-0", gpus=1, cpu_milli=1000),
        make_pod("leaving", node="gpu-h100-0", gpus=1, terminating=True),
        make_pod("done", node="gpu-h100-0", gpus=4, phase=PodPhase.SUCCEEDED),
        make_pod("failed", node="gpu-h100-0", gpus=4, phase=PodPhase.FAILED),
        make_pod("unbound", gpus=4),
        make_pod("elsewhere", node="gone-node", gpus=4),
    ]
    view = account(h100_nodes(1), pods)[0]
    assert view.requested.gpus == 4
    assert view.gpu_free_milli == (0, 0, 0, 0, 1000, 1000, 1000, 1000)
    assert view.requested.cpu_milli == 10_000
    assert view.requested.memory_bytes == 10 * GIB + 2 * GIB


def test_cordoned_or_not_ready_nodes_are_not_offered() -> None:
    nodes = [make_node("a", schedulable=False), make_node("b", ready=False), make_node("c")]
    assert [(v.name, v.ready) for v in account(nodes, [])] == [("a", False), ("b", False), ("c", True)]


def test_assumed_pod_counts_until_the_watch_shows_it_bound() -> None:
    unseen = make_pod("p", node="gpu-h100-0", gpus=1)
    watched_unbound = make_pod("p", node=None, gpus=1)
    assumed = [AssumedPod(pod=unseen, since=at(0))]
    assert [p.node for p in merge_assumed([], assumed, now=at(1), ttl_seconds=30)] == ["gpu-h100-0"]
    assert [p.node for p in merge_assumed([watched_unbound], assumed, now=at(1), ttl_seconds=30)] == [
        "gpu-h100-0"
    ]
    bound = make_pod("p", node="gpu-h100-1", gpus=1)
    assert [p.node for p in merge_assumed([bound], assumed, now=at(1), ttl_seconds=30)] == ["gpu-h100-1"]
    assert merge_assumed([], assumed, now=at(31), ttl_seconds=30) == []


@pytest.mark.parametrize(
    ("taints", "tolerations", "selector", "labels", "allowed"),
    [
        ((), (), {}, {}, True),
        ((Taint("gpu", TaintEffect.NO_SCHEDULE),), (), {}, {}, False),
        ((Taint("gpu", TaintEffect.PREFER_NO_SCHEDULE),), (), {}, {}, True),
        (
            (Taint("gpu", TaintEffect.NO_SCHEDULE),),
            (Toleration(key="gpu", operator_exists=True),),
            {},
            {},
            True,
        ),
        ((Taint("gpu", TaintEffect.NO_EXECUTE, "a"),), (Toleration(key="gpu", value="b"),), {}, {}, False),
        ((Taint("x", TaintEffect.NO_EXECUTE),), (Toleration(operator_exists=True),), {}, {}, True),
        ((), (), {"pool": "a"}, {"pool": "a"}, True),
        ((), (), {"pool": "a"}, {"pool": "b"}, False),
    ],
    ids=[
        "plain",
        "untolerated-taint",
        "prefer-no-schedule-only-discourages",
        "tolerated-by-exists",
        "value-mismatch",
        "tolerate-everything",
        "selector-matches",
        "selector-differs",
    ],
)
def test_taints_tolerations_and_node_selector(
    taints: tuple[Taint, ...],
    tolerations: tuple[Toleration, ...],
    selector: dict[str, str],
    labels: dict[str, str],
    allowed: bool,
) -> None:
    node = make_node("n", taints=taints, labels=labels)
    assert admits(node, node_selector=selector, tolerations=tolerations) is allowed
