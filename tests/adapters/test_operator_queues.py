"""Queues in the scheduling loop against the in-memory API server: a reclaiming team preempts the
other team's borrowing gangs whole, the plan is written before any victim is evicted, and a crash
at any write of a preemption leaves every victim fully evicted or fully kept and the preemptor
placed once. Queue status is written when it changes."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pytest

from modeljob.adapters.cluster_errors import ClusterError, NotFoundError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.scheduling_loop import SchedulingLoop
from tests.adapters.test_operator_scheduling_loop import Crash, FakeApiServer, start_operator
from tests.operator_builders import at, modeljob_dict, node_dict

Json = dict[str, Any]
H100 = "NVIDIA-H100-80GB-HBM3"


class QueueApiServer(FakeApiServer):
    """The fake API server with cluster-scoped Queues and their status subresource."""

    def patch_queue_status(self, name: str, patch: Json) -> Json:
        current = self.objects.get(("queues", "", name))
        if current is None:
            raise NotFoundError("not found", status=404)
        if (patch.get("metadata") or {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ClusterError("409 Conflict", status=409, reason="Conflict")
        self._hook("queue", name)
        current["status"] = {**(current.get("status") or {}), **patch["status"]}
        return self.put("queues", current)


def queue(name: str, *, parent: str | None = None, nominal: int | None = None) -> Json:
    spec: Json = {"preemption": {"reclaimBorrowed": True, "minRuntime": "0s"}}
    if parent:
        spec["parent"] = parent
    if nominal is not None:
        spec["quota"] = [{"resource": "nvidia.com/gpu", "products": [H100], "nominal": nominal}]
    return {"apiVersion": "modeljob.dev/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": spec}


def job(name: str, queue_name: str, *, replicas: int) -> Json:
    document = modeljob_dict(status={"phase": "Queued", "observedGeneration": 1})
    document["metadata"].update(name=name, uid=f"uid-{name}")
    document["spec"].update(
        replicas=replicas,
        resources={"gpus": 4},
        accelerator={"products": [H100]},
        scheduling={"queue": queue_name},
    )
    return document


def operator(api: QueueApiServer) -> tuple[SchedulingLoop, ClusterView]:
    """A fresh operator whose view is what the API server holds now, Queues included."""
    queues = {key: obj for key, obj in api.objects.items() if key[0] == "queues"}
    for key in queues:
        del api.objects[key]
    try:
        loop, view = start_operator(api, clock=lambda: at(100))
    finally:
        api.objects.update(queues)
    for obj in queues.values():
        view.queues.observe(copy.deepcopy(obj))
    return loop, view


@pytest.fixture
def api() -> QueueApiServer:
    """Two 8-GPU H100 nodes, two teams under one parent (8 each), team-a running four 4-GPU jobs:
    a3 and a4, the youngest by name at equal start, borrow team-b's idle 8."""
    server = QueueApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index))
    for document in (
        queue("research"),
        queue("team-a", parent="research", nominal=8),
        queue("team-b", parent="research", nominal=8),
    ):
        server.put("queues", document)
    for index in range(1, 5):
        server.put("modeljobs", job(f"a{index}", "team-a", replicas=1))
    loop, _ = operator(server)
    loop.run_once()
    assert all(server.job("ml", f"a{i}")["status"]["phase"] == "Scheduled" for i in range(1, 5))
    server.put("modeljobs", job("b1", "team-b", replicas=2))
    return server


def pods_of(api: FakeApiServer, name: str) -> list[str]:
    return sorted(
        p["metadata"]["name"] for p in api.pods() if p["metadata"]["labels"].get("modeljob.dev/job") == name
    )


def settle(api: QueueApiServer, cycles: int = 4) -> None:
    """Cycles, each by an operator whose view is the server's now (the fake has no watch to show
    it the pods it deleted)."""
    for _ in range(cycles):
        loop, _ = operator(api)
        loop.run_once()
        loop.events.drain()


def assert_preempted_once_and_b1_placed(api: QueueApiServer, kept: dict[str, list[str]]) -> None:
    for victim in ("a3", "a4"):
        status = api.job("ml", victim)["status"]
        assert status["phase"] == "Queued", victim
        assert status["preemptedBy"] == ["ml/b1"]
        assert status["preemptions"] == 1, "evicted once, whatever crashed"
        assert pods_of(api, victim) == []
        preempted = next(c for c in status["conditions"] if c["type"] == "Preempted")
        assert preempted["reason"] == "ReclaimBorrowed"
    for survivor in ("a1", "a2"):
        assert pods_of(api, survivor) == kept[survivor], "a job within its queue's nominal is never touched"
    b1 = api.job("ml", "b1")["status"]
    assert b1["phase"] == "Scheduled"
    assert "preempting" not in b1
    assert "nominatedNodes" not in b1
    assert len(pods_of(api, "b1")) == 2
    created = [c for c in api.calls if c.startswith("create b1-")]
    assert len(created) == len(set(created)) == 2, "b1 placed once: each of its pods made once"


def test_the_plan_is_written_on_the_preemptor_before_any_victim_is_touched(api: QueueApiServer) -> None:
    kept = {name: pods_of(api, name) for name in ("a1", "a2")}
    api.calls.clear()
    settle(api)
    patches = [c for c in api.calls if c.startswith("patch ")]
    assert patches[0].startswith("patch b1 phase=Queued")
    first_delete = next(i for i, c in enumerate(api.calls) if c.startswith("delete "))
    assert api.calls.index(patches[0]) < first_delete
    assert_preempted_once_and_b1_placed(api, kept)
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in api.events}
    assert {("b1", "Preempting"), ("a3", "Preempted"), ("a4", "Preempted"), ("b1", "Scheduled")} <= reasons
    team_a = api.objects[("queues", "", "team-a")]["status"]
    assert (team_a["admittedJobs"], team_a["pendingJobs"]) == (2, 2)
    assert api.objects[("queues", "", "team-b")]["status"]["used"] == f"8 {H100} GPUs"


@pytest.mark.parametrize("crash_at", range(1, 8), ids=lambda n: f"write-{n}")
def test_a_crash_at_any_write_of_a_preemption_evicts_each_victim_once_and_places_the_preemptor_once(
    api: QueueApiServer, crash_at: int
) -> None:
    kept = {name: pods_of(api, name) for name in ("a1", "a2")}
    writes, crashed = 0, False

    def hook(verb: str) -> Callable[[str], None]:
        def call(what: str) -> None:
            nonlocal writes, crashed
            if crashed:  # the process is gone: nothing it had under way in other threads is sent
                api.calls.remove(f"{verb} {what}")  # (the fake records a call before its hook)
                raise Crash(what)
            if verb in ("patch", "delete"):
                writes += 1
                if writes == crash_at:
                    crashed = True
                    raise Crash(what)

        return call

    api.before = {verb: hook(verb) for verb in ("patch", "delete", "create", "bind", "service")}
    loops: list[SchedulingLoop] = []

    def cycles() -> None:
        for _ in range(4):
            loop, _ = operator(api)
            loops.append(loop)
            loop.run_once()

    with pytest.raises(Crash):  # cycles until the n-th write, whichever cycle makes it
        cycles()
    for loop in loops:  # its threads, each stopped at its next call
        for pool in (loop._waiting, loop._handed.binding):
            with contextlib.suppress(Crash):
                pool.settle()
    api.before = {}
    settle(api)
    assert_preempted_once_and_b1_placed(api, kept)


def test_a_preemptor_backing_off_after_a_refused_eviction_keeps_its_nodes_from_the_evicted_victims(
    api: QueueApiServer,
) -> None:
    """a4's eviction is refused (an API error, not a crash): b1 backs off with a3 already evicted.
    Sitting out its back-off, b1 must still keep its nominated nodes, or a3, admitted again by
    borrowing what b1 has not yet taken, is placed back on them and preempted a second time."""
    kept = {name: pods_of(api, name) for name in ("a1", "a2")}

    def refuse_a4(what: str) -> None:
        if what.startswith("a4 "):
            raise ClusterError("422 Invalid: a4 is held", status=422)

    api.before = {"patch": refuse_a4}
    first, _ = operator(api)
    first.run_once()
    assert api.job("ml", "a3")["status"]["phase"] == "Queued"
    assert pods_of(api, "a3") == []
    assert api.job("ml", "a4")["status"]["phase"] == "Scheduled", "a4's eviction was refused"
    assert first._backoff.seconds_to_next_retry(at(100)) is not None, "b1 backs off"

    api.calls.clear()
    during, _ = operator(api)  # the same moment, the same back-off: b1 sits it out
    during._backoff = during._actions._backoff = first._backoff
    during.run_once()
    assert pods_of(api, "a3") == [], "a3 is kept off the nodes b1's plan nominated"
    assert not [c for c in api.calls if c.startswith("patch b1")], "b1 is not acted on while backing off"

    api.before = {}
    settle(api)  # the back-off over (a fresh operator), b1's plan is carried on
    assert_preempted_once_and_b1_placed(api, kept)
