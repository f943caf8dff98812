"""A serving job's rolling update against an in-memory API server, checked at every API call and
through crashes: never fewer than replicas - maxUnavailable pods Running, nothing lost."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from modeljob.adapters import kube_jobs, kube_pods
from modeljob.adapters.cluster_view import ClusterView
from tests.adapters.test_operator_scheduling_loop import Crash, FakeApiServer, start_operator
from tests.operator_builders import modeljob_dict, node_dict

JOB = "llama-3-1-8b-chat"  # crds/examples/llama-3.1-8b-inference.yaml: 1 H100 per replica
REPLICAS = 3


@pytest.fixture
def api() -> FakeApiServer:
    """Two H100 nodes (16 GPUs: room for a new pod beside the old ones) and the 8B serving job."""
    server = FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index))
    job = modeljob_dict(
        "llama-3.1-8b-inference", status={"phase": "Queued", "observedGeneration": 1}, replicas=REPLICAS
    )
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    server.put("modeljobs", job)
    return server


def _running(api: FakeApiServer) -> list[dict[str, Any]]:
    return [p for p in api.pods() if p["status"].get("phase") == "Running"]


def _kubelet(api: FakeApiServer, view: ClusterView) -> None:
    """What kwok does: every bound pod Running; and what the watch shows: deleted pods gone."""
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in api.pods()}
    for facts in view.pods.values():
        if facts.key not in names:
            view.pods._apply("DELETED", {"metadata": {"namespace": facts.namespace, "name": facts.name}})
    for pod in api.pods():
        if pod["spec"].get("nodeName") and pod["status"].get("phase") != "Running":
            pod["status"] = {"phase": "Running"}
            view.pods.observe(copy.deepcopy(api.put("pods", pod)))


def _change_template(api: FakeApiServer, view: ClusterView) -> str:
    """A new image, admitted by the handlers (generation 2); the new spec hash."""
    job = api.job("ml", JOB)
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:v0.9.0"
    job["metadata"]["generation"] = 2
    job["status"]["observedGeneration"] = 2
    view.jobs.observe(api.put("modeljobs", job))
    return kube_jobs.spec_hash(job["spec"])


def _hashes(api: FakeApiServer) -> list[str]:
    return sorted(p["metadata"]["annotations"][kube_pods.ANNOTATION_SPEC_HASH] for p in api.pods())


def _watch_availability(api: FakeApiServer, low: list[int]) -> None:
    """Before every API call, note how many pods run: the availability at every moment."""
    for verb in ("patch", "create", "bind", "delete"):
        api.before[verb] = lambda _what: low.append(len(_running(api)))


def _serving(api: FakeApiServer) -> ClusterView:
    loop, view = start_operator(api)
    loop.run_once()
    _kubelet(api, view)
    loop.run_once()
    assert api.job("ml", JOB)["status"]["phase"] == "Running"
    return view


def test_a_template_change_replaces_one_replica_at_a_time_new_pod_first(api: FakeApiServer) -> None:
    view = _serving(api)
    old = {p["metadata"]["name"] for p in api.pods()}
    new_hash = _change_template(api, view)
    low: list[int] = []
    _watch_availability(api, low)
    loop, view = start_operator(api)
    for _ in range(12):
        loop.run_once()
        _kubelet(api, view)
    assert _hashes(api) == [new_hash] * REPLICAS, "every replica replaced"
    assert not old & {p["metadata"]["name"] for p in api.pods()}
    assert min(low) >= REPLICAS, "with room, a new pod runs before its old one goes"
    status = api.job("ml", JOB)["status"]
    updating = next(c for c in status["conditions"] if c["type"] == "Updating")
    assert (status["phase"], updating["status"], updating["reason"]) == ("Running", "False", "Updated")
    loop.events.drain()
    reasons = [e["reason"] for e in api.events]
    assert reasons.count("Updating") >= REPLICAS
    assert reasons[-1] == "Updated"


@pytest.mark.parametrize("seed", range(6))
def test_a_crash_at_any_call_loses_no_progress_and_keeps_two_of_three_running(
    api: FakeApiServer, seed: int
) -> None:
    view = _serving(api)
    new_hash = _change_template(api, view)
    chance = random.Random(seed)
    low: list[int] = []
    calls = {"left": chance.randrange(1, 12)}

    def maybe_crash(_what: str) -> None:
        low.append(len(_running(api)))
        calls["left"] -= 1
        if calls["left"] == 0:
            calls["left"] = chance.randrange(1, 12)
            raise Crash

    for verb in ("patch", "create", "bind", "delete"):
        api.before[verb] = maybe_crash
    crashes = 0
    for _ in range(40):
        loop, view = start_operator(api)  # a fresh operator knows only what the API server holds
        try:
            loop.run_once()
        except Crash:
            crashes += 1
        _kubelet(api, view)
        if _hashes(api) == [new_hash] * REPLICAS and len(_running(api)) == REPLICAS:
            break
    assert crashes > 0
    assert _hashes(api) == [new_hash] * REPLICAS
    assert min(low) >= REPLICAS - 1, f"at most maxUnavailable (1) replica down: {low}"
    placement = api.job("ml", JOB)["status"]["placement"]
    assert sorted(e["replica"] for e in placement) == list(range(REPLICAS))
    assert {e["pod"]: e["node"] for e in placement} == {
        p["metadata"]["name"]: p["spec"]["nodeName"] for p in api.pods()
    }, "every pod bound once, where its placement says"


def test_without_room_beside_them_the_old_pods_go_first_one_at_a_time(api: FakeApiServer) -> None:
    view = _serving(api)
    # Everything but the serving pods' own GPUs taken: no new pod fits beside an old one.
    node_gpus = {p["spec"]["nodeName"] for p in api.pods()}
    for index, node in enumerate(sorted(node_gpus)):
        used = sum(1 for p in api.pods() if p["spec"]["nodeName"] == node)
        hog = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"hog-{index}", "namespace": "other"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(8 - used)}}}],
            },
            "status": {"phase": "Running"},
        }
        view.pods.observe(api.put("pods", hog))
    new_hash = _change_template(api, view)
    low: list[int] = []
    _watch_availability(api, low)
    loop, view = start_operator(api)
    for _ in range(15):
        loop.run_once()
        _kubelet(api, view)
    ours = [p for p in api.pods() if p["metadata"]["namespace"] == "ml"]
    assert (
        sorted(p["metadata"]["annotations"][kube_pods.ANNOTATION_SPEC_HASH] for p in ours) == [new_hash] * 3
    )
    assert min(low) >= REPLICAS + len(node_gpus) - 1, "one replica down at a time (the hogs run too)"
    loop.events.drain()
    assert any("goes first" in e["message"] for e in api.events if e["reason"] == "Updating")
