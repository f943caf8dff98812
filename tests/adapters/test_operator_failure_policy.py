"""The loop's failure policy and suspend against an in-memory API server, crashes included."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeljob.adapters.cluster_view import ClusterView
from tests.adapters.test_operator_scheduling_loop import Crash, FakeApiServer, start_operator
from tests.operator_builders import modeljob_dict, node_dict

JOB = "llama-2-13b-sft"  # crds/examples/llama-2-13b-training-zero3.yaml: a 4-replica training gang


@pytest.fixture
def api() -> FakeApiServer:
    """Two H100 nodes and one admitted 4-replica training gang (2 GPUs per replica on H100)."""
    server = FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index))
    job = modeljob_dict("llama-2-13b-training-zero3", status={"phase": "Queued", "observedGeneration": 1})
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    server.put("modeljobs", job)
    return server


def _status(api: FakeApiServer) -> dict[str, Any]:
    return api.job("ml", JOB)["status"]


def _pods(api: FakeApiServer) -> set[str]:
    return {p["metadata"]["name"] for p in api.pods()}


def _set_phase(api: FakeApiServer, view: ClusterView, name: str, phase: str) -> None:
    """What kubelet reports: the pod Running, or its container terminated (exit code 1: Failed)."""
    pod = api.objects[("pods", "ml", name)]
    pod["status"] = {"phase": phase}
    if phase == "Failed":
        terminated = {"reason": "Error", "exitCode": 1}
        pod["status"]["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    view.pods.observe(copy.deepcopy(api.put("pods", pod)))


def _running(api: FakeApiServer, view: ClusterView) -> list[str]:
    names = sorted(_pods(api))
    for name in names:
        _set_phase(api, view, name, "Running")
    return names


def _change_spec(api: FakeApiServer, view: ClusterView, **changes: Any) -> None:
    """A spec change the handlers have admitted (a new generation, observed)."""
    job = api.job("ml", JOB)
    job["spec"].update(changes)
    job["metadata"]["generation"] += 1
    job["status"]["observedGeneration"] = job["metadata"]["generation"]
    view.jobs.observe(api.put("modeljobs", job))


def _events(api: FakeApiServer) -> list[tuple[str, str, str]]:
    return [(e["reason"], e["type"], e["message"]) for e in api.events]


def test_a_failed_pod_recreates_the_whole_gang_once_counted_status_first(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    first = _running(api, view)
    _set_phase(api, view, first[1], "Failed")
    calls = len(api.calls)
    loop.run_once()
    status = _status(api)
    assert (status["phase"], status["restarts"], status["placement"]) == ("Queued", 1, [])
    assert _pods(api) == set()
    verbs = [call.split()[0] for call in api.calls[calls:]]
    assert verbs == ["patch", "delete", "delete", "delete", "delete"], (
        "the count is written before any pod goes"
    )
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled"
    assert len(_pods(api)) == 4
    assert not _pods(api) & set(first)
    assert _status(api)["restarts"] == 1
    loop.events.drain()
    _, kind, message = next(e for e in _events(api) if e[0] == "PodFailed")
    assert kind == "Warning"
    assert message.startswith(f"pod {first[1]} of replica")
    assert "failed: container trainer Error (exit code 1)" in message
    assert message.endswith("the whole gang goes back to the queue (restart 1 of 3)")


def test_a_crash_between_the_count_and_the_deletes_neither_loses_nor_doubles_the_restart(
    api: FakeApiServer,
) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    first = _running(api, view)
    _set_phase(api, view, first[0], "Failed")

    def crash(_: str) -> None:
        raise Crash

    api.before["delete"] = crash
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["delete"]
    assert _status(api)["restarts"] == 1
    assert _pods(api) == set(first), "the operator died before deleting any pod"

    restarted, _ = start_operator(api)
    for _ in range(3):  # the old pods are strays: deleted, then the gang is placed again
        restarted.run_once()
    status = _status(api)
    assert (status["phase"], status["restarts"]) == ("Scheduled", 1)
    assert len(_pods(api)) == 4
    assert not _pods(api) & set(first)


def test_with_no_restarts_left_the_job_fails_and_stops_its_other_pods(api: FakeApiServer) -> None:
    job = api.job("ml", JOB)
    job["spec"]["failurePolicy"] = {"maxRestarts": 0}
    api.put("modeljobs", job)
    loop, view = start_operator(api)
    loop.run_once()
    first = _running(api, view)
    _set_phase(api, view, first[2], "Failed")
    loop.run_once()
    status = _status(api)
    assert status["phase"] == "Failed"
    assert status["message"].endswith(
        "not recreated: failurePolicy.maxRestarts is 0 and the job was recreated 0 time(s)"
    )
    assert "restarts" not in status
    loop.run_once()
    assert _pods(api) == {first[2]}, "the failed pod stays for its logs; the others free their GPUs"
    loop.run_once()
    assert _pods(api) == {first[2]}, "a failed job is not placed again"


def test_suspend_frees_the_pods_and_resume_places_the_job_again(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    first = _running(api, view)
    estimate = _status(api)["estimate"]
    _change_spec(api, view, suspend=True)
    loop.run_once()
    status = _status(api)
    assert (status["phase"], status["placement"]) == ("Suspended", [])
    assert status["estimate"] == estimate, "the job keeps its estimate"
    assert _pods(api) == set()
    loop.run_once()
    assert _status(api)["phase"] == "Suspended"
    _change_spec(api, view, suspend=False)
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled"
    assert len(_pods(api)) == 4
    assert not _pods(api) & set(first)
    assert "restarts" not in _status(api), "a suspension is no failure"
    loop.events.drain()
    suspended = [e for e in _events(api) if e[0] == "Suspended"]
    assert len(suspended) == 1
    assert suspended[0][1] == "Normal"
    assert suspended[0][2].startswith("suspended (spec.suspend is true): deleting pods ")


def test_a_crash_while_suspending_leaves_a_suspended_job_whose_pods_the_next_operator_deletes(
    api: FakeApiServer,
) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    first = _running(api, view)
    _change_spec(api, view, suspend=True)

    def crash(_: str) -> None:
        raise Crash

    api.before["delete"] = crash
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["delete"]
    assert _status(api)["phase"] == "Suspended"
    assert _pods(api) == set(first)
    restarted, _ = start_operator(api)
    restarted.run_once()
    assert _pods(api) == set()
    assert _status(api)["phase"] == "Suspended"
