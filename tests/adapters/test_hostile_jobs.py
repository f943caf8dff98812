"""ModelJobs the API server stored but no operator would write (a status, metadata or pod template of
the wrong shape, absurd numbers): each is its own job's problem, naming the field, as an invalid
spec is, and every other job is still read and scheduled."""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeljob.adapters import kube_jobs
from modeljob.adapters.cluster_view import ParsedJobs
from modeljob.adapters.job_fields import ObjectError
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, start_operator
from tests.operator_builders import modeljob_dict, node_dict

Json = dict[str, Any]
PLACED = {"replica": 0, "pod": "job-0", "node": "gpu-h100-0"}


def _with(path: str, value: object) -> Callable[[Json], None]:
    """Set ``path`` (dotted, from the document's root) to ``value``; None removes it."""

    def change(document: Json) -> None:
        *parents, last = path.split(".")
        target = document
        for name in parents:
            target = target.setdefault(name, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value

    return change


def _container(change: Callable[[Json], None]) -> Callable[[Json], None]:
    return lambda document: change(document["spec"]["template"]["spec"]["containers"][0])


HOSTILE: list[tuple[str, Callable[[Json], None], str]] = [
    ("status-not-an-object", _with("status", ["Running"]), "status"),
    ("placement-not-a-list", _with("status.placement", "everywhere"), "status.placement"),
    ("placement-a-number", _with("status.placement", 5), "status.placement"),
    ("placement-entry-not-an-object", _with("status.placement", ["job-0"]), "status.placement[0]"),
    (
        "placement-replica-a-word",
        _with("status.placement", [{**PLACED, "replica": "first"}]),
        "status.placement[0].replica",
    ),
    (
        "placement-replica-negative",
        _with("status.placement", [{**PLACED, "replica": -1}]),
        "status.placement[0].replica",
    ),
    (
        "placement-replica-absurd",
        _with("status.placement", [{**PLACED, "replica": 10**30}]),
        "status.placement[0].replica",
    ),
    (
        "placement-member-a-fraction",
        _with("status.placement", [{**PLACED, "member": 0.5}]),
        "status.placement[0].member",
    ),
    (
        "placement-without-a-node",
        _with("status.placement", [{"replica": 0, "pod": "job-0"}]),
        "status.placement[0].node",
    ),
    (
        "placement-score-a-word",
        _with("status.placement", [{**PLACED, "score": "high"}]),
        "status.placement[0].score",
    ),
    ("conditions-a-number", _with("status.conditions", 3), "status.conditions"),
    ("preempted-by-a-word", _with("status.preemptedBy", "ml/other"), "status.preemptedBy"),
    ("nominated-nodes-numbers", _with("status.nominatedNodes", [1, 2]), "status.nominatedNodes[0]"),
    ("generation-a-word", _with("metadata.generation", "one"), "metadata.generation"),
    ("generation-infinite", _with("metadata.generation", float("inf")), "metadata.generation"),
    ("created-not-a-time", _with("metadata.creationTimestamp", "yesterday"), "metadata.creationTimestamp"),
    ("created-a-number", _with("metadata.creationTimestamp", 1700000000), "metadata.creationTimestamp"),
    (
        "resources-a-word",
        _container(_with("resources", "lots")),
        "spec.template.spec.containers[0].resources",
    ),
    (
        "requests-a-list",
        _container(_with("resources", {"requests": ["cpu"]})),
        "spec.template.spec.containers[0].resources.requests",
    ),
    ("tolerations-a-word", _with("spec.template.spec.tolerations", "all"), "spec.template.spec.tolerations"),
    (
        "toleration-a-number",
        _with("spec.template.spec.tolerations", [1]),
        "spec.template.spec.tolerations[0]",
    ),
    ("labels-a-word", _with("spec.template.metadata", {"labels": "x"}), "spec.template.metadata.labels"),
    (
        "init-containers-a-word",
        _with("spec.template.spec.initContainers", "x"),
        "spec.template.spec.initContainers",
    ),
    (
        "init-container-requests-a-word",
        _with("spec.template.spec.initContainers", [{"name": "i", "resources": {"requests": "x"}}]),
        "spec.template.spec.initContainers[0].resources.requests",
    ),
    ("overhead-a-word", _with("spec.template.spec.overhead", "x"), "spec.template.spec.overhead"),
]


# The counts the operator keeps in the status: one it cannot read is a garbled record of its own
# (kubectl edit, a bad migration), not a problem of the job's. It reads as unset, logged as a
# warning naming it, and the job runs on; the operator's next write of the field replaces it.
GARBLED_NUMBERS: list[tuple[str, Callable[[Json], None], str]] = [
    (
        "binding-generation-a-list",
        _with("status.conditions", [{"type": "Binding", "status": "True", "observedGeneration": [1]}]),
        "status.conditions[Binding].observedGeneration",
    ),
    ("observed-generation-a-word", _with("status.observedGeneration", "two"), "status.observedGeneration"),
    ("preemptions-infinite", _with("status.preemptions", float("inf")), "status.preemptions"),
    ("preemptions-a-list", _with("status.preemptions", [1]), "status.preemptions"),
    ("restarts-negative", _with("status.restarts", -3), "status.restarts"),
    ("checkpointed-a-word", _with("status.checkpointedSeconds", "long"), "status.checkpointedSeconds"),
    ("checkpointed-nan", _with("status.checkpointedSeconds", float("nan")), "status.checkpointedSeconds"),
    ("checkpointed-absurd", _with("status.checkpointedSeconds", 1e300), "status.checkpointedSeconds"),
]


def _hostile(change: Callable[[Json], None], name: str = "llama-3.1-8b-inference") -> Json:
    document = modeljob_dict(name, status={"phase": "Running", "placement": [PLACED]})
    change(document)
    return document


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_a_job_of_the_wrong_shape_is_refused_naming_the_field(
    change: Callable[[Json], None], field: str
) -> None:
    with pytest.raises(ObjectError, match="^" + re.escape(field) + ": expected"):
        kube_jobs.job_facts(_hostile(change))


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in GARBLED_NUMBERS], ids=[i for i, _, _ in GARBLED_NUMBERS]
)
def test_a_garbled_status_count_reads_as_unset_with_a_warning_naming_it(
    change: Callable[[Json], None], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        facts = kube_jobs.job_facts(_hostile(change))
    unset = kube_jobs.job_facts(_hostile(lambda _: None))  # the same job without the field
    assert replace(facts, binding=False) == unset, "read as unset, the rest (its placement) as it is"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"ml/llama-3-1-8b-chat: {field}: expected "), warning


def test_a_malformed_spec_still_makes_a_job_with_a_garbled_count_invalid() -> None:
    document = _hostile(_with("status.restarts", -1))
    document["spec"]["replicas"] = 0
    with pytest.raises(ObjectError, match=r"^spec\.replicas: "):
        kube_jobs.job_facts(document)


@pytest.mark.parametrize(
    "change", [c for _, c, _ in HOSTILE + GARBLED_NUMBERS], ids=[i for i, _, _ in HOSTILE + GARBLED_NUMBERS]
)
def test_a_job_of_the_wrong_shape_is_still_seen_from_what_can_be_read(change: Callable[[Json], None]) -> None:
    """As an unreadable spec's job is (its queue charged, its pods rolled back): the fields that
    cannot be read read as unset, never as an exception."""
    document = _hostile(change)
    facts = kube_jobs.unread_job_facts(document)
    assert facts.uid == document["metadata"]["uid"]
    assert all(entry.pod and entry.node for entry in facts.placement)
    kube_jobs.count_by_phase([document])
    kube_jobs.placement_of(document)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
STATUS_KEYS = ["phase", "placement", "conditions", "observedGeneration", "restarts", "preemptions"]
STATUS_KEYS += ["checkpointedSeconds", "preemptedBy", "preempting", "nominatedNodes"]
ENTRY_KEYS = ["replica", "member", "pod", "node", "score", "type", "status", "observedGeneration"]
STATUS = st.dictionaries(
    st.sampled_from(STATUS_KEYS),
    JSON | st.lists(st.dictionaries(st.sampled_from(ENTRY_KEYS), JSON, max_size=4), max_size=3),
    max_size=6,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(status=STATUS, generation=JSON)
def test_any_status_is_read_or_refused_naming_a_field_never_crashing(
    status: Json, generation: object
) -> None:
    document = modeljob_dict(status=status)
    document["metadata"]["generation"] = generation
    try:
        kube_jobs.job_facts(document)
    except ObjectError as exc:
        refused: str | None = str(exc)
    else:
        refused = None
    assert refused is None or re.match(r"^(status|metadata)[\w.\[\]]*: expected ", refused), refused
    counts = tuple(f"{field}: " for _, _, field in GARBLED_NUMBERS)
    assert refused is None or not refused.startswith(counts), f"a garbled count refused: {refused}"
    kube_jobs.unread_job_facts(document)
    kube_jobs.count_by_phase([document])


def _named(name: str, document: Json) -> Json:
    document = copy.deepcopy(document)
    document["metadata"].update(name=name, uid=f"uid-{name}")
    return document


def test_one_job_of_the_wrong_shape_is_its_own_problem_and_the_others_are_read() -> None:
    good, other = _named("good", modeljob_dict()), _named("other", modeljob_dict())
    hostile = _named("hostile", _hostile(_with("status.placement", "everywhere")))
    parsed = ParsedJobs()
    assert [job.name for job in parsed.parse([good, hostile, other])] == ["good", "other"]
    assert parsed.problem(hostile) == "status.placement: expected a list"
    assert parsed.problem(good) is None


def test_a_job_that_makes_the_parser_fail_is_kept_as_that_logged_and_the_others_are_read(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = kube_jobs.job_facts

    def job_facts(document: Json) -> Any:
        if document["metadata"]["name"] == "hostile":
            raise RuntimeError("a bug in reading")
        return original(document)

    monkeypatch.setattr(kube_jobs, "job_facts", job_facts)
    good, hostile = _named("good", modeljob_dict()), _named("hostile", modeljob_dict())
    parsed = ParsedJobs()
    with caplog.at_level(logging.ERROR):
        assert [job.name for job in parsed.parse([hostile, good])] == ["good"]
    assert parsed.problem(hostile) == "internal error reading the job: RuntimeError: a bug in reading"
    [logged] = [r for r in caplog.records if "reading the job failed" in r.getMessage()]
    assert logged.exc_info is not None, "with its traceback"


def _gang(name: str, **status: Any) -> Json:
    """The example training gang (4 replicas x 2 H100s) as just created."""
    job = _named(name, modeljob_dict("llama-2-13b-training-zero3", status=status or None))
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    return job


def test_the_scheduling_cycle_goes_on_past_a_job_whose_status_cannot_be_read() -> None:
    api = FakeApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    api.put("modeljobs", _gang("hostile", phase="Running", placement="everywhere"))
    api.put("modeljobs", _gang("good"))
    loop, _ = start_operator(api)
    loop.run_once()
    assert api.job("ml", "good")["status"]["phase"] == "Scheduled", "the other job was placed"
    status = api.job("ml", "hostile")["status"]
    assert (status["phase"], status["message"]) == ("Invalid", "status.placement: expected a list")
    calls = len(api.calls)
    loop.run_once()
    assert [c for c in api.calls[calls:] if c.startswith("patch hostile")] == [], "said once"


def _running_gang() -> FakeApiServer:
    """The example gang placed, its pods running, and the job written Running."""
    api = FakeApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    api.put("modeljobs", _gang("gang"))
    start_operator(api)[0].run_once()
    for pod in api.pods():
        pod["status"]["phase"] = "Running"
        api.put("pods", pod)
    start_operator(api)[0].run_once()
    assert api.job("ml", "gang")["status"]["phase"] == "Running"
    return api


RUNNING_GARBLED = [
    "restarts-negative",
    "observed-generation-a-word",
    "preemptions-a-list",
    "checkpointed-nan",
]


@pytest.mark.parametrize(
    "change", [c for i, c, _ in GARBLED_NUMBERS if i in RUNNING_GARBLED], ids=RUNNING_GARBLED
)
def test_a_running_job_whose_status_count_is_garbled_keeps_its_pods_and_runs_on(
    change: Callable[[Json], None],
) -> None:
    api = _running_gang()
    pods = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in api.pods()}
    job = api.job("ml", "gang")
    change(job)  # kubectl edit --subresource=status, or a migration gone wrong
    api.put("modeljobs", job)
    loop, _ = start_operator(api)
    loop.run_once()
    loop.run_once()
    assert {p["metadata"]["name"]: p["spec"]["nodeName"] for p in api.pods()} == pods, "no pod rolled back"
    status = api.job("ml", "gang")["status"]
    assert status["phase"] == "Running", status.get("message")
    assert [p["metadata"]["name"] for p in api.pods()] == list(pods)


def test_a_queued_job_whose_status_count_is_garbled_is_scheduled() -> None:
    api = FakeApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    api.put(
        "modeljobs",
        _gang("queued", phase="Queued", observedGeneration=1, restarts=-1, checkpointedSeconds="x"),
    )
    start_operator(api)[0].run_once()
    assert api.job("ml", "queued")["status"]["phase"] == "Scheduled"
    assert len(api.pods()) == 4


def test_a_gated_pod_template_is_invalid_at_admission_saying_why_and_no_pod_is_made() -> None:
    """Each pod is created on its node, which the API server refuses while a gate is set."""
    api = FakeApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    job = _gang("gated")
    job["spec"]["template"]["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    api.put("modeljobs", job)
    start_operator(api)[0].run_once()
    status = api.job("ml", "gated")["status"]
    assert status["phase"] == "Invalid"
    assert status["message"].startswith(
        "spec.template.spec.schedulingGates: must not be set; the operator places"
    )
    assert api.pods() == []
