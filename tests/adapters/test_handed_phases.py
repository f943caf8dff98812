"""A running job's new phase is written beside the next cycles, which read the job in that phase
meanwhile (adapters/handed_writes.py): it is written once, with one Event, and written again if
refused; a finished job's phase frees its quota, so its cycle waits for it."""

from __future__ import annotations

import functools
import threading

from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import ClusterView
from tests.adapters.test_operator_queues import QueueApiServer, job, operator, queue
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, Json, start_operator
from tests.adapters.test_waiting_writes import GANG, _api, _patches, held_patches
from tests.operator_builders import modeljob_dict, node_dict


def _held_phase(api: FakeApiServer, name: str, phase: str) -> tuple[threading.Event, threading.Event]:
    """``name``'s write of ``phase`` held at the API server until the second event is set."""
    return held_patches(api, lambda what: what.startswith(f"{name} phase={phase} "))


def _pods_go(api: FakeApiServer, view: ClusterView, name: str, phase: str) -> None:
    for pod in api.pods():
        if pod["metadata"]["labels"].get("modeljob.dev/job") == name:
            pod["status"] = {"phase": phase}
            view.pods.observe(api.put("pods", pod))


def _training(name: str) -> Json:
    """A run of 8 GPUs (2 replicas of 4) in queue "team": it succeeds once its pods have."""
    document = job(name, "team", replicas=2)
    document["spec"]["workload"] = modeljob_dict("llama-2-13b-training-zero3")["spec"]["workload"]
    return document


def test_a_finished_job_frees_its_quota_only_once_its_phase_is_written() -> None:
    """Read as written and then refused, its quota would be charged twice: to it again, and to
    the job given it meanwhile."""
    api = QueueApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    api.put("queues", queue("team", nominal=8))
    api.put("modeljobs", _training("first"))  # the whole quota
    loop, view = operator(api)
    loop.run_once()
    api.put("modeljobs", _training("second"))
    view.jobs.observe(api.job("ml", "second"))
    _pods_go(api, view, "first", "Running")
    loop.run_once()
    assert "placement" not in api.job("ml", "second")["status"], "no quota left for it"

    writing, release = _held_phase(api, "first", "Succeeded")
    _pods_go(api, view, "first", "Succeeded")
    cycle = threading.Thread(target=functools.partial(loop.run_once, settle=False))
    cycle.start()
    assert writing.wait(5), "first's Succeeded is on its way to the API server"
    cycle.join(0.5)
    assert cycle.is_alive(), "the cycle waits for the write that frees the quota"
    assert "placement" not in api.job("ml", "second")["status"]
    release.set()
    cycle.join(5)
    loop.run_once()
    assert api.job("ml", "first")["status"]["phase"] == "Succeeded"
    assert api.job("ml", "second")["status"]["phase"] == "Scheduled", "placed once the quota is free"


def test_a_running_phase_being_written_is_read_as_written_and_written_once_with_one_event() -> None:
    api = _api(cordoned=False)
    loop, view = start_operator(api)
    loop.run_once()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    writing, release = _held_phase(api, GANG, "Running")
    _pods_go(api, view, GANG, "Running")
    loop.run_once(settle=False)  # hands the write over and ends
    assert writing.wait(5)
    calls = len(api.calls)
    result = loop.run_once(settle=False)  # reads the job as Running: nothing left to write
    assert {s.job.name: type(s).__name__ for s in result.steps}[GANG] == "Keep"
    assert api.calls[calls:] == [], "nothing written beside the phase's write"
    release.set()
    loop.run_once()
    loop.run_once()
    assert [p for p in _patches(api, GANG) if "phase=Running" in p] == [
        f"patch {GANG} phase=Running placement=False"
    ]
    assert len(loop._handed.assumed) == 0, "nothing is assumed once the phase is written"
    loop.events.drain()
    assert [e["reason"] for e in api.events].count("Running") == 1


def test_a_refused_phase_write_is_written_again_by_the_next_cycle() -> None:
    api = _api(cordoned=False)
    loop, view = start_operator(api)
    loop.run_once()
    refused: list[str] = []

    def conflict_once(what: str) -> None:
        if what.startswith(f"{GANG} phase=Running") and not refused:
            refused.append(what)
            raise ClusterError("409 Conflict: the object has been modified", status=409, reason="Conflict")

    api.before["patch"] = conflict_once
    _pods_go(api, view, GANG, "Running")
    loop.run_once()
    assert refused
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    assert len(loop._handed.assumed) == 0, "the assumption ended with the refused write"
    loop.run_once()
    assert api.job("ml", GANG)["status"]["phase"] == "Running"
