"""The operator's Prometheus metrics: the series docs/operator.md lists, with small label sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.metrics import AttemptResult, BindingResult, OperatorMetrics
from modeljob.core.job_state import JobPhase, Requeue
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, size_replica
from tests.core.test_sizing import make_job

DOCUMENTED_SERIES = {
    "modeljob_jobs",
    "modeljob_queue_length",
    "modeljob_queue_wait_seconds",
    "modeljob_scheduling_attempts",
    "modeljob_scheduling_cycle_duration_seconds",
    "modeljob_bindings",
    "modeljob_binding_duration_seconds",
    "modeljob_requeues",
    "modeljob_placement_score",
    "modeljob_placement_pods",
    "modeljob_node_gpu_allocation_ratio",
    "modeljob_cluster_gpu_fragmentation_ratio",
    "modeljob_extender_request_seconds",  # ExtenderMetrics, on the same registry in `modeljob run`
    "modeljob_estimate_bytes",
}


OPERATOR_DOC = Path(__file__).resolve().parents[2] / "docs" / "operator.md"


def samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_documented_series_is_exported() -> None:
    metrics = OperatorMetrics()
    ExtenderMetrics(metrics.registry)
    families = {f.name for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert families >= DOCUMENTED_SERIES


def test_recorded_events_show_up_with_their_labels() -> None:
    metrics = OperatorMetrics()
    metrics.record_jobs({("team-a", JobPhase.RUNNING): 2})
    metrics.record_queue_lengths({"research": 3})
    metrics.record_placement(
        namespace="team-a", queue="research", waited_seconds=12.0, scores=[0.5, 1.0], pods=2
    )
    metrics.record_binding(BindingResult.BOUND, seconds=0.01)
    metrics.record_requeue("team-a", Requeue.NODE_LOST)
    metrics.record_estimate(size_replica(make_job(), Device(memory_bytes=80 * GIB)))
    found = samples(metrics)
    assert found[("modeljob_jobs", (("namespace", "team-a"), ("phase", "Queued")))] == 0
    assert found[("modeljob_jobs", (("namespace", "team-a"), ("phase", "Running")))] == 2
    assert found[("modeljob_queue_length", (("queue", "research"),))] == 3
    assert found[("modeljob_scheduling_attempts_total", (("namespace", "team-a"), ("result", "placed")))] == 1
    assert (
        found[("modeljob_queue_wait_seconds_sum", (("namespace", "team-a"), ("queue", "research")))] == 12.0
    )
    assert found[("modeljob_placement_score_count", ())] == 2
    assert found[("modeljob_placement_pods_sum", ())] == 2
    assert found[("modeljob_bindings_total", (("result", "bound"),))] == 1
    assert found[("modeljob_requeues_total", (("namespace", "team-a"), ("reason", "NodeLost")))] == 1
    assert found[("modeljob_estimate_bytes_count", (("component", "weights"),))] == 1
    assert found[("modeljob_estimate_bytes_sum", (("component", "weights"),))] == 2 * 8_030_261_248
    assert not any(labels == (("component", "memory"),) for _, labels in found), "host memory is no GPU part"


def test_a_deleted_node_stops_reporting_its_gpu_allocation() -> None:
    metrics = OperatorMetrics()
    metrics.record_gpu_allocation({"a": 0.5, "b": 1.0})
    metrics.record_gpu_allocation({"b": 0.25})
    ratios = {
        labels: v
        for (name, labels), v in samples(metrics).items()
        if name == "modeljob_node_gpu_allocation_ratio"
    }
    assert ratios == {(("node", "b"),): 0.25}
    metrics.record_gpu_allocation({"a": 0.5, "b": 0.25})  # back, as it was: its series again
    ratios = {
        labels: v
        for (name, labels), v in samples(metrics).items()
        if name == "modeljob_node_gpu_allocation_ratio"
    }
    assert ratios == {(("node", "a"),): 0.5, (("node", "b"),): 0.25}


def test_each_operator_has_its_own_registry() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.record_requeue("ml", Requeue.POD_LOST)
    assert ("modeljob_requeues_total", (("namespace", "ml"), ("reason", "PodLost"))) not in samples(second)


def test_a_namespace_without_jobs_stops_reporting_them() -> None:
    metrics = OperatorMetrics()
    metrics.record_jobs({("team-a", JobPhase.QUEUED): 1, ("team-b", JobPhase.INVALID): 2})
    metrics.record_jobs({("team-b", JobPhase.INVALID): 2})
    jobs = {labels: v for (name, labels), v in samples(metrics).items() if name == "modeljob_jobs" and v}
    assert jobs == {(("namespace", "team-b"), ("phase", "Invalid")): 2}
    assert not any(dict(labels).get("namespace") == "team-a" for _, labels in samples(metrics))


@pytest.mark.parametrize(
    ("metric", "values"),
    [
        ("modeljob_requeues", [r.value for r in Requeue]),
        ("modeljob_scheduling_attempts", [r.value for r in AttemptResult]),
        ("modeljob_bindings", [r.value for r in BindingResult]),
        ("modeljob_jobs", [p.value for p in JobPhase]),
    ],
    ids=["requeues", "attempts", "bindings", "jobs"],
)
def test_help_lists_the_label_values_the_metric_really_takes(metric: str, values: list[str]) -> None:
    families = {f.name: f for f in text_string_to_metric_families(OperatorMetrics().exposition().decode())}
    assert f"({', '.join(values)})" in families[metric].documentation


def test_every_series_the_operator_doc_names_is_exported_under_that_name() -> None:
    metrics = OperatorMetrics()
    ExtenderMetrics(metrics.registry)
    exported = {f.name for f in text_string_to_metric_families(metrics.exposition().decode())}
    named = {n.removesuffix("_total") for n in re.findall(r"`(modeljob_[a-z_]+)", OPERATOR_DOC.read_text())}
    assert named >= DOCUMENTED_SERIES
    assert named <= exported, f"the doc names series nobody exports: {sorted(named - exported)}"
