"""What the operator knows of the cluster (nodes, pods, pods bound but not yet seen) and its accounting.

The accounting is kube-scheduler's: a node's free capacity is its allocatable minus the requests
of every pod bound to it that has not finished (terminating pods still hold their resources),
whoever bound it. Pods the operator bound whose binding the watch has not shown yet are counted
from the operator's own plan: the "assumed" pods, as kube-scheduler's cache keeps them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from modeljob.core.affinity import NodeAffinity, PodAffinityTerm
from modeljob.core.nodes import MILLI_PER_DEVICE, NodeView
from modeljob.core.resources import Resources


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @property
    def finished(self) -> bool:
        return self in _FINISHED  # a set: read for every pod of every cycle


_FINISHED = frozenset({PodPhase.SUCCEEDED, PodPhase.FAILED})


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: TaintEffect
    value: str = ""


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod's toleration; an empty key with operator Exists tolerates every taint."""

    key: str = ""
    operator_exists: bool = False  # False: Equal (the Kubernetes default)
    value: str = ""
    effect: TaintEffect | None = None  # None: every effect

    def tolerates(self, taint: Taint) -> bool:
        if self.effect is not None and self.effect is not taint.effect:
            return False
        if not self.key:
            return self.operator_exists
        if self.key != taint.key:
            return False
        return self.operator_exists or self.value == taint.value


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """One node: its NodeView (nothing requested yet) plus what placement and recovery need.

    ``ready`` is the Ready condition; ``not_ready_since`` when it last stopped being True.
    ``schedulable`` is False for cordoned nodes (spec.unschedulable).
    """

    view: NodeView
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    schedulable: bool = True
    ready: bool = True
    not_ready_since: datetime | None = None
    # The view's: asked of 5,000 nodes several times a cycle (sorting, lookups by name), so kept.
    name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.view.name)

    def lost(self, *, now: datetime, grace_seconds: float) -> bool:
        """NotReady for at least ``grace_seconds`` (an unknown start counts as long ago)."""
        if self.ready:
            return False
        if self.not_ready_since is None:
            return True
        return (now - self.not_ready_since).total_seconds() >= grace_seconds


@dataclass(frozen=True, slots=True)
class Termination:
    """Why a container stopped (its state.terminated or lastState.terminated), or, with no
    container named, why the pod did (status.reason, e.g. Evicted)."""

    container: str = ""
    reason: str = ""
    exit_code: int | None = None

    def describe(self) -> str:
        what = f"container {self.container}" if self.container else "the pod"
        reason = f" {self.reason}" if self.reason else " terminated"
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        return f"{what}{reason}{code}"


@dataclass(frozen=True, slots=True)
class PodFacts:
    """One pod as accounting and the job lifecycle see it.

    ``requests`` is the pod's effective request (containers summed, init containers' peak,
    overhead); its ``gpus`` counts devices of ``accelerator``. ``job_uid`` and ``replica`` are
    set on pods a ModelJob owns. ``labels`` and ``anti_affinity`` (its required pod
    anti-affinity) are what other pods' affinity rules, and its own, are judged by.
    """

    namespace: str
    name: str
    requests: Resources = field(default_factory=Resources)
    accelerator: str | None = None
    node: str | None = None
    phase: PodPhase = PodPhase.PENDING
    terminating: bool = False
    uid: str = ""
    scheduler_name: str = ""
    job_uid: str | None = None
    replica: int | None = None
    spec_hash: str | None = None
    termination: Termination | None = None  # set on a failed pod: which container, why, exit code
    labels: Mapping[str, str] = field(default_factory=dict)
    anti_affinity: tuple[PodAffinityTerm, ...] = ()
    # The terms by which kube-scheduler's InterPodAffinity weighs this pod, once on a node, when it
    # scores nodes for another pod (read leniently: an unreadable term selects every pod). The
    # extender's shortlist is off for a pod one of them selects.
    scoring_terms: tuple[PodAffinityTerm, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def holds_resources(self) -> bool:
        """Bound and not finished: counted against its node (terminating pods still count)."""
        return self.node is not None and not self.phase.finished


@dataclass(frozen=True, slots=True)
class AssumedPod:
    """A pod the operator bound (or is binding) that the pod watch has not shown on its node yet."""

    pod: PodFacts  # with node set to where it is being bound
    since: datetime


def merge_assumed(
    pods: Iterable[PodFacts], assumed: Iterable[AssumedPod], *, now: datetime, ttl_seconds: float
) -> list[PodFacts]:
    """The pods to account: the watched ones (one per key, as a watch's cache holds them), plus
    assumed pods the watch does not show bound yet.

    An assumed pod stops counting once the watch shows it bound (the watched copy counts
    instead), and after ``ttl_seconds`` (the binding failed or the pod was deleted unseen).
    """
    merged = list(pods)  # one per key already (a watch's cache)
    live = [entry for entry in assumed if (now - entry.since).total_seconds() <= ttl_seconds]
    if not live:
        return merged
    # Only the pods named like an assumed one are looked up by key: thousands watched, a few assumed.
    names = {entry.pod.name for entry in live}
    watched = {pod.key: pod for pod in merged if pod.name in names}
    for entry in live:
        seen = watched.get(entry.pod.key)
        if seen is None or seen.node is None:
            if seen is not None:
                merged.remove(seen)
            merged.append(entry.pod)
    return merged


# Views accounted before, by node name: the node each was made from, the use it counted
# (CPU, memory, storage, GPUs), and the view.
Use = tuple[int, int, int, int]  # CPU (milli), memory, storage requested on a node; devices taken
AccountedViews = dict[str, tuple[NodeFacts, Use, NodeView]]


def account(
    nodes: Sequence[NodeFacts], pods: Iterable[PodFacts], *, known: AccountedViews | None = None
) -> list[NodeView]:
    """NodeViews with ``requested`` and per-device GPU use filled in from the pods bound to each node.

    Nodes come back sorted by name (ties break by name downstream). A node is offered as
    ``ready`` only if it is Ready and not cordoned. ``known``: the views an earlier call made
    (kept for the next, of these nodes only); one is given again for the same node object with
    the same use, as a scheduling loop sees most nodes from one cycle to the next.
    """
    cpu: dict[str, int] = defaultdict(int)
    memory: dict[str, int] = defaultdict(int)
    storage: dict[str, int] = defaultdict(int)
    gpus: dict[str, int] = defaultdict(int)
    by_name = {n.name: n for n in nodes}
    for pod in pods:
        node = by_name.get(pod.node or "")
        if node is None or not pod.holds_resources:
            continue
        cpu[node.name] += pod.requests.cpu_milli
        memory[node.name] += pod.requests.memory_bytes
        storage[node.name] += pod.requests.ephemeral_storage_bytes
        if pod.requests.gpus > 0 and pod.accelerator is not None and pod.accelerator == node.view.accelerator:
            gpus[node.name] += pod.requests.gpus

    def use(node: NodeFacts) -> Use:
        name = node.name
        return (cpu[name], memory[name], storage[name], min(node.view.allocatable.gpus, gpus[name]))

    return accounted_views(nodes, use, known=known)


def accounted_views(
    nodes: Sequence[NodeFacts],
    use: Callable[[NodeFacts], Use],
    *,
    known: AccountedViews | None = None,
    touched: Collection[str] | None = None,
) -> list[NodeView]:
    """``account``'s views from each node's ``use`` as worked out already (core/pod_ledger.py
    keeps it from one cycle to the next). ``touched``: the nodes whose use may have changed since
    ``known`` was made (None: any), so a node object ``known`` holds, and not touched, keeps its view."""
    views = []
    before: AccountedViews = dict(known) if known is not None else {}
    if known is not None:
        known.clear()
    for node in sorted(nodes, key=lambda n: n.name):
        name = node.name
        found = before.get(name)
        kept = found is not None and found[0] is node and touched is not None and name not in touched
        if not kept:
            counted = use(node)
            if found is None or found[0] is not node or found[1] != counted:
                found = (node, counted, _accounted(node, counted))
        assert found is not None
        if known is not None:
            known[name] = found
        views.append(found[2])
    return views


def _accounted(node: NodeFacts, use: Use) -> NodeView:
    cpu_milli, memory_bytes, storage_bytes, used = use
    devices = node.view.allocatable.gpus
    return replace(
        node.view,
        requested=Resources(
            cpu_milli=cpu_milli, memory_bytes=memory_bytes, ephemeral_storage_bytes=storage_bytes, gpus=used
        ),
        gpu_free_milli=(0,) * used + (MILLI_PER_DEVICE,) * (devices - used) if devices else (),
        ready=node.ready and node.schedulable,
    )


def admits(node: NodeFacts, *, node_selector: Mapping[str, str], tolerations: Sequence[Toleration]) -> bool:
    """Whether a pod with this nodeSelector and these tolerations may go to ``node`` at all.

    NoSchedule and NoExecute taints repel pods that do not tolerate them; PreferNoSchedule only
    discourages, as in kube-scheduler's TaintToleration plugin.
    """
    if any(node.labels.get(key) != value for key, value in node_selector.items()):
        return False
    return not any(
        taint.effect is not TaintEffect.PREFER_NO_SCHEDULE
        and not any(t.tolerates(taint) for t in tolerations)
        for taint in node.taints
    )


def refusals(
    nodes: Iterable[NodeFacts],
    *,
    node_selector: Mapping[str, str],
    tolerations: Sequence[Toleration],
    node_affinity: NodeAffinity,
) -> str:
    """Why no node admits a job's pods: how many nodes each field of its template refuses (each
    node under the first field that refuses it, in the order kube-scheduler's filters check them)."""
    refused: Counter[str] = Counter()
    for node in nodes:
        if any(node.labels.get(k) != v for k, v in node_selector.items()):
            refused["spec.template.spec.nodeSelector: labels differ"] += 1
        elif not node_affinity.admits(node.name, node.labels):
            refused[f"{node_affinity.field}: no term matches"] += 1
        elif not admits(node, node_selector={}, tolerations=tolerations):
            refused["spec.template.spec.tolerations: a taint is not tolerated"] += 1
    said = "; ".join(f"{count} node(s): {why}" for why, count in refused.items())
    return f"no node admits the job's pods: {said}"
