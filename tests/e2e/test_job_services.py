"""Each job's Services on the real control plane: the headless one, made before the pods, listing
every pod (ready or not) in its EndpointSlice; an Inference job's serve Service on its port; each
owned by the job and deleted with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from modeljob.adapters import kube_pods, kube_services
from tests.cluster import exists
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import apply, get_job, job_pods, phase

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"
EXAMPLE = EXAMPLES / "llama-2-13b-training-zero3.yaml"
INFERENCE_EXAMPLE = EXAMPLES / "llama-3.1-8b-inference.yaml"


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

    # What each pod carries, as the API server stored it: one rank per pod, one master for all.
    envs = {
        p["spec"]["hostname"]: {e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}
        for p in pods
    }
    assert sorted((env["RANK"], env["PET_NODE_RANK"]) for env in envs.values()) == [
        (str(i), str(i)) for i in range(replicas)
    ]
    assert {env["MASTER_ADDR"] for env in envs.values()} == {f"{name}-0.{name}.{namespace}.svc"}
    assert {env["WORLD_SIZE"] for env in envs.values()} == {str(replicas)}
    for pod in pods:
        assert pod["spec"]["restartPolicy"] == "Never", "a finished training run stays finished"
        mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"

    cluster.kubectl("-n", namespace, "delete", "modeljob", name, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not exists(lambda: cluster.gateway.read_service(namespace, name)),
        f"the garbage collector to delete Service {name} with its job",
        timeout_seconds=60,
    )


def test_a_job_whose_name_starts_with_a_digit_runs_under_a_service_name_that_starts_with_a_letter(
    cluster: Cluster, idle_preset_nodes: None, namespace: str, start_operator: Any
) -> None:
    # `13b-sft` is a valid ModelJob and pod name, but a Service name only where the API server
    # relaxes Service names (RFC 1035 wants a letter first; v1.36 here accepts it, older ones do
    # not): the job's Service and subdomain start with a letter everywhere.
    start_operator()
    example = yaml.safe_load(EXAMPLE.read_text())
    example["metadata"]["name"] = "13b-sft"
    apply(cluster, namespace, example)
    wait_for(lambda: phase(cluster, namespace, "13b-sft") == "Running", "13b-sft to be Running")
    service = cluster.gateway.read_service(namespace, "mj-13b-sft")
    assert service["spec"]["clusterIP"] == "None"
    pods = job_pods(cluster, namespace, "13b-sft")
    assert {p["spec"]["subdomain"] for p in pods} == {"mj-13b-sft"}
    assert sorted(p["spec"]["hostname"] for p in pods) == [f"mj-13b-sft-{i}" for i in range(len(pods))]


def test_an_inference_job_with_a_port_owns_a_serve_service_says_its_endpoint_and_both_go_with_the_job(
    cluster: Cluster, idle_preset_nodes: None, namespace: str, start_operator: Any
) -> None:
    start_operator()
    example = yaml.safe_load(INFERENCE_EXAMPLE.read_text())
    server = example["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in server, "the example declares no port: this test's copy gives it one"
    server["ports"] = [{"name": "http", "containerPort": 8000}]
    name, replicas = example["metadata"]["name"], example["spec"]["replicas"]
    serve = f"{name}-serve"
    apply(cluster, namespace, example)
    wait_for(lambda: phase(cluster, namespace, name) == "Running", f"{name} to be Running")
    job = get_job(cluster, namespace, name)
    uid = job["metadata"]["uid"]
    assert job["status"]["endpoint"] == f"http://{serve}.{namespace}.svc:8000"

    service = cluster.gateway.read_service(namespace, serve)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["clusterIP"] not in {None, "", "None"}
    # Group leaders only (a replica that spans nodes serves through its leader; one pod leads itself).
    assert service["spec"]["selector"] == {kube_pods.LABEL_JOB_UID: uid, kube_pods.LABEL_GROUP_ROLE: "leader"}
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"], port["protocol"]) == ("http", 8000, 8000, "TCP")
    pods = job_pods(cluster, namespace, name)
    assert len(pods) == replicas
    assert service["metadata"]["ownerReferences"] == pods[0]["metadata"]["ownerReferences"]
    wait_for(
        lambda: (
            sorted(e["targetRef"]["name"] for e in _endpoints(cluster, namespace, serve))
            == sorted(p["metadata"]["name"] for p in pods)
        ),
        f"the EndpointSlice of Service {serve} to list the job's {replicas} pods",
    )

    cluster.kubectl("-n", namespace, "delete", "modeljob", name, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: (
            not any(exists(lambda s=s: cluster.gateway.read_service(namespace, s)) for s in (name, serve))
        ),
        f"the garbage collector to delete Services {name} and {serve} with their job",
        timeout_seconds=60,
    )
