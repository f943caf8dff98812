"""A watch-fed copy of the cluster (nodes, pods, ModelJobs, Queues) for the scheduling loop.

One list+watch thread per collection, as client-go's informers do: list, then watch from the
list's resourceVersion; on "410 Gone" or a broken stream, list again. Objects the operator itself
just wrote are put in the copy at once (write-through), and a watch event older than what the copy
holds is ignored, so the loop never plans from a status it has already replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from modeljob.adapters import kube_jobs, kube_nodes, kube_pods
from modeljob.adapters.cluster import ClusterGateway, Watched
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.job_fields import ObjectError
from modeljob.core.cluster_state import AssumedPod, NodeFacts, PodFacts
from modeljob.core.job_state import JobFacts
from modeljob.core.node_types import node_type_of

logger = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]

WATCH_TIMEOUT_SECONDS = 240
RETRY_SECONDS = 1.0
# A list or watch that keeps failing (a Forbidden from RBAC that predates a watch, an API server
# down) is tried again after 1, 2, 4, 8, then every 10 seconds; a watch that delivers anything, or
# ends normally, starts it over. client-go's reflectors back off likewise but up to 30 s; 10 s keeps
# an API server restart noticed within seconds of its return (the chaos soak restarts it).
RETRY_MAX_SECONDS = 10.0
OPTIONAL_RETRY_SECONDS = 30.0


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _version(obj: Mapping[str, Any]) -> int | None:
    text = (obj.get("metadata") or {}).get("resourceVersion")
    # resourceVersions are opaque to clients, but etcd3-backed servers issue increasing integers;
    # comparing them only decides whether a watch event is older than what we wrote ourselves.
    return int(text) if isinstance(text, str) and text.isdigit() else None


@dataclass
class _Entry(Generic[T]):
    value: T
    version: int | None


def retry_seconds(failures: int) -> float:
    """How long to wait after the n-th failure in a row of a list or watch."""
    return min(RETRY_MAX_SECONDS, RETRY_SECONDS * 2.0 ** min(failures - 1, 16))


@dataclass
class Informer(Generic[T]):
    """One collection: a thread keeps ``translate(object)`` for every object, keyed by (namespace, name)."""

    gateway: ClusterGateway
    kind: Watched
    translate: Callable[[Mapping[str, Any]], T]
    on_change: Callable[[str, T | None, Key], None]
    # A collection whose CRD may not be installed (Queues, on an install that predates them):
    # a 404 reads as none of them, and the list is tried again now and then.
    optional: bool = False
    _items: dict[Key, _Entry[T]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    synced: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind.value}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def values(self) -> list[T]:
        with self._lock:
            return [entry.value for entry in self._items.values()]

    def snapshot(self) -> dict[Key, T]:
        """Every object by its (namespace, name), as of now."""
        with self._lock:
            return {key: entry.value for key, entry in self._items.items()}

    def get(self, key: Key) -> T | None:
        with self._lock:
            entry = self._items.get(key)
            return entry.value if entry is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def observe(self, obj: Mapping[str, Any]) -> None:
        """Write-through: what the operator just wrote (a reply from the API server)."""
        self._apply("MODIFIED", obj)

    def _apply(self, kind_of_event: str, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        version = _version(obj)
        with self._lock:
            current = self._items.get(key)
            if kind_of_event == "DELETED":
                if current is not None and (
                    current.version is None or version is None or version >= current.version
                ):
                    del self._items[key]
                    value: T | None = None
                else:
                    return
            else:
                if (
                    current is not None
                    and current.version is not None
                    and version is not None
                    and version < current.version
                ):
                    return
                value = self.translate(obj)
                self._items[key] = _Entry(value, version)
        self.on_change(kind_of_event, value, key)

    def _relist(self) -> str:
        items, version = self.gateway.list_collection(self.kind)
        fresh = {}
        for obj in items:
            try:
                fresh[object_key(obj)] = _Entry(self.translate(obj), _version(obj))
            except Exception:  # one bad object must not blind the operator to all others
                logger.exception("cannot read %s %s", self.kind.value, object_key(obj))
        with self._lock:
            self._items = fresh
        self.synced.set()
        self.on_change("RELISTED", None, ("", ""))
        return version

    def _run(self) -> None:
        version, failures = "", 0
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist()
                for kind_of_event, obj in self.gateway.watch_collection(
                    self.kind, resource_version=version, timeout_seconds=WATCH_TIMEOUT_SECONDS
                ):
                    failures = 0
                    if self._stop.is_set():
                        return
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind_of_event == "BOOKMARK":
                        continue
                    try:
                        self._apply(kind_of_event, obj)
                    except Exception:
                        logger.exception("cannot read %s %s", self.kind.value, object_key(obj))
                failures = 0  # the watch ran its course
            except ClusterError as exc:
                if exc.status == 404 and self.optional:
                    with self._lock:
                        self._items = {}
                    self.synced.set()
                    self._stop.wait(OPTIONAL_RETRY_SECONDS)
                elif exc.status == 410:
                    logger.info("watch of %s expired; listing again", self.kind.value)
                else:
                    failures += 1
                    delay = retry_seconds(failures)
                    logger.warning(
                        "watch of %s failed: %s; listing again in %.0f s", self.kind.value, exc, delay
                    )
                    self._stop.wait(delay)
                version = ""
            except Exception:
                failures += 1
                logger.exception("watch of %s crashed; listing again", self.kind.value)
                self._stop.wait(retry_seconds(failures))
                version = ""


def node_and_pod_informers(
    gateway: ClusterGateway,
    *,
    labels: kube_nodes.NodeLabelKeys,
    on_node: Callable[[str, NodeFacts | None, Key], None],
    on_pod: Callable[[str, PodFacts | None, Key], None],
) -> tuple[Informer[NodeFacts], Informer[PodFacts]]:
    """The watches every placement decision reads (the operator's view, the extender alone)."""
    nodes: Informer[NodeFacts] = Informer(
        gateway, Watched.NODES, lambda obj: kube_nodes.node_facts(obj, labels=labels), on_node
    )
    pods: Informer[PodFacts] = Informer(gateway, Watched.PODS, kube_pods.pod_facts, on_pod)
    return nodes, pods


class ClusterView:
    """Nodes, pods, ModelJobs and Queues as the scheduling loop sees them.

    ``changed`` is set whenever anything changes, to wake the loop. Pods the operator bound are
    also kept as *assumed* until the pod watch shows them bound (kube-scheduler's assume cache).
    ``node_set_version`` moves only when a node comes, goes, or changes what sizing reads of it
    (labels, taints, devices, price), not with its readiness or heartbeats, so what is computed
    from the node set (node types per job's rules) is computed once per version.
    """

    def __init__(
        self,
        gateway: ClusterGateway,
        *,
        labels: kube_nodes.NodeLabelKeys,
    ) -> None:
        self.changed = threading.Event()
        self._assumed: dict[Key, AssumedPod] = {}
        self._assumed_lock = threading.Lock()
        self.node_set_version = 0
        self._node_shapes: dict[Key, object] = {}
        self._node_shapes_lock = threading.Lock()
        self.nodes, self.pods = node_and_pod_informers(
            gateway, labels=labels, on_node=self._node_changed, on_pod=self._pod_changed
        )
        self.jobs: Informer[dict[str, Any]] = Informer(gateway, Watched.MODELJOBS, dict, self._job_changed)
        # Queues: their quota tree, order and preemption rules (cluster-scoped; key ("", name)).
        self.queues: Informer[dict[str, Any]] = Informer(
            gateway, Watched.QUEUES, dict, self._job_changed, optional=True
        )

    @property
    def informers(self) -> list[Informer[Any]]:
        return [self.nodes, self.pods, self.jobs, self.queues]

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        self.changed.set()

    def wait_synced(self, timeout_seconds: float) -> bool:
        deadline = time.monotonic() + timeout_seconds
        return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in self.informers)

    # --- assumed pods -------------------------------------------------------------------------

    def assume(self, pod: PodFacts, *, now: datetime) -> None:
        with self._assumed_lock:
            self._assumed[pod.key] = AssumedPod(pod=pod, since=now)

    def forget(self, key: Key) -> None:
        with self._assumed_lock:
            self._assumed.pop(key, None)

    def assumed(self) -> list[AssumedPod]:
        with self._assumed_lock:
            return list(self._assumed.values())

    # --- change callbacks ---------------------------------------------------------------------

    def _node_changed(self, kind_of_event: str, value: NodeFacts | None, key: Key) -> None:
        with self._node_shapes_lock:
            if kind_of_event == "RELISTED":
                self._node_shapes = {("", n.name): _shape(n) for n in self.nodes.values()}
                self.node_set_version += 1
            elif value is None:
                self._node_shapes.pop(key, None)
                self.node_set_version += 1
            elif self._node_shapes.get(key) != (shape := _shape(value)):
                self._node_shapes[key] = shape
                self.node_set_version += 1
        self.changed.set()

    def _pod_changed(self, kind_of_event: str, value: PodFacts | None, key: Key) -> None:
        if kind_of_event == "DELETED" or (value is not None and value.node is not None):
            self.forget(key)
        self.changed.set()

    def _job_changed(self, kind_of_event: str, value: Mapping[str, Any] | None, key: Key) -> None:
        del kind_of_event, value, key
        self.changed.set()


def _shape(node: NodeFacts) -> object:
    """What sizing and a job's node rules read of a node: a change of it is a new node set."""
    view = node.view
    return (node_type_of(view), view.price_per_hour, tuple(sorted(node.labels.items())), node.taints)


class ParsedJobs:
    """Each version of each ModelJob parsed once: parsing a spec (pydantic) costs more than
    planning it. Versions that are no longer current drop out at every snapshot. A job whose
    spec, metadata or status cannot be read is kept as what is wrong with it, naming the field
    (admission writes it); one that makes the parser itself fail (a bug of ours, logged with its
    traceback once per version) is kept as that, so no document stops every job's cycle."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], JobFacts | str] = {}

    def parse(self, documents: Iterable[Mapping[str, Any]]) -> list[JobFacts]:
        """The jobs whose spec can be read (``problem`` says why the others cannot)."""
        jobs: list[JobFacts] = []
        current: dict[tuple[str, str], JobFacts | str] = {}
        for document in documents:
            key = _version_key(document)
            facts = self._cache.get(key)
            if facts is None:
                try:
                    facts = kube_jobs.job_facts(document)
                except ObjectError as exc:
                    facts = str(exc)
                except Exception as exc:
                    meta = document.get("metadata") or {}
                    logger.exception("%s/%s: reading the job failed", meta.get("namespace"), meta.get("name"))
                    facts = f"internal error reading the job: {type(exc).__name__}: {exc}"
            current[key] = facts
            if not isinstance(facts, str):
                jobs.append(facts)
        self._cache = current
        return jobs

    def problem(self, document: Mapping[str, Any]) -> str | None:
        """Why this version's spec cannot be read (as of the last ``parse``); None if it can."""
        found = self._cache.get(_version_key(document))
        return found if isinstance(found, str) else None


def _version_key(document: Mapping[str, Any]) -> tuple[str, str]:
    meta = document.get("metadata") or {}
    return (str(meta.get("uid")), str(meta.get("resourceVersion")))
