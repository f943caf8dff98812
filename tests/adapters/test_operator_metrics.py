"""The operator's Prometheus metrics: the design §5 series, with the modeljob_ prefix and small label sets."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, size_replica
from tests.core.test_sizing import make_job

DESIGN_SERIES = {
    "modeljob_jobs",
    "modeljob_queue_length",
    "modeljob_queue_wait_seconds",
    "modeljob_scheduling_attempts",
    "modeljob_scheduling_cycle_duration_seconds",
    "modeljob_bindings",
    "modeljob_binding_duration_seconds",
    "modeljob_requeues",
    "modeljob_placement_score",
    "modeljob_node_gpu_allocation_ratio",
    "modeljob_cluster_gpu_fragmentation_ratio",
    "modeljob_extender_request_seconds",  # ExtenderMetrics, on the same registry in `modeljob run`
    "modeljob_estimate_bytes",
}


def samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_design_series_is_exported() -> None:
    metrics = OperatorMetrics()
    ExtenderMetrics(metrics.registry)
    families = {f.name for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert families >= DESIGN_SERIES


def test_recorded_events_show_up_with_their_labels() -> None:
    metrics = OperatorMetrics()
    metrics.record_jobs_by_phase({"Running": 2}, phases=["Queued", "Running"])
    metrics.record_queue_lengths({"research": 3})
    metrics.record_placement(queue="research", waited_seconds=12.0, scores=[0.5, 1.0])
    metrics.record_binding("bound", seconds=0.01)
    metrics.record_requeue("NodeLost")
    metrics.record_estimate(size_replica(make_job(), Device(memory_bytes=80 * GIB)))
    found = samples(metrics)
    assert found[("modeljob_jobs", (("phase", "Queued"),))] == 0
    assert found[("modeljob_jobs", (("phase", "Running"),))] == 2
    assert found[("modeljob_queue_length", (("queue", "research"),))] == 3
    assert found[("modeljob_scheduling_attempts_total", (("result", "placed"),))] == 1
    assert found[("modeljob_queue_wait_seconds_sum", (("queue", "research"),))] == 12.0
    assert found[("modeljob_placement_score_count", ())] == 2
    assert found[("modeljob_bindings_total", (("result", "bound"),))] == 1
    assert found[("modeljob_requeues_total", (("reason", "NodeLost"),))] == 1
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


def test_each_operator_has_its_own_registry() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.record_requeue("PodLost")
    assert ("modeljob_requeues_total", (("reason", "PodLost"),)) not in samples(second)
