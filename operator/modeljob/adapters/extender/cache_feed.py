"""Feeding the extender's ClusterCache from list+watch: its own node and pod watches (`modeljob
extender` on its own), or the operator's, shared (`modeljob run`); and a Service watch of its own
in both (the operator does not watch Services), which only the shortlist reads. Beside each node's
and pod's translation, the cache is also given what kube-scheduler's per-node score plugins read of
it (likeness.node_inputs, likeness.pod_counts), read from the same object."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from modeljob.adapters import kube_nodes
from modeljob.adapters.cluster import ClusterGateway, Watched
from modeljob.adapters.cluster_view import Informer, node_and_pod_informers, object_key
from modeljob.adapters.extender.cache import ClusterCache, Key
from modeljob.adapters.extender.likeness import node_inputs, pod_counts
from modeljob.adapters.extender.scoring_inputs import ServiceSelector, service_selector
from modeljob.core.cluster_state import NodeFacts, PodFacts

T = TypeVar("T")


class ClusterFeed:
    """List+watch of nodes, pods and Services (the operator's Informer, kube_nodes' and kube_pods'
    translations) feeding a ClusterCache: `modeljob extender` on its own."""

    def __init__(
        self, gateway: ClusterGateway, cache: ClusterCache, *, labels: kube_nodes.NodeLabelKeys
    ) -> None:
        self._cache = cache
        self.nodes, self.pods = node_and_pod_informers(
            gateway, labels=labels, on_node=self._node_changed, on_pod=self._pod_changed
        )
        read_beside(self.nodes, self.pods, cache)
        self.services = service_informer(gateway, cache)

    def start(self) -> None:
        self.nodes.start()
        self.pods.start()
        self.services.start()

    def stop(self) -> None:
        self.nodes.stop()
        self.pods.stop()
        self.services.stop()

    def wait_synced(self, timeout_seconds: float) -> bool:
        deadline = time.monotonic() + timeout_seconds
        return self._cache.nodes_synced.wait(timeout_seconds) and self._cache.pods_synced.wait(
            max(0.0, deadline - time.monotonic())
        )

    def _node_changed(self, kind_of_event: str, value: NodeFacts | None, key: Key) -> None:
        if kind_of_event == "RELISTED":
            self._cache.replace_nodes(self.nodes.values())
        else:
            self._cache.node_event(kind_of_event, value, key)

    def _pod_changed(self, kind_of_event: str, value: PodFacts | None, key: Key) -> None:
        if kind_of_event == "RELISTED":
            self._cache.replace_pods(self.pods.values())
        else:
            self._cache.pod_event(kind_of_event, value, key)


def follow(
    informer: Informer[Any], listener: Callable[[str, Any, Key], None], relisted: Callable[[], None]
) -> None:
    """Also tell ``listener`` about every change ``informer`` sees (and ``relisted`` about a fresh
    list), keeping its own callback: how `modeljob run` shares the operator's watches with the
    extender instead of opening a second pair. Call before the informer starts."""
    previous = informer.on_change

    def both(kind_of_event: str, value: Any, key: Key) -> None:
        previous(kind_of_event, value, key)
        if kind_of_event == "RELISTED":
            relisted()
        else:
            listener(kind_of_event, value, key)

    informer.on_change = both


def read_beside(nodes: Informer[NodeFacts], pods: Informer[PodFacts], cache: ClusterCache) -> None:
    """Have the informers also hand ``cache`` what kube-scheduler's per-node score plugins read of
    each node and pod they translate, before they tell of the change (the informer's thread, as
    its translation). Call before they start: objects listed before are not read, and their nodes
    stay classes of their own (likeness) until they change."""
    _also(nodes, lambda obj: cache.node_read(object_key(obj)[1], _or_none(node_inputs, obj)))
    _also(pods, lambda obj: cache.pod_read(object_key(obj), _or_none(pod_counts, obj)))


def _also(informer: Informer[T], read: Callable[[Mapping[str, Any]], None]) -> None:
    translate: Callable[[Mapping[str, Any]], T] | None = getattr(informer, "translate", None)
    if translate is None:  # a stand-in without one (tests): nothing to read
        return

    def both(obj: Mapping[str, Any]) -> T:
        value = translate(obj)
        read(obj)
        return value

    informer.translate = both


def _or_none(read: Callable[[Mapping[str, Any]], T], obj: Mapping[str, Any]) -> T | None:
    """What ``read`` finds, or None (not known) for an object it cannot read."""
    try:
        return read(obj)
    except (TypeError, ValueError, AttributeError):
        return None


def attach_to_view(cache: ClusterCache, nodes: Informer[NodeFacts], pods: Informer[PodFacts]) -> None:
    """Feed ``cache`` from the operator's node and pod informers (ClusterView.nodes / .pods), before
    or after they start: an informer that has already listed is copied at once, one that has not
    yet will tell the cache when it has (until then the extender answers 503). What the extender
    reads beside their translations (`read_beside`) is read only of objects they translate after."""
    read_beside(nodes, pods, cache)
    follow(nodes, cache.node_event, lambda: cache.replace_nodes(nodes.values()))
    follow(pods, cache.pod_event, lambda: cache.replace_pods(pods.values()))
    if nodes.synced.is_set():
        cache.replace_nodes(nodes.values())
    if pods.synced.is_set():
        cache.replace_pods(pods.values())


def service_informer(gateway: ClusterGateway, cache: ClusterCache) -> Informer[ServiceSelector]:
    """List+watch of Services (namespace, name and selector kept) into ``cache`` (its ScoringInputs).
    Until it has listed, and if it cannot (an install whose RBAC predates it), the shortlist is
    off, with that reason; filter, prioritize and bind do not wait for it."""

    def changed(kind_of_event: str, value: ServiceSelector | None, key: Key) -> None:
        if kind_of_event == "RELISTED":
            cache.replace_services(services.values())
        else:
            cache.service_event(kind_of_event, value, key)

    services: Informer[ServiceSelector] = Informer(gateway, Watched.SERVICES, service_selector, changed)
    return services
