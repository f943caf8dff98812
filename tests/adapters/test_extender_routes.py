"""The extender's HTTP server: kube-scheduler's verbs, bad requests refused with a message, never a crash."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import ExtenderService, build_app
from modeljob.adapters.extender.server import ExtenderServer
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.core.cluster_state import PodPhase
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from tests.operator_builders import container, make_node, make_pod, node_dict, pod_dict

MIB = 1024 * 1024
FILTER, PRIORITIZE, BIND = "/scheduler/filter", "/scheduler/prioritize", "/scheduler/bind"


@dataclass
class FakeApi:
    """pods/binding and pod reads as the API server answers them (409 once a pod is assigned)."""

    bound: dict[tuple[str, str], str] = field(default_factory=dict)
    failure: ClusterError | None = None
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bind(self, namespace: str, name: str, node: str) -> None:
        time.sleep(self.delay_seconds)
        if self.failure is not None:
            raise self.failure
        with self.lock:
            if (namespace, name) in self.bound:
                raise ClusterError(f"pod {name} is already assigned to node", status=409, reason="Conflict")
            self.bound[(namespace, name)] = node

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return {"spec": {"nodeName": self.bound.get((namespace, name))}}


@dataclass
class Running:
    port: int
    cache: ClusterCache
    api: FakeApi
    metrics: ExtenderMetrics

    def post(self, path: str, document: Any) -> tuple[int, Any]:
        payload = document if isinstance(document, bytes) else json.dumps(document).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def get(self, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


def serve(*, synced: bool = True, services: bool = True, **settings: Any) -> Iterator[Running]:
    """The extender on a port of its own, its cache listed (``synced``): three GPU nodes, a CPU
    node, 6 of gpu-a's GPUs taken, and no Services (``services`` False: not listed yet)."""
    cache = ClusterCache(assume_seconds=30)
    if synced:
        cache.replace_nodes(
            [make_node("gpu-a"), make_node("gpu-b"), make_node("gpu-c", gpus=1), make_node("cpu-0", gpus=0)]
        )
        cache.replace_pods([make_pod("running", node="gpu-a", gpus=6)])
        if services:
            cache.replace_services([])
    api = FakeApi()
    metrics = ExtenderMetrics()
    service = ExtenderService(
        cache=cache,
        weights=DEFAULT_WEIGHTS,
        metrics=metrics,
        settings=ExtenderSettings(**settings),
        bind=api.bind,
        read_pod=api.read_pod,
    )
    server = ExtenderServer(build_app(service), host="127.0.0.1", port=0)
    server.start_in_thread()
    try:
        yield Running(port=server.port, cache=cache, api=api, metrics=metrics)
    finally:
        server.stop_thread()


@pytest.fixture
def extender() -> Iterator[Running]:
    yield from serve()


@pytest.fixture(scope="module")
def shared_extender() -> Iterator[Running]:
    yield from serve()


def gpu_pod(name: str = "trainer", *, gpus: int = 1, uid: str | None = None) -> dict[str, Any]:
    pod = pod_dict(name, phase="Pending", containers=[container(limits={"nvidia.com/gpu": str(gpus)})])
    if uid is not None:
        pod["metadata"]["uid"] = uid
    return pod


def args(pod: dict[str, Any], *names: str) -> dict[str, Any]:
    return {"Pod": pod, "Nodes": None, "NodeNames": list(names)}


ALL = ("gpu-a", "gpu-b", "gpu-c", "cpu-0")


# --- the verbs ----------------------------------------------------------------------------------


def test_filter_keeps_the_nodes_that_fit_and_says_why_the_others_do_not(extender: Running) -> None:
    status, reply = extender.post(FILTER, args(gpu_pod(gpus=4), *ALL))
    assert status == 200
    assert reply["NodeNames"] == ["gpu-b"]
    assert reply["FailedNodes"] == {
        "gpu-a": "modeljob: not enough free GPUs (the pod asks for 4 nvidia.com/gpu)",
        "gpu-c": "modeljob: not enough free GPUs (the pod asks for 4 nvidia.com/gpu)",
    }
    assert reply["FailedAndUnresolvableNodes"] == {
        "cpu-0": "modeljob: node has no such accelerator (nvidia.com/gpu)"
    }
    assert reply["Error"] == ""


def test_filter_with_whole_node_objects_sends_the_passing_objects_back(extender: Running) -> None:
    nodes = [
        {**node_dict(0), "metadata": {**node_dict(0)["metadata"], "name": name}}
        for name in ("gpu-a", "gpu-b")
    ]
    status, reply = extender.post(FILTER, {"Pod": gpu_pod(gpus=4), "Nodes": {"metadata": {}, "items": nodes}})
    assert status == 200
    assert reply["NodeNames"] is None
    assert reply["Nodes"]["items"] == [nodes[1]]


def as_go_writes(document: dict[str, Any]) -> bytes:
    """The body as kube-scheduler's json.Marshal writes it: no spaces, Go's field order."""
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("gpus", "candidates", "passing"),
    [(1, ALL[:3], list(ALL[:3])), (4, ALL, ["gpu-b"])],
    ids=["every-node-passes", "some-fail"],
)
def test_kube_schedulers_own_encoding_gets_the_same_answers(
    gpus: int, candidates: tuple[str, ...], passing: list[str]
) -> None:
    answers = []
    for encode in (as_go_writes, lambda document: json.dumps(document).encode()):
        for running in serve(shortlist=False):
            status, filtered = running.post(FILTER, encode(args(gpu_pod(gpus=gpus), *candidates)))
            # As kube-scheduler does: prioritize the nodes the filter kept, in its order.
            scored = running.post(PRIORITIZE, encode(args(gpu_pod(gpus=gpus), *filtered["NodeNames"])))
            answers.append(((status, filtered), scored))
    assert answers[0] == answers[1]
    (_, filtered), (status, _) = answers[0]
    assert (filtered["NodeNames"], status) == (passing, 200)


def test_filter_passes_only_the_nodes_kube_scheduler_could_still_choose() -> None:
    """One GPU: gpu-c (its only GPU) and gpu-a (2 of 8 left) leave no GPU stranded; the empty gpu-b
    trails them by more than kube-scheduler's own plugins can make up (1500 points at weight 50),
    so with the shortlist on the filter leaves it out and kube-scheduler scores two nodes, not
    three. It is not failed either: it fits, and the pod's event would never name it."""
    pod = gpu_pod(gpus=1)
    for running in serve(shortlist=True):
        # The scores of all three first (the filter that follows forgets where this put the pod).
        _, unfiltered = running.post(PRIORITIZE, args(pod, "gpu-a", "gpu-b", "gpu-c"))
        _, filtered = running.post(FILTER, args(pod, "gpu-a", "gpu-b", "gpu-c"))
        assert (filtered["NodeNames"], filtered["FailedNodes"]) == (["gpu-a", "gpu-c"], {})
        # Prioritize answers the scores taken over all three, from the lowest of the two.
        _, scored = running.post(PRIORITIZE, args(pod, *filtered["NodeNames"]))
        full = {entry["Host"]: entry["Score"] for entry in unfiltered}
        low = min(full.get(name, 0) for name in ("gpu-a", "gpu-c"))
        expected = {name: full[name] - low for name in ("gpu-a", "gpu-c") if full[name] > low}
        assert {entry["Host"]: entry["Score"] for entry in scored} == expected
        assert full.get("gpu-b", 0) < max(full.values()) - 3
    # Off, or a profile that weighs its plugins more: every node that fits passes.
    for running in serve(shortlist=False):
        _, filtered = running.post(FILTER, args(pod, "gpu-a", "gpu-b", "gpu-c"))
        assert filtered["NodeNames"] == ["gpu-a", "gpu-b", "gpu-c"]
    for running in serve(shortlist=True, plugin_score_range=100_000):
        _, filtered = running.post(FILTER, args(pod, "gpu-a", "gpu-b", "gpu-c"))
        assert filtered["NodeNames"] == ["gpu-a", "gpu-b", "gpu-c"]


def test_filter_keeps_every_node_tied_for_the_top() -> None:
    """Alike empty nodes tie: kube-scheduler's plugins (the pod's preferences) may pick any, so all pass."""
    for running in serve(shortlist=True):
        running.cache.replace_pods([])
        _, filtered = running.post(FILTER, args(gpu_pod(gpus=8), "gpu-a", "gpu-b"))
        assert filtered["NodeNames"] == ["gpu-a", "gpu-b"]


def test_whole_node_objects_are_shortlisted_alike() -> None:
    nodes = [{**node_dict(0), "metadata": {**node_dict(0)["metadata"], "name": name}} for name in ALL[:3]]
    for running in serve(shortlist=True):
        _, reply = running.post(FILTER, {"Pod": gpu_pod(gpus=1), "Nodes": {"metadata": {}, "items": nodes}})
        assert [item["metadata"]["name"] for item in reply["Nodes"]["items"]] == ["gpu-a", "gpu-c"]


def with_spec(pod: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**pod, "spec": {**pod["spec"], **spec}}


PREFERS_GPU_B = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "preference": {
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-b"]}]
                },
            }
        ]
    }
}


@pytest.mark.parametrize(
    "pod",
    [
        with_spec(gpu_pod(gpus=1), affinity=PREFERS_GPU_B),
        with_spec(
            gpu_pod(gpus=1),
            topologySpreadConstraints=[
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
            ],
        ),
        {
            **gpu_pod(gpus=1),
            "metadata": {
                **gpu_pod()["metadata"],
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "rs",
                        "uid": "u",
                        "controller": True,
                    }
                ],
            },
        },
    ],
    ids=["preferred-node-affinity", "topology-spread", "replicaset-pod"],
)
def test_a_pod_whose_scores_depend_on_the_nodes_scored_gets_every_node_that_fits(pod: dict[str, Any]) -> None:
    """kube-scheduler scales those scores over the nodes it scores: fewer nodes could weigh the
    pod's preferences differently, so nothing that fits is left out."""
    for running in serve(shortlist=True):
        _, filtered = running.post(FILTER, args(pod, "gpu-a", "gpu-b", "gpu-c"))
        assert filtered["NodeNames"] == ["gpu-a", "gpu-b", "gpu-c"]


def test_prioritize_rescoring_follows_the_cluster_and_the_pod() -> None:
    """The filter's remembered scores answer only its own pod, and are taken again over every node
    that fit when the cluster changed in between."""
    first = gpu_pod("first", gpus=1)
    for running in serve(shortlist=True):
        running.post(FILTER, args(first, "gpu-a", "gpu-b", "gpu-c"))
        # Another pod asks about the same nodes: its own scores, not the first pod's.
        other = gpu_pod("other", gpus=2)
        _, theirs = running.post(PRIORITIZE, args(other, "gpu-a", "gpu-c"))
        for fresh in serve(shortlist=True):
            _, expected = fresh.post(PRIORITIZE, args(other, "gpu-a", "gpu-c"))
        assert theirs == expected
    for running in serve(shortlist=True):
        running.post(FILTER, args(first, "gpu-a", "gpu-b", "gpu-c"))
        # gpu-a's last 2 GPUs are taken before prioritize: gpu-c, the runner-up, is the choice now.
        taken = make_pod("took-gpu-a", node="gpu-a", gpus=2)
        running.cache.pod_event("ADDED", taken, taken.key)
        _, scored = running.post(PRIORITIZE, args(first, "gpu-a", "gpu-c"))
        assert scored == [{"Host": "gpu-c", "Score": max(entry["Score"] for entry in scored)}]
        chosen = running.cache.assumed(("ml", "first"))
        assert chosen is not None
        assert chosen.node == "gpu-c"


def test_prioritize_gives_10_to_the_core_choice_and_counts_the_pod_there_at_once(extender: Running) -> None:
    status, reply = extender.post(PRIORITIZE, args(gpu_pod("first", gpus=2), "gpu-a", "gpu-b"))
    assert status == 200
    assert reply == [{"Host": "gpu-a", "Score": 10}], (
        "nodes scored 0 are left out: kube-scheduler reads them as 0"
    )
    # gpu-a had 2 GPUs free; the first pod's are taken before its bind arrives.
    _, second = extender.post(FILTER, args(gpu_pod("second", gpus=1), "gpu-a", "gpu-b"))
    assert second["NodeNames"] == ["gpu-b"]


def test_a_new_filter_for_the_same_pod_drops_what_was_chosen_for_it_before() -> None:
    for extender in serve(shortlist=False):  # every node that fits passes: gpu-a's 2 GPUs too
        extender.post(PRIORITIZE, args(gpu_pod("retry", gpus=2), "gpu-a", "gpu-b"))
        _, again = extender.post(FILTER, args(gpu_pod("retry", gpus=2), "gpu-a", "gpu-b"))
        assert again["NodeNames"] == ["gpu-a", "gpu-b"]


def test_bind_posts_the_binding_and_counts_the_pod_on_that_node(extender: Running) -> None:
    extender.cache.pod_event("ADDED", make_pod("p", gpus=2, phase=PodPhase.PENDING), ("ml", "p"))
    status, reply = extender.post(BIND, {"PodName": "p", "PodNamespace": "ml", "PodUID": "", "Node": "gpu-a"})
    assert (status, reply) == (200, {"Error": ""})
    assert extender.api.bound == {("ml", "p"): "gpu-a"}
    _, after = extender.post(FILTER, args(gpu_pod("q"), "gpu-a"))
    assert after["NodeNames"] == []


def test_a_retried_bind_that_had_already_worked_is_a_success(extender: Running) -> None:
    extender.api.bound[("ml", "p")] = "gpu-b"
    _, same = extender.post(BIND, {"PodName": "p", "PodNamespace": "ml", "Node": "gpu-b"})
    _, other = extender.post(BIND, {"PodName": "p", "PodNamespace": "ml", "Node": "gpu-a"})
    assert same == {"Error": ""}
    assert "already assigned" in other["Error"]


def test_bind_refuses_a_pod_that_was_recreated_under_the_same_name(extender: Running) -> None:
    recreated = replace(make_pod("p", phase=PodPhase.PENDING), uid="uid-of-the-new-pod")
    extender.cache.pod_event("ADDED", recreated, recreated.key)
    _, reply = extender.post(
        BIND, {"PodName": "p", "PodNamespace": "ml", "PodUID": "uid-of-the-old", "Node": "gpu-a"}
    )
    assert "recreated" in reply["Error"]
    assert extender.api.bound == {}


def test_a_bind_the_api_server_refuses_is_answered_with_its_error(extender: Running) -> None:
    extender.api.failure = ClusterError("bind pod ml/p to gpu-a: 403 Forbidden: no", status=403)
    status, reply = extender.post(BIND, {"PodName": "p", "PodNamespace": "ml", "Node": "gpu-a"})
    assert status == 200
    assert reply == {"Error": "bind pod ml/p to gpu-a: 403 Forbidden: no"}


def test_a_bind_that_hangs_is_answered_before_the_schedulers_timeout() -> None:
    for running in serve(bind_timeout_seconds=0.2):
        running.api.delay_seconds = 2.0
        started = time.monotonic()
        _, reply = running.post(BIND, {"PodName": "p", "PodNamespace": "ml", "Node": "gpu-a"})
        assert time.monotonic() - started < 1.5
        assert reply == {"Error": "pods/binding did not answer within 0.2 s"}


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "document", "status", "message"),
    [
        (FILTER, b'{"Pod": ', 400, "body: not JSON"),
        (FILTER, {"NodeNames": ["gpu-a"]}, 400, "Pod: Field required"),
        (PRIORITIZE, {"Pod": {"metadata": {}}, "NodeNames": []}, 400, "Pod.metadata.name: Field required"),
        (FILTER, args(gpu_pod(), "ghost-1", "ghost-2"), 422, "none of the 2 nodes is known"),
        (PRIORITIZE, args(gpu_pod(), "ghost-1"), 422, "none of the 1 nodes is known"),
        (BIND, {"PodName": "p", "PodNamespace": "ml", "Node": "ghost"}, 422, "Node: ghost is not known"),
        (BIND, {"PodName": "p"}, 400, "PodNamespace: Field required"),
        (FILTER, b"x" * (10 * MIB), 413, "larger than the 8388608 bytes"),
        (BIND, b" " * (10 * MIB), 413, "larger than the 8388608 bytes"),
    ],
    ids=[
        "malformed-json",
        "missing-pod",
        "pod-without-name",
        "unknown-nodes",
        "unknown-node-prioritize",
        "unknown-node-bind",
        "binding-without-namespace",
        "10MB-filter",
        "10MB-bind",
    ],
)
def test_bad_requests_get_a_4xx_with_a_message_and_the_server_keeps_serving(
    shared_extender: Running, path: str, document: Any, status: int, message: str
) -> None:
    got, reply = shared_extender.post(path, document)
    assert got == status
    assert message in reply["Error"]
    assert shared_extender.get("/healthz") == (200, "ok\n")
    assert shared_extender.post(FILTER, args(gpu_pod("after"), "gpu-b"))[0] == 200


def test_before_the_first_list_the_extender_answers_503_not_an_empty_cluster() -> None:
    for running in serve(synced=False):
        assert running.get("/healthz")[0] == 503
        status, reply = running.post(FILTER, args(gpu_pod(), "gpu-a"))
        assert status == 503
        assert "not listed nodes and pods yet" in reply["Error"]


def test_requests_are_timed_and_counted_per_verb_and_status(extender: Running) -> None:
    extender.post(FILTER, args(gpu_pod(), "gpu-b"))
    extender.post(FILTER, b"{")
    status, text = extender.get("/metrics")
    assert status == 200
    assert 'modeljob_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert 'modeljob_extender_requests_total{code="400",verb="filter"} 1.0' in text
    assert 'modeljob_extender_request_seconds_count{verb="filter"} 2.0' in text


# --- fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
quantities = st.one_of(
    st.sampled_from(["1", "500m", "16Gi", "2", "-1", "1e3", "lots", "", "1Ki", "0.5"]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    json_values,
)
containers = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=10),
        "resources": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "requests": st.dictionaries(
                        st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "x/y"]), quantities
                    ),
                    "limits": st.dictionaries(st.sampled_from(["cpu", "nvidia.com/gpu"]), quantities),
                },
            ),
        ),
    },
)
pods = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "metadata": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"name": st.text(max_size=300)},
                    optional={"namespace": st.text(max_size=70), "uid": json_values, "labels": json_values},
                ),
            ),
            "spec": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"containers": st.lists(containers, max_size=3)},
                    optional={"initContainers": st.lists(containers, max_size=2), "overhead": json_values},
                ),
            ),
        },
        optional={"status": json_values},
    ),
)
node_names = st.lists(st.sampled_from([*ALL, "ghost", ""]) | st.text(max_size=5), max_size=8)
scheduling_args = st.fixed_dictionaries(
    {},
    optional={
        "Pod": pods,
        "NodeNames": st.one_of(st.none(), node_names, json_values),
        "Nodes": st.one_of(
            st.none(),
            json_values,
            st.fixed_dictionaries(
                {"items": st.lists(json_values | st.just({"metadata": {"name": "gpu-a"}}))}
            ),
        ),
    },
)
binding_args = st.fixed_dictionaries(
    {},
    optional={
        "PodName": st.text(max_size=10) | json_values,
        "PodNamespace": st.text(max_size=10) | json_values,
        "PodUID": json_values,
        "Node": st.sampled_from(ALL) | json_values,
    },
)


def mutate(document: Any, path: tuple[str | int, ...], value: Any, *, delete: bool) -> Any:
    """``document`` with the value at ``path`` replaced (or removed): one broken field in a valid body."""
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return copy


VALID_ARGS = {
    "Pod": pod_dict(
        "valid",
        phase="Pending",
        containers=[container(requests={"cpu": "1"}, limits={"nvidia.com/gpu": "1"})],
        initContainers=[container("init", requests={"cpu": "2"})],
    ),
    "Nodes": None,
    "NodeNames": ["gpu-a", "gpu-b"],
}
ARGS_PATHS: list[tuple[str | int, ...]] = [
    ("Pod",),
    ("Pod", "metadata"),
    ("Pod", "metadata", "name"),
    ("Pod", "metadata", "namespace"),
    ("Pod", "metadata", "uid"),
    ("Pod", "metadata", "labels"),
    ("Pod", "spec"),
    ("Pod", "spec", "containers"),
    ("Pod", "spec", "containers", 0),
    ("Pod", "spec", "containers", 0, "resources"),
    ("Pod", "spec", "containers", 0, "resources", "requests"),
    ("Pod", "spec", "containers", 0, "resources", "requests", "cpu"),
    ("Pod", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"),
    ("Pod", "spec", "initContainers"),
    ("Pod", "spec", "overhead"),
    ("Pod", "spec", "nodeName"),
    ("Pod", "status"),
    ("NodeNames",),
    ("NodeNames", 0),
    ("Nodes",),
]
VALID_BINDING = {"PodName": "valid", "PodNamespace": "ml", "PodUID": "", "Node": "gpu-b"}
mutated_args = st.lists(
    st.tuples(st.sampled_from(ARGS_PATHS), json_values | quantities, st.booleans()), min_size=1, max_size=3
).map(lambda edits: _apply_all(VALID_ARGS, edits))
mutated_binding = st.lists(
    st.tuples(st.sampled_from([(k,) for k in VALID_BINDING]), json_values, st.booleans()),
    min_size=1,
    max_size=2,
).map(lambda edits: _apply_all(VALID_BINDING, edits))


def _apply_all(document: Any, edits: list[tuple[tuple[str | int, ...], Any, bool]]) -> bytes:
    for path, value, delete in edits:
        try:
            document = mutate(document, path, value, delete=delete)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed the parent
    return json.dumps(document).encode()


junk = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    scheduling_args.map(lambda v: json.dumps(v).encode()),
    binding_args.map(lambda v: json.dumps(v).encode()),
)


def assert_answered(extender: Running, path: str, body: bytes) -> None:
    """A 200 in the wire's shape, or a 4xx with a message; never a 5xx; and still serving."""
    status, reply = extender.post(path, body)
    assert status in {200, 400, 422}, reply
    if status != 200:
        assert isinstance(reply, dict)
        assert reply["Error"]
    elif path == FILTER:
        assert set(reply) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    elif path == PRIORITIZE:
        assert all(0 <= entry["Score"] <= 10 for entry in reply)
    assert extender.get("/healthz") == (200, "ok\n")


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("path", [FILTER, PRIORITIZE])
@pytest.mark.parametrize("gpus", [9.89e193, "1e400"], ids=["float-1e193", "quantity-1e400"])
def test_a_pod_asking_for_more_than_any_node_has_is_refused_by_name(
    shared_extender: Running, path: str, gpus: object
) -> None:
    # Found by the fuzzing below: such a request overflowed the workload's int64 arrays (a 500).
    body = _apply_all(
        VALID_ARGS, [(("Pod", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"), gpus, False)]
    )
    status, reply = shared_extender.post(path, body)
    assert status == 400
    assert reply["Error"].startswith("Pod.spec.containers[].resources: GPUs request ")
    assert reply["Error"].endswith(" is beyond any node")
    assert shared_extender.get("/healthz") == (200, "ok\n")


@FUZZ
@given(path=st.sampled_from([FILTER, PRIORITIZE]), body=mutated_args)
def test_fuzzed_scheduling_args_never_crash_the_extender(
    shared_extender: Running, path: str, body: bytes
) -> None:
    assert_answered(shared_extender, path, body)


@FUZZ
@given(body=mutated_binding)
def test_fuzzed_binding_args_never_crash_the_extender(shared_extender: Running, body: bytes) -> None:
    assert_answered(shared_extender, BIND, body)


@FUZZ
@given(path=st.sampled_from([FILTER, PRIORITIZE, BIND]), body=junk)
def test_fuzzed_junk_never_crashes_the_extender(shared_extender: Running, path: str, body: bytes) -> None:
    assert_answered(shared_extender, path, body)


def test_the_extender_metrics_can_join_the_operators_registry() -> None:
    """`modeljob run` serves both on one /metrics: no name is declared twice."""
    from modeljob.adapters.metrics import OperatorMetrics

    operator_metrics = OperatorMetrics()
    ours = ExtenderMetrics(operator_metrics.registry)
    ours.record_request("filter", code=200, seconds=0.002)
    assert (
        'modeljob_extender_requests_total{code="200",verb="filter"} 1.0'
        in operator_metrics.exposition().decode()
    )
