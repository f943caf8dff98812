"""What a cycle works out from the nodes alone, kept for the next cycles while it still holds.

At 5,000 nodes some node changes nearly every cycle: a taint added and lifted as its heartbeat
lags (kube-controller-manager's node lifecycle), a cordon, a Ready condition. Starting over at
each such change would size every waiting job again, and drop every plan the plan memo carries
(core/plan_memo.py): on the real control plane's deep queue it did, cycle after cycle. So a
change that leaves every node's name and type as they were is worked in: each remembered
eligibility is worked out again on the changed nodes alone (a new array only where an answer
moved), each template's node types and prices again from those, and only the sizings whose types
or prices moved are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modeljob.core.affinity import NodeAffinity
from modeljob.core.cluster_state import AccountedViews, NodeFacts, Toleration, admits
from modeljob.core.job_state import JobFacts
from modeljob.core.node_types import NodeType, NodeTypes, Sizing, node_type_of, usable_types
from modeljob.core.nodes import BoolArray, NodeTable, NodeView
from modeljob.core.pod_ledger import PodLedger

# Templates sized per node set; past this many the memory starts over (a stream of distinct
# hostile shapes cannot grow it without bound).
SIZINGS_KEPT = 10_000

EligibilityKey = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Admitting:
    """What decides which nodes a template may use (``Cluster._key`` keys it)."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Toleration, ...]
    node_affinity: NodeAffinity

    @classmethod
    def of(cls, job: JobFacts) -> Admitting:
        return cls(job.node_selector, tuple(job.tolerations), job.rules.node_affinity)

    def admits(self, node: NodeFacts) -> bool:
        return admits(node, node_selector=self.node_selector, tolerations=self.tolerations) and (
            self.node_affinity.admits(node.name, node.labels)
        )

    def mask(self, nodes: Sequence[NodeFacts]) -> BoolArray:
        return np.array([self.admits(n) for n in nodes], dtype=np.bool_)


@dataclass(eq=False)
class NodeSetMemory:
    """What a cycle works out from the nodes alone (not from their pods), kept for the next cycle:
    which nodes each template may use, their types and prices, each template's sizing, and each
    job's sizing by the job object it was made for (the loop keeps a job's facts while its
    resourceVersion stands, so an unchanged job is the same object). Memory only: a restart
    starts empty and works the same out again.

    ``generation`` moves whenever planning could read the nodes otherwise than the ledger tells
    (their labels, which topology and pod rules read; their prices, which the cost scorer reads) or
    a sizing is dropped: what others keep by the identity of its sizings' candidates
    (core/plan_memo.py) is never matched to new ones. A node's readiness, taints or allocatable
    changing leaves it: eligibility is worked in here, and the plan memo compares the ledgers
    (free room, allocatable and readiness) for what it carries."""

    nodes: list[NodeFacts] | None = None
    generation: int = 0
    type_of: dict[str, NodeType | None] = field(default_factory=dict)
    type_masks: dict[NodeType, BoolArray] = field(default_factory=dict)
    eligible: dict[EligibilityKey, BoolArray] = field(default_factory=dict)
    admitting: dict[EligibilityKey, Admitting] = field(default_factory=dict)
    types: dict[EligibilityKey, NodeTypes] = field(default_factory=dict)
    sizings: dict[tuple[object, ...], Sizing] = field(default_factory=dict)  # by (key, what is sized)
    # uid -> the job object, its sizing and which nodes it may use (``Cluster._key``)
    by_job: dict[str, tuple[JobFacts, Sizing, EligibilityKey]] = field(default_factory=dict)
    # The nodes' views as accounted last cycle (account()): kept by node object and its use, so
    # through changes of the node set too.
    views: AccountedViews = field(default_factory=dict)
    # What the pods on each node request, worked in by the pods that changed (core/pod_ledger.py).
    pods: PodLedger = field(default_factory=PodLedger)
    # The node table as last built and the views it was built from (nodes.updated_node_table).
    table: NodeTable | None = None
    table_views: list[NodeView] = field(default_factory=list)

    def start(self, nodes: list[NodeFacts]) -> None:
        """Keep what was worked out as far as it holds for ``nodes``, else start over."""
        if self.nodes is not None and len(self.sizings) <= SIZINGS_KEPT:
            changed = _changed(self.nodes, nodes)  # one pass over the nodes, every cycle
            if changed is not None:
                if changed:
                    self._work_in(nodes, changed)
                return
        self.nodes, self.generation = nodes, self.generation + 1
        self.type_of, self.type_masks, self.eligible, self.admitting = {}, {}, {}, {}
        self.types, self.sizings, self.by_job = {}, {}, {}

    def _work_in(self, nodes: list[NodeFacts], changed: Sequence[int]) -> None:
        """``nodes`` differ from the kept ones at ``changed`` rows only, names and types alike."""
        before, self.nodes = self.nodes, nodes
        assert before is not None
        relabelled = any(before[i].labels != nodes[i].labels for i in changed)
        rows = np.array(changed, dtype=np.intp)
        remasked: set[EligibilityKey] = set()
        for key, mask in list(self.eligible.items()):
            admitting = self.admitting[key]
            answers = np.array([admitting.admits(nodes[i]) for i in changed], dtype=np.bool_)
            if (mask[rows] != answers).any():
                moved = mask.copy()  # a new array: the plan memo keys masks by their identity
                moved[rows] = answers
                self.eligible[key] = moved
                remasked.add(key)
        # Types and prices read the eligible nodes' devices (unchanged here) and prices.
        repriced = any(before[i].view.price_per_hour != nodes[i].view.price_per_hour for i in changed)
        dropped: set[EligibilityKey] = set()
        for key in list(self.types):
            if key not in remasked and not repriced:
                continue
            now = self.eligible.get(key)
            if now is None or types_of(nodes, now) != self.types[key]:
                dropped.add(key)
                del self.types[key]
        if dropped:
            self.sizings = {k: s for k, s in self.sizings.items() if k[0] not in dropped}
            self.by_job = {uid: e for uid, e in self.by_job.items() if e[2] not in dropped}
        if relabelled or repriced or dropped:  # the cost scorer reads every node's price
            self.generation += 1


def types_of(nodes: Sequence[NodeFacts], mask: BoolArray) -> NodeTypes:
    """The node types, and their lowest prices, among the nodes ``mask`` lets a template use."""
    return usable_types([n.view for n, ok in zip(nodes, mask, strict=True) if ok])


def _changed(before: Sequence[NodeFacts], after: Sequence[NodeFacts]) -> list[int] | None:
    """The rows where ``after`` differs from ``before``, if the nodes are the same ones, each of
    the same type (devices, product, memory); None if not, and all is worked out again."""
    if len(before) != len(after):
        return None
    changed: list[int] = []
    for row, (old, new) in enumerate(zip(before, after, strict=True)):
        if old is new or old == new:
            continue
        if old.name != new.name or node_type_of(old.view) != node_type_of(new.view):
            return None
        changed.append(row)
    return changed
