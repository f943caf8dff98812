"""Each job's headless Service on the real control plane: made before the pods, listing every pod
(ready or not) in its EndpointSlice, owned by the job and deleted with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from modeljob.adapters import kube_pods, kube_services
from tests.cluster import exists
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import apply, get_job, job_pods, phase

EXAMPLE = Path(__file__).resolve().parents[2] / "crds" / "examples" / "llama-2-13b-training-zero3.yaml"


def _endpoints(cluster: Cluster, namespace: str, service: str) -> list[dict[str, Any]]:
    """The endpoints of every EndpointSlice the EndpointSlice controller keeps for ``service``."""
    listed = cluster.kubectl(
        "-n", namespace, "get", "endpointslices", "-l", f"kubernetes.io/service-name={service}", "-o", "json"
    )
    return [e for s in json.loads(listed.stdout)["items"] for e in s.get("endpoints") or []]


def test_a_training_job_owns_a_headless_service_that_lists_every_pod_and_goes_with_the_job(
    cluster: Cluster, idle_preset_nodes: None, namespace: str, start_operator: Any
) -> None:
    start_operator()
    example = yaml.safe_load(EXAMPLE.read_text())
    name, replicas = example["metadata"]["name"], example["spec"]["replicas"]
    apply(cluster, namespace, example)
    wait_for(lambda: phase(cluster, namespace, name) in {"Scheduled", "Running"}, f"{name} to be Scheduled")
    uid = get_job(cluster, namespace, name)["metadata"]["uid"]

    service = cluster.gateway.read_service(namespace, name)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {kube_pods.LABEL_JOB_UID: uid}
    assert kube_services.controller_uid(service) == uid
    owner = service["metadata"]["ownerReferences"][0]
    pod_owner = job_pods(cluster, namespace, name)[0]["metadata"]["ownerReferences"][0]
    assert owner == pod_owner, "owned by the job exactly as its pods are"

    pods = job_pods(cluster, namespace, name)
    assert len(pods) == replicas
    # kwok gives each pod an IP (its --cidr); the EndpointSlice controller lists a pod once it has one
    wait_for(
        lambda: (
            sorted(e["targetRef"]["name"] for e in _endpoints(cluster, namespace, name))
            == sorted(p["metadata"]["name"] for p in pods)
        ),
        f"the EndpointSlice of Service {name} to list the job's {replicas} pods",
    )
    # An endpoint names its pod's hostname when the pod's subdomain is this Service: that is what
    # `<job>-<index>.<job>.<namespace>.svc` resolves from, ready or not.
    hostnames = {e["targetRef"]["name"]: e.get("hostname") for e in _endpoints(cluster, namespace, name)}
    assert hostnames == {p["metadata"]["name"]: p["spec"]["hostname"] for p in pods}
    assert sorted(hostnames.values()) == [f"{name}-{index}" for index in range(replicas)]

    cluster.kubectl("-n", namespace, "delete", "modeljob", name, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not exists(lambda: cluster.gateway.read_service(namespace, name)),
        f"the garbage collector to delete Service {name} with its job",
        timeout_seconds=60,
    )
