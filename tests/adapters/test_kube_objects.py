"""Kubernetes dicts <-> core values: what the operator reads of nodes, pods and ModelJobs, and writes."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from modeljob.adapters import kube_objects
from modeljob.adapters.kube_objects import ObjectError
from modeljob.core.cluster_state import PodPhase, Taint, TaintEffect, Termination
from modeljob.core.jobs import Overrides
from modeljob.core.lifecycle import JobPhase, Placed
from modeljob.core.resources import GIB, MIB, TIB, Resources, parse_bytes
from modeljob.core.scheduling_cycle import CycleSettings, run_cycle
from modeljob.core.sizing import Device, size_replica
from modeljob.core.steps import Place
from tests.operator_builders import H100, at, container, make_job, modeljob_dict, node_dict, pod_dict

# --- nodes ---------------------------------------------------------------------------------------


def test_gpu_node_reads_allocatable_product_memory_and_price_from_its_labels() -> None:
    facts = kube_objects.node_facts(node_dict(0))
    view = facts.view
    assert view.name == "gpu-h100-0"
    assert view.allocatable == Resources(
        cpu_milli=192_000, memory_bytes=2 * TIB, ephemeral_storage_bytes=8 * TIB, gpus=8
    )
    assert (view.accelerator, view.gpu_product, view.gpu_memory_bytes) == (
        "nvidia.com/gpu",
        H100,
        80 * 1024 * MIB,
    )
    assert view.price_per_hour == pytest.approx(39.68)
    assert facts.ready
    assert facts.schedulable


def test_cpu_node_has_no_accelerator() -> None:
    view = kube_objects.node_facts(node_dict(6)).view
    assert (view.accelerator, view.allocatable.gpus, view.gpu_product) == (None, 0, None)


def test_not_ready_node_remembers_since_when() -> None:
    facts = kube_objects.node_facts(node_dict(0, ready=False, since="2026-01-01T00:00:30Z"))
    assert not facts.ready
    assert facts.not_ready_since == at(30)
    assert facts.lost(now=at(59), grace_seconds=30) is False
    assert facts.lost(now=at(60), grace_seconds=30) is True


def test_cordoned_and_tainted_node() -> None:
    facts = kube_objects.node_facts(
        node_dict(0, unschedulable=True, taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    )
    assert not facts.schedulable
    assert facts.taints == (Taint(key="gpu", value="yes", effect=TaintEffect.NO_SCHEDULE),)


@pytest.mark.parametrize(
    ("allocatable", "expected"),
    [
        ({"cpu": "8", "amd.com/gpu": "4"}, ("amd.com/gpu", 4)),
        ({"cpu": "8", "hugepages-2Mi": "1Gi", "example.com/fpga": "2"}, ("example.com/fpga", 2)),
        ({"cpu": "8", "nvidia.com/gpu": "0"}, (None, 0)),
        ({"cpu": "8", "nvidia.com/gpu": "8", "example.com/nic": "1"}, ("nvidia.com/gpu", 8)),
    ],
    ids=["amd", "any-domain-resource-but-hugepages", "zero-gpus", "known-accelerator-wins"],
)
def test_accelerator_is_the_extended_resource_the_node_offers(
    allocatable: dict[str, str], expected: tuple[str | None, int]
) -> None:
    node = {"metadata": {"name": "n"}, "status": {"allocatable": allocatable}}
    view = kube_objects.node_facts(node).view
    assert (view.accelerator, view.allocatable.gpus) == expected


# --- pods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {
                "containers": [
                    container(requests={"cpu": "2", "memory": "4Gi"}),
                    container("b", requests={"cpu": "500m"}),
                ]
            },
            Resources(cpu_milli=2500, memory_bytes=4 * GIB),
        ),
        (
            {"containers": [container(limits={"cpu": "1", "nvidia.com/gpu": "2"})]},
            Resources(cpu_milli=1000, gpus=2),
        ),
        (
            {
                "containers": [container(requests={"cpu": "1"})],
                "initContainers": [container("init", requests={"cpu": "3", "memory": "1Gi"})],
            },
            Resources(cpu_milli=3000, memory_bytes=GIB),
        ),
        (
            {"containers": [container(requests={"cpu": "1"})], "overhead": {"cpu": "250m"}},
            Resources(cpu_milli=1250),
        ),
    ],
    ids=["containers-add-up", "limits-stand-in-for-requests", "init-container-peak", "pod-overhead"],
)
def test_pod_requests_are_what_kube_scheduler_counts(spec: dict[str, Any], expected: Resources) -> None:
    requests, _ = kube_objects.pod_requests(spec)
    assert requests == expected


def test_pod_facts_of_a_modeljob_pod() -> None:
    pod = pod_dict(
        "job-1-abcde",
        node="gpu-h100-0",
        containers=[container(requests={"cpu": "8", "nvidia.com/gpu": "1"})],
        owner_uid="uid-job",
        labels={kube_objects.LABEL_REPLICA: "1"},
        deleting=True,
        schedulerName="modeljob",
    )
    facts = kube_objects.pod_facts(pod)
    assert (facts.namespace, facts.name, facts.node) == ("ml", "job-1-abcde", "gpu-h100-0")
    assert (facts.job_uid, facts.replica, facts.scheduler_name) == ("uid-job", 1, "modeljob")
    assert facts.accelerator == "nvidia.com/gpu"
    assert facts.requests.gpus == 1
    assert facts.terminating
    assert facts.phase is PodPhase.RUNNING


def test_an_absurd_request_on_a_hand_bound_pod_fills_its_node_and_breaks_nothing() -> None:
    # The API server stores such a pod (nodeName set, never scheduled); one of them used to
    # overflow the int64 node table and stop every scheduling cycle.
    absurd = pod_dict(
        "absurd",
        node="gpu-h100-1",
        containers=[container(requests={"cpu": "1e400", "memory": "1e200", "nvidia.com/gpu": "1e200"})],
    )
    facts = kube_objects.pod_facts(absurd)
    cap = kube_objects.MAX_QUANTITY
    assert (facts.requests.cpu_milli, facts.requests.memory_bytes, facts.requests.gpus) == (cap, cap, cap)
    # A node whose GPU memory label is as absurd still reads as a node (its devices are huge).
    huge = node_dict(1)
    huge["metadata"]["labels"]["nvidia.com/gpu.memory"] = "1e30"
    nodes = [kube_objects.node_facts(node_dict(0)), kube_objects.node_facts(huge)]
    assert nodes[1].view.gpu_memory_bytes == cap
    job = replace(
        make_job("fits", products=(H100,)), shape=replace(make_job().shape, overrides=Overrides(gpus=8))
    )
    result = run_cycle([job], nodes, [facts], now=at(1000), settings=CycleSettings())
    [outcome] = result.outcomes
    assert isinstance(outcome, Place)
    assert [p.node for p in outcome.placement] == ["gpu-h100-0"]


def test_pod_of_another_owner_belongs_to_no_job() -> None:
    pod = pod_dict()
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "uid": "x", "name": "j"}]
    assert kube_objects.pod_facts(pod).job_uid is None


# --- ModelJobs -----------------------------------------------------------------------------------


def test_job_facts_of_an_example() -> None:
    facts = kube_objects.job_facts(modeljob_dict("llama-2-13b-training-zero3"))
    assert (facts.namespace, facts.name, facts.uid, facts.generation) == (
        "ml",
        "llama-2-13b-sft",
        "uid-llama-2-13b-training-zero3",
        1,
    )
    assert (facts.replicas, facts.gang, facts.queue, facts.priority) == (4, True, "research", 10)
    assert facts.expected_duration_seconds == 48 * 3600
    assert facts.shape.model.parameters == 13 * 10**9
    assert facts.phase is None
    assert not facts.admitted


def test_job_facts_read_placement_and_the_binding_condition() -> None:
    status = {
        "phase": "Queued",
        "observedGeneration": 2,
        "placement": [{"replica": 0, "pod": "p-0", "node": "gpu-h100-0", "score": 0.5}],
        "conditions": [
            {
                "type": "Binding",
                "status": "True",
                "reason": "Binding",
                "observedGeneration": 2,
                "lastTransitionTime": "2026-01-01T00:00:05Z",
            }
        ],
    }
    facts = kube_objects.job_facts(modeljob_dict(generation=2, status=status))
    assert facts.admitted
    assert facts.phase is JobPhase.QUEUED
    assert facts.placement == (Placed(replica=0, pod="p-0", node="gpu-h100-0", score=0.5),)
    assert facts.binding
    assert facts.placed_generation == 2


def test_spec_hash_ignores_scheduling_but_not_the_model() -> None:
    base = modeljob_dict()["spec"]
    reprioritised = {**base, "scheduling": {"priority": 5}}
    bigger = {**base, "model": {**base["model"], "parameters": "9B"}}
    assert kube_objects.spec_hash(base) == kube_objects.spec_hash(reprioritised)
    assert kube_objects.spec_hash(base) != kube_objects.spec_hash(bigger)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({}, "spec.template.spec:"),
        ({"spec": {"containers": []}}, "spec.template.spec.containers:"),
        ({"spec": {"containers": [{"name": "x"}]}}, "spec.template.spec.containers[0]:"),
        (
            {"spec": {"containers": [container(requests={"cpu": "lots"})]}},
            "spec.template.spec.containers[0].resources.requests.cpu:",
        ),
        ({"spec": {"containers": [container()], "nodeName": "n"}}, "spec.template.spec.nodeName:"),
    ],
    ids=["no-pod-spec", "no-containers", "container-without-image", "bad-quantity", "node-name-set"],
)
def test_template_the_schema_cannot_judge_is_rejected_naming_the_field(
    template: dict[str, Any], field: str
) -> None:
    with pytest.raises(ObjectError, match="^" + re.escape(field)):
        kube_objects.parse_spec(modeljob_dict(template=template))


def test_invalid_spec_names_the_field() -> None:
    document = modeljob_dict()
    document["spec"]["replicas"] = 0
    with pytest.raises(ObjectError, match=r"^spec\.replicas: "):
        kube_objects.parse_spec(document)


# --- what the operator writes --------------------------------------------------------------------


def _pod(document: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    estimate = size_replica(kube_objects.job_facts(document).shape, Device(80 * GIB, 8))
    arguments: dict[str, Any] = {
        "replica": 1,
        "name": "llama-3-1-8b-chat-1-abcde",
        "requests": Resources(
            cpu_milli=estimate.cpu_milli,
            memory_bytes=estimate.memory_bytes,
            ephemeral_storage_bytes=estimate.ephemeral_storage_bytes,
            gpus=estimate.gpus,
        ),
        "accelerator": "nvidia.com/gpu",
        "product": H100,
        "scheduler_name": "modeljob",
        "product_label": "nvidia.com/gpu.product",
    }
    arguments.update(overrides)
    return kube_objects.pod_manifest(document, **arguments)


def test_pod_requests_exactly_the_estimate_and_is_owned_by_its_job() -> None:
    document = modeljob_dict()
    pod = _pod(document)
    requests, accelerator = kube_objects.pod_requests(pod["spec"])
    estimate = size_replica(kube_objects.job_facts(document).shape, Device(80 * GIB, 8))
    assert requests == Resources(
        cpu_milli=estimate.cpu_milli,
        memory_bytes=estimate.memory_bytes,
        ephemeral_storage_bytes=estimate.ephemeral_storage_bytes,
        gpus=estimate.gpus,
    )
    assert accelerator == "nvidia.com/gpu"
    main = pod["spec"]["containers"][0]
    assert main["resources"]["limits"] == {
        "memory": main["resources"]["requests"]["memory"],
        "nvidia.com/gpu": str(estimate.gpus),
    }
    assert pod["spec"]["schedulerName"] == "modeljob"
    assert "nodeName" not in pod["spec"]
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "ModelJob",
        "uid-llama-3.1-8b-inference",
        True,
    )
    assert pod["metadata"]["labels"][kube_objects.LABEL_REPLICA] == "1"
    assert pod["metadata"]["annotations"][kube_objects.ANNOTATION_SPEC_HASH] == kube_objects.spec_hash(
        document["spec"]
    )
    facts = kube_objects.pod_facts(pod)
    assert (facts.job_uid, facts.replica) == ("uid-llama-3.1-8b-inference", 1)


def test_pod_is_pinned_to_the_gpu_product_within_the_templates_own_affinity() -> None:
    own_term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    template = {
        "spec": {
            "containers": [container()],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [own_term]}
                }
            },
        }
    }
    pod = _pod(modeljob_dict(template=template))
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "nvidia.com/gpu.product", "operator": "In", "values": [H100]},
            ]
        }
    ]


def test_sidecars_keep_their_own_requests() -> None:
    template = {"spec": {"containers": [container(), container("proxy", requests={"cpu": "250m"})]}}
    pod = _pod(modeljob_dict(template=template))
    assert pod["spec"]["containers"][1]["resources"] == {"requests": {"cpu": "250m"}}
    assert kube_objects.job_facts(modeljob_dict(template=template)).extra_requests == Resources(cpu_milli=250)


def test_pod_names_stay_within_the_limit_and_differ_per_attempt() -> None:
    long = "j" * 300
    assert len(kube_objects.pod_name(long, 12, "abcde")) == 253
    assert kube_objects.pod_name("job", 0, "abcde") == "job-0-abcde"
    assert kube_objects.placement_nonce("uid", "1") != kube_objects.placement_nonce("uid", "2")


def test_event_names_the_job_it_is_about() -> None:
    event = kube_objects.event_manifest(
        modeljob_dict(), warning=True, reason="NodeLost", message="node gone", now=at(0), instance="op-1"
    )
    assert event["involvedObject"] == {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "name": "llama-3-1-8b-chat",
        "namespace": "ml",
        "uid": "uid-llama-3.1-8b-inference",
    }
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "NodeLost", "node gone")
    assert event["metadata"] == {"generateName": "llama-3-1-8b-chat.", "namespace": "ml"}


@pytest.mark.parametrize(
    ("value", "quantity"),
    [
        (80 * GIB, "80Gi"),
        (157 * GIB + GIB // 2, "157.5Gi"),
        (1536 * MIB, "1.5Gi"),
        (165_153_601 * 1024, "165153601Ki"),
        (3 * TIB // 4, "768Gi"),
        (1001, "1001"),
    ],
    ids=["whole-gib", "half-gib", "mib-as-gib", "only-kib", "under-a-tib", "bytes"],
)
def test_memory_requests_are_written_as_exact_readable_quantities(value: int, quantity: str) -> None:
    assert kube_objects.bytes_quantity(value) == quantity
    assert parse_bytes(quantity) == value, "the quantity means exactly the bytes"


def test_a_pods_memory_request_reads_as_a_quantity_not_raw_bytes() -> None:
    pod = _pod(modeljob_dict(), requests=Resources(cpu_milli=4000, memory_bytes=157 * GIB + GIB // 2, gpus=1))
    assert pod["spec"]["containers"][0]["resources"]["requests"]["memory"] == "157.5Gi"


def test_a_failed_pod_says_which_container_failed_why_and_with_what_exit_code() -> None:
    pod = pod_dict("job-0-abcde", phase="Failed")
    pod["status"]["containerStatuses"] = [
        {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "server", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
    ]
    facts = kube_objects.pod_facts(pod)
    assert facts.termination == Termination(container="server", reason="OOMKilled", exit_code=137)
    assert facts.termination.describe() == "container server OOMKilled (exit code 137)"


def test_a_restarted_container_is_judged_by_its_last_state_and_an_evicted_pod_by_its_reason() -> None:
    restarted = pod_dict(phase="Failed")
    restarted["status"]["containerStatuses"] = [
        {
            "name": "main",
            "state": {"waiting": {}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
    ]
    assert kube_objects.pod_facts(restarted).termination == Termination("main", "Error", 1)
    evicted = pod_dict(phase="Failed")
    evicted["status"]["reason"] = "Evicted"
    assert kube_objects.pod_facts(evicted).termination == Termination(reason="Evicted")
    assert kube_objects.pod_facts(pod_dict(phase="Running")).termination is None


def test_a_pod_the_api_server_refuses_is_explained_with_the_modeljobs_field_names() -> None:
    detail = (
        'Pod "job-0-abcde" is invalid: [spec.containers[0].name: Invalid value: "Server_1": a lowercase '
        "RFC 1123 label must consist of lower case alphanumeric characters or '-', spec.restartPolicy: "
        'Unsupported value: "never": supported values: "Always", "OnFailure", "Never"]'
    )
    message = kube_objects.refused_pod_message(detail)
    assert message.startswith('[spec.template.spec.containers[0].name: Invalid value: "Server_1"')
    assert 'spec.template.spec.restartPolicy: Unsupported value: "never"' in message
    assert "job-0-abcde" not in message, "the pod's name means nothing to the job's owner"


def test_jobs_are_counted_by_phase_whether_or_not_their_spec_can_be_read() -> None:
    unreadable = modeljob_dict(status={"phase": "Invalid"}, replicas=0)
    other_team = modeljob_dict(namespace="team-b", status={"phase": "Running"})
    counts = kube_objects.count_by_phase([unreadable, modeljob_dict(), other_team])
    assert counts == {
        ("ml", JobPhase.INVALID): 1,
        ("ml", JobPhase.PENDING): 1,
        ("team-b", JobPhase.RUNNING): 1,
    }
