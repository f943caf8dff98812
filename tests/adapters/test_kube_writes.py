"""What the operator writes: each replica's Pod (the estimate, its owner, the product pin), names, Events."""

from __future__ import annotations

from typing import Any

import pytest

from modeljob.adapters import kube_jobs, kube_pods, kube_writes
from modeljob.core.resources import GIB, MIB, TIB, Resources, parse_bytes
from modeljob.core.sizing import Device, size_replica
from tests.operator_builders import H100, at, container, modeljob_dict


def _pod(document: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    estimate = size_replica(kube_jobs.job_facts(document).shape, Device(80 * GIB, 8))
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
    return kube_writes.pod_manifest(document, **arguments)


def test_pod_requests_exactly_the_estimate_and_is_owned_by_its_job() -> None:
    document = modeljob_dict()
    pod = _pod(document)
    requests, accelerator = kube_pods.pod_requests(pod["spec"])
    estimate = size_replica(kube_jobs.job_facts(document).shape, Device(80 * GIB, 8))
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
    assert pod["metadata"]["labels"][kube_pods.LABEL_REPLICA] == "1"
    assert pod["metadata"]["annotations"][kube_pods.ANNOTATION_SPEC_HASH] == kube_jobs.spec_hash(
        document["spec"]
    )
    facts = kube_pods.pod_facts(pod)
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
    assert kube_jobs.job_facts(modeljob_dict(template=template)).extra_requests == Resources(cpu_milli=250)


def test_pod_names_stay_within_the_limit_and_differ_per_attempt() -> None:
    long = "j" * 300
    assert len(kube_writes.pod_name(long, 12, "abcde")) == 253
    assert kube_writes.pod_name("job", 0, "abcde") == "job-0-abcde"
    assert kube_writes.placement_nonce("uid", "1") != kube_writes.placement_nonce("uid", "2")


def test_event_names_the_job_it_is_about() -> None:
    event = kube_writes.event_manifest(
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
    assert kube_writes.bytes_quantity(value) == quantity
    assert parse_bytes(quantity) == value, "the quantity means exactly the bytes"


def test_a_pods_memory_request_reads_as_a_quantity_not_raw_bytes() -> None:
    pod = _pod(modeljob_dict(), requests=Resources(cpu_milli=4000, memory_bytes=157 * GIB + GIB // 2, gpus=1))
    assert pod["spec"]["containers"][0]["resources"]["requests"]["memory"] == "157.5Gi"


def test_a_pod_the_api_server_refuses_is_explained_with_the_modeljobs_field_names() -> None:
    detail = (
        'Pod "job-0-abcde" is invalid: [spec.containers[0].name: Invalid value: "Server_1": a lowercase '
        "RFC 1123 label must consist of lower case alphanumeric characters or '-', spec.restartPolicy: "
        'Unsupported value: "never": supported values: "Always", "OnFailure", "Never"]'
    )
    message = kube_writes.refused_pod_message(detail)
    assert message.startswith('[spec.template.spec.containers[0].name: Invalid value: "Server_1"')
    assert 'spec.template.spec.restartPolicy: Unsupported value: "never"' in message
    assert "job-0-abcde" not in message, "the pod's name means nothing to the job's owner"
