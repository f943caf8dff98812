"""Every Prometheus metric the operator exports (docs/operator.md, "Observability"), recorded through
intention-named methods.

The registry is injected, so each test gets a clean one and two operators in one process (tests)
never collide. Label sets stay small: phases, results, queues, estimate components and node names
(one series per node is what kube-state-metrics does for node capacity too), and the namespace
on every metric about jobs, so a team can see its own. Label values come from enums, and the help
text lists them from the same enums.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from modeljob.adapters.events import MAX_PENDING
from modeljob.core.job_state import JobPhase, Requeue
from modeljob.core.preemption_rules import PreemptionReason
from modeljob.core.quota_status import queue_report
from modeljob.core.scheduling_cycle import CycleResult, QueueOutcome
from modeljob.core.sizing import Estimate


class AttemptResult(StrEnum):
    """How an attempt to place a job ended."""

    PLACED = "placed"
    WAITING = "waiting"
    UNSCHEDULABLE = "unschedulable"
    REFUSED = "refused"  # the API server refused the job's pods as invalid
    CONFLICT = "conflict"  # the job changed while the loop acted on it
    ERROR = "error"


class BindingResult(StrEnum):
    BOUND = "bound"
    ALREADY_BOUND = "already_bound"
    CONFLICT = "conflict"
    ERROR = "error"


def _by(what: str, label: str, kind: type[StrEnum], *, per_job: bool = True) -> tuple[str, list[str]]:
    """Help text and labels of a metric labelled by an enum: the help lists the enum's values, and
    a metric about jobs also carries the namespace."""
    values = ", ".join(member.value for member in kind)
    return f"{what}, by {label} ({values}).", ["namespace", label] if per_job else [label]


# Host memory and disk are requests, not parts of the GPU memory breakdown.
_HOST_COMPONENTS = frozenset({"memoryBytes", "ephemeralStorageBytes"})

NAMESPACE = "modeljob"

# Seconds: a scheduling cycle takes milliseconds; a queue wait takes seconds to days.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
_SCORE_BUCKETS = tuple(i / 10 for i in range(11))
# Pods of one placement: 1 to 256 in powers of two (a replica that spans nodes has one per node).
_POD_BUCKETS = tuple(float(2**i) for i in range(9))
_ATTEMPT_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1000.0)  # 1: placed by the first cycle that saw it
# Bytes: 1 GiB to 4 TiB in powers of two, the range of one replica's GPU memory.
_BYTES_BUCKETS = tuple(float(2**30 * 2**i) for i in range(13))


class OperatorMetrics:
    """The operator's metrics on one registry; each record_* method is one thing that happened."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        gauge = partial(Gauge, namespace=NAMESPACE, registry=self.registry)
        counter = partial(Counter, namespace=NAMESPACE, registry=self.registry)
        histogram = partial(Histogram, namespace=NAMESPACE, registry=self.registry)
        self._define_jobs(gauge, counter, histogram)
        self._define_placements(counter, histogram)
        self._define_queues(gauge, counter)
        self._define_cluster(gauge, histogram)
        self._nodes_seen: dict[str, float] = {}  # node -> the allocation its series reads
        self._namespaces_seen: set[str] = set()

    def _define_jobs(self, gauge: Any, counter: Any, histogram: Any) -> None:
        """Jobs and the queue."""
        self._jobs = gauge("jobs", *_by("ModelJobs in a namespace", "phase", JobPhase))
        self._queue_length = gauge("queue_length", "ModelJobs waiting to be placed, by queue.", ["queue"])
        self._queue_wait = histogram(
            "queue_wait_seconds",
            "Time from a job entering the queue to its placement being bound.",
            ["namespace", "queue"],
            buckets=_WAIT_BUCKETS,
        )
        self._attempts = counter(
            "scheduling_attempts_total", *_by("Attempts to place a job", "result", AttemptResult)
        )
        self._cycle = histogram(
            "scheduling_cycle_duration_seconds",
            "One scheduling cycle: snapshot, plan and apply.",
            buckets=_LATENCY_BUCKETS,
        )
        self._handoffs = gauge(
            "handoffs_pending",
            "Jobs the scheduling loop handed to a pool that has not finished with them, by pool: "
            "waiting (a waiting job's status write), placing (a placement's plan, read as written "
            "meanwhile), binding (a placement's pods, once its plan is written), phase (a running job's "
            "new phase, read as written meanwhile).",
            ["pool"],
        )
        self._events_dropped = counter(
            "events_dropped_total",
            f"Events not posted because {MAX_PENDING:,} were waiting to be (the API server behind), by "
            "reason; each decision is still logged.",
            ["reason"],
        )

    def _define_placements(self, counter: Any, histogram: Any) -> None:
        """What follows a placement."""
        self._requeues = counter(
            "requeues_total", *_by("Placed jobs put back in the queue", "reason", Requeue)
        )
        self._bindings = counter(
            "bindings_total",
            *_by(
                "Pods bound (created on their node, or through pods/binding)",
                "result",
                BindingResult,
                per_job=False,
            ),
        )
        self._binding_latency = histogram(
            "binding_duration_seconds",
            "Creating one pod on its node (and binding it, if it existed).",
            buckets=_LATENCY_BUCKETS,
        )
        self._score = histogram(
            "placement_score",
            "Normalised score (0..1) of the node each pod was placed on.",
            buckets=_SCORE_BUCKETS,
        )
        self._placement_attempts = histogram(
            "placement_attempts",
            "The scheduling attempt that placed a waiting job: 1 + the leader's cycles that left it "
            "waiting (as kube-scheduler's scheduler_pod_scheduling_attempts; back-off not counted).",
            buckets=_ATTEMPT_BUCKETS,
        )
        self._placed_pods = histogram(
            "placement_pods",
            "Pods of each placement bound: one per replica, one per node of a replica that spans nodes.",
            buckets=_POD_BUCKETS,
        )

    def _define_queues(self, gauge: Any, counter: Any) -> None:
        """Queues: preemptions and quota."""
        values = ", ".join(r.value for r in PreemptionReason)
        self._preemptions = counter(
            "preemptions_total",
            f"Jobs preempted, by their queue and the rule ({values}).",
            ["queue", "reason"],
        )
        self._quota_used = gauge(
            "queue_quota_used",
            "Quota held by a queue's subtree, by resource (devices, cores, bytes).",
            ["queue", "resource"],
        )
        self._quota_borrowed = gauge(
            "queue_quota_borrowed",
            "Quota a queue's subtree uses above its nominal, by resource.",
            ["queue", "resource"],
        )

    def _define_cluster(self, gauge: Any, histogram: Any) -> None:
        """Nodes, the cluster, the estimator, leadership."""
        self._gpu_allocation = gauge(
            "node_gpu_allocation_ratio",
            "Share of a node's GPUs requested by pods bound to it.",
            ["node"],
        )
        self._fragmentation = gauge(
            "cluster_gpu_fragmentation_ratio",
            "Share of the idle GPUs that the queued jobs' shapes could not use (FGD's measure).",
        )
        self._estimate = histogram(
            "estimate_bytes",
            "Per-replica GPU memory estimates, by component of the breakdown.",
            ["component"],
            buckets=_BYTES_BUCKETS,
        )
        self._leader = gauge(
            "leader", "1 on the replica whose scheduling loop acts (it holds the leader Lease), else 0."
        )

    def record_leadership(self, *, leads: bool) -> None:
        self._leader.set(1 if leads else 0)

    # --- jobs and queue ---------------------------------------------------------------------

    def record_cluster(
        self, result: CycleResult, *, jobs: Mapping[tuple[str, JobPhase], int], queues: Iterable[str]
    ) -> None:
        """What one scheduling cycle saw: jobs by namespace and phase, queue lengths (0 for a
        queue with jobs but none waiting), each node's GPU allocation, and fragmentation."""
        self.record_jobs(jobs)
        self.record_queue_lengths({**dict.fromkeys(queues, 0), **result.queue_lengths})
        self.record_gpu_allocation(result.gpu_allocation())
        self.record_fragmentation(result.fragmentation)

    def record_jobs(self, counts: Mapping[tuple[str, JobPhase], int]) -> None:
        """Every job counted by (namespace, status phase): each phase of a namespace with jobs
        reads its count (0, not stale, when none); namespaces without jobs are removed."""
        namespaces = {namespace for namespace, _ in counts}
        for namespace in namespaces:
            for phase in JobPhase:
                self._jobs.labels(namespace=namespace, phase=phase.value).set(
                    counts.get((namespace, phase), 0)
                )
        for gone in self._namespaces_seen - namespaces:
            for phase in JobPhase:
                self._jobs.remove(gone, phase.value)
        self._namespaces_seen = namespaces

    def record_queue_lengths(self, lengths: Mapping[str, int]) -> None:
        for queue, length in lengths.items():
            self._queue_length.labels(queue=queue).set(length)

    def record_placement(
        self,
        *,
        namespace: str,
        queue: str,
        waited_seconds: float,
        scores: Iterable[float],
        pods: int,
        attempt: int | None = None,
    ) -> None:
        """A job's whole placement was bound: ``pods`` pods, each scored where its node was chosen;
        ``attempt``: the scheduling attempt that placed it (core/attempts.py), where one is counted."""
        self._attempts.labels(namespace=namespace, result=AttemptResult.PLACED.value).inc()
        if attempt is not None:
            self._placement_attempts.observe(attempt)
        self._placed_pods.observe(pods)
        self._queue_wait.labels(namespace=namespace, queue=queue).observe(max(0.0, waited_seconds))
        for score in scores:
            self._score.observe(score)

    def record_attempt(self, namespace: str, result: AttemptResult) -> None:
        """A placement attempt that did not place (waiting, unschedulable, refused, conflict, error)."""
        self._attempts.labels(namespace=namespace, result=result.value).inc()

    def record_event_dropped(self, reason: str) -> None:
        """An Event of ``reason`` dropped: too many were waiting to be posted (adapters/events.py)."""
        self._events_dropped.labels(reason=reason).inc()

    def record_requeue(self, namespace: str, reason: Requeue) -> None:
        self._requeues.labels(namespace=namespace, reason=reason.value).inc()

    def record_preemption(self, queue: str, reason: str) -> None:
        """A job of ``queue`` was preempted under ``reason`` (a PreemptionReason value)."""
        self._preemptions.labels(queue=queue, reason=reason).inc()

    def record_quota(self, outcome: QueueOutcome) -> None:
        """Each queue's used and borrowed quota per resource (its keys' products summed), as held
        after the cycle; CPU in cores, so the gauges read like the Queue's quota."""
        tree = outcome.queues.tree
        for name in tree.queues:
            totals: dict[str, tuple[int, int]] = {}
            for report in queue_report(name, tree, outcome.usage).keys:
                used, borrowed = totals.get(report.key.resource, (0, 0))
                totals[report.key.resource] = (used + report.used, borrowed + report.borrowed)
            for resource, (used, borrowed) in totals.items():
                scale = 1000.0 if resource == "cpu" else 1.0
                self._quota_used.labels(queue=name, resource=resource).set(used / scale)
                self._quota_borrowed.labels(queue=name, resource=resource).set(borrowed / scale)

    def record_cycle(self, seconds: float) -> None:
        self._cycle.observe(seconds)

    def watch_handoffs(self, pool: str, pending: Callable[[], int]) -> None:
        """``pending`` read at every scrape: how many jobs ``pool`` holds (queued or under way)."""
        self._handoffs.labels(pool=pool).set_function(pending)

    # --- bindings ---------------------------------------------------------------------------

    def record_binding(self, result: BindingResult, *, seconds: float | None = None) -> None:
        self._bindings.labels(result=result.value).inc()
        if seconds is not None:
            self._binding_latency.observe(seconds)

    # --- cluster ----------------------------------------------------------------------------

    def record_gpu_allocation(self, ratios: Mapping[str, float]) -> None:
        """Per-node GPU allocation; series of nodes that disappeared are removed. Only the ratios
        that moved are set: at 5,000 nodes, setting every series every cycle took 4% of the loop's
        interpreter time (py-spy --gil, deep queue bench)."""
        for node, ratio in ratios.items():
            if self._nodes_seen.get(node) != ratio:
                self._gpu_allocation.labels(node=node).set(ratio)
        for gone in self._nodes_seen.keys() - ratios.keys():
            self._gpu_allocation.remove(gone)
        self._nodes_seen = dict(ratios)

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
