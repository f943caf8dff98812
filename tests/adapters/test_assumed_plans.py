"""A placement's plan is written beside the next cycles, which read the job as planned meanwhile
(adapters/assumed_writes.py): its nodes stay kept for it, nothing is planned onto them, the job is
neither planned nor acted on again; a plan refused or dropped unstarted is planned afresh."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from modeljob.adapters.assumed_writes import ASSUMED_VERSION_SUFFIX, AssumedWrites, read_as_written
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import ClusterView
from tests.adapters.test_binding_off_cycle import _assert_bound_once
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, start_operator
from tests.adapters.test_waiting_writes import GANG, Blocker, _api, _patches, held_patches
from tests.operator_builders import at, modeljob_dict

RIVAL = "rival"  # asks for more GPUs than one node has, ahead of the gang in the queue


def _plans(api: FakeApiServer, name: str) -> list[str]:
    return [call for call in _patches(api, name) if call.endswith("placement=True")]


def _add_rival(api: FakeApiServer, view: ClusterView) -> None:
    rival = modeljob_dict("llama-2-13b-training-zero3", status={"phase": "Queued", "observedGeneration": 1})
    rival["metadata"].update(name=RIVAL, uid="uid-rival")
    rival["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    rival["spec"]["replicas"] = 12  # a GPU each (ZeRO-3 over 12): more than one node holds
    rival["spec"]["scheduling"]["priority"] = 100
    view.jobs.observe(api.put("modeljobs", rival))


def _held_plan(api: FakeApiServer, name: str) -> tuple[threading.Event, threading.Event]:
    """``name``'s plan write held at the API server until the second event is set."""
    return held_patches(api, lambda what: what.startswith(f"{name} ") and what.endswith("placement=True"))


def test_a_plan_being_written_keeps_its_nodes_from_a_job_that_arrives_ahead_of_it() -> None:
    api = _api(cordoned=False)
    loop, view = start_operator(api)
    writing, release = _held_plan(api, GANG)
    loop.run_once(settle=False)
    assert writing.wait(5), "the gang's plan is on its way to the API server"
    assert "placement" not in api.job("ml", GANG)["status"]

    _add_rival(api, view)  # fits the two nodes only if the gang's plan is not there
    result = loop.run_once(settle=False)
    steps = {step.job.name: type(step).__name__ for step in result.steps}
    assert steps[RIVAL] == "Wait", "the gang's nodes are kept for its plan being written"
    assert steps[GANG] == "Complete", "the gang is read as planned, not planned again"

    release.set()
    loop.run_once()
    assert _plans(api, RIVAL) == [], "never planned onto the gang's nodes"
    assert len(_plans(api, GANG)) == 1, "planned once"
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    _assert_bound_once(api)
    assert len(loop._handed.assumed) == 0, "nothing is assumed once the plan is written"


def test_a_plan_being_written_is_not_acted_on_again() -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)
    writing, release = _held_plan(api, GANG)
    loop.run_once(settle=False)
    assert writing.wait(5)
    calls = len(api.calls)
    loop.run_once(settle=False)  # it reads the plan as written, its pods missing: left to the write
    assert api.calls[calls:] == [], "no pod created, nothing written, beside the plan's write"
    release.set()
    loop.run_once()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    _assert_bound_once(api)


def test_a_refused_plan_is_planned_afresh_by_the_next_cycle() -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)
    refused: list[str] = []

    def conflict_once(what: str) -> None:
        if what.startswith(f"{GANG} ") and what.endswith("placement=True") and not refused:
            refused.append(what)
            raise ClusterError("409 Conflict: the object has been modified", status=409, reason="Conflict")

    api.before["patch"] = conflict_once
    loop.run_once()
    assert refused
    assert "placement" not in api.job("ml", GANG)["status"]
    assert len(loop._handed.assumed) == 0, "the assumption ended with the refused write"
    loop.run_once()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    _assert_bound_once(api)


def test_a_plan_dropped_before_its_write_started_is_planned_afresh() -> None:
    """A replica that stops leading drops the plans not yet started; should it lead again, no
    cycle reads them as written (its pods would be bound for a plan the API server never saw)."""
    api = _api(cordoned=False)
    loop, _ = start_operator(api)
    blocker = Blocker(loop._handed.placing)
    loop.run_once(settle=False)  # the gang's plan waits behind the busy worker
    assert len(loop._handed.assumed) == 1
    loop._handed.placing.drop_queued()
    blocker.release.set()
    loop._handed.placing.settle()
    assert api.pods() == []
    assert "placement" not in api.job("ml", GANG)["status"]

    loop.run_once()
    assert len(_plans(api, GANG)) == 1, "planned again, and written this time"
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    _assert_bound_once(api)


def test_a_plan_that_cannot_be_handed_over_fails_alone_and_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)

    def broken(*_: object, **__: object) -> object:
        raise ValueError("a bug of ours in working out the plan's write")

    monkeypatch.setattr(loop._actions, "plan_write", broken)
    loop.run_once()  # the cycle itself goes on
    uid = api.job("ml", GANG)["metadata"]["uid"]
    assert uid in loop._backoff.left_alone(at(100)), (
        "the job is left alone for a while, as after a failed write"
    )
    assert len(loop._handed.assumed) == 0, "nothing is read as written"
    assert "placement" not in api.job("ml", GANG)["status"]


def _job(version: str) -> dict[str, Any]:
    return {"metadata": {"name": "a", "uid": "u", "resourceVersion": version}, "status": {"phase": "Queued"}}


def test_an_assumed_plan_is_read_only_over_the_version_it_was_decided_from() -> None:
    plans = AssumedWrites()
    plans.assume("u", ("ml", "a"), _job("7"), {"placement": [{"node": "n"}], "queuePosition": None})
    assumed = plans.of({"u"})

    read = {("ml", "a"): _job("7")}
    read_as_written(read, assumed)
    job = read[("ml", "a")]
    assert job["status"] == {"phase": "Queued", "placement": [{"node": "n"}]}, "as the write leaves it"
    assert job["metadata"]["resourceVersion"] == "7" + ASSUMED_VERSION_SUFFIX

    changed = {("ml", "a"): _job("8")}
    read_as_written(changed, assumed)
    assert changed[("ml", "a")]["metadata"]["resourceVersion"] == "8", "changed since: read as it is"
    deleted: dict[tuple[str, str], dict[str, Any]] = {}
    read_as_written(deleted, assumed)
    assert deleted == {}, "deleted since: not brought back"


def test_an_assumed_plan_whose_write_is_no_longer_pending_is_forgotten() -> None:
    plans = AssumedWrites()
    plans.assume("u", ("ml", "a"), _job("7"), {"placement": []})
    assert plans.of(set()) == []
    assert plans.of({"u"}) == [], "gone for good"
