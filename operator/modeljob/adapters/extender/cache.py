"""The extender's picture of the cluster: watched nodes and pods as the node table the core scores.

Fed by list+watch (cache_feed.py: cluster_view.Informer, kube_nodes' and kube_pods' translations),
never by listing the API per request. The accounting is the core's (`cluster_state.account`,
`nodes.build_node_table`), applied incrementally: a pod event re-accounts only its node's row, a
changed node rewrites its row (taints and labels, which kube-scheduler checks itself, change
nothing), and only a node added or removed rebuilds the table. A request at 5,000 nodes costs a few
row copies, not a re-account of the whole cluster (~150 ms), even while kcm lifts the not-ready
taint from thousands of new nodes.

Pods the extender chose (prioritize) or is binding count on their node at once, before the pod
watch shows them there: kube-scheduler starts the next pod's cycle while the previous pod's bind
is still in flight, and with `ignoredByScheduler: true` nobody else counts GPUs. The rule is
`cluster_state.merge_assumed`'s: an assumed pod counts until the watch shows it bound or deleted,
or until it expires.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from modeljob.adapters.extender.likeness import NodeInputs, NodeLikeness, PodCounts
from modeljob.adapters.extender.scoring_inputs import ScoringInputs, ServiceSelector
from modeljob.adapters.extender.table_rows import named, read_only, read_only_array
from modeljob.core.cluster_state import NodeFacts, PodFacts, Toleration, account
from modeljob.core.fragmentation import TargetWorkload, TaskShape, learn_target_workload_from_counts
from modeljob.core.nodes import IntArray, NodeTable, build_node_table, write_rows
from modeljob.core.resources import Resources
from modeljob.core.scoring.scorers.cpu_balance import DemandSums, HostDemand

Key = tuple[str, str]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The cluster at one moment: rows sorted by name. Read-only (its arrays refuse writes): the
    cache rewrites rows in a copy once it has handed a table out, so a snapshot never changes and
    requests in a row with nothing changed between them share one, with no copy each."""

    table: NodeTable
    row_of: Mapping[str, int]
    stamps: IntArray  # per row: when its columns last changed (a counter); new table, new stamps
    likeness: IntArray  # per row: its class of nodes kube-scheduler's plugins cannot tell apart


@dataclass(slots=True)
class _Assumed:
    pod: PodFacts  # node set to where it goes
    since: float


class ClusterCache:
    """Nodes, pods and assumed pods -> a NodeTable, kept current event by event. Thread-safe."""

    def __init__(self, *, assume_seconds: float, clock: Clock = time.monotonic) -> None:
        self._assume_seconds = assume_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeFacts] = {}
        self._pods: dict[Key, PodFacts] = {}
        self._assumed: dict[Key, _Assumed] = {}
        # What counts on each node: pods bound to it that hold resources, and assumed pods.
        self._on_node: dict[str, dict[Key, PodFacts]] = {}
        self._counted_on: dict[Key, str] = {}
        # FGD's target workload: the shapes of the GPU pods running or waiting.
        self._shapes: Counter[TaskShape] = Counter()
        self._shape_of: dict[Key, TaskShape] = {}
        self._shapes_version = 0
        self._workload: tuple[int, TaskShape | None, TargetWorkload] | None = None
        # cpu-balance's host demand, from the same pods: their requests, and the sums of CPU,
        # memory and GPU milli over them (integers, so the order of events cannot change them).
        self._demand_of: dict[Key, Resources] = {}
        self._demand_sums = DemandSums()
        self._table: NodeTable | None = None
        self._row_of: dict[str, int] = {}
        self._dirty: set[str] = set()  # rows whose pods changed
        # What, beyond the pod, makes kube-scheduler's scores depend on the nodes it scores
        # (shortlist_rules): PreferNoSchedule taints, running pods' affinity terms, Services.
        self.scoring_inputs = ScoringInputs()
        self._changed_nodes: set[str] = set()  # rows whose node changed
        self._stamp = 0
        self._stamps: IntArray = np.zeros(0, dtype=np.int64)
        self._likeness = NodeLikeness()
        self._likeness_ids: IntArray = np.zeros(0, dtype=np.int64)
        self._published: Snapshot | None = None  # the last snapshot handed out (of self._table)
        self.nodes_synced = threading.Event()
        self.pods_synced = threading.Event()

    @property
    def synced(self) -> bool:
        return self.nodes_synced.is_set() and self.pods_synced.is_set()

    # --- events (Informer.on_change's signature) ------------------------------------------------

    def node_event(self, kind_of_event: str, value: NodeFacts | None, key: Key) -> None:
        name = key[1]
        with self._lock:
            if kind_of_event == "DELETED" or value is None:
                self.scoring_inputs.node_changed(name, None)
                self._likeness.node_read(name, None)
                if self._nodes.pop(name, None) is not None:
                    self._table = None
            else:
                self.scoring_inputs.node_changed(name, value)
                before = self._nodes.get(name)
                self._nodes[name] = value
                if before is None:
                    self._table = None  # a new row: rebuild
                elif _accounted(before) != _accounted(value):
                    self._changed_nodes.add(name)  # same row, new facts
                # else: taints, labels, heartbeats: nothing the table holds (kube-scheduler checks taints)

    def pod_event(self, kind_of_event: str, value: PodFacts | None, key: Key) -> None:
        with self._lock:
            if kind_of_event == "DELETED" or value is None:
                self.scoring_inputs.pod_changed(key, None)
                self._likeness.pod_gone(key)
                self._pods.pop(key, None)
                self._assumed.pop(key, None)
            else:
                self.scoring_inputs.pod_changed(key, value)
                self._pods[key] = value
                if value.node is not None:
                    self._assumed.pop(key, None)  # the watched copy counts from now on
            self._recount(key)

    def replace_nodes(self, nodes: Iterable[NodeFacts]) -> None:
        """A fresh list (the watch started over)."""
        with self._lock:
            self._nodes = {node.name: node for node in nodes}
            self.scoring_inputs.replace_nodes(self._nodes.values())
            self._likeness.keep_nodes(self._nodes)
            self._table = None
        self.nodes_synced.set()

    def replace_pods(self, pods: Iterable[PodFacts]) -> None:
        with self._lock:
            self._pods = {pod.key: pod for pod in pods}
            self.scoring_inputs.replace_pods(self._pods.values())
            self._likeness.keep_pods(self._pods)
            for key in [k for k, pod in self._pods.items() if pod.node is not None]:
                self._assumed.pop(key, None)
            self._on_node.clear()
            self._counted_on.clear()
            self._shapes.clear()
            self._shape_of.clear()
            self._shapes_version += 1
            self._demand_of.clear()
            self._demand_sums = DemandSums()
            for key in set(self._pods) | set(self._assumed):
                self._recount(key)
            self._table = None
        self.pods_synced.set()

    def service_event(self, kind_of_event: str, value: ServiceSelector | None, key: Key) -> None:
        """Services matter only to the shortlist's rules (ScoringInputs), not to the table."""
        self.scoring_inputs.service_event(kind_of_event, value, key)

    def replace_services(self, services: Iterable[ServiceSelector]) -> None:
        """A fresh list of Services: until the first, the shortlist is off."""
        self.scoring_inputs.replace_services(services)

    def node_read(self, name: str, inputs: NodeInputs | None) -> None:
        """What kube-scheduler's per-node plugins read of a node (likeness; None: not known)."""
        with self._lock:
            if self._likeness.node_read(name, inputs):
                self._dirty.add(name)

    def pod_read(self, key: Key, counts: PodCounts | None) -> None:
        """A pod's cpu and memory as kube-scheduler counts them; its `pod_event` follows."""
        with self._lock:
            self._likeness.pod_read(key, counts)

    # --- assumed pods ---------------------------------------------------------------------------

    def assume(self, pod: PodFacts) -> None:
        """Count ``pod`` (its ``node`` set) on that node now, until the watch shows it there."""
        with self._lock:
            self._assumed[pod.key] = _Assumed(pod=pod, since=self._clock())
            self._recount(pod.key)

    def forget(self, key: Key) -> None:
        with self._lock:
            if self._assumed.pop(key, None) is not None:
                self._recount(key)

    def assumed(self, key: Key) -> PodFacts | None:
        with self._lock:
            entry = self._assumed.get(key)
            return entry.pod if entry is not None else None

    def pod(self, key: Key) -> PodFacts | None:
        with self._lock:
            return self._pods.get(key)

    def scoring_reason(
        self, pod: PodFacts, tolerations: tuple[Toleration, ...], fits: Collection[str]
    ) -> str | None:
        """Why kube-scheduler's scores for ``pod`` may depend on which of ``fits`` (the nodes that
        fit it) it scores, from what the cluster holds (ScoringInputs.reason); None: nothing does."""
        return self.scoring_inputs.reason(pod, tolerations, fits)

    def has_node(self, name: str) -> bool:
        with self._lock:
            return name in self._nodes

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)

    # --- reads ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            self._expire()
            if self._table is not None and self._changed_nodes:
                self._refresh_changed_nodes()
            if self._table is None:
                self._rebuild()
            else:
                self._refresh_dirty_rows()
            assert self._table is not None
            if not self._handed_out():
                self._published = Snapshot(
                    table=read_only(self._table),
                    row_of=self._row_of,
                    stamps=read_only_array(self._stamps),
                    likeness=read_only_array(self._likeness_ids),
                )
            assert self._published is not None
            return self._published

    def workload(self, pod: PodFacts | None = None) -> TargetWorkload:
        """FGD's target workload: the GPU pods running or waiting (``pod`` included if the watch has
        not shown it yet), most frequent shapes first, as the operator's cycle learns it."""
        with self._lock:
            extra = None
            if pod is not None and pod.key not in self._shape_of:
                extra = TaskShape.of_running_pod(pod.requests)
            cached = self._workload
            if cached is not None and cached[0] == self._shapes_version and cached[1] == extra:
                return cached[2]
            shapes = Counter(self._shapes)
            version = self._shapes_version
        if extra is not None:
            shapes[extra] += 1
        learned = learn_target_workload_from_counts(shapes)
        with self._lock:
            self._workload = (version, extra, learned)
        return learned

    def host_demand(self, pod: PodFacts | None = None) -> HostDemand | None:
        """cpu-balance's CPU and memory per GPU over the same pods as ``workload`` (``pod``
        included if the watch has not shown it yet), as the operator's cycle learns it."""
        with self._lock:
            sums = self._demand_sums
            if (
                pod is not None
                and pod.key not in self._demand_of
                and TaskShape.of_running_pod(pod.requests) is not None
            ):
                sums = sums.plus(pod.requests)
        return sums.demand()

    # --- bookkeeping (lock held) ----------------------------------------------------------------

    def _handed_out(self) -> bool:
        return self._published is not None and self._published.table is self._table

    def _writable(self) -> NodeTable:
        """The table to rewrite rows of in place: a copy of its own once a snapshot has it."""
        assert self._table is not None
        if self._handed_out():
            self._table = self._table.detached()
            self._stamps = self._stamps.copy()
            self._likeness_ids = self._likeness_ids.copy()
        return self._table

    def _recount(self, key: Key) -> None:
        """Put ``key`` where it counts now (its node, or nowhere) and its shape into the workload."""
        watched = self._pods.get(key)
        assumed = self._assumed.get(key)
        counted: PodFacts | None = None
        if watched is not None and watched.holds_resources:
            counted = watched
        elif assumed is not None and (watched is None or watched.node is None):
            counted = assumed.pod
        before = self._counted_on.pop(key, None)
        if before is not None:
            self._on_node.get(before, {}).pop(key, None)
            self._dirty.add(before)
        if counted is not None and counted.node is not None:
            self._on_node.setdefault(counted.node, {})[key] = counted
            self._counted_on[key] = counted.node
            self._dirty.add(counted.node)
        waiting = (
            watched is not None
            and watched.node is None
            and not watched.phase.finished
            and not watched.terminating
        )
        source = counted or (watched if waiting else None)
        shape = TaskShape.of_running_pod(source.requests) if source is not None else None
        if self._shape_of.get(key) != shape:
            old = self._shape_of.pop(key, None)
            if old is not None:
                self._shapes[old] -= 1
                if self._shapes[old] <= 0:
                    del self._shapes[old]
            if shape is not None:
                self._shape_of[key] = shape
                self._shapes[shape] += 1
            self._shapes_version += 1
        demand = source.requests if source is not None and shape is not None else None
        if self._demand_of.get(key) != demand:
            old_demand = self._demand_of.pop(key, None)
            if old_demand is not None:
                self._demand_sums = self._demand_sums.plus(old_demand, -1)
            if demand is not None:
                self._demand_of[key] = demand
                self._demand_sums = self._demand_sums.plus(demand)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, a in self._assumed.items() if now - a.since > self._assume_seconds]:
            del self._assumed[key]
            self._recount(key)

    def _rebuild(self) -> None:
        nodes = sorted(self._nodes.values(), key=lambda n: n.name)
        pods = [pod for on_node in self._on_node.values() for pod in on_node.values()]
        self._table = build_node_table(account(nodes, pods))
        self._row_of = {name: row for row, name in enumerate(self._table.names)}
        self._dirty.clear()
        self._changed_nodes.clear()
        self._stamp += 1
        self._stamps = np.full(len(self._table), self._stamp, dtype=np.int64)
        self._likeness_ids = self._likeness.rebuild(
            [self._likeness.key(name, self._on_node.get(name, {})) for name in self._table.names]
        )

    def _refresh_changed_nodes(self) -> None:
        """Rewrite the rows of nodes whose facts changed (Ready flipped, cordoned, resized), or drop
        the table when a node's accelerator or product changed or it outgrew the device columns:
        the table stays exactly the one `account()` and `build_node_table()` make from scratch
        (their product and accelerator indices included)."""
        table = self._writable()
        refreshed: set[str] = set()
        for name in self._changed_nodes:
            row = self._row_of.get(name)
            node = self._nodes.get(name)
            if row is None or node is None:
                self._table = None
                break
            single = build_node_table(account([node], self._on_node.get(name, {}).values()))
            if (
                named(single.accelerators, single.accelerator_index[0])
                != named(table.accelerators, table.accelerator_index[row])
                or named(single.products, single.product_index[0])
                != named(table.products, table.product_index[row])
                or int(single.gpu_count[0]) > table.gpu_free_milli.shape[1]
            ):
                self._table = None
                break
            write_rows(single, table, np.array([row]))  # accelerator and product: the same
            self._restamp(name, row)
            refreshed.add(name)
        self._changed_nodes.clear()
        self._dirty -= refreshed  # rewritten whole, free columns included

    def _refresh_dirty_rows(self) -> None:
        """Re-account only the nodes whose pods changed (same core functions, one row each)."""
        if not self._dirty:
            return
        table = self._writable()
        for name in self._dirty:
            row = self._row_of.get(name)
            node = self._nodes.get(name)
            if row is None or node is None:
                continue
            single = build_node_table(account([node], self._on_node.get(name, {}).values()))
            table.cpu_free_milli[row] = single.cpu_free_milli[0]
            table.memory_free_bytes[row] = single.memory_free_bytes[0]
            table.storage_free_bytes[row] = single.storage_free_bytes[0]
            width = min(single.gpu_free_milli.shape[1], table.gpu_free_milli.shape[1])
            table.gpu_free_milli[row, :] = 0
            table.gpu_free_milli[row, :width] = single.gpu_free_milli[0, :width]
            self._restamp(name, row)
        self._dirty.clear()

    def _restamp(self, name: str, row: int) -> None:
        """Row ``row`` (node ``name``) changed: a new stamp, and its likeness class again."""
        self._stamp += 1
        self._stamps[row] = self._stamp
        key = self._likeness.key(name, self._on_node.get(name, {}))
        self._likeness_ids = self._likeness.update(self._likeness_ids, row, key)


def _accounted(node: NodeFacts) -> tuple[object, ...]:
    """What `account()` reads of a node: a change elsewhere (taints, labels) leaves its row alone."""
    return (node.view, node.ready, node.schedulable)
