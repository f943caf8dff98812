"""The shortlist keeps one node of each class that kube-scheduler's per-node score plugins cannot
tell apart and that our scores tie (likeness, decisions.one_of_each_class; docs/extender.md).

Three empty 8-GPU nodes: a 1-GPU pod scores gpu-0 (the core's choice, smallest name) 10 and the
others 9, all within kube-scheduler's reach. Alike, gpu-1 and gpu-2 are one class: the filter
passes gpu-0 and one of them. Apart in any one field the plugins read, it passes all three.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.decisions import one_of_each_class
from modeljob.adapters.extender.likeness import NodeInputs, PodCounts, node_inputs, pod_counts
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import ExtenderService, answer_filter, answer_prioritize
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from tests.adapters.test_extender_routes import PREFERS_GPU_B, args, gpu_pod, with_spec
from tests.operator_builders import container, make_node, make_pod, pod_dict

NODES = ("gpu-0", "gpu-1", "gpu-2")
INPUTS: NodeInputs = ("192", "2Ti", ((("registry.invalid/x:1",), 1000),))
COUNTS: PodCounts = (500, 1 << 30, 500, 1 << 30)


def service(**settings: Any) -> ExtenderService:
    cache = ClusterCache(assume_seconds=30)
    cache.replace_nodes([make_node(name) for name in NODES])
    # A pod on every node that holds no resources our scores count, only what kube-scheduler counts.
    cache.replace_pods([make_pod(f"daemon-{n}", node=n, cpu_milli=0, memory_bytes=0) for n in NODES])
    cache.replace_services([])
    for name in NODES:
        cache.node_read(name, INPUTS)
        cache.pod_read(("ml", f"daemon-{name}"), COUNTS)
    return ExtenderService(
        cache=cache,
        weights=DEFAULT_WEIGHTS,
        metrics=ExtenderMetrics(),
        settings=ExtenderSettings(**settings),
        bind=lambda *_: None,
        read_pod=lambda *_: {},
        rng=np.random.default_rng(7),
    )


def filtered(extender: ExtenderService, pod: dict[str, Any] | None = None) -> list[str]:
    body = json.dumps(args(pod or gpu_pod(), *NODES)).encode()
    return list(json.loads(asyncio.run(answer_filter(extender, body)))["NodeNames"])


def test_alike_nodes_that_our_scores_tie_are_passed_as_one() -> None:
    extender = service()
    picked = set()
    for _ in range(20):
        passed = filtered(extender)
        assert len(passed) == 2
        assert passed[0] == "gpu-0"
        picked.add(passed[1])
    assert picked == {"gpu-1", "gpu-2"}  # at random, not always the same one


def differ(position: int, value: Any) -> NodeInputs:
    changed = list(INPUTS)
    changed[position] = value
    return (changed[0], changed[1], changed[2])


@pytest.mark.parametrize(
    "inputs",
    [differ(0, "96"), differ(1, "1Ti"), differ(2, ())],
    ids=["allocatable-cpu", "allocatable-memory", "images"],
)
def test_nodes_apart_in_what_the_node_states_are_kept_apart(inputs: NodeInputs) -> None:
    extender = service()
    extender.cache.node_read("gpu-2", inputs)
    assert filtered(extender) == list(NODES)


def daemon_on_gpu_2(extender: ExtenderService, counts: PodCounts | None) -> None:
    """A pod on gpu-2 whose requests are read as ``counts`` (None: not counted)."""
    key = ("ml", "daemon-gpu-2")
    extender.cache.pod_read(key, counts)
    extender.cache.pod_event(
        "MODIFIED", make_pod("daemon-gpu-2", node="gpu-2", cpu_milli=0, memory_bytes=0), key
    )


@pytest.mark.parametrize(
    "counts",
    [
        (600, 1 << 30, 500, 1 << 30),
        (500, 2 << 30, 500, 1 << 30),
        (500, 1 << 30, 600, 1 << 30),
        (500, 1 << 30, 500, 2 << 30),
    ],
    ids=["requested-cpu", "requested-memory", "non-zero-cpu", "non-zero-memory"],
)
def test_nodes_apart_in_what_their_pods_request_are_kept_apart(counts: PodCounts) -> None:
    extender = service()
    daemon_on_gpu_2(extender, counts)
    assert filtered(extender) == list(NODES)


def test_a_node_not_read_or_with_a_pod_not_counted_is_a_class_of_its_own() -> None:
    extender = service()
    extender.cache.node_read("gpu-2", None)
    assert filtered(extender) == list(NODES)
    extender = service()
    daemon_on_gpu_2(extender, None)
    assert filtered(extender) == list(NODES)


def test_nodes_our_scores_tell_apart_are_each_kept() -> None:
    """Alike for kube-scheduler (one likeness class), but scored 10, 9, 8, 9 by us: the 10 and the
    8 are kept, and one of the two 9s."""
    positions = np.arange(4, dtype=np.int64)
    values = np.array([10, 9, 8, 9], dtype=np.int64)
    alike = np.zeros(4, dtype=np.int64)
    kept = set()
    for seed in range(20):
        chosen = one_of_each_class(positions, values, likeness=alike, rng=np.random.default_rng(seed))
        assert {0, 2} <= set(chosen.tolist())
        assert len(chosen) == 3
        kept |= set(chosen.tolist())
    assert kept == {0, 1, 2, 3}
    apart = np.array([-1, -2, -3, -4], dtype=np.int64)  # each a class of its own: nothing collapses
    assert one_of_each_class(positions, values, likeness=apart, rng=np.random.default_rng(0)).tolist() == [
        0,
        1,
        2,
        3,
    ]


def test_on_the_cluster_the_collapse_keeps_every_score_kube_scheduler_could_choose() -> None:
    extender = service()
    busy = make_pod("busy", node="gpu-1", gpus=2, cpu_milli=0, memory_bytes=0)
    extender.cache.pod_read(busy.key, (0, 0, 0, 0))  # alike for kube-scheduler, not for our raw totals
    extender.cache.pod_event("ADDED", busy, busy.key)
    passed = filtered(extender)
    remembered = extender.requests.scores_of(("ml", "trainer"))
    assert remembered is not None
    scores = dict(remembered.full.scores)
    assert {scores[name] for name in passed} == set(scores.values())
    assert len(passed) == len(set(scores.values()))


@pytest.mark.parametrize(
    "pod",
    [
        with_spec(gpu_pod(), affinity=PREFERS_GPU_B),
        with_spec(gpu_pod(), volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]),
        with_spec(gpu_pod(), volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}]),
    ],
    ids=["shortlist-off-for-the-pod", "claims-a-volume", "ephemeral-volume"],
)
def test_pods_whose_nodes_may_score_apart_get_every_node(pod: dict[str, Any]) -> None:
    assert filtered(service(), pod) == list(NODES)


def test_with_the_shortlist_off_every_node_passes() -> None:
    assert filtered(service(shortlist=False)) == list(NODES)


def test_prioritize_after_a_collapsed_filter_answers_the_nodes_it_passed() -> None:
    extender = service()
    passed = filtered(extender)
    body = json.dumps(args(gpu_pod(), *passed)).encode()
    reply = json.loads(asyncio.run(answer_prioritize(extender, body)))
    assert {entry["Host"]: entry["Score"] for entry in reply} == {"gpu-0": 1}  # the other: 0, left out
    assert extender.cache.assumed(("ml", "trainer")) is not None


# --- what is read of a Node and a Pod ------------------------------------------------------------


def test_node_inputs_are_its_allocatable_cpu_and_memory_and_its_images() -> None:
    node = {
        "status": {
            "allocatable": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "8"},
            "images": [{"names": ["b", "a"], "sizeBytes": 5}, {"names": ["c"], "sizeBytes": 7}],
        }
    }
    assert node_inputs(node) == ("8", "64Gi", ((("a", "b"), 5), (("c",), 7)))


def test_pod_counts_are_kube_schedulers_requested_and_non_zero_requested() -> None:
    asks = container("main", requests={"cpu": "1", "memory": "1Gi"})
    silent = container("side")
    pod = pod_dict("p", containers=[asks, silent], overhead={"cpu": "250m"})
    # The silent container counts 100m and 200 MiB where the non-zero defaults apply.
    assert pod_counts(pod) == (1250, 1 << 30, 1350, (1 << 30) + 200 * (1 << 20))


def test_pod_counts_follow_sidecars_and_init_containers() -> None:
    sidecar = {**container("proxy", requests={"cpu": "500m", "memory": "1Gi"}), "restartPolicy": "Always"}
    setup = container("setup", requests={"cpu": "2", "memory": "1Gi"})
    pod = pod_dict("p", containers=[container("main", requests={"cpu": "1", "memory": "1Gi"})])
    pod["spec"]["initContainers"] = [sidecar, setup]
    # containers + sidecar = 1.5 CPU, 2 GiB; the init peak: setup + sidecar = 2.5 CPU, 2 GiB.
    assert pod_counts(pod) == (2500, 2 << 30, 2500, 2 << 30)


def test_pod_counts_are_not_guessed_for_pod_level_requests_or_a_resize() -> None:
    plain = pod_dict("p", containers=[container("main", requests={"cpu": "1", "memory": "1Gi"})])
    assert pod_counts(plain) == (1000, 1 << 30, 1000, 1 << 30)
    pod_level = with_spec(plain, resources={"requests": {"cpu": "2"}})
    assert pod_counts(pod_level) is None
    resizing = {
        **plain,
        "status": {
            "containerStatuses": [{"name": "main", "allocatedResources": {"cpu": "2", "memory": "1Gi"}}]
        },
    }
    assert pod_counts(resizing) is None
