"""The scheduling loop against an in-memory API server: plan first, then bind; crashes are completed."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from modeljob.adapters import kube_pods
from modeljob.adapters.cluster_errors import AlreadyExistsError, ClusterError, NotFoundError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.kube_nodes import NodeLabelKeys
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.scheduling_loop import LoopSettings, SchedulingLoop
from modeljob.core.scheduling_cycle import CycleSettings
from modeljob.settings import SchedulingSettings
from tests.operator_builders import at, modeljob_dict, node_dict

Json = dict[str, Any]


class Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs, no except clause catches it."""


class FakeApiServer:
    """Just enough of the API server: resourceVersions, conditional status patches, pods/binding,
    Services (kept apart from ``objects``: the operator's view never lists them)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Json] = {}
        self.versions = itertools.count(1000)
        self.calls: list[str] = []
        self.events: list[Json] = []
        self.before: dict[str, Callable[[str], None]] = {}
        self.services: dict[tuple[str, str], Json] = {}
        self.server = "fake"

    def put(self, kind: str, obj: Json) -> Json:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self.versions))
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(kind, meta.get("namespace", ""), meta["name"])] = obj
        return copy.deepcopy(obj)

    def _hook(self, verb: str, what: str) -> None:
        self.calls.append(f"{verb} {what}")
        if verb in self.before:
            self.before[verb](what)

    def pods(self) -> list[Json]:
        return [o for (kind, _, _), o in self.objects.items() if kind == "pods"]

    def job(self, namespace: str, name: str) -> Json:
        return self.objects[("modeljobs", namespace, name)]

    # --- the gateway's operator methods ---

    def patch_modeljob_status(self, namespace: str, name: str, patch: Json) -> Json:
        current = self.objects.get(("modeljobs", namespace, name))
        if current is None:
            raise NotFoundError("not found", status=404)
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise ClusterError("409 Conflict: the object has been modified", status=409, reason="Conflict")
        placement = patch["status"].get("placement")
        self._hook("patch", f"{name} phase={patch['status'].get('phase')} placement={placement is not None}")
        status = current.setdefault("status", {})
        for key, value in patch["status"].items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        return self.put("modeljobs", current)

    def read_modeljob(self, namespace: str, name: str) -> Json:
        current = self.objects.get(("modeljobs", namespace, name))
        if current is None:
            raise NotFoundError("not found", status=404)
        return copy.deepcopy(current)

    def create_pod(self, namespace: str, manifest: Json) -> Json:
        name = manifest["metadata"]["name"]
        self._hook("create", name)
        if ("pods", namespace, name) in self.objects:
            raise AlreadyExistsError("exists", status=409, reason="AlreadyExists")
        pod = copy.deepcopy(manifest)
        pod["status"] = {"phase": "Pending"}
        return self.put("pods", pod)

    def bind_pod(self, namespace: str, name: str, node: str) -> None:
        self._hook("bind", f"{name}->{node}")
        pod = self.objects.get(("pods", namespace, name))
        if pod is None:
            raise NotFoundError("no pod", status=404)
        bound = pod["spec"].get("nodeName")
        if bound:
            raise ClusterError(
                f'bind: 409 Conflict: pod {name} is already assigned to node "{bound}"',
                status=409,
                reason="Conflict",
            )
        pod["spec"]["nodeName"] = node
        self.put("pods", pod)

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> None:
        self._hook("delete", name)
        if self.objects.pop(("pods", namespace, name), None) is None:
            raise NotFoundError("no pod", status=404)

    def create_service(self, namespace: str, manifest: Json) -> Json:
        name = manifest["metadata"]["name"]
        self._hook("service", name)
        if (namespace, name) in self.services:
            raise AlreadyExistsError("exists", status=409, reason="AlreadyExists")
        self.services[(namespace, name)] = copy.deepcopy(manifest)
        return copy.deepcopy(manifest)

    def read_service(self, namespace: str, name: str) -> Json:
        if (namespace, name) not in self.services:
            raise NotFoundError("no service", status=404)
        return copy.deepcopy(self.services[(namespace, name)])

    def create_event(self, namespace: str, event: Json) -> Json:
        self.events.append(event)
        return event


def start_operator(
    api: FakeApiServer,
    clock: Callable[[], datetime] = lambda: at(100),
    *,
    refreshes_per_second: float = 5.0,
) -> tuple[SchedulingLoop, ClusterView]:
    """A fresh operator: its view is what the API server holds now (as a first list would show)."""
    view = ClusterView(api, labels=NodeLabelKeys())  # type: ignore[arg-type]
    for (kind, _, _), obj in list(api.objects.items()):
        {"nodes": view.nodes, "pods": view.pods, "modeljobs": view.jobs}[kind].observe(copy.deepcopy(obj))
    loop = SchedulingLoop(
        gateway=api,  # type: ignore[arg-type]
        view=view,
        metrics=OperatorMetrics(),
        settings=LoopSettings(
            scheduling=SchedulingSettings(
                debounce_seconds=0,
                resync_seconds=1,
                bind_workers=1,  # one at a time: a crash after the n-th call is deterministic
                job_workers=1,
                status_refreshes_per_second=refreshes_per_second,
            ),
            product_label="nvidia.com/gpu.product",
            cycle=CycleSettings(node_lost_after_seconds=30),
        ),
        identity="test",
        acts=lambda: True,
        clock=clock,
    )
    return loop, view


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


def _watch_deletions(api: FakeApiServer, view: ClusterView) -> None:
    """What the pod watch shows once deleted pods are gone: the view forgets them (their creation
    put them in it bound, so until then they hold their nodes, as terminating pods do)."""
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in api.pods()}
    for facts in list(view.pods.values()):
        if facts.key not in names:
            view.pods._apply("DELETED", {"metadata": {"namespace": facts.namespace, "name": facts.name}})


def _bound_pods(api: FakeApiServer) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in api.pods()}


def test_the_plan_is_written_before_any_pod_exists_and_the_job_is_scheduled_after(api: FakeApiServer) -> None:
    loop, _ = start_operator(api)
    loop.run_once()
    verbs = [call.split()[0] for call in api.calls]
    first_pod = verbs.index("create")
    # The plan and the Service are sent side by side (the Service decides nothing), both before any pod.
    assert sorted(verbs[:first_pod]) == ["patch", "service"]
    assert "placement=True" in api.calls[verbs.index("patch")]
    assert verbs[first_pod : first_pod + 4] == ["create"] * 4, "each pod is bound by its creation"
    assert api.calls[-1].startswith("patch llama-2-13b-sft phase=Scheduled")
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["phase"] == "Scheduled"
    assert sorted(_bound_pods(api).values()) == sorted(e["node"] for e in status["placement"])
    binding = next(c for c in status["conditions"] if c["type"] == "Binding")
    assert (binding["status"], binding["reason"]) == ("False", "Bound")
    loop.events.drain()
    assert [e["reason"] for e in api.events] == ["Scheduled"]


def test_a_write_by_someone_else_while_binding_still_ends_scheduled_with_the_plans_reason(
    api: FakeApiServer,
) -> None:
    loop, _ = start_operator(api)

    def annotate(what: str) -> None:  # kopf's annotation patch lands between our plan and its end
        if what.endswith("-3"):
            job = api.job("ml", "llama-2-13b-sft")
            job["metadata"].setdefault("annotations", {})["kopf"] = "handled"
            api.put("modeljobs", job)

    api.before["create"] = lambda what: annotate(what.rsplit("-", 1)[0])
    loop.run_once()
    assert api.job("ml", "llama-2-13b-sft")["metadata"]["annotations"] == {"kopf": "handled"}
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["phase"] == "Scheduled"
    scheduled = next(c for c in status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["message"].startswith("4 pod(s) bound on NVIDIA-H100-80GB-HBM3")
    assert len([c for c in api.calls if c.startswith(("create", "bind"))]) == 4, "nothing bound twice"
    loop.events.drain()
    assert "planned on each node type the job was sized for" in api.events[-1]["message"]


def test_the_next_cycle_does_not_plan_again_from_a_stale_watch(api: FakeApiServer) -> None:
    loop, _ = start_operator(api)
    loop.run_once()
    calls = len(api.calls)
    loop.run_once()  # the watch has shown nothing new; the write-through copy is what counts
    assert [c for c in api.calls[calls:] if c.startswith(("create", "bind"))] == []


def _crash_before_create(api: FakeApiServer, after_calls: int) -> None:
    """An operator that dies before its ``after_calls``-th pod creation (counting from 0)."""
    seen = itertools.count()

    def crash(_: str) -> None:
        if next(seen) == after_calls:
            raise Crash

    api.before["create"] = crash
    loop, _ = start_operator(api)
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["create"]
    assert api.job("ml", "llama-2-13b-sft")["status"]["placement"], "the plan was written first"


@pytest.mark.parametrize("after_calls", [0, 1, 2, 3])
def test_a_crash_while_binding_is_completed_by_the_next_operator(
    api: FakeApiServer, after_calls: int
) -> None:
    _crash_before_create(api, after_calls)
    assert all(_bound_pods(api).values()), "a pod is bound by its creation: none exists unbound"

    restarted, _ = start_operator(api)
    restarted.run_once()
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["phase"] == "Scheduled"
    bound = _bound_pods(api)
    assert bound == {e["pod"]: e["node"] for e in status["placement"]}, "every pod bound where the plan says"
    assert len(bound) == 4
    restarted.events.drain()
    assert "completed an interrupted binding" in api.events[-1]["message"]


def _pods_start_at_once(api: FakeApiServer) -> None:
    """Pods whose node starts them as soon as they are created (kwok's do, often), as their
    creation's reply already shows them."""
    original = api.create_pod

    def create_running(namespace: str, manifest: Json) -> Json:
        created = original(namespace, manifest)
        pod = api.objects[("pods", namespace, created["metadata"]["name"])]
        pod["status"] = {"phase": "Running", "podIP": "10.0.0.1"}
        return api.put("pods", pod)

    api.create_pod = create_running  # type: ignore[method-assign]


def _status_writes(api: FakeApiServer, since: int = 0) -> list[str]:
    return [call.split(" ", 2)[2] for call in api.calls[since:] if call.startswith("patch")]


def test_a_job_whose_pods_already_run_when_bound_is_written_running_in_the_write_that_ends_binding(
    api: FakeApiServer,
) -> None:
    _pods_start_at_once(api)
    loop, _ = start_operator(api)
    loop.run_once()
    loop.run_once()  # nothing left to say: no Running write of its own
    assert _status_writes(api) == ["phase=None placement=True", "phase=Running placement=False"]
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["message"] == "all 4 pods are running"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Binding"]["status"], conditions["Binding"]["reason"]) == ("False", "Bound")
    assert conditions["Scheduled"]["message"].startswith("4 pod(s) bound on NVIDIA-H100-80GB-HBM3")
    loop.events.drain()
    assert [e["reason"] for e in api.events] == ["Scheduled", "Running"], "the Events of both phases"


def test_a_crash_after_every_pod_is_bound_but_before_it_is_marked_recovers_to_the_phase_its_pods_show(
    api: FakeApiServer,
) -> None:
    writes = itertools.count()

    def crash_at_second_write(_: str) -> None:  # the plan went through; Scheduled is never sent
        if next(writes) == 1:
            raise Crash

    api.before["patch"] = crash_at_second_write
    loop, _ = start_operator(api)
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["patch"]
    assert len(_bound_pods(api)) == 4
    assert all(_bound_pods(api).values()), "every pod bound by its creation"
    for pod in api.pods():  # the pods started meanwhile
        pod["status"] = {"phase": "Running", "podIP": "10.0.0.1"}
        api.put("pods", pod)
    calls = len(api.calls)

    restarted, _ = start_operator(api)
    restarted.run_once()
    restarted.run_once()
    assert _status_writes(api, calls) == ["phase=Running placement=False"], "one write, to Running"
    assert not [c for c in api.calls[calls:] if c.startswith(("create", "bind"))], "nothing bound again"
    binding = next(
        c for c in api.job("ml", "llama-2-13b-sft")["status"]["conditions"] if c["type"] == "Binding"
    )
    assert binding["status"] == "False"


def test_a_job_whose_pods_do_not_run_yet_is_scheduled_then_running(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    for pod in api.pods():
        pod["status"] = {"phase": "Running"}
        view.pods.observe(api.put("pods", pod))
    loop.run_once()
    assert _status_writes(api)[1:] == ["phase=Scheduled placement=False", "phase=Running placement=False"]


@pytest.mark.parametrize("after_calls", [1, 3])
def test_pods_an_older_operator_created_unbound_are_bound_through_pods_binding(
    api: FakeApiServer, after_calls: int
) -> None:
    _crash_before_create(api, after_calls)
    unbound = api.pods()
    for pod in unbound:  # as an operator that created pods first and bound them after left them
        del pod["spec"]["nodeName"]
    calls = len(api.calls)

    restarted, _ = start_operator(api)
    restarted.run_once()
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["phase"] == "Scheduled"
    assert _bound_pods(api) == {e["pod"]: e["node"] for e in status["placement"]}
    verbs = [call.split()[0] for call in api.calls[calls:]]
    assert 0 < len(unbound) < 4
    assert (verbs.count("bind"), verbs.count("create")) == (len(unbound), 4 - len(unbound))


def test_a_create_whose_reply_was_lost_finds_its_pod_bound_to_our_node(api: FakeApiServer) -> None:
    original = api.create_pod

    def create_twice(namespace: str, manifest: Json) -> Json:
        original(namespace, manifest)
        return original(namespace, manifest)  # the first reply was lost; the retry sees AlreadyExists

    api.create_pod = create_twice  # type: ignore[method-assign]
    loop, _ = start_operator(api)
    loop.run_once()
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["phase"] == "Scheduled"
    assert _bound_pods(api) == {e["pod"]: e["node"] for e in status["placement"]}
    assert len([c for c in api.calls if c.startswith("bind")]) == 4, "pods/binding said: already ours"


def test_a_pod_found_bound_to_another_node_rolls_the_whole_gang_back(api: FakeApiServer) -> None:
    def taken(name: str) -> None:
        if "-sft-2-" in name:  # a pod of that name exists already, on another node
            api.put(
                "pods", {"metadata": {"name": name, "namespace": "ml"}, "spec": {"nodeName": "elsewhere"}}
            )

    api.before["create"] = taken
    loop, _ = start_operator(api)
    loop.run_once()
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert status["phase"] == "Queued"
    assert status.get("placement") == []
    assert api.pods() == [], "no half-bound gang is left behind"
    loop.events.drain()
    assert api.events[-1]["reason"] == "BindingFailed"


def test_a_job_changed_meanwhile_is_left_for_the_next_cycle(api: FakeApiServer) -> None:
    loop, view = start_operator(api)
    api.put("modeljobs", api.job("ml", "llama-2-13b-sft"))  # someone wrote after our snapshot
    loop.run_once()
    assert api.pods() == []
    assert "phase" in api.job("ml", "llama-2-13b-sft")["status"]
    view.jobs.observe(copy.deepcopy(api.job("ml", "llama-2-13b-sft")))
    loop.run_once()
    assert len(api.pods()) == 4


def test_a_plan_whose_write_fails_creates_no_pod_and_its_service_serves_the_next_attempt(
    api: FakeApiServer,
) -> None:
    loop, view = start_operator(api)
    api.put("modeljobs", api.job("ml", "llama-2-13b-sft"))  # the plan's write will get 409
    loop.run_once()
    assert api.pods() == []
    view.jobs.observe(copy.deepcopy(api.job("ml", "llama-2-13b-sft")))
    loop.run_once()
    assert len(api.pods()) == 4
    # Sent beside the first plan's write, the Service is the job's, so it is not made again.
    assert [c for c in api.calls if c.startswith("service")] == ["service llama-2-13b-sft"]


def test_pod_manifests_carry_the_placement_generation_and_estimate(api: FakeApiServer) -> None:
    loop, _ = start_operator(api)
    loop.run_once()
    status = api.job("ml", "llama-2-13b-sft")["status"]
    for pod in api.pods():
        requests, _ = kube_pods.pod_requests(pod["spec"])
        assert requests.gpus == status["estimate"]["gpus"]
        assert requests.cpu_milli == status["estimate"]["cpuMilli"]
        assert requests.memory_bytes == status["estimate"]["memoryBytes"]


def test_a_spec_change_is_recorded_as_such_even_when_kopf_writes_the_job_while_we_roll_back(
    api: FakeApiServer,
) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    first = set(_bound_pods(api))
    job = api.job("ml", "llama-2-13b-sft")
    job["spec"]["resources"] = {"gpus": 4}
    job["metadata"]["generation"] = 2
    job["status"]["observedGeneration"] = 2
    view.jobs.observe(api.put("modeljobs", job))

    def annotate(_: str) -> None:  # kopf's last-handled annotation, written as we delete pods
        current = api.job("ml", "llama-2-13b-sft")
        current["metadata"]["annotations"] = {"kopf": "generation 2"}
        api.put("modeljobs", current)

    api.before["delete"] = annotate
    loop.run_once()
    loop.events.drain()
    status = api.job("ml", "llama-2-13b-sft")["status"]
    assert not first & set(_bound_pods(api)), "the old pods are gone"
    scheduled = next(c for c in status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["reason"] == "SpecChanged"
    assert "SpecChanged" in [e["reason"] for e in api.events]


def _job_status(api: FakeApiServer) -> Json:
    return api.job("ml", "llama-2-13b-sft")["status"]


def _refuse_pods(_: str) -> None:
    raise ClusterError(
        "create pod: 422 Invalid: ...",
        status=422,
        reason="Invalid",
        detail='Pod "llama-2-13b-sft-0-abcde" is invalid: spec.restartPolicy: Unsupported value: "never"',
    )


def test_a_pod_template_the_api_server_refuses_makes_the_job_invalid_once_until_the_spec_changes(
    api: FakeApiServer,
) -> None:
    api.before["create"] = _refuse_pods
    loop, view = start_operator(api)
    loop.run_once()
    status = _job_status(api)
    assert status["phase"] == "Invalid"
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False"
    assert 'spec.template.spec.restartPolicy: Unsupported value: "never"' in valid["message"]
    assert api.pods() == []
    calls = len(api.calls)
    for _ in range(3):
        loop.run_once()
    assert api.calls[calls:] == [], "no new pod, no new write: the spec is at fault, not the cluster"
    loop.events.drain()
    assert [e["reason"] for e in api.events] == ["InvalidSpec"]

    del api.before["create"]  # the owner fixes the template: a new generation, admitted again
    job = api.job("ml", "llama-2-13b-sft")
    job["metadata"]["generation"] = 2
    job["status"].update({"phase": "Queued", "observedGeneration": 2})
    view.jobs.observe(api.put("modeljobs", job))
    loop.run_once()
    assert _job_status(api)["phase"] == "Scheduled"


def test_a_write_that_keeps_failing_is_retried_after_a_growing_back_off(api: FakeApiServer) -> None:
    def unavailable(_: str) -> None:
        raise ClusterError("create pod: 503 ServiceUnavailable", status=503)

    api.before["create"] = unavailable
    now = [at(100)]
    loop, _ = start_operator(api, clock=lambda: now[0])
    attempts = lambda: len([c for c in api.calls if c.startswith("create")]) // 4  # noqa: E731 - a gang of 4
    loop.run_once()
    assert (attempts(), _job_status(api)["phase"]) == (1, "Queued")
    loop.run_once()
    assert attempts() == 1, "backing off: nothing is tried again at once"
    now[0] = at(101)  # one second later: the first back-off is over
    loop.run_once()
    assert attempts() == 2
    now[0] = at(102.5)  # the second back-off is two seconds
    loop.run_once()
    assert attempts() == 2
    del api.before["create"]
    now[0] = at(103)
    loop.run_once()
    assert _job_status(api)["phase"] == "Scheduled"


def test_jobs_the_loop_cannot_read_are_still_counted_by_phase_and_namespace(api: FakeApiServer) -> None:
    invalid = modeljob_dict(
        "llama-3.1-8b-inference", namespace="team-b", status={"phase": "Invalid"}, replicas=0
    )
    api.put("modeljobs", invalid)
    loop, _ = start_operator(api)
    metrics = loop._metrics  # the registry the operator exports
    loop.run_once()
    loop.run_once()  # counts the phase the first one's binding wrote (beside it)
    text = metrics.exposition().decode()
    assert 'modeljob_jobs{namespace="team-b",phase="Invalid"} 1.0' in text
    assert 'modeljob_jobs{namespace="ml",phase="Scheduled"} 1.0' in text
    assert 'modeljob_scheduling_attempts_total{namespace="ml",result="placed"} 1.0' in text


def test_a_job_in_back_off_holds_no_nodes_the_next_job_could_use(api: FakeApiServer) -> None:
    # The first gang's pods cannot be created (a persistent 503); a second, larger gang needs the
    # nodes the first would take. While the first backs off, the second must not wait behind it.
    first = "llama-2-13b-sft"  # the fixture's gang, from crds/examples/llama-2-13b-training-zero3.yaml
    second = modeljob_dict(
        "llama-2-13b-training-zero3",
        status={"phase": "Queued", "observedGeneration": 1},
        replicas=7,
        resources={"gpus": 2},  # 14 of the 16 GPUs: it fits only if the first gang holds none
    )
    second["metadata"].update(name="zz-after", uid="uid-zz-after")
    second["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    api.put("modeljobs", second)

    def unavailable(what: str) -> None:
        if what.startswith(first):
            raise ClusterError("create pod: 503 ServiceUnavailable", status=503)

    api.before["create"] = unavailable
    now = [at(100)]
    loop, _ = start_operator(api, clock=lambda: now[0])
    loop.run_once()
    assert api.job("ml", "zz-after")["status"]["phase"] == "Queued", "the first gang went first"
    now[0] = at(100.5)  # the first gang is backing off
    loop.run_once()
    assert api.job("ml", "zz-after")["status"]["phase"] == "Scheduled"
    assert api.job("ml", first)["status"]["phase"] == "Queued"


def test_a_step_that_goes_through_ends_the_back_off(api: FakeApiServer) -> None:
    failing = [True]

    def unavailable(_: str) -> None:
        if failing[0]:
            raise ClusterError("create pod: 503 ServiceUnavailable", status=503)

    api.before["create"] = unavailable
    now = [at(100)]
    loop, view = start_operator(api, clock=lambda: now[0])
    loop.run_once()
    now[0] = at(101)
    loop.run_once()  # second failure in a row: the next try is two seconds away
    assert loop._backoff.seconds_to_next_retry(now[0]) == pytest.approx(2.0)
    failing[0] = False
    now[0] = at(103)
    loop.run_once()
    assert _job_status(api)["phase"] == "Scheduled"
    assert loop._backoff.seconds_to_next_retry(now[0]) is None, "placed: nothing is backing off"

    def refuse_status(_: str) -> None:
        raise ClusterError("patch status: 500 InternalError", status=500)

    api.before["patch"] = refuse_status  # the pods run, but writing Running fails once
    for pod in api.pods():
        pod["status"]["phase"] = "Running"
        view.pods.observe(api.put("pods", pod))
    loop.run_once()
    assert loop._backoff.seconds_to_next_retry(now[0]) == pytest.approx(1.0), "a fresh back-off: one second"
    del api.before["patch"]
    now[0] = at(104)
    loop.run_once()
    assert _job_status(api)["phase"] == "Running"

    api.before["patch"] = refuse_status  # later the pods finish, and writing that fails once too
    for pod in api.pods():
        pod["status"]["phase"] = "Succeeded"
        view.pods.observe(api.put("pods", pod))
    loop.run_once()
    assert loop._backoff.seconds_to_next_retry(now[0]) == pytest.approx(1.0), (
        "the Running write went through in between: one failure in a row, not two"
    )


def test_one_jobs_unexpected_error_does_not_stop_the_cycle(api: FakeApiServer, monkeypatch) -> None:
    loop, _ = start_operator(api)

    def broken(*_: object, **__: object) -> None:
        raise ValueError("a bug in one step")

    monkeypatch.setattr(loop._actions, "plan", broken)
    loop.run_once()
    assert loop.cycles == 1, "the cycle ran to its end and counted itself"
    text = loop._metrics.exposition().decode()
    assert 'modeljob_scheduling_attempts_total{namespace="ml",result="error"} 1.0' in text


def test_the_job_owns_one_headless_service_created_before_its_first_pod_and_only_once(
    api: FakeApiServer,
) -> None:
    loop, view = start_operator(api)
    loop.run_once()
    assert next(c for c in api.calls if not c.startswith("patch")) == "service llama-2-13b-sft"
    service = api.services[("ml", "llama-2-13b-sft")]
    uid = api.job("ml", "llama-2-13b-sft")["metadata"]["uid"]
    assert service["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": {kube_pods.LABEL_JOB_UID: uid},
    }
    assert service["metadata"]["ownerReferences"] == api.pods()[0]["metadata"]["ownerReferences"]
    assert service["metadata"]["labels"] == {
        kube_pods.LABEL_JOB: "llama-2-13b-sft",
        kube_pods.LABEL_JOB_UID: uid,
    }

    job = api.job("ml", "llama-2-13b-sft")  # the spec changes: the gang is placed again, new pods
    job["spec"]["resources"] = {"gpus": 4}
    job["metadata"]["generation"] = 2
    job["status"]["observedGeneration"] = 2
    view.jobs.observe(api.put("modeljobs", job))
    loop.run_once()  # the old pods go
    _watch_deletions(api, view)
    loop.run_once()  # the new ones come
    assert len([c for c in api.calls if c.startswith("create")]) == 8, "the gang was placed again"
    assert [c for c in api.calls if c.startswith("service")] == ["service llama-2-13b-sft"]


def test_a_new_operator_finds_the_jobs_service_already_there_and_places_the_job(api: FakeApiServer) -> None:
    def crash(_: str) -> None:
        raise Crash

    created = itertools.count()

    def crash_after_the_first_pod(_: str) -> None:  # the Service and one pod exist when it dies
        if next(created):
            raise Crash

    api.before["create"] = crash_after_the_first_pod
    loop, _ = start_operator(api)
    with pytest.raises(Crash):
        loop.run_once()
    del api.before["create"]
    restarted, _ = start_operator(api)
    restarted.run_once()  # completes the binding; the Service answers 409 and is this job's
    assert [c for c in api.calls if c.startswith("service")] == ["service llama-2-13b-sft"] * 2
    assert _job_status(api)["phase"] == "Scheduled"


def test_a_service_of_the_same_name_that_is_not_the_jobs_holds_the_job_back(api: FakeApiServer) -> None:
    api.services[("ml", "llama-2-13b-sft")] = {
        "metadata": {"name": "llama-2-13b-sft", "ownerReferences": []},  # made by someone else
    }
    loop, _ = start_operator(api)
    loop.run_once()
    assert api.pods() == [], "no pod is created before its Service is the job's"
    assert _job_status(api)["phase"] == "Queued"
    loop.events.drain()
    assert "belongs to no ModelJob" in api.events[-1]["message"]


def test_a_service_the_api_server_cannot_create_rolls_the_placement_back(api: FakeApiServer) -> None:
    def unavailable(_: str) -> None:
        raise ClusterError("create service: 503 ServiceUnavailable", status=503)

    api.before["service"] = unavailable
    loop, _ = start_operator(api)
    loop.run_once()
    assert api.pods() == []
    assert _job_status(api)["phase"] == "Queued"
    loop.events.drain()
    assert api.events[-1]["reason"] == "BindingFailed"


def _serving_api(ports: list[Json] | None) -> FakeApiServer:
    """Two H100 nodes and the 8B inference example, its server declaring ``ports``."""
    server = FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index))
    job = modeljob_dict("llama-3.1-8b-inference", status={"phase": "Queued", "observedGeneration": 1})
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    if ports is not None:
        job["spec"]["template"]["spec"]["containers"][0]["ports"] = ports
    server.put("modeljobs", job)
    return server


def test_an_inference_job_with_a_port_gets_its_serve_service_once_before_its_pods_and_an_endpoint() -> None:
    api = _serving_api([{"name": "http", "containerPort": 8000}])
    loop, view = start_operator(api)
    loop.run_once()
    job = api.job("ml", "llama-3-1-8b-chat")
    assert job["status"]["phase"] == "Scheduled"
    assert job["status"]["endpoint"] == "http://llama-3-1-8b-chat-serve.ml.svc:8000"
    creates = [c for c in api.calls if not c.startswith("patch")]
    assert creates[:2] == ["service llama-3-1-8b-chat", "service llama-3-1-8b-chat-serve"]
    serve = api.services[("ml", "llama-3-1-8b-chat-serve")]
    assert serve["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]
    leaders = {kube_pods.LABEL_JOB_UID: job["metadata"]["uid"], kube_pods.LABEL_GROUP_ROLE: "leader"}
    assert serve["spec"]["selector"] == leaders
    assert all(pod["metadata"]["labels"][kube_pods.LABEL_GROUP_ROLE] == "leader" for pod in api.pods())
    assert serve["metadata"]["ownerReferences"] == api.pods()[0]["metadata"]["ownerReferences"]

    job["spec"]["replicas"] = 3  # the spec changes: placed again, by the same process
    job["metadata"]["generation"] = 2
    job["status"]["observedGeneration"] = 2
    view.jobs.observe(api.put("modeljobs", job))
    # The third replica is placed, then replicas 0 and 1 replaced one at a time (a rolling update;
    # their old pods never ran, so none waits for another), then the last old pod goes.
    for _ in range(4):
        loop.run_once()
    assert len(api.pods()) == 3, "placed again"
    assert len([c for c in api.calls if c.startswith("service")]) == 2, "each Service made once"


def test_a_serve_service_of_the_same_name_that_is_not_the_jobs_holds_the_job_back() -> None:
    api = _serving_api([{"containerPort": 8000}])
    api.services[("ml", "llama-3-1-8b-chat-serve")] = {
        "metadata": {"name": "llama-3-1-8b-chat-serve", "ownerReferences": []},  # someone else's
    }
    loop, _ = start_operator(api)
    loop.run_once()
    assert api.pods() == []
    assert api.job("ml", "llama-3-1-8b-chat")["status"]["phase"] == "Queued"
    loop.events.drain()
    assert "llama-3-1-8b-chat-serve exists and belongs to no ModelJob" in api.events[-1]["message"]


def test_an_inference_job_gets_no_serve_service_nor_endpoint_until_it_declares_a_port() -> None:
    api = _serving_api(None)
    loop, view = start_operator(api)
    loop.run_once()
    job = api.job("ml", "llama-3-1-8b-chat")
    assert job["status"]["phase"] == "Scheduled"
    assert "endpoint" not in job["status"]
    assert list(api.services) == [("ml", "llama-3-1-8b-chat")]

    job["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8000}]
    job["metadata"]["generation"] = 2  # placed again, by the process that made the headless one
    job["status"]["observedGeneration"] = 2
    view.jobs.observe(api.put("modeljobs", job))
    loop.run_once()
    loop.run_once()
    assert ("ml", "llama-3-1-8b-chat-serve") in api.services
    assert (
        api.job("ml", "llama-3-1-8b-chat")["status"]["endpoint"]
        == "http://llama-3-1-8b-chat-serve.ml.svc:8000"
    )


def test_a_training_job_gets_no_endpoint(api: FakeApiServer) -> None:
    loop, _ = start_operator(api)
    loop.run_once()
    assert _job_status(api)["phase"] == "Scheduled"
    assert "endpoint" not in _job_status(api)
    assert list(api.services) == [("ml", "llama-2-13b-sft")]
