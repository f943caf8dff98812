"""The composition root: build the gateway, watches, metrics and scheduling loop from Settings; start kopf."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import kopf
from prometheus_client import start_http_server

from modeljob.adapters import kopf_handlers
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.events import EventRecorder
from modeljob.adapters.extender.cache import ClusterCache, attach_to_view
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import build_app
from modeljob.adapters.extender.server import ExtenderServer, build_service
from modeljob.adapters.kube_nodes import NodeLabelKeys
from modeljob.adapters.kube_values import parse_time
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.scheduling_loop import LoopSettings, SchedulingLoop
from modeljob.core.leadership import Peer, acts
from modeljob.settings import LogFormat, LoggingSettings, Settings

logger = logging.getLogger("modeljob")

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


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
    # kopf logs every handler run at INFO; ours say more, once. Its peering says when this replica
    # pauses for a higher-priority one and resumes: rare, and what an operator of two replicas asks.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLevelName(settings.level)))
    logging.getLogger("kopf._core.engines.peering").setLevel(settings.level)


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
    if settings.peering.identity:
        return settings.peering.identity
    return str(kopf_detect_identity())


def kopf_detect_identity() -> str:
    """kopf's own choice ($POD_ID, else user@host/start/random), so logs and peering agree."""
    from kopf._core.engines.peering import detect_own_id  # noqa: PLC0415 - kopf exports no public name

    return str(detect_own_id(manual=False))


def leadership(view: ClusterView, settings: Settings, identity: str) -> bool:
    """Whether this replica acts now, by kopf's peering rule on the watched peering object."""
    if not settings.peering.enabled or view.peerings is None:
        return True
    peering = view.peerings.get(("", settings.peering.name))
    if peering is None:
        return False
    peers = []
    for peer_id, info in (peering.get("status") or {}).items():
        if not isinstance(info, dict):
            continue
        seen = parse_time(info.get("lastseen"))
        if seen is None:
            continue
        peers.append(
            Peer(
                identity=str(peer_id),
                priority=int(info.get("priority") or 0),
                last_seen=seen,
                lifetime_seconds=float(info.get("lifetime") or 60),
            )
        )
    return acts(peers, identity=identity, priority=settings.peering.priority, now=datetime.now(UTC))


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    operator = kopf.OperatorSettings()
    # Progress and the last-handled spec live in annotations under our group: the CRD's status has
    # a fixed schema, so kopf's default `status.kopf` would be pruned by the API server.
    operator.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modeljob.dev")
    operator.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modeljob.dev", key="last-handled-configuration"
    )
    operator.persistence.finalizer = "modeljob.dev/kopf-finalizer"
    # Admission handlers are plain `def`s run in kopf's thread pool; its default (CPUs + 4) holds
    # a burst of new jobs back, while each handler mostly waits for the API server.
    operator.execution.max_workers = settings.scheduling.job_workers
    operator.posting.enabled = False  # our handlers and loop post the Events that matter
    operator.peering.lifetime = settings.peering.lifetime_seconds
    operator.peering.stealth = True
    operator.watching.server_timeout = 240
    operator.watching.client_timeout = 270
    return operator


def run_operator(settings: Settings) -> int:
    """Start everything and block until kopf exits (SIGTERM/SIGINT)."""
    configure_logging(settings.logging)
    gateway = connect(settings)
    metrics = OperatorMetrics()
    identity = own_identity(settings)
    view = ClusterView(gateway, labels=node_label_keys(settings), peering=settings.peering.enabled)
    events = EventRecorder(gateway, identity=identity, clock=lambda: datetime.now(UTC))
    loop = build_loop(gateway, view, metrics, events, settings=settings, identity=identity)
    memo = kopf_handlers.OperatorMemo(
        gateway=gateway,
        view=view,
        loop=loop,
        metrics=metrics,
        events=events,
        in_cluster=settings.kubernetes.kubeconfig is None and SERVICE_ACCOUNT_TOKEN.exists(),
    )
    registry = kopf.OperatorRegistry()
    kopf_handlers.register(registry)
    server = settings.server
    if server.metrics_port:
        start_http_server(server.metrics_port, addr=server.host, registry=metrics.registry)
    liveness = f"http://{server.host}:{server.liveness_port}/healthz" if server.liveness_port else None
    extender = start_extender(gateway, view, metrics, settings)
    logger.info(
        "modeljob operator %s starting against %s (peering %s, queue policy %s, metrics %s)",
        identity,
        gateway.server,
        settings.peering.name if settings.peering.enabled else "off",
        settings.queue.policy.value,
        f"http://{server.host}:{server.metrics_port}/metrics" if server.metrics_port else "off",
    )
    try:
        kopf.run(
            registry=registry,
            settings=kopf_settings(settings),
            clusterwide=True,
            standalone=not settings.peering.enabled,
            peering_name=settings.peering.name if settings.peering.enabled else None,
            priority=settings.peering.priority,
            liveness_endpoint=liveness,
            memo=memo,
            identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        )
    finally:
        if extender is not None:
            extender.stop_thread()
        loop.stop()
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
) -> SchedulingLoop:
    """The scheduling loop with every setting it reads (scheduling, queue, scoring, node labels)."""
    return SchedulingLoop(
        gateway=gateway,
        view=view,
        metrics=metrics,
        settings=LoopSettings(
            scheduling=settings.scheduling,
            product_label=settings.node_labels.gpu_product,
            cycle=settings.cycle(),
        ),
        identity=identity,
        acts=lambda: leadership(view, settings, identity),
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
