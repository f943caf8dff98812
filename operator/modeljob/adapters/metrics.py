"""Every Prometheus metric the operator exports (design.md §5), recorded through intention-named methods.

The registry is injected, so each test gets a clean one and two operators in one process (tests)
never collide. Label sets stay small: phases, results, queues, estimate components and node names
(one series per node is what kube-state-metrics does for node capacity too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from modeljob.core.sizing import Estimate

# Host memory and disk are requests, not parts of the GPU memory breakdown.
_HOST_COMPONENTS = frozenset({"memoryBytes", "ephemeralStorageBytes"})

NAMESPACE = "modeljob"

# Seconds: a scheduling cycle takes milliseconds; a queue wait takes seconds to days.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
_SCORE_BUCKETS = tuple(i / 10 for i in range(11))
# Bytes: 1 GiB to 4 TiB in powers of two, the range of one replica's GPU memory.
_BYTES_BUCKETS = tuple(float(2**30 * 2**i) for i in range(13))


class OperatorMetrics:
    """The operator's metrics on one registry; each record_* method is one thing that happened."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._jobs = Gauge("jobs", "ModelJobs by phase.", ["phase"], namespace=NAMESPACE, registry=r)
        self._queue_length = Gauge(
            "queue_length",
            "ModelJobs waiting to be placed, by queue.",
            ["queue"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._queue_wait = Histogram(
            "queue_wait_seconds",
            "Time from a job entering the queue to its placement being bound.",
            ["queue"],
            namespace=NAMESPACE,
            registry=r,
            buckets=_WAIT_BUCKETS,
        )
        self._attempts = Counter(
            "scheduling_attempts_total",
            "Attempts to place a job, by result (placed, waiting, unschedulable, conflict, error).",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._cycle = Histogram(
            "scheduling_cycle_duration_seconds",
            "One scheduling cycle: snapshot, plan and apply.",
            namespace=NAMESPACE,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self._bindings = Counter(
            "bindings_total",
            "Pods bound through pods/binding, by result (bound, already_bound, conflict, error).",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._binding_latency = Histogram(
            "binding_duration_seconds",
            "Creating and binding one pod.",
            namespace=NAMESPACE,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self._requeues = Counter(
            "requeues_total",
            "Placed jobs put back in the queue, by reason (node_lost, pod_lost, spec_changed, rollback).",
            ["reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._score = Histogram(
            "placement_score",
            "Normalised score (0..1) of the node each replica was placed on.",
            namespace=NAMESPACE,
            registry=r,
            buckets=_SCORE_BUCKETS,
        )
        self._gpu_allocation = Gauge(
            "node_gpu_allocation_ratio",
            "Share of a node's GPUs requested by pods bound to it.",
            ["node"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._fragmentation = Gauge(
            "cluster_gpu_fragmentation_ratio",
            "Share of the idle GPUs that the queued jobs' shapes could not use (FGD's measure).",
            namespace=NAMESPACE,
            registry=r,
        )
        self._estimate = Histogram(
            "estimate_bytes",
            "Per-replica GPU memory estimates, by component of the breakdown.",
            ["component"],
            namespace=NAMESPACE,
            registry=r,
            buckets=_BYTES_BUCKETS,
        )
        self._nodes_seen: set[str] = set()

    # --- jobs and queue ---------------------------------------------------------------------

    def record_jobs_by_phase(self, counts: Mapping[str, int], *, phases: Iterable[str]) -> None:
        """Set the per-phase job counts; phases absent from `counts` read 0, not stale."""
        for phase in phases:
            self._jobs.labels(phase=phase).set(counts.get(phase, 0))

    def record_queue_lengths(self, lengths: Mapping[str, int]) -> None:
        for queue, length in lengths.items():
            self._queue_length.labels(queue=queue).set(length)

    def record_placement(self, *, queue: str, waited_seconds: float, scores: Iterable[float]) -> None:
        """A job's whole placement was bound."""
        self._attempts.labels(result="placed").inc()
        self._queue_wait.labels(queue=queue).observe(max(0.0, waited_seconds))
        for score in scores:
            self._score.observe(score)

    def record_attempt(self, result: str) -> None:
        """A placement attempt that did not place: waiting, unschedulable, conflict or error."""
        self._attempts.labels(result=result).inc()

    def record_requeue(self, reason: str) -> None:
        self._requeues.labels(reason=reason).inc()

    def record_cycle(self, seconds: float) -> None:
        self._cycle.observe(seconds)

    # --- bindings ---------------------------------------------------------------------------

    def record_binding(self, result: str, *, seconds: float | None = None) -> None:
        self._bindings.labels(result=result).inc()
        if seconds is not None:
            self._binding_latency.observe(seconds)

    # --- cluster ----------------------------------------------------------------------------

    def record_gpu_allocation(self, ratios: Mapping[str, float]) -> None:
        """Per-node GPU allocation; series of nodes that disappeared are removed."""
        for node, ratio in ratios.items():
            self._gpu_allocation.labels(node=node).set(ratio)
        for gone in self._nodes_seen - set(ratios):
            self._gpu_allocation.remove(gone)
        self._nodes_seen = set(ratios)

    def record_fragmentation(self, ratio: float) -> None:
        self._fragmentation.set(ratio)

    # --- estimator and extender -------------------------------------------------------------

    def record_estimate(self, estimate: Estimate) -> None:
        """One per-replica estimate: each GPU memory component in bytes (weights, kvCache, ...)."""
        for key, value in estimate.to_dict().items():
            if key.endswith("Bytes") and key not in _HOST_COMPONENTS:
                self._estimate.labels(component=key.removesuffix("Bytes")).observe(value)

    # --- exposition -------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
