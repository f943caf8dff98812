"""A v1 Pod as the operator reads it: the request kube-scheduler counts, its job and replica, why it ended."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modeljob.adapters import kube_nodes, kube_pods, kube_values
from modeljob.core.cluster_state import PodPhase, Termination
from modeljob.core.jobs import Overrides
from modeljob.core.resources import GIB, Resources
from modeljob.core.scheduling_cycle import CycleSettings, run_cycle
from modeljob.core.steps import Place
from tests.operator_builders import H100, at, container, make_job, node_dict, pod_dict


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
    requests, _ = kube_pods.pod_requests(spec)
    assert requests == expected


def test_pod_facts_of_a_modeljob_pod() -> None:
    pod = pod_dict(
        "job-1-abcde",
        node="gpu-h100-0",
        containers=[container(requests={"cpu": "8", "nvidia.com/gpu": "1"})],
        owner_uid="uid-job",
        labels={kube_pods.LABEL_REPLICA: "1"},
        deleting=True,
        schedulerName="modeljob",
    )
    facts = kube_pods.pod_facts(pod)
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
    facts = kube_pods.pod_facts(absurd)
    cap = kube_values.MAX_QUANTITY
    assert (facts.requests.cpu_milli, facts.requests.memory_bytes, facts.requests.gpus) == (cap, cap, cap)
    # A node whose GPU memory label is as absurd still reads as a node (its devices are huge).
    huge = node_dict(1)
    huge["metadata"]["labels"]["nvidia.com/gpu.memory"] = "1e30"
    nodes = [kube_nodes.node_facts(node_dict(0)), kube_nodes.node_facts(huge)]
    assert nodes[1].view.gpu_memory_bytes == cap
    job = replace(
        make_job("fits", products=(H100,)), shape=replace(make_job().shape, overrides=Overrides(gpus=8))
    )
    result = run_cycle([job], nodes, [facts], now=at(1000), settings=CycleSettings())
    [outcome] = result.steps
    assert isinstance(outcome, Place)
    assert [p.node for p in outcome.placement] == ["gpu-h100-0"]


def test_pod_of_another_owner_belongs_to_no_job() -> None:
    pod = pod_dict()
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "uid": "x", "name": "j"}]
    assert kube_pods.pod_facts(pod).job_uid is None


def test_a_failed_pod_says_which_container_failed_why_and_with_what_exit_code() -> None:
    pod = pod_dict("job-0-abcde", phase="Failed")
    pod["status"]["containerStatuses"] = [
        {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "server", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
    ]
    facts = kube_pods.pod_facts(pod)
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
    assert kube_pods.pod_facts(restarted).termination == Termination("main", "Error", 1)
    evicted = pod_dict(phase="Failed")
    evicted["status"]["reason"] = "Evicted"
    assert kube_pods.pod_facts(evicted).termination == Termination(reason="Evicted")
    assert kube_pods.pod_facts(pod_dict(phase="Running")).termination is None
