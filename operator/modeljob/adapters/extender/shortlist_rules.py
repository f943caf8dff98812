"""When the filter may pass kube-scheduler only the nodes that could still win (pure).

kube-scheduler never chooses a node the filter leaves out, but several of its score plugins scale
their scores over the nodes they are given (NodeAffinity, TaintToleration and DynamicResources by
the highest, InterPodAffinity and PodTopologySpread between the lowest and the highest; v1.36's
plugins' NormalizeScore). Scoring fewer nodes could then weigh a pod's preferences differently
among the nodes kept. Those plugins score every node alike, and the shortlist changes nothing,
when none of their inputs is there:

- from the pod's own spec (`pod_reason`): no preferred node affinity, no pod affinity, no topology
  spread, no resource claims, and not a ModelJob's (its job's headless Service selects it), a
  ReplicaSet's, a StatefulSet's or a ReplicationController's (whose pods kube-scheduler spreads by
  default: helper.DefaultSelector);
- from the cluster (scoring_inputs.ScoringInputs): no Service in the pod's namespace selects it
  (`service_selects`, as helper.GetPodServices: a Service's labels join the default spreading's
  selector), no running pod's InterPodAffinity scoring terms select it (kube_affinity.scoring_terms),
  and no node that fits carries a PreferNoSchedule taint the pod does not tolerate
  (core's `Toleration.tolerates`, as TaintToleration's countIntolerableTaintsPreferNoSchedule: with
  none, every node scores 0 and DefaultNormalizeScore gives each the maximum).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeljob.adapters import kube_values
from modeljob.adapters.kube_affinity import has_pod_affinity
from modeljob.adapters.kube_pods import LABEL_JOB_UID
from modeljob.core.cluster_state import Taint, TaintEffect, Toleration

# kube-scheduler's default topology spreading (PodTopologySpread's system defaults) applies to the
# pods of these controllers (helper.DefaultSelector), and to pods a Service selects.
SPREAD_BY_DEFAULT = frozenset({"ReplicaSet", "StatefulSet", "ReplicationController"})


def pod_reason(pod: Mapping[str, Any]) -> str | None:
    """Why kube-scheduler's scores for this Pod depend on which nodes it scores, or None."""
    spec = pod.get("spec") or {}
    affinity = _mapping(spec.get("affinity"))
    if LABEL_JOB_UID in ((pod.get("metadata") or {}).get("labels") or {}):
        return "a ModelJob's pod: its job's headless Service selects it (spread by default)"
    if _mapping(affinity.get("nodeAffinity")).get("preferredDuringSchedulingIgnoredDuringExecution"):
        return "the pod prefers nodes (preferred node affinity)"
    if has_pod_affinity(spec):
        return "the pod has pod affinity terms"
    if spec.get("topologySpreadConstraints"):
        return "the pod spreads over topology"
    if spec.get("resourceClaims"):
        return "the pod claims resources (DynamicResources)"
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") in SPREAD_BY_DEFAULT:
            return f"the pod is a {owner['kind']}'s (spread by default)"
    return None


def alike_reason(spec: Mapping[str, Any]) -> str | None:
    """Why nodes alike in what kube-scheduler's per-node plugins read (likeness) may still score
    apart for this pod, or None: VolumeBinding scores the nodes for a pod with a volume it binds
    (a PersistentVolumeClaim or an ephemeral one), by what the extender does not watch."""
    for volume in spec.get("volumes") or ():
        if isinstance(volume, Mapping) and ("persistentVolumeClaim" in volume or "ephemeral" in volume):
            return f"the pod's volume {volume.get('name')} is bound by VolumeBinding"
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_tolerations(items: object) -> tuple[Toleration, ...]:
    """A pod's spec.tolerations as kube-scheduler matches them (core's Toleration.tolerates, as
    v1.Toleration.ToleratesTaint). Lt and Gt (behind the TaintTolerationComparisonOperators gate)
    are left out, as tolerating nothing: that can only keep the shortlist off."""
    known = [
        item
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, Mapping) and (item.get("operator") or "Equal") in ("Equal", "Exists")
    ]
    return tuple(kube_values.tolerations(known))


def untolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> Taint | None:
    """The first PreferNoSchedule taint no toleration tolerates (TaintToleration's Score counts them)."""
    for taint in taints:
        if taint.effect is TaintEffect.PREFER_NO_SCHEDULE and not any(
            t.tolerates(taint) for t in tolerations
        ):
            return taint
    return None


def service_selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a Service with this selector makes kube-scheduler spread the pod (helper.DefaultSelector
    merges the selectors of the Services helper.GetPodServices finds): a nil selector selects no pod,
    and an empty one adds nothing to spread by."""
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())
