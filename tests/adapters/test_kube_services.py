"""The job's headless Service, as the pods it must resolve need it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modeljob.adapters import kube_pods, kube_services, kube_writes
from modeljob.core.resources import GIB, Resources
from tests.operator_builders import modeljob_dict


def _job(name: str) -> dict[str, object]:
    job = modeljob_dict("llama-2-13b-training-zero3")
    job["metadata"].update(name=name, namespace="ml", uid="uid-1")
    return job


@pytest.mark.parametrize("name", ["llama-2-13b-sft", "llama.v2", "x" * 70])
def test_the_service_is_named_as_the_pods_subdomain_and_labelled_as_the_pods(name: str) -> None:
    job = _job(name)
    service = kube_services.service_manifest(job)
    pod = kube_writes.pod_manifest(
        job,
        replica=0,
        name=f"{name}-0-abcde",
        requests=Resources(cpu_milli=1000, memory_bytes=GIB, ephemeral_storage_bytes=0, gpus=2),
        layout=kube_writes.PodLayout(
            gpus_per_pod=2,
            tensor_parallel_size=2,
            pipeline_parallel_size=1,
            nodes_per_replica=1,
            shared_memory_bytes=GIB,
        ),
        accelerator="nvidia.com/gpu",
        product=None,
        scheduler_name="modeljob",
        product_label="nvidia.com/gpu.product",
    )
    assert service["metadata"]["name"] == pod["spec"]["subdomain"]
    pod_labels = pod["metadata"]["labels"]
    assert service["metadata"]["labels"] == {
        kube_pods.LABEL_JOB: pod_labels[kube_pods.LABEL_JOB],
        kube_pods.LABEL_JOB_UID: pod_labels[kube_pods.LABEL_JOB_UID],
    }
    assert service["metadata"]["ownerReferences"] == pod["metadata"]["ownerReferences"]
    assert service["spec"]["selector"] == {kube_pods.LABEL_JOB_UID: "uid-1"}


def test_only_a_modeljob_that_controls_the_service_owns_it() -> None:
    service = kube_services.service_manifest(_job("a"))
    assert kube_services.controller_uid(service) == "uid-1"
    service["metadata"]["ownerReferences"][0]["controller"] = False
    assert kube_services.controller_uid(service) is None
    assert kube_services.controller_uid({"metadata": {}}) is None


def _inference(ports: list[dict[str, object]] | None, *, name: str = "chat") -> dict[str, Any]:
    job = modeljob_dict("llama-3.1-8b-inference")
    job["metadata"].update(name=name, namespace="ml", uid="uid-1")
    if ports is not None:
        job["spec"]["template"]["spec"]["containers"][0]["ports"] = ports
    return job


def test_an_inference_job_with_a_port_gets_a_cluster_ip_service_on_it_owned_like_the_headless_one() -> None:
    job = _inference([{"containerPort": 8000}])
    headless, serve = kube_services.job_services(job)
    assert headless.manifest == kube_services.service_manifest(job)
    assert serve.name == "chat-serve"
    assert serve.field == "spec.template.spec.containers[0].ports[0]"
    assert serve.manifest["metadata"]["ownerReferences"] == headless.manifest["metadata"]["ownerReferences"]
    assert serve.manifest["metadata"]["labels"] == headless.manifest["metadata"]["labels"]
    assert serve.manifest["spec"] == {
        "type": "ClusterIP",
        # Group leaders only: a replica that spans nodes serves through its leader.
        "selector": {kube_pods.LABEL_JOB_UID: "uid-1", kube_pods.LABEL_GROUP_ROLE: "leader"},
        "ports": [{"port": 8000, "targetPort": 8000, "protocol": "TCP"}],
    }
    assert kube_services.serve_endpoint(job) == "http://chat-serve.ml.svc:8000"


def test_the_port_named_http_is_served_else_the_first_with_its_protocol_and_name() -> None:
    metrics, http = {"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8080}
    [port] = kube_services.job_services(_inference([metrics, http]))[1].manifest["spec"]["ports"]
    assert port == {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    udp = {"name": "dns", "containerPort": 53, "protocol": "UDP"}
    served = kube_services.job_services(_inference([udp, metrics]))[1]
    assert served.manifest["spec"]["ports"] == [
        {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}
    ]


@pytest.mark.parametrize(
    "job",
    [
        _inference(None),  # the example declares no port
        _inference([]),
        _inference([{"containerPort": 0}]),  # the pod's own refusal names the field
        _inference([{"containerPort": "8000"}]),
        _job("llama-2-13b-sft"),  # training
    ],
    ids=["no-ports", "empty-ports", "port-0", "port-text", "training"],
)
def test_a_job_that_serves_no_port_gets_only_the_headless_service_and_no_endpoint(
    job: dict[str, Any],
) -> None:
    assert [s.name for s in kube_services.job_services(job)] == [kube_services.service_name(job)]
    assert kube_services.serve_endpoint(job) is None


def test_only_the_first_containers_ports_are_served() -> None:
    job = _inference(None)
    job["spec"]["template"]["spec"]["containers"].append(
        {"name": "proxy", "image": "envoy", "ports": [{"containerPort": 9901}]}
    )
    assert kube_services.serve_endpoint(job) is None


@pytest.mark.parametrize("name", ["x" * 63, "a" * 57 + "-b" * 5, "llama.v3", "13b-sft"])
def test_the_serve_service_name_is_one_dns_label_ending_in_serve(name: str) -> None:
    job = _inference([{"containerPort": 8000}], name=name)
    served = kube_services.serve_service_name(job)
    assert len(served) <= 63
    assert served.endswith("-serve")
    assert re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", served), "a Service name starts with a letter"
    assert served.startswith(kube_services.service_name(job)[:20])
    assert kube_services.serve_endpoint(job) == f"http://{served}.ml.svc:8000"
