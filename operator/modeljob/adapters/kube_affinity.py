"""A pod spec's affinity and topologySpreadConstraints -> core/affinity.py values, errors naming the field.

Read for a ModelJob's template (strictly: what the planner cannot honour is refused, never
bound against) and for every watched pod (leniently: only its required pod anti-affinity,
which other pods must respect, and nothing it cannot read stops the watch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modeljob.core.affinity import (
    NODE_NAME_FIELD,
    LabelSelector,
    NodeAffinity,
    NodeSelectorTerm,
    PodAffinityTerm,
    PreferredNodeTerm,
    Requirement,
    SelectorOperator,
    SpreadConstraint,
    TemplateRules,
    WeightedPodAffinityTerm,
    WhenUnsatisfiable,
)

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
_LABEL_OPERATORS = (
    SelectorOperator.IN,
    SelectorOperator.NOT_IN,
    SelectorOperator.EXISTS,
    SelectorOperator.DOES_NOT_EXIST,
)


class RuleError(ValueError):
    """A rule the planner cannot read or honour; the message starts with its field."""


def template_rules(
    pod_spec: Mapping[str, Any],
    *,
    namespace: str,
    pod_labels: Mapping[str, str],
    where: str = "spec.template.spec",
) -> TemplateRules:
    """The template's affinity and spread constraints; RuleError names the first field it cannot honour."""
    affinity = _mapping(pod_spec.get("affinity"), f"{where}.affinity")
    own = _mapping(affinity.get("podAffinity"), f"{where}.affinity.podAffinity")
    anti = _mapping(affinity.get("podAntiAffinity"), f"{where}.affinity.podAntiAffinity")
    own_path, anti_path = f"{where}.affinity.podAffinity", f"{where}.affinity.podAntiAffinity"
    return TemplateRules(
        node_affinity=_node_affinity(affinity.get("nodeAffinity"), f"{where}.affinity.nodeAffinity"),
        affinity=_terms(own.get(REQUIRED), f"{own_path}.{REQUIRED}", namespace),
        anti_affinity=_terms(anti.get(REQUIRED), f"{anti_path}.{REQUIRED}", namespace),
        preferred_affinity=_weighted(own.get(PREFERRED), f"{own_path}.{PREFERRED}", namespace),
        preferred_anti_affinity=_weighted(anti.get(PREFERRED), f"{anti_path}.{PREFERRED}", namespace),
        spread=_spread(
            pod_spec.get("topologySpreadConstraints"), f"{where}.topologySpreadConstraints", pod_labels
        ),
        pod_labels=tuple(sorted(pod_labels.items())),
    )


def required_anti_affinity(pod_spec: Mapping[str, Any], namespace: str) -> tuple[PodAffinityTerm, ...]:
    """A watched pod's required pod anti-affinity; () where it cannot be read (the API server has
    validated it; anything it let through that we cannot read is not ours to judge)."""
    try:
        anti = ((pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(REQUIRED)
        return _terms(anti, f"spec.affinity.podAntiAffinity.{REQUIRED}", namespace) if anti else ()
    except (RuleError, AttributeError, TypeError):
        return ()


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuleError(f"{where}: expected an object")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RuleError(f"{where}: expected a list")
    return value


def _requirement(item: Any, where: str, *, operators: Sequence[SelectorOperator]) -> Requirement:
    item = _mapping(item, where)
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise RuleError(f"{where}.key: required")
    try:
        operator = SelectorOperator(str(item.get("operator")))
    except ValueError:
        operator = None
    if operator is None or operator not in operators:
        raise RuleError(
            f"{where}.operator: expected one of {', '.join(operators)}, got {item.get('operator')!r}"
        )
    values = tuple(str(v) for v in _list(item.get("values"), f"{where}.values"))
    if operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not values:
        raise RuleError(f"{where}.values: {operator} needs at least one value")
    if operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and values:
        raise RuleError(f"{where}.values: {operator} takes no values")
    integer = len(values) == 1 and values[0].lstrip("-").isdigit()
    if operator in (SelectorOperator.GT, SelectorOperator.LT) and not integer:
        raise RuleError(f"{where}.values: {operator} takes one integer")
    return Requirement(key=key, operator=operator, values=values)


def _node_term(item: Any, where: str) -> NodeSelectorTerm:
    term = _mapping(item, where)
    every = tuple(SelectorOperator)
    expressions = tuple(
        _requirement(e, f"{where}.matchExpressions[{i}]", operators=every)
        for i, e in enumerate(_list(term.get("matchExpressions"), f"{where}.matchExpressions"))
    )
    fields = tuple(
        _requirement(e, f"{where}.matchFields[{i}]", operators=every)
        for i, e in enumerate(_list(term.get("matchFields"), f"{where}.matchFields"))
    )
    for index, requirement in enumerate(fields):
        if requirement.key != NODE_NAME_FIELD:
            raise RuleError(f"{where}.matchFields[{index}].key: only {NODE_NAME_FIELD} is supported")
    return NodeSelectorTerm(expressions=expressions, fields=fields)


def _node_affinity(value: Any, where: str) -> NodeAffinity:
    node = _mapping(value, where)
    required = _mapping(node.get(REQUIRED), f"{where}.{REQUIRED}")
    terms_path = f"{where}.{REQUIRED}.nodeSelectorTerms"
    terms = tuple(
        _node_term(t, f"{terms_path}[{i}]")
        for i, t in enumerate(_list(required.get("nodeSelectorTerms"), terms_path))
    )
    if REQUIRED in node and not terms:
        raise RuleError(f"{terms_path}: at least one term is required")
    preferred = []
    for index, item in enumerate(_list(node.get(PREFERRED), f"{where}.{PREFERRED}")):
        path = f"{where}.{PREFERRED}[{index}]"
        entry = _mapping(item, path)
        preferred.append(
            PreferredNodeTerm(_weight(entry, path), _node_term(entry.get("preference"), f"{path}.preference"))
        )
    return NodeAffinity(required=terms, preferred=tuple(preferred), field=f"{where}.{REQUIRED}")


def _weight(entry: Mapping[str, Any], where: str) -> int:
    weight = entry.get("weight")
    if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
        raise RuleError(f"{where}.weight: an integer 1..100 is required, got {weight!r}")
    return weight


def _selector(value: Any, where: str) -> LabelSelector | None:
    """A metav1.LabelSelector; None (no selector) matches no pod, {} every pod."""
    if value is None:
        return None
    selector = _mapping(value, where)
    labels = _mapping(selector.get("matchLabels"), f"{where}.matchLabels")
    expressions = tuple(
        _requirement(e, f"{where}.matchExpressions[{i}]", operators=_LABEL_OPERATORS)
        for i, e in enumerate(_list(selector.get("matchExpressions"), f"{where}.matchExpressions"))
    )
    return LabelSelector(
        match_labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())), expressions=expressions
    )


def _term(item: Any, where: str, namespace: str) -> PodAffinityTerm:
    term = _mapping(item, where)
    key = term.get("topologyKey")
    if not isinstance(key, str) or not key:
        raise RuleError(f"{where}.topologyKey: required")
    for unsupported in ("matchLabelKeys", "mismatchLabelKeys"):
        if term.get(unsupported):
            raise RuleError(f"{where}.{unsupported}: not supported")
    namespaces = tuple(str(n) for n in _list(term.get("namespaces"), f"{where}.namespaces"))
    chooser = term.get("namespaceSelector")
    everywhere = False
    if chooser is not None:
        chosen = _mapping(chooser, f"{where}.namespaceSelector")
        if chosen.get("matchLabels") or chosen.get("matchExpressions"):
            # Namespaces' labels are not watched: the planner could not tell which namespaces match.
            raise RuleError(
                f"{where}.namespaceSelector: not supported (only {{}}, every namespace, or namespaces)"
            )
        everywhere = True
    if not namespaces and not everywhere:
        namespaces = (namespace,)  # Kubernetes: null namespaces and null selector = the pod's own
    return PodAffinityTerm(
        topology_key=key,
        selector=_selector(term.get("labelSelector"), f"{where}.labelSelector"),
        namespaces=namespaces,
        all_namespaces=everywhere,
        field=where,
    )


def _terms(value: Any, where: str, namespace: str) -> tuple[PodAffinityTerm, ...]:
    return tuple(_term(item, f"{where}[{i}]", namespace) for i, item in enumerate(_list(value, where)))


def _weighted(value: Any, where: str, namespace: str) -> tuple[WeightedPodAffinityTerm, ...]:
    found = []
    for index, item in enumerate(_list(value, where)):
        path = f"{where}[{index}]"
        entry = _mapping(item, path)
        found.append(
            WeightedPodAffinityTerm(
                _weight(entry, path),
                _term(entry.get("podAffinityTerm"), f"{path}.podAffinityTerm", namespace),
            )
        )
    return tuple(found)


def _spread(value: Any, where: str, pod_labels: Mapping[str, str]) -> tuple[SpreadConstraint, ...]:
    found = []
    for index, item in enumerate(_list(value, where)):
        path = f"{where}[{index}]"
        entry = _mapping(item, path)
        skew = entry.get("maxSkew")
        if not isinstance(skew, int) or isinstance(skew, bool) or skew < 1:
            raise RuleError(f"{path}.maxSkew: an integer >= 1 is required, got {skew!r}")
        key = entry.get("topologyKey")
        if not isinstance(key, str) or not key:
            raise RuleError(f"{path}.topologyKey: required")
        try:
            when = WhenUnsatisfiable(str(entry.get("whenUnsatisfiable")))
        except ValueError:
            got = entry.get("whenUnsatisfiable")
            raise RuleError(
                f"{path}.whenUnsatisfiable: expected DoNotSchedule or ScheduleAnyway, got {got!r}"
            ) from None
        minimum = entry.get("minDomains", 1)
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
            raise RuleError(f"{path}.minDomains: an integer >= 1 is required, got {minimum!r}")
        selector = _selector(entry.get("labelSelector"), f"{path}.labelSelector")
        keys = [str(k) for k in _list(entry.get("matchLabelKeys"), f"{path}.matchLabelKeys")]
        if selector is not None and keys:
            # matchLabelKeys: the pod's own values of those keys join the selector (Kubernetes ANDs them).
            own = tuple((k, pod_labels[k]) for k in keys if k in pod_labels)
            selector = LabelSelector(
                match_labels=tuple(sorted({*selector.match_labels, *own})), expressions=selector.expressions
            )
        found.append(
            SpreadConstraint(
                max_skew=skew,
                topology_key=key,
                when_unsatisfiable=when,
                selector=selector,
                min_domains=minimum,
                field=path,
            )
        )
    return tuple(found)


# A term of a running pod that cannot be read exactly: taken as selecting every pod, everywhere.
_SELECTS_EVERY_POD = LabelSelector()


def scoring_terms(pod_spec: Mapping[str, Any], namespace: str) -> tuple[PodAffinityTerm, ...]:
    """The terms by which this pod, once on a node, makes kube-scheduler's InterPodAffinity score
    nodes for another pod: its required pod affinity (weighted by hardPodAffinityWeight), its
    preferred pod affinity and its preferred pod anti-affinity (interpodaffinity/scoring.go,
    processExistingPod; its required anti-affinity only filters). Read as kube-scheduler reads them
    (framework.newAffinityTerm): labelSelector and namespaces, matchLabelKeys ignored (the API
    server merged them into labelSelector). Read leniently, erring towards "selects": a
    namespaceSelector with terms selects every namespace (namespaces' labels are not watched), and
    a term that cannot be read selects every pod."""
    affinity = pod_spec.get("affinity")
    if not isinstance(affinity, Mapping):
        return ()
    found: list[PodAffinityTerm] = []
    for kind, rule, weighted in (
        ("podAffinity", REQUIRED, False),
        ("podAffinity", PREFERRED, True),
        ("podAntiAffinity", PREFERRED, True),
    ):
        terms = affinity.get(kind)
        items = terms.get(rule) if isinstance(terms, Mapping) else None
        for index, item in enumerate(items if isinstance(items, list) else ()):
            where = f"spec.affinity.{kind}.{rule}[{index}]"
            raw = item.get("podAffinityTerm") if weighted and isinstance(item, Mapping) else item
            found.append(_scoring_term(raw, where, namespace))
    return tuple(found)


def _scoring_term(raw: Any, where: str, namespace: str) -> PodAffinityTerm:
    try:
        term = {
            k: v for k, v in _mapping(raw, where).items() if k not in ("matchLabelKeys", "mismatchLabelKeys")
        }
        if term.get("namespaceSelector") is not None:
            term["namespaceSelector"] = {}
        return _term(term, where, namespace)
    except (RuleError, AttributeError, TypeError, ValueError):
        return PodAffinityTerm(topology_key="", selector=_SELECTS_EVERY_POD, all_namespaces=True, field=where)


def has_pod_affinity(pod_spec: Mapping[str, Any]) -> bool:
    """Any pod affinity or anti-affinity term, required or preferred: what InterPodAffinity weighs,
    for the pod it schedules and for the pods already running."""
    affinity = pod_spec.get("affinity")
    if not isinstance(affinity, Mapping):
        return False
    return any(
        isinstance(terms := affinity.get(kind), Mapping) and terms.get(rule)
        for kind in ("podAffinity", "podAntiAffinity")
        for rule in (
            "requiredDuringSchedulingIgnoredDuringExecution",
            "preferredDuringSchedulingIgnoredDuringExecution",
        )
    )
