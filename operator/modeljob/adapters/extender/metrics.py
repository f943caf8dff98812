"""The extender's Prometheus metrics, recorded through intention-named methods (as adapters/metrics.py).

Separate from OperatorMetrics so `modeljob extender` exports only these; inside `modeljob run`
pass the operator's registry and both sets appear on one /metrics. The latency buckets are finer
than the operator's: an extender answer takes a few milliseconds, and `make bench` reads p50/p99
from this histogram.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

NAMESPACE = "modeljob"

# 0.25 ms to 10 s: kube-scheduler's httpTimeout is seconds, a healthy answer is milliseconds.
REQUEST_BUCKETS = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ExtenderMetrics:
    """Request latency and outcomes per verb, bindings, and how many nodes the cache holds."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._latency = Histogram(
            "extender_request_seconds",
            "Time to answer one kube-scheduler extender request, by verb (filter, prioritize, bind).",
            ["verb"],
            namespace=NAMESPACE,
            registry=r,
            buckets=REQUEST_BUCKETS,
        )
        self._requests = Counter(
            "extender_requests_total",
            "Extender requests by verb and HTTP status code (4xx: a request we could not read).",
            ["verb", "code"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._bindings = Counter(
            "extender_bindings_total",
            "pods/binding calls made for kube-scheduler, by result (bound, already_bound, error).",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._nodes = Gauge(
            "extender_cached_nodes",
            "Nodes in the extender's watch-fed cache.",
            namespace=NAMESPACE,
            registry=r,
        )

    def record_request(self, verb: str, *, code: int, seconds: float) -> None:
        self._latency.labels(verb=verb).observe(seconds)
        self._requests.labels(verb=verb, code=str(code)).inc()

    def record_binding(self, result: str) -> None:
        self._bindings.labels(result=result).inc()

    def record_cached_nodes(self, count: int) -> None:
        self._nodes.set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
