"""What a job's template rules (core/affinity.py) make of the cluster: the pods they see, the nodes left.

Kubernetes' InterPodAffinity and PodTopologySpread plugins, for a whole gang at once: a
``PodIndex`` (core/pod_index.py; built once per cycle) holds the pods on nodes and the pods
planned this cycle; ``JobRules`` (once per job) counts the pods each of the job's terms selects;
a ``RuleTracker`` (once per plan, on the plan's node table) turns those counts into per-row
arrays and updates them as the plan puts the job's own pods on nodes, so filtering the next
replica costs a few numpy operations over the rows, not a walk over pods.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modeljob.core.affinity import (
    PodAffinityTerm,
    SpreadConstraint,
    WeightedPodAffinityTerm,
    WhenUnsatisfiable,
)
from modeljob.core.nodes import BoolArray, FloatArray, IntArray, NodeTable
from modeljob.core.pod_index import IndexedPod, JobIdentity, PodIndex
from modeljob.core.scoring.scorers.template_preferences import SpreadCounts, min_max, spread_part


@dataclass(frozen=True, slots=True)
class _TermCounts:
    """Matching pods per topology value of one term (or, for affinity, of all terms together)."""

    term: PodAffinityTerm
    by_value: Counter[str]
    own_counts: bool  # the job's own pods count for this term


@dataclass
class JobRules:
    """One job's rules with the cluster's pods counted; ``track`` starts a plan with them."""

    job: JobIdentity
    index: PodIndex
    spread_replicas: bool  # the default spread of serving replicas over nodes (docs/operator.md)
    affinity: list[_TermCounts] = field(default_factory=list)
    affinity_seen: bool = False  # some pod matches every required affinity term
    anti_affinity: list[_TermCounts] = field(default_factory=list)
    preferred: list[tuple[float, _TermCounts]] = field(default_factory=list)  # +weight / -weight
    guarded_by: list[tuple[str, str, str]] = field(default_factory=list)  # key, value, why

    @classmethod
    def of(cls, job: JobIdentity, index: PodIndex, *, spread_replicas: bool) -> JobRules:
        rules = job.rules
        own = dict(rules.pod_labels)
        compiled = cls(job=job, index=index, spread_replicas=spread_replicas and not rules.states_pod_rules)
        compiled.affinity = [
            _TermCounts(t, Counter(), _selects_all(rules.affinity, job.namespace, own))
            for t in rules.affinity
        ]
        compiled.anti_affinity = [
            _TermCounts(t, Counter(), t.selects(job.namespace, own)) for t in rules.anti_affinity
        ]
        weighted: list[tuple[float, WeightedPodAffinityTerm]] = [
            *((float(w.weight), w) for w in rules.preferred_affinity),
            *((-float(w.weight), w) for w in rules.preferred_anti_affinity),
        ]
        compiled.preferred = [
            (s, _TermCounts(w.term, Counter(), w.term.selects(job.namespace, own))) for s, w in weighted
        ]
        if rules.affinity or rules.anti_affinity or weighted:
            compiled._count(index.pods)
        compiled.guarded_by = [
            (term.topology_key, value, f"{term.field} of pod {pod.namespace}/{pod.name} on {pod.node}")
            for pod in index.guarded
            for term in pod.anti_affinity
            if term.selects(job.namespace, own)
            and (value := index.node_labels.get(pod.node, {}).get(term.topology_key)) is not None
        ]
        return compiled

    @property
    def matters(self) -> bool:
        """Whether planning with these rules can differ from planning without them."""
        stated = self.job.rules
        return bool(
            self.spread_replicas
            or stated.states_pod_rules
            or stated.node_affinity.preferred
            or self.guarded_by
        )

    def _count(self, pods: Iterable[IndexedPod]) -> None:
        for pod in pods:
            labels = self.index.node_labels.get(pod.node)
            if labels is None:
                continue
            if self.affinity and all(c.term.selects(pod.namespace, pod.labels) for c in self.affinity):
                for counts in self.affinity:
                    if counts.term.topology_key in labels:
                        counts.by_value[labels[counts.term.topology_key]] += 1
                        self.affinity_seen = True
            for counts in [*self.anti_affinity, *(c for _, c in self.preferred)]:
                key = counts.term.topology_key
                if key in labels and counts.term.selects(pod.namespace, pod.labels):
                    counts.by_value[labels[key]] += 1

    def track(self, table: NodeTable, *, with_pods: bool = True, planned: Sequence[str] = ()) -> RuleTracker:
        """A tracker over ``table``'s rows. ``with_pods=False`` judges an empty cluster: no other
        pod counts, and required affinity to other pods (which may yet come) is not judged."""
        return RuleTracker(self, table, with_pods=with_pods, planned=planned)


def _selects_all(terms: Sequence[PodAffinityTerm], namespace: str, labels: Mapping[str, str]) -> bool:
    return all(t.selects(namespace, labels) for t in terms)


class _Domains:
    """Per table row, the index of its value of one topology label (-1: the node has none)."""

    def __init__(self, table: NodeTable, labels: Mapping[str, Mapping[str, str]], key: str) -> None:
        values = [labels.get(name, {}).get(key) for name in table.names]
        self.names = sorted({v for v in values if v is not None})
        self.position = position = {v: i for i, v in enumerate(self.names)}
        self.of_row: IntArray = np.array(
            [position.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64
        )
        self.has_key: BoolArray = self.of_row >= 0

    def per_row(self, by_value: Mapping[str, int]) -> IntArray:
        counts = np.array([by_value.get(v, 0) for v in self.names] + [0], dtype=np.int64)
        result: IntArray = counts[self.of_row]  # -1 picks the trailing 0
        return result

    def same_domain(self, row: int) -> BoolArray:
        domain = int(self.of_row[row])
        if domain < 0:
            return np.zeros(len(self.of_row), dtype=np.bool_)
        same: BoolArray = self.of_row == domain
        return same


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule's verdict per table row, and how to name it when it removes nodes."""

    passed: BoolArray
    reason: str


class RuleTracker:
    """The job's rules on one plan's table: which rows the next replica may take, how the
    template's preferences score them, and the counts moved as the plan places the job's pods."""

    def __init__(self, rules: JobRules, table: NodeTable, *, with_pods: bool, planned: Sequence[str]) -> None:
        self._rules = rules
        self._labels = rules.index.node_labels
        self._domains: dict[str, _Domains] = {}
        self._table = table
        empty: Mapping[str, int] = {}
        stated = rules.job.rules
        self._affinity = [
            (c, self._per_row(c, empty if not with_pods else c.by_value)) for c in rules.affinity
        ]
        self._affinity_seen = rules.affinity_seen and with_pods
        # Affinity to other pods cannot be judged on an empty cluster (they may yet come); to the
        # job's own pods it can.
        self._judge_affinity = with_pods or all(c.own_counts for c in rules.affinity)
        self._anti = [(c, self._per_row(c, c.by_value if with_pods else empty)) for c in rules.anti_affinity]
        self._preferred = [
            (w, c, self._per_row(c, c.by_value if with_pods else empty)) for w, c in rules.preferred
        ]
        self._guarded = rules.guarded_by if with_pods else []
        own = dict(stated.pod_labels)
        namespace = rules.job.namespace
        self._spread: list[tuple[SpreadConstraint, _Domains, IntArray, bool]] = []
        for constraint in stated.spread:
            domains = self._domain(constraint.topology_key)
            counts = np.zeros(len(domains.names), dtype=np.int64)
            if with_pods:
                on_table = set(table.names)
                for pod in rules.index.pods:
                    value = self._labels.get(pod.node, {}).get(constraint.topology_key)
                    if (
                        value is not None
                        and pod.node in on_table
                        and constraint.selects(pod.namespace, namespace, pod.labels)
                    ):
                        counts[domains.position[value]] += 1
            self._spread.append((constraint, domains, counts, constraint.selects(namespace, namespace, own)))
        self.own_count: IntArray = np.zeros(len(table), dtype=np.int64)
        own_nodes = rules.index.by_job.get(rules.job.uid, []) if with_pods else []
        # Most plans have neither pods of the job nor nodes planned already: no map of 5,000 rows.
        row_of = {name: row for row, name in enumerate(table.names)} if own_nodes or planned else {}
        for node in own_nodes:
            if node in row_of:
                self.own_count[row_of[node]] += 1
        self._node_preference: FloatArray | None = None
        if stated.node_affinity.preferred:
            self._node_preference = np.array(
                [stated.node_affinity.preference(n, self._labels.get(n, {})) for n in table.names],
                dtype=np.float64,
            )
        for node in planned:
            if node in row_of:
                self.place(row_of[node])

    def _domain(self, key: str) -> _Domains:
        if key not in self._domains:
            self._domains[key] = _Domains(self._table, self._labels, key)
        return self._domains[key]

    def _per_row(self, counts: _TermCounts, by_value: Mapping[str, int]) -> IntArray:
        return self._domain(counts.term.topology_key).per_row(by_value).copy()

    def checks(self) -> list[RuleCheck]:
        """Every required rule's verdict per row, in the order reasons name them."""
        found: list[RuleCheck] = []
        if self._judge_affinity:
            exempt = not self._affinity_seen and all(c.own_counts for c, _ in self._affinity)
            for counts, per_row in self._affinity:
                key = counts.term.topology_key
                has_key = self._domain(key).has_key
                passed = has_key if exempt else has_key & (per_row > 0)
                found.append(RuleCheck(passed, f"{counts.term.field}: no pod it selects in the node's {key}"))
        for counts, per_row in self._anti:
            key = counts.term.topology_key
            found.append(
                RuleCheck(~(per_row > 0), f"{counts.term.field}: a pod it selects is in the node's {key}")
            )
        for key, value, why in self._guarded:
            domains = self._domain(key)
            blocked = domains.of_row == domains.position.get(value, -2)
            found.append(RuleCheck(~blocked, f"{why} (required anti-affinity to this job's pods)"))
        for constraint, domains, per_domain, itself in self._spread:
            if constraint.when_unsatisfiable is not WhenUnsatisfiable.DO_NOT_SCHEDULE:
                continue
            enough = len(per_domain) >= constraint.min_domains and len(per_domain)
            least = int(per_domain.min()) if enough else 0  # minDomains: too few count as 0
            padded = np.append(per_domain, 0)[domains.of_row]
            passed = domains.has_key & (padded + int(itself) - least <= constraint.max_skew)
            found.append(
                RuleCheck(
                    passed,
                    f"{constraint.field}: the node's {constraint.topology_key} would be more than "
                    f"{constraint.max_skew} ahead of the emptiest",
                )
            )
        return found

    def allowed(self) -> BoolArray:
        mask = np.ones(len(self._table), dtype=np.bool_)
        for check in self.checks():
            mask &= check.passed
        return mask

    def explain(self, rows: IntArray) -> str:
        """Of ``rows`` (nodes with room), how many each rule removed (each under its first rule)."""
        left = np.ones(len(rows), dtype=np.bool_)
        said: list[str] = []
        for check in self.checks():
            removed = left & ~check.passed[rows]
            if removed.any():
                said.append(f"{int(np.count_nonzero(removed))} × {check.reason}")
            left &= check.passed[rows]
        return "; ".join(said)

    def narrow(self, rows: IntArray) -> IntArray:
        """The default spread of serving replicas: of the rows with room, those holding fewest of
        the job's pods (never empty when ``rows`` is not: it picks among nodes, it never refuses)."""
        if not self._rules.spread_replicas or len(rows) == 0:
            return rows
        own = self.own_count[rows]
        narrowed: IntArray = rows[own == own.min()]
        return narrowed

    def preferences(self) -> FloatArray | None:
        """0..1 per row: the mean of the template's preferred parts (node affinity, pod
        (anti-)affinity, ScheduleAnyway spread), each scored as kube-scheduler's plugin does; None
        when the template prefers nothing."""
        parts: list[FloatArray] = []
        if self._node_preference is not None:
            parts.append(self._node_preference)
        if self._preferred:
            raw = np.zeros(len(self._table), dtype=np.float64)
            for weight, _, per_row in self._preferred:
                raw += weight * per_row
            parts.append(min_max(raw))
        soft = [
            SpreadCounts(c.max_skew, np.append(n, 0)[d.of_row], d.has_key, len(d.names))
            for c, d, n, _ in self._spread
            if c.when_unsatisfiable is WhenUnsatisfiable.SCHEDULE_ANYWAY
        ]
        if soft:
            parts.append(spread_part(soft))
        if not parts:
            return None
        result: FloatArray = np.mean(parts, axis=0)
        return result

    def fork(self) -> RuleTracker:
        """A tracker whose counts move apart from this one's: to try a multi-node replica's group
        in one topology domain and keep the try only if it is the one chosen (gang_placement)."""
        other = copy.copy(self)
        other.own_count = self.own_count.copy()
        other._affinity = [(c, per_row.copy()) for c, per_row in self._affinity]
        other._anti = [(c, per_row.copy()) for c, per_row in self._anti]
        other._preferred = [(w, c, per_row.copy()) for w, c, per_row in self._preferred]
        other._spread = [(c, d, counts.copy(), itself) for c, d, counts, itself in self._spread]
        return other

    def place(self, row: int) -> None:
        """One of the job's pods planned on ``row``: every count it moves."""
        self.own_count[row] += 1
        for counts, per_row in self._affinity:
            if counts.own_counts:
                per_row[self._domain(counts.term.topology_key).same_domain(row)] += 1
                self._affinity_seen = True
        for counts, per_row in self._anti:
            if counts.own_counts:
                per_row[self._domain(counts.term.topology_key).same_domain(row)] += 1
        for _, counts, per_row in self._preferred:
            if counts.own_counts:
                per_row[self._domain(counts.term.topology_key).same_domain(row)] += 1
        for _, domains, per_domain, itself in self._spread:
            if itself and domains.of_row[row] >= 0:
                per_domain[domains.of_row[row]] += 1
