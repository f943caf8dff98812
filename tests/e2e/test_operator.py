"""The operator against the real control plane: sized, queued, gang-placed, bound, explained."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.adapters import kube_pods, node_catalog
from modeljob.adapters.cluster_errors import NotFoundError
from modeljob.commands.nodes import apply_nodes, wait_until_ready
from modeljob.core.resources import MIB
from tests.cluster import sample_sum
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import (
    Pool,
    apply,
    get_job,
    hold_gpus,
    job_pods,
    model_job,
    phase,
    status,
    wait_event,
    wait_phase,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"
DEMO_NODES = Path(__file__).resolve().parents[2] / "hack" / "demo-nodes.yaml"
L4 = "NVIDIA-L4"


def _node_labels(cluster: Cluster, name: str) -> dict[str, str]:
    node = next(n for n in cluster.gateway.list_nodes() if n["metadata"]["name"] == name)
    return dict(node["metadata"].get("labels") or {})


@pytest.fixture
def demo_nodes(cluster: Cluster) -> Iterator[list[str]]:
    """The two extra H100 nodes `make demo` adds (hack/demo-nodes.yaml): the 405B example's
    group takes two whole nodes beside what the other examples take of the preset's."""
    specs = node_catalog.yaml_nodes(DEMO_NODES.read_text(), source=str(DEMO_NODES))
    names = [spec.name for spec in specs]
    apply_nodes(cluster.gateway, [node_catalog.node_manifest(spec) for spec in specs], workers=2)
    assert wait_until_ready(cluster.gateway, set(names), timeout_seconds=60) == set(names)
    yield names
    for name in names:
        with contextlib.suppress(NotFoundError):
            cluster.gateway.delete_node(name)


def test_each_example_runs_on_the_node_type_it_was_sized_for(
    cluster: Cluster, idle_preset_nodes: None, demo_nodes: list[str], namespace: str, start_operator: Any
) -> None:
    start_operator()
    examples = [yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.glob("*.yaml"))]
    apply(cluster, namespace, *examples)
    for example in examples:
        wait_phase(cluster, namespace, example["metadata"]["name"], "Running", timeout_seconds=60)
    for example in examples:
        name = example["metadata"]["name"]
        job_status = status(cluster, namespace, name)
        estimate = job_status["estimate"]
        pods = job_pods(cluster, namespace, name)
        # A replica that spans nodes (the 405B example) is a group of one pod per node.
        assert len(pods) == example["spec"].get("replicas", 1) * estimate.get("nodesPerReplica", 1)
        assert {e["node"] for e in job_status["placement"]} == {p["spec"]["nodeName"] for p in pods}
        for pod in pods:
            requests, _ = kube_pods.pod_requests(pod["spec"])
            assert (
                requests.gpus,
                requests.cpu_milli,
                requests.memory_bytes,
                requests.ephemeral_storage_bytes,
            ) == (
                estimate["gpus"],
                estimate["cpuMilli"],
                estimate["memoryBytes"],
                estimate["ephemeralStorageBytes"],
            ), f"{pod['metadata']['name']} requests exactly the estimate"
            labels = _node_labels(cluster, pod["spec"]["nodeName"])
            assert int(labels["nvidia.com/gpu.memory"]) * MIB == estimate["deviceMemoryBytes"], (
                f"{name} was sized for the device of the node it runs on"
            )
            terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert terms["nodeSelectorTerms"][0]["matchExpressions"][-1]["values"] == [
                labels["nvidia.com/gpu.product"]
            ]
        scheduled = next(c for c in job_status["conditions"] if c["type"] == "Scheduled")
        assert scheduled["status"] == "True"
        why = " ".join(wait_event(cluster, namespace, name, "Scheduled"))  # the condition is one line
        assert "planned on each node type the job was sized for" in why
        assert "(chosen)" in why
    cluster.kubectl("-n", namespace, "delete", "modeljobs", "--all", "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not job_pods(cluster, namespace),
        "the examples' pods to be garbage-collected",
        timeout_seconds=60,
    )


def test_a_gang_with_room_for_three_of_four_waits_unbound_then_is_placed_whole(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    first, _ = pool.add("h100", 2)
    hold_gpus(cluster, namespace, pool, "blocker", node=first, gpus=4)
    apply(cluster, namespace, model_job("gang", pool, replicas=4, gpus=4))
    waiting = wait_phase(cluster, namespace, "gang", "Queued")
    wait_for(
        lambda: "replica 4 of 4 has no node now" in str(status(cluster, namespace, "gang").get("message")),
        "the waiting reason",
    )
    operator.wait_cycles_after_now()  # it looked again at 3 of 4 fitting: still nothing may be bound
    assert job_pods(cluster, namespace, "gang") == []
    assert status(cluster, namespace, "gang")["phase"] == "Queued"
    assert waiting.get("placement") in (None, [])
    cluster.gateway.delete_pod(namespace, "blocker", grace_period_seconds=0)
    placed = wait_phase(cluster, namespace, "gang", "Running")
    pods = job_pods(cluster, namespace, "gang")
    assert len(pods) == 4
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert sorted(e["node"] for e in placed["placement"]) == sorted(pool.nodes * 2)


@pytest.mark.parametrize(
    ("policy", "winner", "loser"),
    [("fcfs", "long-first", "short-second"), ("shortest-job-first", "short-second", "long-first")],
    ids=["fcfs", "sjf"],
)
def test_with_the_cluster_full_the_configured_policy_decides_who_goes_first(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, *, policy: str, winner: str, loser: str
) -> None:
    start_operator(MODELJOB_QUEUE__POLICY=policy)
    pool.add("h100", 1)
    apply(cluster, namespace, model_job("filler", pool, gpus=8))
    wait_phase(cluster, namespace, "filler", "Running")
    apply(cluster, namespace, model_job("long-first", pool, gpus=8, expected_duration="10h"))
    # Creation timestamps have one-second resolution: the second job must be created a second later.
    created = datetime.fromisoformat(
        get_job(cluster, namespace, "long-first")["metadata"]["creationTimestamp"]
    )
    wait_for(
        lambda: datetime.now(UTC) >= created + timedelta(seconds=1), "the clock to pass long-first's second"
    )
    apply(cluster, namespace, model_job("short-second", pool, gpus=8, expected_duration="10m"))
    wait_for(
        lambda: (
            status(cluster, namespace, winner).get("queuePosition") == 1
            and status(cluster, namespace, loser).get("queuePosition") == 2
        ),
        f"{winner} first in the {policy} queue",
    )
    cluster.kubectl("-n", namespace, "delete", "modeljob", "filler", "--wait=true", "--timeout=60s")
    wait_phase(cluster, namespace, winner, "Running")
    assert phase(cluster, namespace, loser) == "Queued"
    # A new number alone is a refresh, written at most every 10 s per job (docs/operator.md).
    wait_for(
        lambda: status(cluster, namespace, loser)["queuePosition"] == 1, f"{loser} refreshed to first in line"
    )


def test_a_job_that_can_never_fit_is_unschedulable_with_the_reason_while_one_that_must_wait_stays_queued(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    start_operator()
    pool.add("l4", 1, preset_group=2)
    apply(cluster, namespace, model_job("first", pool, products=[L4], gpus=4))
    wait_phase(cluster, namespace, "first", "Running")
    apply(
        cluster,
        namespace,
        model_job("405b-on-l4", pool, parameters="405B", products=[L4]),
        model_job("second", pool, products=[L4], gpus=4),
    )
    never = wait_phase(cluster, namespace, "405b-on-l4", "Unschedulable")
    # 405B in bf16 on 24 GiB L4s is a group of 11 four-GPU nodes per replica: more than this pool has.
    assert never["message"].startswith("the job can never fit this cluster: ")
    assert "needs 11 pods of 4 × 24 GiB GPUs, one node each, per replica" in never["message"]
    condition = next(c for c in never["conditions"] if c["type"] == "Scheduled")
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert never["message"] in wait_event(cluster, namespace, "405b-on-l4", "Unschedulable")
    assert wait_phase(cluster, namespace, "second", "Queued")["queuePosition"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "workload": {"type": "Training", "sequenceLength": 2048},
                "model": {"parameters": "7B", "precision": "int4"},
            },
            "spec.model.precision",
        ),
        ({"template": {"spec": {"containers": []}}}, "spec.template.spec.containers"),
    ],
    ids=["training-int4-weights", "template-without-containers"],
)
def test_a_job_that_passes_the_schema_but_makes_no_sense_is_invalid_while_others_are_served(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any, *, change: dict[str, Any], field: str
) -> None:
    start_operator()
    pool.add("h100", 1)
    bad = model_job("nonsense", pool)
    bad["spec"].update(change)
    apply(cluster, namespace, bad, model_job("sensible", pool))
    invalid = wait_phase(cluster, namespace, "nonsense", "Invalid")
    condition = next(c for c in invalid["conditions"] if c["type"] == "Valid")
    assert condition["status"] == "False"
    assert condition["message"].startswith(f"{field}: ")
    assert condition["message"] in wait_event(cluster, namespace, "nonsense", "InvalidSpec")
    wait_phase(cluster, namespace, "sensible", "Running")
    assert job_pods(cluster, namespace, "nonsense") == []


def test_metrics_expose_the_design_series(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    pool.add("h100", 1)
    apply(cluster, namespace, model_job("measured", pool, gpus=2))
    wait_phase(cluster, namespace, "measured", "Running")
    running = f'modeljob_jobs{{namespace="{namespace}",phase="Running"}}'
    wait_for(lambda: running in operator.metrics(), "the Running gauge")
    text = operator.metrics()
    for series in (
        "modeljob_jobs",
        "modeljob_queue_length",
        "modeljob_queue_wait_seconds_bucket",
        "modeljob_scheduling_attempts_total",
        "modeljob_scheduling_cycle_duration_seconds_count",
        "modeljob_handoffs_pending",
        "modeljob_bindings_total",
        "modeljob_placement_score_count",
        "modeljob_node_gpu_allocation_ratio",
        "modeljob_cluster_gpu_fragmentation_ratio",
        "modeljob_estimate_bytes_count",
        "modeljob_extender_request_seconds",  # the extender inside `modeljob run`
    ):
        assert series in text, series
    assert sample_sum(text, "modeljob_bindings_total", {"result": "bound"}) >= 1
    ratio = sample_sum(text, "modeljob_node_gpu_allocation_ratio", {"node": pool.nodes[0]})
    assert ratio == pytest.approx(0.25)
