"""The composition root: build the gateway, watches, metrics and scheduling loop from Settings; start kopf."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import kopf

# numpy 2 imports numpy.ma on the first np.unique call (30-70 ms here): loaded at start-up, it is
# not paid by the first cycle of a replica that has just taken the Lease over.
import numpy.ma  # noqa: F401
from prometheus_client import start_http_server

from modeljob.adapters import kopf_handlers
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.events import EventRecorder
from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.cache_feed import attach_to_view, service_informer
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import build_app
from modeljob.adapters.extender.server import ExtenderServer, build_service
from modeljob.adapters.kube_nodes import NodeLabelKeys
from modeljob.adapters.lease import FencedGateway, LeaderElector
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.scheduling_loop import LoopSettings, SchedulingLoop
from modeljob.settings import LogFormat, LoggingSettings, Settings

logger = logging.getLogger("modeljob")

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: LoggingSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.format is LogFormat.JSON:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # kopf logs every handler run at INFO; ours say more, once.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLevelName(settings.level)))


def connect(settings: Settings) -> ClusterGateway:
    k8s = settings.kubernetes
    if k8s.kubeconfig is None and SERVICE_ACCOUNT_TOKEN.exists():
        return ClusterGateway.in_cluster(connections=k8s.connections)
    return ClusterGateway.from_kubeconfig(k8s.kubeconfig, context=k8s.context, connections=k8s.connections)


def node_label_keys(settings: Settings) -> NodeLabelKeys:
    """The node labels the watches read (product, device memory, price), as settings name them."""
    labels = settings.node_labels
    return NodeLabelKeys(
        gpu_product=labels.gpu_product,
        gpu_memory_mib=labels.gpu_memory_mib,
        price_per_hour=labels.price_per_hour,
    )


def own_identity(settings: Settings) -> str:
    if settings.leader_election.identity:
        return settings.leader_election.identity
    return str(kopf_detect_identity())


def kopf_detect_identity() -> str:
    """kopf's own choice ($POD_ID, else user@host/start/random), so logs and the Lease agree."""
    from kopf._core.engines.peering import detect_own_id  # noqa: PLC0415 - kopf exports no public name

    return str(detect_own_id(manual=False))


def lease_namespace(settings: Settings) -> str:
    """Where the Lease lives: as set, else the namespace of the pod's service account, else default."""
    if settings.leader_election.lease_namespace:
        return settings.leader_election.lease_namespace
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"


def build_elector(
    gateway: ClusterGateway, view: ClusterView, metrics: OperatorMetrics, *, settings: Settings, identity: str
) -> LeaderElector | None:
    """This replica's candidacy for the Lease (None: election off, it always acts). Winning or
    losing wakes the loop and sets the modeljob_leader gauge."""
    election = settings.leader_election
    metrics.record_leadership(leads=not election.enabled)
    if not election.enabled:
        return None

    def changed(leads: bool) -> None:
        metrics.record_leadership(leads=leads)
        view.changed.set()

    return LeaderElector(
        gateway,
        namespace=lease_namespace(settings),
        name=election.lease_name,
        identity=identity,
        timing=election.timing(),
        on_change=changed,
    )


def kopf_settings() -> kopf.OperatorSettings:
    operator = kopf.OperatorSettings()
    # kopf serves no resource (admission is the scheduling loop's), so it persists nothing on a
    # ModelJob; jobs admitted by an older version may still carry its modeljob.dev/ annotations.
    operator.posting.enabled = False  # the loop posts the Events that matter
    operator.watching.server_timeout = 240
    operator.watching.client_timeout = 270
    return operator


def run_operator(settings: Settings) -> int:
    """Start everything and block until kopf exits (SIGTERM/SIGINT)."""
    configure_logging(settings.logging)
    gateway = connect(settings)
    metrics = OperatorMetrics()
    identity = own_identity(settings)
    view = ClusterView(gateway, labels=node_label_keys(settings))
    events = EventRecorder(
        gateway, identity=identity, clock=lambda: datetime.now(UTC), on_dropped=metrics.record_event_dropped
    )
    elector = build_elector(gateway, view, metrics, settings=settings, identity=identity)
    loop = build_loop(gateway, view, metrics, events, settings=settings, identity=identity, elector=elector)
    memo = kopf_handlers.OperatorMemo(
        gateway=gateway,
        view=view,
        loop=loop,
        in_cluster=settings.kubernetes.kubeconfig is None and SERVICE_ACCOUNT_TOKEN.exists(),
        elector=elector,
    )
    registry = kopf.OperatorRegistry()
    kopf_handlers.register(registry)
    server = settings.server
    if server.metrics_port:
        start_http_server(server.metrics_port, addr=server.host, registry=metrics.registry)
    liveness = f"http://{server.host}:{server.liveness_port}/healthz" if server.liveness_port else None
    extender = start_extender(gateway, view, metrics, settings)
    logger.info(
        "modeljob operator %s starting against %s (leader Lease %s, queue policy %s, metrics %s)",
        identity,
        gateway.server,
        f"{lease_namespace(settings)}/{settings.leader_election.lease_name}"
        if elector is not None
        else "off",
        settings.queue.policy.value,
        f"http://{server.host}:{server.metrics_port}/metrics" if server.metrics_port else "off",
    )
    try:
        # Standalone: kopf's peering would pause every replica of equal priority, and every pod of
        # a Deployment has the same. Its handlers (start, stop, probe; none writes) run on every
        # replica (docs/operator.md, "Two replicas"); the Lease decides whose scheduling loop acts.
        kopf.run(
            registry=registry,
            settings=kopf_settings(),
            clusterwide=True,
            standalone=True,
            liveness_endpoint=liveness,
            memo=memo,
            identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        )
    finally:
        if extender is not None:
            extender.stop_thread()
        loop.stop()
        if elector is not None:
            elector.stop()  # after the loop: the Lease is given up only once nothing acts on it
        events.stop()
        view.stop()
        gateway.close()
    return 0


def build_loop(
    gateway: ClusterGateway,
    view: ClusterView,
    metrics: OperatorMetrics,
    events: EventRecorder,
    *,
    settings: Settings,
    identity: str,
    elector: LeaderElector | None,
) -> SchedulingLoop:
    """The scheduling loop with every setting it reads (scheduling, queue, scoring, node labels).
    With an election it writes through the fenced gateway: nothing is sent unless this replica
    proves, at that moment, that it holds the Lease."""
    return SchedulingLoop(
        gateway=gateway
        if elector is None
        else FencedGateway(gateway, leads=elector.leads, write_budget=elector.write_budget_seconds),
        view=view,
        metrics=metrics,
        settings=LoopSettings(
            scheduling=settings.scheduling,
            product_label=settings.node_labels.gpu_product,
            cycle=settings.cycle(),
        ),
        identity=identity,
        acts=(lambda: True) if elector is None else elector.leads,
        events=events,
    )


def start_extender(
    gateway: ClusterGateway, view: ClusterView, metrics: OperatorMetrics, settings: Settings
) -> ExtenderServer | None:
    """The scheduler extender inside `modeljob run`: fed by the operator's own node and pod
    informers (no second watch), scoring with the same weights, served from a thread of its own
    so kube-scheduler's calls never wait behind kopf's handlers. Every replica serves it, leader
    or not: kube-scheduler may reach any of them through the Service."""
    if not settings.extender.enabled:
        return None
    section = settings.extender
    cache = ClusterCache(assume_seconds=section.assume_seconds)
    attach_to_view(cache, view.nodes, view.pods)
    service_informer(gateway, cache).start()  # the operator watches no Services: the shortlist's own
    service = build_service(
        gateway,
        cache,
        weights=settings.scoring.weights(),
        settings=section,
        metrics=ExtenderMetrics(metrics.registry),
    )
    server = ExtenderServer(build_app(service), host=section.host, port=section.port)
    server.start_in_thread()
    logger.info(
        "scheduler extender listening on http://%s:%d%s (filter, prioritize, bind)",
        section.host,
        server.port,
        section.path_prefix,
    )
    return server
