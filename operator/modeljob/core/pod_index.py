"""The cycle's pods as template rules (core/template_rules.py) see them: on which node, with which
labels, of which job, and with what required anti-affinity of their own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from modeljob.core.affinity import PodAffinityTerm, TemplateRules
from modeljob.core.cluster_state import NodeFacts, PodFacts


@dataclass(frozen=True, slots=True)
class IndexedPod:
    """A pod on a node (bound, or planned this cycle) as pod rules see it."""

    namespace: str
    name: str
    node: str
    labels: Mapping[str, str]
    job_uid: str | None = None
    anti_affinity: tuple[PodAffinityTerm, ...] = ()


# Pods indexed before, by the pod object (held, so its id is no other's): the pod and its entry.
IndexedPods = dict[int, tuple[PodFacts, IndexedPod]]


def _indexed(pod: PodFacts, node: str) -> IndexedPod:
    return IndexedPod(pod.namespace, pod.name, node, pod.labels, pod.job_uid, pod.anti_affinity)


class PodIndex:
    """The cycle's pods on nodes, node labels, and the pods the cycle has planned so far."""

    def __init__(
        self, nodes: Iterable[NodeFacts], pods: Iterable[PodFacts], *, known: IndexedPods | None = None
    ) -> None:
        """``known``: the entries an earlier index made (kept for the next, of these pods only);
        an unchanged pod is the same object from one cycle to the next (a changed one is another)."""
        self.node_labels: dict[str, Mapping[str, str]] = {n.name: n.labels for n in nodes}
        self.pods: list[IndexedPod] = []
        self.guarded: list[IndexedPod] = []  # pods with a required anti-affinity of their own
        self.by_job: dict[str, list[str]] = defaultdict(list)  # job uid -> nodes of its pods
        known = known if known is not None else {}
        before = dict(known)
        known.clear()
        for pod in pods:
            if pod.holds_resources and pod.node is not None:
                found = before.get(id(pod))
                if found is None or found[0] is not pod:
                    found = (pod, _indexed(pod, pod.node))
                known[id(pod)] = found
                self._add(found[1])

    def _add(self, pod: IndexedPod) -> None:
        self.pods.append(pod)
        if pod.anti_affinity:
            self.guarded.append(pod)
        if pod.job_uid is not None:
            self.by_job[pod.job_uid].append(pod.node)

    def record(self, job: JobIdentity, nodes: Sequence[str]) -> None:
        """Pods planned this cycle count for the jobs planned after them, as bound ones do."""
        for index, node in enumerate(nodes):
            self._add(
                IndexedPod(
                    job.namespace,
                    f"{job.name} (planned replica {index})",
                    node,
                    dict(job.rules.pod_labels),
                    job.uid,
                    job.rules.anti_affinity,
                )
            )


class JobIdentity(Protocol):
    """Who is being placed: enough of a job for its rules (JobFacts is one)."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def uid(self) -> str: ...

    @property
    def rules(self) -> TemplateRules: ...
