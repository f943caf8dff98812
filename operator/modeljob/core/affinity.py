"""A pod template's own placement rules, as Kubernetes defines them: node and pod (anti-)affinity, spread.

Plain values and the label matching of each; what they make of a cluster (which nodes a job may
use, which its next replica may, how the template's preferences score) is core/template_rules.py.
Every rule carries ``field``, where in the ModelJob it was written, so a job that waits because
of it can say which rule holds it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# The one field a nodeSelectorTerm's matchFields may name (the API server refuses others).
NODE_NAME_FIELD = "metadata.name"
HOSTNAME_LABEL = "kubernetes.io/hostname"


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"  # node selectors only: the label's value, an integer, is greater
    LT = "Lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One matchExpressions (or matchFields) entry: ``key`` ``operator`` ``values``."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case SelectorOperator.IN:
                return value is not None and value in self.values
            case SelectorOperator.NOT_IN:
                return value is None or value not in self.values
            case SelectorOperator.EXISTS:
                return value is not None
            case SelectorOperator.DOES_NOT_EXIST:
                return value is None
            case SelectorOperator.GT | SelectorOperator.LT:
                return _compares(value, self.operator, self.values[0])


def _compares(value: str | None, operator: SelectorOperator, bound: str) -> bool:
    """Gt/Lt: both sides parse as integers (a label that does not never matches, as in Kubernetes)."""
    try:
        number, limit = int(value or ""), int(bound)
    except ValueError:
        return False
    return number > limit if operator is SelectorOperator.GT else number < limit


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One nodeSelectorTerm: its expressions (on labels) and fields (on the node's name), ANDed.

    An empty term matches no node, as Kubernetes defines it.
    """

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if not self.expressions and not self.fields:
            return False
        return all(r.matches(labels) for r in self.expressions) and all(
            r.matches({NODE_NAME_FIELD: name}) for r in self.fields
        )


@dataclass(frozen=True, slots=True)
class PreferredNodeTerm:
    weight: int  # 1..100
    term: NodeSelectorTerm


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    """``required``: terms ORed (empty: no requirement); ``field`` names the required part."""

    required: tuple[NodeSelectorTerm, ...] = ()
    preferred: tuple[PreferredNodeTerm, ...] = ()
    field: str = "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"

    def admits(self, name: str, labels: Mapping[str, str]) -> bool:
        return not self.required or any(term.matches(name, labels) for term in self.required)

    def preference(self, name: str, labels: Mapping[str, str]) -> float:
        """0..1: the share of the preferred terms' weight this node meets (1 with none stated)."""
        total = sum(p.weight for p in self.preferred)
        if not total:
            return 1.0
        return sum(p.weight for p in self.preferred if p.term.matches(name, labels)) / total


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector: matchLabels and matchExpressions, ANDed; empty matches every pod."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.expressions
        )


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """One pod (anti-)affinity term, as seen from the pod that states it.

    ``selector`` None matches no pod (Kubernetes' null labelSelector). ``namespaces`` are those
    the term looks in; empty with ``all_namespaces`` False means the stating pod's own namespace
    (the adapter resolves that), ``all_namespaces`` is an empty namespaceSelector ({}).
    """

    topology_key: str
    selector: LabelSelector | None
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    field: str = ""

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether a pod in ``namespace`` with ``labels`` is one this term is about."""
        if self.selector is None:
            return False
        if not self.all_namespaces and namespace not in self.namespaces:
            return False
        return self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class WeightedPodAffinityTerm:
    weight: int  # 1..100
    term: PodAffinityTerm


class WhenUnsatisfiable(StrEnum):
    DO_NOT_SCHEDULE = "DoNotSchedule"  # a filter
    SCHEDULE_ANYWAY = "ScheduleAnyway"  # a score


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """One topologySpreadConstraint; ``selector`` already holds matchLabelKeys' values.

    Pods counted are those in the job's namespace that ``selector`` matches (None: none).
    """

    max_skew: int
    topology_key: str
    when_unsatisfiable: WhenUnsatisfiable
    selector: LabelSelector | None
    min_domains: int = 1
    field: str = ""

    def selects(self, namespace: str, own_namespace: str, labels: Mapping[str, str]) -> bool:
        return self.selector is not None and namespace == own_namespace and self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class TemplateRules:
    """Every placement rule of a job's pod template beyond nodeSelector and tolerations.

    ``pod_labels`` are the labels each of the job's pods carries (the template's and the
    operator's), which the job's own selectors and other pods' terms are matched against.
    """

    node_affinity: NodeAffinity = NodeAffinity()
    affinity: tuple[PodAffinityTerm, ...] = ()
    anti_affinity: tuple[PodAffinityTerm, ...] = ()
    preferred_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    pod_labels: tuple[tuple[str, str], ...] = ()

    @property
    def states_pod_rules(self) -> bool:
        """Whether the template says anything about where its pods go relative to other pods."""
        return bool(
            self.affinity
            or self.anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
            or self.spread
        )
