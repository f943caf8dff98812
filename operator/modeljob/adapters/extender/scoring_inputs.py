"""What, beyond the pod's own spec, makes kube-scheduler's scores for a pod depend on which nodes it
scores (shortlist_rules): the Services that select it, the running pods' affinity terms that select
it, and the PreferNoSchedule taints of the nodes that fit it, kept current from the watches.

Kept small and indexed so that a filter request reads a few entries, not the cluster: Services by
namespace (with a non-empty selector only), the running pods' InterPodAffinity scoring terms as the
distinct terms (a Deployment's replicas share theirs) with the pods that state each, and only the
nodes that have a PreferNoSchedule taint.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modeljob.adapters.extender.shortlist_rules import service_selects, untolerated
from modeljob.core.affinity import PodAffinityTerm
from modeljob.core.cluster_state import NodeFacts, PodFacts, Taint, TaintEffect, Toleration

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ServiceSelector:
    """What the extender keeps of a Service: where it is and which pods it selects (spec.selector)."""

    namespace: str
    name: str
    selector: Mapping[str, str] = field(default_factory=dict)


def service_selector(service: Mapping[str, Any]) -> ServiceSelector:
    """A v1 Service -> its namespace, name and spec.selector (the Informer's translation)."""
    meta = service.get("metadata") or {}
    selector = (service.get("spec") or {}).get("selector")
    return ServiceSelector(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        selector={str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else {},
    )


class ScoringInputs:
    """The cluster-wide half of the shortlist's rules, event by event. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._preferring: dict[str, tuple[Taint, ...]] = {}  # node -> its PreferNoSchedule taints
        self._terms_of: dict[Key, tuple[PodAffinityTerm, ...]] = {}
        self._stated_by: dict[PodAffinityTerm, set[Key]] = {}  # distinct term -> the pods stating it
        self._services: dict[str, dict[str, Mapping[str, str]]] = {}  # namespace -> name -> selector
        self.services_synced = threading.Event()

    # --- nodes ----------------------------------------------------------------------------------

    def node_changed(self, name: str, node: NodeFacts | None) -> None:
        taints = _preferred(node) if node is not None else ()
        with self._lock:
            if taints:
                self._preferring[name] = taints
            else:
                self._preferring.pop(name, None)

    def replace_nodes(self, nodes: Iterable[NodeFacts]) -> None:
        preferring = {node.name: taints for node in nodes if (taints := _preferred(node))}
        with self._lock:
            self._preferring = preferring

    # --- pods -----------------------------------------------------------------------------------

    def pod_changed(self, key: Key, pod: PodFacts | None) -> None:
        terms = pod.scoring_terms if pod is not None else ()
        with self._lock:
            self._forget_terms(key)
            if terms:
                self._terms_of[key] = terms
                for term in terms:
                    self._stated_by.setdefault(term, set()).add(key)

    def replace_pods(self, pods: Iterable[PodFacts]) -> None:
        with self._lock:
            self._terms_of = {pod.key: pod.scoring_terms for pod in pods if pod.scoring_terms}
            self._stated_by = {}
            for key, terms in self._terms_of.items():
                for term in terms:
                    self._stated_by.setdefault(term, set()).add(key)

    def _forget_terms(self, key: Key) -> None:
        for term in self._terms_of.pop(key, ()):
            stating = self._stated_by.get(term)
            if stating is not None:
                stating.discard(key)
                if not stating:
                    del self._stated_by[term]

    # --- services (Informer.on_change's signature) ----------------------------------------------

    def service_event(self, kind_of_event: str, value: ServiceSelector | None, key: Key) -> None:
        namespace, name = key
        with self._lock:
            in_namespace = self._services.setdefault(namespace, {})
            if kind_of_event == "DELETED" or value is None or not value.selector:
                in_namespace.pop(name, None)
            else:
                in_namespace[name] = value.selector
            if not in_namespace:
                del self._services[namespace]

    def replace_services(self, services: Iterable[ServiceSelector]) -> None:
        fresh: dict[str, dict[str, Mapping[str, str]]] = {}
        for service in services:
            if service.selector:
                fresh.setdefault(service.namespace, {})[service.name] = service.selector
        with self._lock:
            self._services = fresh
        self.services_synced.set()

    # --- the rule -------------------------------------------------------------------------------

    def reason(self, pod: PodFacts, tolerations: tuple[Toleration, ...], fits: Collection[str]) -> str | None:
        """Why kube-scheduler's scores for ``pod`` may depend on which of the nodes that fit it
        (``fits``) it scores, from what the cluster holds; None: nothing does."""
        if not self.services_synced.is_set():
            return "the extender has not listed Services yet"
        with self._lock:
            for name, selector in sorted(self._services.get(pod.namespace, {}).items()):
                if service_selects(selector, pod.labels):
                    return f"Service {pod.namespace}/{name} selects the pod (spread by default)"
            for term, stating in self._stated_by.items():
                if term.selects(pod.namespace, pod.labels):
                    namespace, name = min(stating)
                    return f"pod {namespace}/{name}'s {term.field} selects the pod (InterPodAffinity)"
            preferring = list(self._preferring.items())
        if not preferring:
            return None
        among = fits if isinstance(fits, (set, frozenset)) else set(fits)
        for node, taints in preferring:
            if node in among and (taint := untolerated(taints, tolerations)) is not None:
                return f"node {node} has a PreferNoSchedule taint the pod does not tolerate ({taint.key})"
        return None


def _preferred(node: NodeFacts) -> tuple[Taint, ...]:
    return tuple(t for t in node.taints if t.effect is TaintEffect.PREFER_NO_SCHEDULE)
