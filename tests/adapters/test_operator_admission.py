"""Admission in the scheduling loop, against an in-memory API server: each new generation of a spec
is judged by the leader's loop and written with the job's first step, in one conditional write."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeljob.adapters import kopf_handlers
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.scheduling_loop import SchedulingLoop
from tests.adapters.test_operator_queues import QueueApiServer, queue
from tests.adapters.test_operator_queues import operator as queue_operator
from tests.adapters.test_operator_scheduling_loop import Crash, FakeApiServer, start_operator
from tests.operator_builders import at, modeljob_dict, node_dict

Json = dict[str, Any]
NAME = "llama-2-13b-sft"  # crds/examples/llama-2-13b-training-zero3.yaml: a gang of 4 x 2 H100s


def _new_job(**spec: Any) -> Json:
    """The example gang as just created: no status at all."""
    job = modeljob_dict("llama-2-13b-training-zero3", **spec)
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    return job


@pytest.fixture
def api() -> FakeApiServer:
    """Two H100 nodes (16 GPUs) and the gang, just created."""
    server = FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index))
    server.put("modeljobs", _new_job())
    return server


def _patches(api: FakeApiServer, name: str = NAME) -> list[str]:
    return [c for c in api.calls if c.startswith(f"patch {name} ")]


def _status(api: FakeApiServer, name: str = NAME) -> Json:
    status: Json = api.job("ml", name)["status"]
    return status


def _condition(status: Json, kind: str) -> Json:
    found: Json = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def _reasons(api: FakeApiServer, loop: SchedulingLoop, name: str = NAME) -> list[str]:
    loop.events.drain()
    return [e["reason"] for e in api.events if e["involvedObject"]["name"] == name]


def _change_spec(api: FakeApiServer, view: ClusterView, change: Any) -> None:
    """The owner edits the spec: a new generation the status does not record yet."""
    job = api.job("ml", NAME)
    change(job["spec"])
    job["metadata"]["generation"] += 1
    view.jobs.observe(api.put("modeljobs", job))


def test_a_new_job_that_fits_is_admitted_and_planned_in_one_write(api: FakeApiServer) -> None:
    loop, _ = start_operator(api)
    loop.run_once()
    first, *rest = _patches(api)
    assert first == f"patch {NAME} phase=Queued placement=True", "admitted and planned at once"
    assert rest == [f"patch {NAME} phase=Scheduled placement=False"], "then only the end of binding"
    status = _status(api)
    assert status["observedGeneration"] == 1
    assert _condition(status, "Valid")["status"] == "True"
    assert status["estimate"]["gpus"] * 4 == status["gpus"], "4 replicas of the size planned"
    assert _reasons(api, loop) == ["Queued", "Scheduled"], "one Event per admission, then the plan's"


def test_a_new_job_that_can_never_fit_is_written_unschedulable_in_one_write(api: FakeApiServer) -> None:
    job = _new_job()
    job["spec"]["accelerator"] = {"products": ["NVIDIA-L4"]}  # the cluster has none
    api.put("modeljobs", job)
    loop, _ = start_operator(api)
    loop.run_once()
    assert _patches(api) == [f"patch {NAME} phase=Unschedulable placement=False"]
    status = _status(api)
    assert (status["observedGeneration"], _condition(status, "Valid")["status"]) == (1, "True")
    assert "NVIDIA-H100-80GB-HBM3, 80.0 GiB: not among spec.accelerator.products" in status["message"]
    assert _reasons(api, loop) == ["Queued", "Unschedulable"]


def test_a_new_gang_waiting_for_room_is_written_once_with_its_place_in_the_queue() -> None:
    api = FakeApiServer()
    api.put("nodes", node_dict(0))  # 8 GPUs: room for the gang once the holder is gone
    holder = modeljob_dict("llama-2-13b-training-zero3", status={"phase": "Queued", "observedGeneration": 1})
    holder["metadata"].update(name="holder", uid="uid-holder", creationTimestamp="2025-12-31T00:00:00Z")
    holder["spec"].update(replicas=1, resources={"gpus": 8})
    api.put("modeljobs", holder)
    loop, view = start_operator(api)
    loop.run_once()
    assert _status(api, "holder")["phase"] == "Scheduled"
    view.jobs.observe(api.put("modeljobs", _new_job()))
    calls = len(api.calls)
    loop.run_once()
    assert [c for c in api.calls[calls:] if c.startswith("patch ")] == [
        f"patch {NAME} phase=Queued placement=False"
    ]
    status = _status(api)
    assert (status["observedGeneration"], status["queuePosition"]) == (1, 1)
    assert status["message"].startswith("waiting for room")
    assert status["estimate"]["deviceMemoryBytes"] == 80 * 2**30, "sized for the node type it waits for"
    scheduled = _condition(status, "Scheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Waiting")
    calls = len(api.calls)
    loop.run_once()
    assert api.calls[calls:] == [], "admitted once: nothing is written again while it waits"
    assert _reasons(api, loop) == ["Queued"]


def test_a_spec_that_makes_no_sense_is_invalid_naming_the_field_once(api: FakeApiServer) -> None:
    api.put("modeljobs", _new_job(resources={"gpus": 0}))
    loop, _ = start_operator(api)
    for _ in range(3):
        loop.run_once()
    assert _patches(api) == [f"patch {NAME} phase=Invalid placement=False"]
    status = _status(api)
    valid = _condition(status, "Valid")
    assert (valid["status"], valid["reason"], valid["observedGeneration"]) == ("False", "InvalidSpec", 1)
    assert valid["message"].startswith("spec.resources.gpus: ")
    assert api.pods() == []
    assert _reasons(api, loop) == ["InvalidSpec"]


def test_a_spec_the_operator_cannot_read_is_invalid_naming_the_field_once(api: FakeApiServer) -> None:
    job = _new_job()
    job["spec"]["template"]["spec"]["containers"] = []
    api.put("modeljobs", job)
    loop, _ = start_operator(api)
    for _ in range(3):
        loop.run_once()
    assert _patches(api) == [f"patch {NAME} phase=Invalid placement=False"]
    assert _status(api)["message"] == "spec.template.spec.containers: at least one container is required"
    assert _reasons(api, loop) == ["InvalidSpec"]


def test_a_fixed_spec_is_admitted_again_and_placed(api: FakeApiServer) -> None:
    job = _new_job()
    job["spec"]["template"]["spec"]["containers"] = []
    api.put("modeljobs", job)
    loop, view = start_operator(api)
    loop.run_once()
    _change_spec(
        api, view, lambda spec: spec["template"]["spec"].update(containers=[{"name": "m", "image": "x"}])
    )
    loop.run_once()
    status = _status(api)
    assert (status["phase"], status["observedGeneration"]) == ("Scheduled", 2)
    assert _condition(status, "Valid")["status"] == "True"
    assert _reasons(api, loop) == ["InvalidSpec", "Queued", "Scheduled"]


def test_a_priority_change_is_admitted_without_moving_the_job(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    pods = sorted(p["metadata"]["name"] for p in api.pods())
    calls = len(api.calls)
    _change_spec(api, view, lambda spec: spec.setdefault("scheduling", {}).update(priority=5))
    loop.run_once()
    assert api.calls[calls:] == [f"patch {NAME} phase=Scheduled placement=False"], "one write: the admission"
    assert sorted(p["metadata"]["name"] for p in api.pods()) == pods
    assert _status(api)["observedGeneration"] == 2
    assert _reasons(api, loop)[-1] == "Sized"


def test_a_spec_change_under_a_training_gang_is_admitted_with_its_roll_back(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    calls = len(api.calls)
    _change_spec(api, view, lambda spec: spec.update(resources={"gpus": 4}))
    loop.run_once()
    [patch] = [c for c in api.calls[calls:] if c.startswith("patch ")]
    assert patch == f"patch {NAME} phase=Queued placement=True", "admitted and rolled back in one write"
    status = _status(api)
    assert (status["observedGeneration"], _condition(status, "Scheduled")["reason"]) == (2, "SpecChanged")
    assert _reasons(api, loop)[-2:] == ["Sized", "SpecChanged"]


def test_a_job_created_suspended_is_admitted_and_suspended_in_one_write(api: FakeApiServer) -> None:
    api.put("modeljobs", _new_job(suspend=True))
    loop, _ = start_operator(api)
    loop.run_once()
    assert _patches(api) == [f"patch {NAME} phase=Suspended placement=True"]
    assert _status(api)["observedGeneration"] == 1
    assert api.pods() == []
    assert _reasons(api, loop) == ["Queued", "Suspended"]


def test_a_conflict_leaves_the_generation_unadmitted_and_the_next_cycle_admits_it(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    job = api.job("ml", NAME)
    job["metadata"]["labels"] = {"someone": "else"}
    api.put("modeljobs", job)  # written after the snapshot: our write gets 409
    loop.run_once()
    assert "status" not in api.job("ml", NAME), "nothing recorded"
    view.jobs.observe(copy.deepcopy(api.job("ml", NAME)))
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled"
    assert _reasons(api, loop) == ["Queued", "Scheduled"], "the Event follows the write that went through"


def test_a_crash_after_the_admitting_plan_is_completed_without_admitting_again(api: FakeApiServer) -> None:
    def crash(_: str) -> None:
        raise Crash

    api.before["create"] = crash  # after the plan, before its first pod
    loop, _ = start_operator(api)
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["create"]
    assert _status(api)["observedGeneration"] == 1, "the plan's write recorded the admission"
    restarted, _ = start_operator(api)
    restarted.run_once()
    assert _status(api)["phase"] == "Scheduled"
    loop.events.drain()
    assert _reasons(api, restarted) == ["Queued", "Scheduled"], "admitted once, across the crash"


def test_a_failed_write_of_the_plan_admits_nothing_and_the_job_is_judged_again(api: FakeApiServer) -> None:
    def unavailable(_: str) -> None:
        raise ClusterError("patch status: 500 InternalError", status=500)

    api.before["patch"] = unavailable
    loop, _ = start_operator(api)
    loop.run_once()
    assert "status" not in api.job("ml", NAME)
    assert _reasons(api, loop) == []


def test_node_types_are_computed_once_per_node_set(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeljob.adapters import job_admission

    built: list[int] = []
    original = job_admission.ClusterNodeTypes

    class Counting(original):  # type: ignore[misc, valid-type]
        def __init__(self, nodes: Any, **kwargs: Any) -> None:
            built.append(len(list(nodes)))
            super().__init__(nodes, **kwargs)

    monkeypatch.setattr(job_admission, "ClusterNodeTypes", Counting)
    for index in range(3):
        job = _new_job(replicas=1)
        job["metadata"].update(name=f"job-{index}", uid=f"uid-job-{index}")
        api.put("modeljobs", job)
    loop, view = start_operator(api)
    loop.run_once()
    assert built == [2], "one walk over the nodes for every job judged"
    node = copy.deepcopy(api.objects[("nodes", "", node_dict(0)["metadata"]["name"])])
    node["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:01:00Z"
    view.nodes.observe(api.put("nodes", node))  # a heartbeat: the node set is the same
    _change_spec(api, view, lambda spec: spec.update(resources={"gpus": 4}))
    loop.run_once()
    assert built == [2]
    node["metadata"]["labels"]["zone"] = "b"
    view.nodes.observe(api.put("nodes", node))  # a label a nodeSelector may read: a new node set
    _change_spec(api, view, lambda spec: spec.update(resources={"gpus": 2}))
    loop.run_once()
    assert built == [2, 2]


def test_a_job_not_admitted_yet_is_judged_again_only_when_the_node_types_it_may_use_change(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeljob.adapters import job_admission

    judged: list[str] = []
    original = job_admission.judge
    monkeypatch.setattr(
        job_admission, "judge", lambda job, **kw: judged.append(job.name) or original(job, **kw)
    )

    def unavailable(_: str) -> None:
        raise ClusterError("patch status: 500 InternalError", status=500)

    api.before["patch"] = unavailable  # its admission never lands: each cycle looks at it again
    loop, view = start_operator(api)

    def taint(index: int) -> None:
        node = copy.deepcopy(api.objects[("nodes", "", node_dict(index)["metadata"]["name"])])
        node["spec"]["taints"] = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
        view.nodes.observe(api.put("nodes", node))

    loop.run_once()
    loop.run_once()
    assert judged == [NAME], "the same version of it on the same nodes"
    taint(0)  # a new node set, as kcm taints a node; the other H100 node still takes the job
    loop.run_once()
    assert judged == [NAME], "judged on the same node types"
    taint(1)  # no H100 node it may use any more
    loop.run_once()
    assert judged == [NAME, NAME]
    assert "status" not in api.job("ml", NAME), "never admitted: every write failed"


def test_a_burst_of_jobs_of_one_shape_is_checked_once(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeljob.adapters import job_admission

    checked: list[object] = []
    original = job_admission.spec_problem
    monkeypatch.setattr(job_admission, "spec_problem", lambda shape: checked.append(shape) or original(shape))
    for index in range(5):
        job = _new_job(replicas=1)
        job["metadata"].update(name=f"job-{index}", uid=f"uid-job-{index}")
        api.put("modeljobs", job)
    loop, _ = start_operator(api)
    loop.run_once()
    assert len(checked) == 2, "the gang's shape and the five one-replica jobs' shape, once each"
    assert all(_status(api, f"job-{i}")["observedGeneration"] == 1 for i in range(5))


def test_kopf_serves_no_modeljob_so_it_writes_none_on_any_replica() -> None:
    registry = kopf_handlers.kopf.OperatorRegistry()
    kopf_handlers.register(registry)
    assert registry._changing.get_all_handlers() == []
    assert registry._watching.get_all_handlers() == []
    assert {h.id for h in registry._activities.get_all_handlers()} == {
        "login-like-the-gateway",
        "start-watches-and-scheduling-loop",
        "stop-scheduling-loop",
        "scheduling-loop",
    }


def _placed(api: FakeApiServer) -> tuple[SchedulingLoop, ClusterView]:
    """The gang placed and bound, then seen by a fresh operator (its pods in the view)."""
    loop, _ = start_operator(api)
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled"
    assert len(api.pods()) == 4
    return start_operator(api)


UNREADABLE = "spec.template.spec.containers: at least one container is required"


def _unreadable(spec: Json) -> None:
    spec["template"]["spec"]["containers"] = []  # spec.template keeps what the schema cannot check


def test_a_placed_gang_whose_spec_can_no_longer_be_read_is_rolled_back_and_its_pods_deleted(
    api: FakeApiServer,
) -> None:
    loop, view = _placed(api)
    _change_spec(api, view, _unreadable)
    loop.run_once()
    status = _status(api)
    assert (status["phase"], status["observedGeneration"]) == ("Invalid", 2)
    assert not status.get("placement"), "the placement is cleared"
    assert api.pods() == [], "and the pods deleted"
    valid = _condition(status, "Valid")
    assert (valid["status"], valid["message"]) == ("False", UNREADABLE)
    assert _patches(api)[-1:] == [f"patch {NAME} phase=Invalid placement=True"], (
        "admitted Invalid and rolled back in one write"
    )
    assert _reasons(api, loop)[-2:] == ["InvalidSpec", "InvalidSpec"], "the admission's, then the roll back's"
    restarted, _ = start_operator(api)
    calls = len(api.calls)
    restarted.run_once()
    assert api.calls[calls:] == [], "nothing left to do"


def test_a_placed_job_whose_recorded_spec_an_upgraded_operator_cannot_read_is_judged_again(
    api: FakeApiServer,
) -> None:
    _placed(api)
    job = api.job("ml", NAME)
    _unreadable(job["spec"])  # the same generation: an older operator read it, this one cannot
    api.put("modeljobs", job)
    loop, _ = start_operator(api)
    loop.run_once()
    assert (_status(api)["phase"], _status(api).get("placement"), api.pods()) == ("Invalid", [], [])


def test_pods_left_by_a_crash_after_an_unreadable_jobs_roll_back_are_deleted_by_the_next_cycle(
    api: FakeApiServer,
) -> None:
    loop, view = _placed(api)
    _change_spec(api, view, _unreadable)

    def crash(_: str) -> None:
        raise Crash

    api.before["delete"] = crash  # the status is written, then the operator dies
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["delete"]
    assert (_status(api)["phase"], _status(api).get("placement")) == ("Invalid", [])
    assert len(api.pods()) == 4
    restarted, _ = start_operator(api)
    restarted.run_once()  # the generation is recorded Invalid: the job is seen from its status
    assert api.pods() == []
    assert _status(api)["phase"] == "Invalid"


def test_an_unreadable_jobs_queue_is_charged_for_its_pods_while_they_are_rolled_back() -> None:
    api = QueueApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    api.put("queues", queue("team", nominal=16))
    job = _new_job()
    job["spec"].setdefault("scheduling", {})["queue"] = "team"
    api.put("modeljobs", job)
    loop, _ = queue_operator(api)
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled"
    loop, view = queue_operator(api)  # its pods in the view
    _change_spec(api, view, _unreadable)
    result = loop.run_once()
    assert _status(api)["phase"] == "Invalid"
    assert result.queues is not None
    assert result.queues.admitted == {"team": 1}, "the gang's pods are charged to its queue"


def _errors(loop: SchedulingLoop) -> float:
    """The operator's count of attempts that ended in an error (namespace ml)."""
    value = loop._metrics.registry.get_sample_value(
        "modeljob_scheduling_attempts_total", {"namespace": "ml", "result": "error"}
    )
    return value or 0.0


@pytest.mark.parametrize("broken_step", ["size", "types_for"])
def test_a_job_whose_judgement_raises_is_invalid_saying_so_and_the_others_are_admitted(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, broken_step: str
) -> None:
    from modeljob.adapters import job_admission

    original = job_admission.ClusterNodeTypes

    class Broken(original):  # type: ignore[misc, valid-type]
        def types_for(self, job: Any) -> Any:
            if broken_step == "types_for" and job.name == "broken":
                raise RuntimeError("a bug in sizing")
            return super().types_for(job)

        def size(self, job: Any, **kwargs: Any) -> Any:
            if broken_step == "size" and job.name == "broken":
                raise RuntimeError("a bug in sizing")
            return super().size(job, **kwargs)

    monkeypatch.setattr(job_admission, "ClusterNodeTypes", Broken)
    broken = _new_job(replicas=1)
    broken["metadata"].update(name="broken", uid="uid-broken")
    api.put("modeljobs", broken)
    loop, _ = start_operator(api)
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled", "the other job's cycle went on"
    status = _status(api, "broken")
    assert status["phase"] == "Invalid"
    assert _condition(status, "Valid")["message"] == "internal error judging the spec: a bug in sizing"
    assert _errors(loop) == 1.0
    [logged] = [r for r in caplog.records if "judging the spec failed" in r.getMessage()]
    assert logged.exc_info is not None, "with its traceback"
    calls = len(api.calls)
    loop.run_once()
    assert api.calls[calls:] == [], "judged once: the status records it"


def test_an_admission_the_api_server_keeps_refusing_is_logged_counted_and_backed_off(
    api: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    job = _new_job()
    _unreadable(job["spec"])
    api.put("modeljobs", job)

    def unavailable(_: str) -> None:
        raise ClusterError("patch status: 500 InternalError", status=500)

    api.before["patch"] = unavailable
    now = [at(100)]
    loop, _ = start_operator(api, clock=lambda: now[0])
    loop.run_once()
    loop.run_once()
    assert len(_patches(api)) == 1, "left alone while it backs off"
    assert _errors(loop) == 1.0
    assert [r.levelname for r in caplog.records if "500 InternalError" in r.getMessage()] == ["WARNING"]
    del api.before["patch"]
    now[0] = at(101)  # the back-off is over
    loop.run_once()
    assert _status(api)["phase"] == "Invalid"
    assert _reasons(api, loop) == ["InvalidSpec"]


def test_a_placed_job_whose_new_generation_cannot_be_judged_keeps_running(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeljob.adapters import job_admission

    original = job_admission.ClusterNodeTypes

    class Broken(original):  # type: ignore[misc, valid-type]
        def size(self, job: Any, **kwargs: Any) -> Any:
            if job.generation > 1:
                raise RuntimeError("a bug in sizing")
            return super().size(job, **kwargs)

    monkeypatch.setattr(job_admission, "ClusterNodeTypes", Broken)
    loop, view = start_operator(api)
    loop.run_once()
    assert _status(api)["phase"] == "Scheduled"
    bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in api.pods()}
    assert len(bound) == 4
    _change_spec(api, view, lambda spec: spec.setdefault("scheduling", {}).update(priority=5))
    loop.run_once()
    loop.run_once()
    assert {p["metadata"]["name"]: p["spec"].get("nodeName") for p in api.pods()} == bound, (
        "our bug deletes no running pod"
    )
    status = _status(api)
    assert (status["phase"], status["observedGeneration"]) == ("Scheduled", 1), "generation 2 not admitted"
    assert _errors(loop) == 2.0, "counted each cycle it fails"
