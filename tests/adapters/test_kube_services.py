"""The job's headless Service, as the pods it must resolve need it."""

from __future__ import annotations

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
