"""Waiting jobs' status writes land beside the next cycles instead of holding up the one that made
them: a job that fits is placed while the API server is still behind on others' Queued writes,
a job never has two waiting writes pending, and a step that places a job drops its waiting write
that had not started."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import pytest

from modeljob.adapters import kube_jobs
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.scheduling_loop import SchedulingLoop
from modeljob.adapters.waiting_writes import WaitingWrites
from modeljob.core.status import WaitingWrite, waiting_write
from modeljob.core.steps import Wait
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, Json, start_operator
from tests.operator_builders import at, modeljob_dict, node_dict

GANG = "llama-2-13b-sft"  # crds/examples/llama-2-13b-training-zero3.yaml: 4 replicas of 2 H100s


def _api(*, cordoned: bool, server: FakeApiServer | None = None) -> FakeApiServer:
    server = server if server is not None else FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index, unschedulable=cordoned))
    job = modeljob_dict("llama-2-13b-training-zero3", status={"phase": "Queued", "observedGeneration": 1})
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    server.put("modeljobs", job)
    return server


def _too_big(server: FakeApiServer, name: str) -> None:
    """A new job (not yet admitted) that no node set here can hold: it waits."""
    job = modeljob_dict("llama-2-13b-training-zero3")
    job["metadata"].update(name=name, uid=f"uid-{name}")
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    job["spec"]["replicas"] = 64
    server.put("modeljobs", job)


class Blocker:
    """Holds the loop's only waiting-write worker until released: the API server falling behind."""

    def __init__(self, writes: WaitingWrites) -> None:
        self.release = threading.Event()
        self.running = threading.Event()
        writes.submit("blocker", self._hold)
        assert self.running.wait(5)

    def _hold(self) -> None:
        self.running.set()
        self.release.wait(10)


def _patches(api: FakeApiServer, name: str) -> list[str]:
    return [call for call in api.calls if call.startswith(f"patch {name} ")]


def test_a_job_that_fits_is_placed_while_another_jobs_waiting_write_is_still_pending() -> None:
    api = _api(cordoned=False)
    _too_big(api, "huge")
    loop, _ = start_operator(api)  # one worker for waiting writes
    blocker = Blocker(loop._waiting)

    loop.run_once(settle=False)
    loop._handed.placing.settle()
    assert api.job("ml", GANG)["status"].get("placement"), "its plan written by a pool of its own"
    assert _patches(api, "huge") == [], "its Queued write waits behind the API server's backlog"

    loop.run_once(settle=False)  # the same wait again: not handed over a second time
    loop._handed.binding.settle()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled", "bound beside the backlog"
    blocker.release.set()
    loop._waiting.settle()
    assert len(_patches(api, "huge")) == 1
    status = api.job("ml", "huge")["status"]
    assert status["phase"] == "Unschedulable", "64 replicas of 2 GPUs fit no two nodes"
    assert status["observedGeneration"] == 1, "its admission went with that write"
    assert status["message"], "the user reads why it waits"


class CountingApiServer(FakeApiServer):
    """Counts every status write sent, those refused as stale (409) too."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def patch_modeljob_status(self, namespace: str, name: str, patch: Json) -> Json:
        self.sent.append(f"{name} phase={patch['status'].get('phase')}")
        return super().patch_modeljob_status(namespace, name, patch)


def test_a_job_placed_before_its_waiting_write_started_is_never_written_as_waiting() -> None:
    api = _api(cordoned=True, server=CountingApiServer())
    loop, view = start_operator(api)
    blocker = Blocker(loop._waiting)

    loop.run_once(settle=False)  # both nodes cordoned: the gang waits, its write queued (not started)
    assert _patches(api, GANG) == []
    _uncordon(api, view)
    loop.run_once(settle=False)
    blocker.release.set()
    loop._waiting.settle()
    loop._handed.placing.settle()
    loop._handed.binding.settle()

    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    assert isinstance(api, CountingApiServer)
    waiting = [sent for sent in api.sent if sent.endswith(("phase=Queued", "phase=Unschedulable"))]
    assert waiting == [], "the waiting write was dropped, never sent to be refused"


def held_patches(
    api: FakeApiServer, matches: Callable[[str], bool]
) -> tuple[threading.Event, threading.Event]:
    """Each status patch ``matches`` takes (by the fake's "name phase=... placement=..." line) held
    at the API server, the API server slow to answer it, until the second event is set; the first
    is set once one arrives."""
    arrived, release = threading.Event(), threading.Event()

    def hold(what: str) -> None:
        if matches(what):
            arrived.set()
            release.wait(10)

    api.before["patch"] = hold
    return arrived, release


def _gang_waiting_with_its_write_under_way(api: FakeApiServer, loop: SchedulingLoop) -> threading.Event:
    """A first cycle on cordoned nodes: the gang waits, and its write is held under way until the
    returned event is set (the API server slow to answer it)."""
    landing, release = held_patches(api, lambda what: what.startswith(f"{GANG} phase=Unschedulable"))
    loop.run_once(settle=False)
    assert landing.wait(5)
    return release


def _uncordon(api: FakeApiServer, view: ClusterView) -> None:
    for index in (0, 1):  # as the node watch shows it
        view.nodes.observe(api.put("nodes", copy.deepcopy(node_dict(index))))


def test_a_job_whose_waiting_write_is_landing_is_placed_by_the_next_cycle_not_beside_it() -> None:
    api = _api(cordoned=True, server=CountingApiServer())
    loop, view = start_operator(api)
    release = _gang_waiting_with_its_write_under_way(api, loop)
    _uncordon(api, view)
    loop.run_once(settle=False)  # it would fit now, but its own write is still landing
    view.changed.clear()
    release.set()
    loop._waiting.settle()
    assert isinstance(api, CountingApiServer)
    assert api.sent == [f"{GANG} phase=Unschedulable"], "no plan sent to race its own write"
    assert view.changed.is_set(), "the write, landing, wakes the loop to place it"

    loop.run_once()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    assert api.sent[1:] == [f"{GANG} phase=None", f"{GANG} phase=Scheduled"], "planned once, not refused"


@pytest.mark.parametrize("room", [False, True], ids=["still-waiting", "fits-now"])
def test_a_write_that_lands_while_the_cycle_plans_leaves_the_job_to_the_next_cycle(room: bool) -> None:
    """Pending at the snapshot, landed before the cycle acts: acting on the snapshot's version would
    only be refused (a second waiting write, or a plan that loses a cycle and idles its nodes)."""
    api = _api(cordoned=True, server=CountingApiServer())
    loop, view = start_operator(api)
    release = _gang_waiting_with_its_write_under_way(api, loop)
    if room:
        _uncordon(api, view)
    planning = loop._plan

    def plan_while_it_lands(*args: object) -> object:
        result = planning(*args)  # type: ignore[arg-type]
        release.set()
        loop._waiting.settle()  # landed, written through, before this cycle acts
        return result

    loop._plan = plan_while_it_lands  # type: ignore[method-assign]
    loop.run_once(settle=False)
    assert isinstance(api, CountingApiServer)
    assert api.sent == [f"{GANG} phase=Unschedulable"], "nothing sent on the version the write replaced"
    loop._plan = planning  # type: ignore[method-assign]
    loop.run_once()
    if room:
        assert api.sent[1:] == [f"{GANG} phase=None", f"{GANG} phase=Scheduled"], "placed once, never refused"
    else:
        assert api.sent == [f"{GANG} phase=Unschedulable"], "written once: it still says why it waits"


def test_a_waiting_write_that_fails_late_backs_off_from_when_it_failed() -> None:
    api = _api(cordoned=True)
    moment = [at(100)]
    loop, _ = start_operator(api, clock=lambda: moment[0])
    blocker = Blocker(loop._waiting)

    def unavailable(what: str) -> None:
        if what.startswith(f"{GANG} phase=Unschedulable"):
            raise ClusterError("503 Service Unavailable", status=503)

    api.before["patch"] = unavailable
    loop.run_once(settle=False)  # decided at t=100, queued behind the backlog
    moment[0] = at(160)
    blocker.release.set()
    loop._waiting.settle()  # fails at t=160
    uid = api.job("ml", GANG)["metadata"]["uid"]
    assert uid in loop._backoff.left_alone(at(160)), "left alone after the failure, not before"
    assert uid not in loop._backoff.left_alone(at(161))


def test_a_replica_that_stops_drops_queued_writes_and_waits_for_the_one_under_way() -> None:
    writes = WaitingWrites(workers=1, name="test")
    started, release, landed, queued_ran = threading.Event(), threading.Event(), threading.Event(), []

    def under_way() -> None:
        started.set()
        release.wait(5)
        landed.set()

    writes.submit("first", under_way)
    writes.submit("second", lambda: queued_ran.append(True))
    assert started.wait(5)
    stopping = threading.Thread(target=writes.stop, kwargs={"wait_seconds": 5})
    stopping.start()
    release.set()
    stopping.join()
    assert landed.is_set(), "stop() returns once the write under way has landed"
    assert queued_ran == [], "a write not started is dropped"


def test_losing_the_lease_drops_the_writes_not_started() -> None:
    writes = WaitingWrites(workers=1, name="test")
    release, ran = threading.Event(), []
    writes.submit("first", lambda: release.wait(5))
    writes.submit("second", lambda: ran.append("second"))
    writes.drop_queued()
    release.set()
    writes.settle()
    assert ran == []
    assert writes.pending() == frozenset()
    writes.stop(wait_seconds=1)


def test_a_write_that_escapes_its_own_error_handling_is_raised_when_settling() -> None:
    writes = WaitingWrites(workers=1, name="test")

    def dies() -> None:
        raise KeyboardInterrupt

    writes.submit("job", dies)
    with pytest.raises(KeyboardInterrupt):
        writes.settle()
    assert writes.pending() == frozenset()
    writes.stop(wait_seconds=1)


@pytest.mark.parametrize("granted", [True, False])
def test_a_refresh_is_written_as_its_cycle_granted_it_whenever_the_write_runs(granted: bool) -> None:
    """A waiting write runs beside later cycles, whose budgets no longer name the job (it had a
    write pending): what its own cycle granted is what counts, or a backlog would drop every
    refresh it was handed and positions would stop moving."""
    api = FakeApiServer()
    written = {"phase": "Queued", "observedGeneration": 1, "queuePosition": 3, "message": "waiting for room"}
    document = api.put("modeljobs", modeljob_dict("llama-2-13b-training-zero3", status=written))
    loop, _ = start_operator(api)
    job = kube_jobs.job_facts(document)
    step = Wait(job=job, message="waiting for room", queue_position=2)
    assert waiting_write(step, document["status"]) is WaitingWrite.REFRESH
    loop._rewrites.begin_cycle(waiting=[job.uid], stale=[], limit=0)  # a later cycle: none granted
    loop._act(step, document, at(100), None, granted)
    assert api.job("ml", job.name)["status"]["queuePosition"] == (2 if granted else 3)


def test_a_job_whose_admission_is_not_yet_written_is_judged_once_per_version_and_node_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its waiting write lands beside the next cycles (a burst of thousands: minutes behind); until
    then each cycle sees the same version, judged the same way, as the same JobFacts object that
    the cycle's own caches know it by (judging 10,000 jobs again took seconds a cycle), while the
    node types and prices it may use stand."""
    from modeljob.adapters import job_admission

    judged: list[str] = []
    original = job_admission.judge

    def counting(job: Any, **kwargs: Any) -> Any:
        judged.append(job.name)
        return original(job, **kwargs)

    monkeypatch.setattr(job_admission, "judge", counting)
    server = FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index, unschedulable=True))  # cordoned: every job waits
    for index in range(3):
        job = modeljob_dict("llama-2-13b-training-zero3", replicas=1)  # new: no status yet
        job["metadata"].update(name=f"job-{index}", uid=f"uid-job-{index}")
        job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
        server.put("modeljobs", job)
    loop, view = start_operator(server)
    blocker = Blocker(loop._waiting)  # the API server behind: no admission lands meanwhile
    loop.run_once(settle=False)
    loop.run_once(settle=False)
    assert sorted(judged) == ["job-0", "job-1", "job-2"]
    node = copy.deepcopy(server.objects[("nodes", "", node_dict(0)["metadata"]["name"])])
    node["metadata"]["labels"]["zone"] = "b"
    view.nodes.observe(server.put("nodes", node))  # a new node set, no label they select on
    loop.run_once(settle=False)
    assert len(judged) == 3
    node = copy.deepcopy(node)
    node["metadata"]["labels"]["modeljob.dev/price-per-hour"] = "1.00"
    view.nodes.observe(server.put("nodes", node))  # a cheaper H100 node: sized again
    loop.run_once(settle=False)
    assert len(judged) == 6
    blocker.release.set()
    loop._waiting.settle()
    assert all(server.job("ml", f"job-{i}")["status"]["observedGeneration"] == 1 for i in range(3))
